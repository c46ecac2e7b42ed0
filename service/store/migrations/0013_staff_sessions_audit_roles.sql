-- Staff sessions, unique staff names, and an audit log the service's role cannot alter or forge.
--
-- The schema belongs to the owner role that applies migrations (NOTIFIER_MIGRATION_DATABASE_URL);
-- `notifier db migrate` then grants the service's role (NOTIFIER_DATABASE_URL) what it needs
-- (service/store/migrate.py): no privilege at all on staff_tokens and staff_sessions, only
-- SELECT on audit_log. The service authenticates and writes audit rows through the SECURITY
-- DEFINER functions below, which hash the presented secret themselves, look up the staff member
-- and take the time from now(): the service's role can neither back-date a row nor write one in
-- the name of a staff member whose token or session it was not given.

-- Two staff members may not share a name (audit rows and `staff revoke --name` name one person).
-- Existing duplicates keep their tokens under "name~id".
UPDATE staff_tokens t SET name = t.name || '~' || t.id
WHERE EXISTS (SELECT 1 FROM staff_tokens o WHERE o.name = t.name AND o.id < t.id);
ALTER TABLE staff_tokens ADD CONSTRAINT staff_tokens_name_key UNIQUE (name);

-- A sign-in on the page makes a session: a random id in the cookie, its SHA-256 here. It ends at
-- logout, after idle_s without use, at expires_at, or when the staff member's token is revoked.
CREATE TABLE staff_sessions (
    id           bigserial   PRIMARY KEY,
    session_hash bytea       NOT NULL UNIQUE,
    staff_id     bigint      NOT NULL REFERENCES staff_tokens (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    idle_s       integer     NOT NULL CHECK (idle_s > 0),
    ended_at     timestamptz
);
CREATE INDEX staff_sessions_expires_idx ON staff_sessions (expires_at);

ALTER TABLE audit_log ADD COLUMN staff_id bigint REFERENCES staff_tokens (id);

CREATE FUNCTION staff_authenticate(p_token text)
RETURNS TABLE (staff_id bigint, staff_name text, staff_role text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT t.id, t.name, t.role FROM public.staff_tokens t
    WHERE t.token_hash = sha256(convert_to(p_token, 'UTF8')) AND t.revoked_at IS NULL
$$;

CREATE FUNCTION staff_session_start(p_token text, p_session text, p_idle_s integer, p_absolute_s integer)
RETURNS TABLE (staff_id bigint, staff_name text, staff_role text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    t public.staff_tokens%ROWTYPE;
BEGIN
    SELECT * INTO t FROM public.staff_tokens s
    WHERE s.token_hash = sha256(convert_to(p_token, 'UTF8')) AND s.revoked_at IS NULL;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    DELETE FROM public.staff_sessions s WHERE s.expires_at < now() - interval '1 day';
    INSERT INTO public.staff_sessions AS s (session_hash, staff_id, expires_at, idle_s)
    VALUES (sha256(convert_to(p_session, 'UTF8')), t.id,
            now() + make_interval(secs => least(greatest(p_absolute_s, 60), 86400)),
            least(greatest(p_idle_s, 60), greatest(p_absolute_s, 60), 86400));
    staff_id := t.id;
    staff_name := t.name;
    staff_role := t.role;
    RETURN NEXT;
END $$;

-- A live session (not ended, not expired, used within its idle time, token not revoked) is
-- touched and its staff member returned.
CREATE FUNCTION staff_session_check(p_session text)
RETURNS TABLE (staff_id bigint, staff_name text, staff_role text)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    UPDATE public.staff_sessions s SET last_seen_at = now()
    FROM public.staff_tokens t
    WHERE s.session_hash = sha256(convert_to(p_session, 'UTF8')) AND t.id = s.staff_id
      AND s.ended_at IS NULL AND s.expires_at > now()
      AND s.last_seen_at > now() - make_interval(secs => s.idle_s)
      AND t.revoked_at IS NULL
    RETURNING t.id, t.name, t.role
$$;

CREATE FUNCTION staff_session_end(p_session text) RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH ended AS (
        UPDATE public.staff_sessions s SET ended_at = now()
        WHERE s.session_hash = sha256(convert_to(p_session, 'UTF8')) AND s.ended_at IS NULL
        RETURNING 1
    )
    SELECT count(*) > 0 FROM ended
$$;

-- The only way the service writes to the audit log. p_kind says what p_secret is: 'token' (a
-- bearer token), 'session' (the page's session id) or 'none'. The actor is the staff member the
-- secret belongs to; only refusals may be written without one (as 'unknown'). The time is now().
CREATE FUNCTION audit_write(
    p_kind text, p_secret text, p_action text, p_order_id text, p_remote text, p_detail text
) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    v_id   bigint;
    v_name text;
    v_role text;
BEGIN
    IF p_kind = 'token' THEN
        SELECT t.id, t.name, t.role INTO v_id, v_name, v_role FROM public.staff_tokens t
        WHERE t.token_hash = sha256(convert_to(p_secret, 'UTF8')) AND t.revoked_at IS NULL;
    ELSIF p_kind = 'session' THEN
        SELECT t.id, t.name, t.role INTO v_id, v_name, v_role
        FROM public.staff_sessions s JOIN public.staff_tokens t ON t.id = s.staff_id
        WHERE s.session_hash = sha256(convert_to(p_secret, 'UTF8'))
          AND s.ended_at IS NULL AND s.expires_at > now() AND t.revoked_at IS NULL;
    ELSIF p_kind IS DISTINCT FROM 'none' THEN
        RAISE EXCEPTION 'audit_write: unknown credential kind' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_id IS NULL THEN
        IF p_action NOT IN ('login_failed', 'auth_failed', 'throttled') THEN
            RAISE EXCEPTION 'audit_write: % needs a live credential', p_action
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        v_name := 'unknown';
        v_role := 'none';
    END IF;
    INSERT INTO public.audit_log (actor, role, action, order_id, remote, detail, staff_id)
    VALUES (v_name, v_role, left(p_action, 40), left(p_order_id, 200), left(p_remote, 100),
            left(p_detail, 500), v_id);
END $$;

REVOKE ALL ON FUNCTION staff_authenticate(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION staff_session_start(text, text, integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION staff_session_check(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION staff_session_end(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION audit_write(text, text, text, text, text, text) FROM PUBLIC;
