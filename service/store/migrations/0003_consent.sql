-- Consent: who asked not to be messaged, by blind index (HMAC of the phone or email), never in
-- clear. opt_outs holds the current state; consent_events is the history (UEMO keeps requests
-- on record), with the source of each change: unsubscribe link, STOP reply, operator, provider.
CREATE TABLE opt_outs (
    subject    bytea       PRIMARY KEY,
    source     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE consent_events (
    id         bigserial   PRIMARY KEY,
    subject    bytea       NOT NULL,
    action     text        NOT NULL CHECK (action IN ('opt_out', 'opt_in')),
    source     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consent_events_subject_idx ON consent_events (subject, created_at);
