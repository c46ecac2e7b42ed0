"""Plain-SQL migrations in ``migrations/``, applied in name order, each once, under an advisory lock.

Two database roles (README, "Customer data protection"): the owner role applies migrations and
owns every table; after the migrations ``grant_service_role`` gives the service's role its
privileges on every table there is, so tables added by later migrations are covered without each
migration naming the role. The service's role gets no privilege on the staff tables and only
SELECT on the audit log: it signs in and audits through the SECURITY DEFINER functions of
``0013_staff_sessions_audit_roles.sql``.
"""

from __future__ import annotations

from importlib import resources

import asyncpg

from service.domain.errors import ConfigError
from service.logs import get_logger

log = get_logger(__name__)

_LOCK_ID = 0x6E6F7469  # "noti": only one instance migrates at a time

#: Tables the service's role may not write directly: name -> what it may do instead (None: nothing).
RESTRICTED_TABLES: dict[str, str | None] = {
    "audit_log": "SELECT",  # rows only through audit_write()
    "staff_tokens": None,  # token hashes: only through the staff_* functions
    "staff_sessions": None,
    "schema_migrations": "SELECT",
}
SERVICE_FUNCTIONS = (
    "staff_authenticate(text)",
    "staff_session_start(text, text, integer, integer)",
    "staff_session_check(text)",
    "staff_session_end(text)",
    "audit_write(text, text, text, text, text, text)",
)


def migration_files() -> list[tuple[str, str]]:
    folder = resources.files("service.store") / "migrations"
    return sorted(
        (f.name, f.read_text(encoding="utf-8")) for f in folder.iterdir() if f.name.endswith(".sql")
    )


async def _applied(conn: asyncpg.Connection) -> set[str] | None:
    if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
        return None
    return {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations; returns the names applied.

    Nothing is pending: no DDL at all, so the service's own role (which may not create tables)
    passes. Something is pending and this role may not apply it: ``ConfigError`` saying so.
    """
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
    try:
        done = await _applied(conn)
        pending = [(n, sql) for n, sql in migration_files() if done is None or n not in done]
        if not pending:
            return []
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            for name, sql in pending:
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
                log.info("migration_applied", migration=name)
                applied.append(name)
        except asyncpg.InsufficientPrivilegeError:
            raise ConfigError(
                f"migrations pending ({pending[0][0]}...) and this database role may not apply them: "
                "run `notifier db migrate` with NOTIFIER_MIGRATION_DATABASE_URL (the owner role) first"
            ) from None
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    return applied


async def grant_service_role(conn: asyncpg.Connection, role: str) -> None:
    """Give ``role`` (the service's) what it needs on every table and sequence, and no more."""
    r = await conn.fetchrow(
        "SELECT quote_ident(rolname) AS q, rolsuper FROM pg_roles WHERE rolname = $1", role
    )
    if r is None:
        raise ConfigError(f"the service's database role {role!r} (NOTIFIER_DATABASE_URL) does not exist")
    if r["rolsuper"]:
        log.warning("service_role_is_superuser", role=role, effect="the audit log is not protected from it")
    q = r["q"]
    restricted = ", ".join(RESTRICTED_TABLES)
    statements = [
        f"GRANT USAGE ON SCHEMA public TO {q}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {q}",
        f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {q}",
        f"REVOKE ALL ON {restricted} FROM {q}",
        f"REVOKE ALL ON SEQUENCE audit_log_id_seq, staff_tokens_id_seq, staff_sessions_id_seq FROM {q}",
        *(f"GRANT {p} ON {t} TO {q}" for t, p in RESTRICTED_TABLES.items() if p is not None),
        *(f"GRANT EXECUTE ON FUNCTION {f} TO {q}" for f in SERVICE_FUNCTIONS),
    ]
    async with conn.transaction():
        for sql in statements:
            await conn.execute(sql)
    log.info("service_role_granted", role=role)


async def migrate_database(owner_dsn: str, service_dsn: str | None) -> list[str]:
    """``notifier db migrate``: apply migrations as the owner, then grant the service's role.

    ``service_dsn`` None: one role for both (local development); said in a log line, since that
    role can then alter the audit log.
    """
    conn = await asyncpg.connect(owner_dsn)
    try:
        applied = await migrate(conn)
        owner = await conn.fetchval("SELECT current_user")
        if service_dsn is None:
            log.warning(
                "single_database_role",
                role=owner,
                effect="the service's role owns the audit log; set NOTIFIER_MIGRATION_DATABASE_URL "
                "to a separate owner role in production",
            )
            return applied
        service = await asyncpg.connect(service_dsn)
        try:
            role = str(await service.fetchval("SELECT current_user"))
        finally:
            await service.close()
        if role == owner:
            log.warning("single_database_role", role=role, effect="both URLs name the same role")
        else:
            await grant_service_role(conn, role)
        return applied
    finally:
        await conn.close()
