-- Links and subjects: the link id behind a notification's signed status/unsubscribe links, and
-- the blind indexes (keyed hashes) of its recipient's phone and email, so that an unsubscribe
-- link, an erasure request or a support look-up can find it without any plaintext.
ALTER TABLE notifications
    ADD COLUMN link_id       bytea,
    ADD COLUMN phone_subject bytea,
    ADD COLUMN email_subject bytea;
CREATE UNIQUE INDEX notifications_link_idx ON notifications (link_id);
CREATE INDEX notifications_phone_subject_idx ON notifications (phone_subject);
CREATE INDEX notifications_email_subject_idx ON notifications (email_subject);
