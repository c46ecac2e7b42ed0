-- The life cycle's states, redefined with the whole list (lifecycle.State, in its order): 0017 added
-- 'suppressed_pilot' and 0019 'scheduled' and 'suppressed_superseded', each to the list it knew.
ALTER TABLE notifications DROP CONSTRAINT notifications_state_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_state_check CHECK (state IN (
    'claimed',
    'sent',
    'delivered',
    'undelivered',
    'failed',
    'suppressed_invalid_recipient',
    'suppressed_opted_out',
    'suppressed_stale',
    'suppressed_pilot',
    'scheduled',
    'suppressed_superseded'
));
