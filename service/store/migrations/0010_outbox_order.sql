-- Receipts in causal order, each published once (issue 11). Every outbox row gets a sequence
-- number: a notification's rows are published in that order. Each writer of a receipt updates
-- its notification's row first (``finish``, ``record_delivery``), so two writers of one
-- notification commit one after the other and the later one draws the larger number.
-- Rows are published under a lease (owner, expiry): a row is born leased to the operation that
-- wrote it, which publishes it at once; the relay takes only rows whose lease is over.
CREATE SEQUENCE receipt_outbox_seq AS bigint;
ALTER TABLE receipt_outbox
    ADD COLUMN seq          bigint,
    ADD COLUMN lease_owner  text,
    ADD COLUMN lease_until  timestamptz;
UPDATE receipt_outbox AS o SET seq = t.n
FROM (SELECT receipt_id, row_number() OVER (ORDER BY created_at, receipt_id) AS n FROM receipt_outbox) AS t
WHERE o.receipt_id = t.receipt_id;
SELECT setval('receipt_outbox_seq', coalesce((SELECT max(seq) FROM receipt_outbox), 0) + 1, false);
ALTER TABLE receipt_outbox
    ALTER COLUMN seq SET DEFAULT nextval('receipt_outbox_seq'),
    ALTER COLUMN seq SET NOT NULL,
    ADD CONSTRAINT receipt_outbox_seq_key UNIQUE (seq);
ALTER SEQUENCE receipt_outbox_seq OWNED BY receipt_outbox.seq;
DROP INDEX receipt_outbox_unpublished_idx;
CREATE INDEX receipt_outbox_pending_idx ON receipt_outbox (notification_id, seq) WHERE published_at IS NULL;
