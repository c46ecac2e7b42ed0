-- Customer-service staff and the audit log of everything they look up or do.
CREATE TABLE staff_tokens (
    id         bigserial   PRIMARY KEY,
    name       text        NOT NULL,
    role       text        NOT NULL CHECK (role IN ('cs_agent', 'admin')),
    token_hash bytea       NOT NULL UNIQUE,  -- SHA-256 of the token: the token itself is never stored
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

CREATE TABLE audit_log (
    id       bigserial   PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    actor    text        NOT NULL,
    role     text        NOT NULL,
    action   text        NOT NULL,  -- lookup, opt_out, erase, login_failed
    order_id text,
    remote   text,
    detail   text
);
CREATE INDEX audit_log_order_idx ON audit_log (order_id, at);

-- Append-only, whoever connects (the service's own role owns the table, so REVOKE alone would
-- not bind it): any UPDATE, DELETE or TRUNCATE fails.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;
