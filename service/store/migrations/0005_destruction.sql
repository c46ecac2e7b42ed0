-- What retention and erasure destroyed: counts and time ranges, never the data itself.
CREATE TABLE destruction_log (
    id             bigserial   PRIMARY KEY,
    run_at         timestamptz NOT NULL DEFAULT now(),
    kind           text        NOT NULL CHECK (kind IN ('retention', 'erasure')),
    scope          text        NOT NULL,  -- 'older than 90 days', 'order', 'phone' (never the value)
    contacts       integer     NOT NULL,  -- sealed events destroyed
    subjects       integer     NOT NULL,  -- notifications whose blind indexes were cleared
    oldest         timestamptz,           -- time range of the notifications affected
    newest         timestamptz
);
