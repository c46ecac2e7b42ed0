-- Unsubscribe links that outlive the personal data they were sent with. Destroying a
-- notification's personal data (erasure, retention) clears its blind indexes and its link id; the
-- link's blind indexes move here, keyed by the link id only (no order, no notification, nothing in
-- clear), so that an unsubscribe by that link can still record the opt-out of the number or
-- address it was sent to. Kept only while such a link can still be valid, then deleted by the
-- retention job.
CREATE TABLE erased_links (
    link_id     bytea       PRIMARY KEY,
    subjects    bytea[]     NOT NULL,
    last_issued timestamptz NOT NULL  -- the latest a message carrying this link can have been made
);
CREATE INDEX erased_links_last_issued_idx ON erased_links (last_issued);
