-- An SMS reported undelivered is owed an email. The debt is written with the report, so neither a
-- crash nor an email provider that is down loses it: a job retries fallbacks that fall due until
-- one is decided (sent, or failed for good). Recording the fallback's outcome clears it.
ALTER TABLE notifications
    ADD COLUMN fallback_due_at timestamptz,
    ADD COLUMN fallback_attempts integer NOT NULL DEFAULT 0;
CREATE INDEX notifications_fallback_due ON notifications (fallback_due_at)
    WHERE fallback_due_at IS NOT NULL;
