-- Dwell time (service/domain/dwell.py): when each order's bike became ready for pickup and when
-- the customer collected it (TMS status PICKED_UP), with the pickup place. No personal data: the
-- order id, the place (a shop or warehouse the TMS names), the TMS's two times. Either end may
-- come first; each keeps its first (earliest) time, and the place is the first ready event's.
-- Like shipment_events, not purged by the retention of personal data. `notifier report dwell`
-- reads it by pickup time (the partial index); the pickup reminders ask whether a bike was collected.
CREATE TABLE pickup_dwell (
    order_id     text PRIMARY KEY CHECK (length(order_id) BETWEEN 1 AND 64),
    place        text CHECK (length(place) BETWEEN 1 AND 100),
    ready_at     timestamptz,
    picked_up_at timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (ready_at IS NOT NULL OR picked_up_at IS NOT NULL)
);
CREATE INDEX pickup_dwell_picked_up_idx ON pickup_dwell (picked_up_at)
    WHERE ready_at IS NOT NULL AND picked_up_at IS NOT NULL;
