-- Sends that never got a final status (the delivery report was lost: the service was down when the
-- provider called back, and Twilio does not retry) are looked up at their provider by a job.
-- sms_sent_at: when the SMS send was recorded, set by the trigger below whatever statement records
--   it (so the job's clock starts at the send, never at a later unrelated update).
-- status_check_due_at: when the next look-up is due (NULL: the first is due status_check_after_s
--   after sms_sent_at); also the lease of a look-up in progress.
-- status_checks: look-ups so far. status_gave_up_at: no final status by the maximum age, no more
--   look-ups (the notification stays 'sent': never a status the provider did not give).
ALTER TABLE notifications
    ADD COLUMN sms_sent_at         timestamptz,
    ADD COLUMN status_check_due_at timestamptz,
    ADD COLUMN status_checks       integer NOT NULL DEFAULT 0,
    ADD COLUMN status_gave_up_at   timestamptz;

UPDATE notifications SET sms_sent_at = updated_at WHERE state = 'sent' AND channel = 'sms';

CREATE FUNCTION notifications_sms_sent_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'sent' AND NEW.channel = 'sms'
       AND (OLD.state IS DISTINCT FROM 'sent' OR OLD.reference IS DISTINCT FROM NEW.reference) THEN
        NEW.sms_sent_at := now();
        NEW.status_check_due_at := NULL;
        NEW.status_checks := 0;
        NEW.status_gave_up_at := NULL;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER notifications_sms_sent BEFORE UPDATE OF state, channel, reference ON notifications
    FOR EACH ROW EXECUTE FUNCTION notifications_sms_sent_at();

-- Only sends still awaiting a final status: a small index, whatever the table's size.
CREATE INDEX notifications_awaiting_status ON notifications (sms_sent_at)
    WHERE state = 'sent' AND channel = 'sms' AND status_gave_up_at IS NULL;
