-- Pilot mode and bad-number hygiene (issue 15, items 6 and 7). Recipients by blind index only
-- (HMAC of the E.164 phone or of the email, as opt_outs), never in clear.

-- The pilot's allow-list: while NOTIFIER_PILOT_MODE is on, only these contacts are messaged (an SMS
-- only to a listed phone, an email only to a listed address); every other notification is decided
-- and receipted 'suppressed_pilot'. pilot_events is its history (who added or removed, when).
CREATE TABLE pilot_recipients (
    subject    bytea       PRIMARY KEY,
    kind       text        NOT NULL CHECK (kind IN ('phone', 'email')),
    added_by   text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pilot_events (
    id         bigserial   PRIMARY KEY,
    subject    bytea       NOT NULL,
    action     text        NOT NULL CHECK (action IN ('add', 'remove')),
    source     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Numbers that fail for good. A number is marked (marked_at) when a provider refuses it as invalid
-- or unreachable, reports it undelivered with a permanent code, or reports it undelivered
-- NOTIFIER_BAD_NUMBER_UNDELIVERED_REPORTS times in a row (undelivered: the current streak; a
-- delivered report ends it). A marked number is not texted again: later milestones go by email, or
-- are suppressed with a reason. A new number in a later event is a new subject, not marked.
CREATE TABLE phone_health (
    subject     bytea       PRIMARY KEY,
    undelivered integer     NOT NULL DEFAULT 0 CHECK (undelivered >= 0),
    marked_at   timestamptz,
    reason      text,        -- the provider's word that marked it (twilio_21211, infobip_EC_…), or the streak's last
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The life cycle's states (service/domain/lifecycle.py), now with 'suppressed_pilot': the whole
-- list, in State's order (a unit test compares the two).
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
    'suppressed_pilot'
));
