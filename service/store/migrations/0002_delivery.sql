-- Delivery tracking: which attempt a provider callback belongs to, and what the provider said.
ALTER TABLE notifications
    ADD COLUMN reference            text,         -- our id of the current attempt, echoed by callbacks
    ADD COLUMN delivered_at         timestamptz;

-- The event a notification came from, encrypted (AES-256-GCM, key outside the database): what a
-- later fallback (email after an undelivered SMS) needs. Personal data: purged by retention.
CREATE TABLE notification_contacts (
    notification_id uuid        PRIMARY KEY REFERENCES notifications (id) ON DELETE CASCADE,
    key_id          text        NOT NULL,
    ciphertext      bytea       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
