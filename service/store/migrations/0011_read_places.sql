-- Where each event stands in the service's input: a place given when the event is first read
-- (recorded, in its batch's order), kept when it is read again. The stale rule compares these
-- places (service/domain/plan.py), so a decision depends on the events and their order, never on
-- how far an earlier attempt got. Events recorded before this migration have no place: they
-- count as read before every event that has one (no table rewrite here).
CREATE SEQUENCE shipment_events_read_seq AS bigint;
ALTER TABLE shipment_events ADD COLUMN read_seq bigint;
ALTER TABLE shipment_events ALTER COLUMN read_seq SET DEFAULT nextval('shipment_events_read_seq');
ALTER SEQUENCE shipment_events_read_seq OWNED BY shipment_events.read_seq;
