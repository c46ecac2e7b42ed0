-- The consent that applied to each decision, and who changed consent in the audit log.
--
-- A decision (every outcome ``finish`` records: sent, failed, suppressed) keeps the snapshot of the
-- recipient's consent the decision read (service/domain/consent_snapshot.py): its state, the source of the
-- record and when it was set. No personal data: the source is a code (``unsubscribe_link``,
-- ``sms_reply:twilio``, ``provider:infobip``, ``operator:<staff or operator name>``). NULL on rows
-- decided before this migration and on claims not yet decided.
ALTER TABLE notifications
    ADD COLUMN consent_state  text CHECK (consent_state IN ('opted_out', 'opted_in', 'no_record')),
    ADD COLUMN consent_source text CHECK (length(consent_source) <= 100),
    ADD COLUMN consent_set_at timestamptz;

-- The opt-ins beside the opt-outs: a subject that opted back in (START, an operator's --opt-in)
-- after an opt-out, with the source and time of its latest opt-in; kept by set_consent with
-- opt_outs (a subject is in at most one of them). The batch's one consent look-up then probes two
-- primary keys (opt_ins is small: opting back in is rare) instead of the history.
CREATE TABLE opt_ins (
    subject    bytea       PRIMARY KEY,
    source     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO opt_ins (subject, source, created_at)
SELECT DISTINCT ON (e.subject) e.subject, e.source, e.created_at FROM consent_events e
WHERE e.action = 'opt_in' AND NOT EXISTS (SELECT 1 FROM opt_outs o WHERE o.subject = e.subject)
ORDER BY e.subject, e.created_at DESC, e.id DESC;

-- Every change of consent (a row of consent_events, whatever wrote it) writes an audit row in the
-- same transaction: who changed it (from the record's source: the customer by the unsubscribe
-- link or an SMS reply, a provider, an operator or staff member by name), what (consent_opt_out /
-- consent_opt_in, the source and how many subjects in detail), which order (the one the change was
-- made from, passed by the writer as ``notifier.consent_order`` for its transaction; else the
-- latest order notified to the phone) and when (now()). Such a row has no staff_id: the actor is
-- what the consent record says, not an authenticated staff member (a staff member's opt-out also
-- writes its own authenticated ``opt_out`` row through audit_write). The function is SECURITY
-- DEFINER (the owner's): the service's role can read the audit log but not write it, and cannot
-- disable this trigger (it does not own consent_events).
CREATE FUNCTION consent_events_audit() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    v_order text := nullif(current_setting('notifier.consent_order', true), '');
BEGIN
    INSERT INTO public.audit_log (actor, role, action, order_id, remote, detail, staff_id)
    SELECT
        left(CASE
            WHEN c.source = 'unsubscribe_link' OR c.source LIKE 'sms_reply:%' THEN 'customer'
            WHEN c.source LIKE 'operator:%' THEN substr(c.source, length('operator:') + 1)
            ELSE c.source
        END, 100),
        CASE
            WHEN c.source = 'unsubscribe_link' OR c.source LIKE 'sms_reply:%' THEN 'customer'
            WHEN c.source LIKE 'provider:%' THEN 'provider'
            WHEN c.source LIKE 'operator:%' THEN 'operator'
            ELSE 'system'
        END,
        'consent_' || c.action,
        left(coalesce(v_order, (
            SELECT n.order_id FROM public.notifications n
            WHERE n.phone_subject = ANY(c.subjects) ORDER BY n.created_at DESC LIMIT 1
        )), 200),
        NULL,
        left(format('%s, %s subject(s)', c.source, c.changed), 500),
        NULL
    FROM (
        SELECT action, source, count(*) AS changed, array_agg(subject) AS subjects
        FROM changed_rows GROUP BY action, source
    ) AS c;
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION consent_events_audit() FROM PUBLIC;

CREATE TRIGGER consent_events_audit AFTER INSERT ON consent_events
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION consent_events_audit();
