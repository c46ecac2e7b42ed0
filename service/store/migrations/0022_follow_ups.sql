-- Follow-ups of the pickup notice (issue 15, items 3 and 4): pickup reminders and the satisfaction
-- survey link are due sends in scheduled_sends (one row per kind and pickup notification; a
-- reminder's row is moved on to the next reminder's due time), released by the follow-up job
-- (service/pipeline/follow_up_release.py). What was decided for each is kept in follow_ups: the
-- policy counts it (at most M reminders, one survey, even across restarts) and its receipt was
-- written with it. Ids and codes only: no personal data (the text comes from the pickup notice's
-- sealed event, destroyed by the retention and erasure like every sealed event).

ALTER TABLE scheduled_sends DROP CONSTRAINT scheduled_sends_kind_check;
ALTER TABLE scheduled_sends ADD CONSTRAINT scheduled_sends_kind_check
    CHECK (kind IN ('notification', 'pickup_reminder', 'survey'));

CREATE TABLE follow_ups (
    id              uuid        PRIMARY KEY,  -- follow_up_id(order, kind, number)
    kind            text        NOT NULL CHECK (kind IN ('pickup_reminder', 'survey')),
    number          integer     NOT NULL CHECK (number BETWEEN 1 AND 10),
    notification_id uuid        NOT NULL REFERENCES notifications (id),  -- the pickup notice it follows
    order_id        text        NOT NULL,
    outcome         text        NOT NULL,
    channel         text        NOT NULL,
    provider        text,
    reason          text,
    decided_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT follow_ups_one_each UNIQUE (notification_id, kind, number)
);
CREATE INDEX follow_ups_order_idx ON follow_ups (order_id);
