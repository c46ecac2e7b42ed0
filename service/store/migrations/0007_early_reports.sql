-- A provider can report on a message before this service has recorded that it sent it (the
-- report overtakes the send's own bookkeeping). Such reports wait here and are applied as soon
-- as the send is recorded.
CREATE TABLE early_reports (
    reference   text        NOT NULL,
    provider    text        NOT NULL,
    delivered   boolean     NOT NULL,
    code        text,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (reference, delivered)
);
