-- Quiet hours and coalescing (issue 15). A notification decided inside the quiet window is
-- 'scheduled': recorded with its receipt and its sealed event, and a row here in the same
-- transaction; the release job (service/pipeline/release.py) sends it after the window, or records
-- it 'suppressed_superseded' when a later milestone of its order exists by then.

-- The life cycle's states, redefined with the whole list (lifecycle.State, in its order).
ALTER TABLE notifications DROP CONSTRAINT notifications_state_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_state_check CHECK (state IN (
    'claimed',
    'sent',
    'delivered',
    'undelivered',
    'failed',
    'suppressed_invalid_recipient',
    'suppressed_opted_out',
    'suppressed_stale',
    'scheduled',
    'suppressed_superseded'
));

-- Sends due later, of any kind ('notification': a milestone held by quiet hours; later kinds,
-- e.g. pickup reminders and survey links, add themselves to the CHECK). A row is taken by one
-- instance at a time: the take leases it (not_before = now + lease, FOR UPDATE SKIP LOCKED), a
-- release that finishes deletes it, a held one sets not_before to its back-off.
-- due_from: the earliest it may go (a quiet window's end); slot: its place among the sends due
-- then, so releases are paced (slot / rate seconds after due_from, the rate the job's setting).
CREATE TABLE scheduled_sends (
    id                uuid        PRIMARY KEY,
    kind              text        NOT NULL CHECK (kind IN ('notification')),
    notification_id   uuid        NOT NULL REFERENCES notifications (id),
    order_id          text        NOT NULL,
    due_from         timestamptz NOT NULL,
    slot              bigint      NOT NULL CHECK (slot >= 0),
    not_before        timestamptz,
    releases          integer     NOT NULL DEFAULT 0 CHECK (releases >= 0),
    first_released_at timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX scheduled_sends_one_per_notification ON scheduled_sends (kind, notification_id);
CREATE INDEX scheduled_sends_due ON scheduled_sends (kind, due_from, slot);

-- How many slots of each (kind, due_from) are given out: the row lock orders every instance's
-- scheduling, so slots never repeat, and a restart continues the sequence.
CREATE TABLE release_slots (
    kind      text        NOT NULL,
    due_from timestamptz NOT NULL,
    taken     bigint      NOT NULL CHECK (taken >= 0),
    PRIMARY KEY (kind, due_from)
);
