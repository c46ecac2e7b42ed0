-- When an email attempt of a notification first began. A claim re-taken after a crash asks the
-- SMS providers whether an earlier attempt went out; email offers no such look-up, so a resend
-- is counted as a possible duplicate only when an earlier claim may have emailed.
ALTER TABLE notifications ADD COLUMN email_attempted_at timestamptz;
