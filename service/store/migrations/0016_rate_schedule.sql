-- Provider rate limits shared by the whole group (service/domain/group_rate.py): one row per
-- provider, the time its booked sends end. An instance books the next slot with one UPDATE; the
-- row lock orders the bookings of all instances, so their slots never overlap.
CREATE TABLE rate_schedule (
    provider  text PRIMARY KEY CHECK (length(provider) BETWEEN 1 AND 64),
    next_free timestamptz NOT NULL
);
