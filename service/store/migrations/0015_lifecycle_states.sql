-- The notification life cycle as data (service/domain/lifecycle.py): a notification's state is one
-- of the life cycle's states, and nothing else. The list is exactly lifecycle.State, in its order
-- (a unit test compares the two). These are the values the service has ever written: 'claimed'
-- (the claim, the column's default), a decision recorded by ``finish`` (sent, failed, and the
-- three suppressed_*; a held notification is never recorded) and a delivery report recorded by
-- ``record_delivery`` (delivered, undelivered), so existing rows pass.
ALTER TABLE notifications ADD CONSTRAINT notifications_state_check CHECK (state IN (
    'claimed',
    'sent',
    'delivered',
    'undelivered',
    'failed',
    'suppressed_invalid_recipient',
    'suppressed_opted_out',
    'suppressed_stale'
));
