"""The audit log against the service's own database role, on a real PostgreSQL with two roles.

The owner role applies the migrations; the service's role (what `notifier run` connects as) may
read the audit log and write to it only through ``audit_write``, which takes the actor from the
presented secret and the time from the database.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio
from structlog.testing import capture_logs

from service.domain.errors import ConfigError
from service.store.migrate import migrate_database
from service.store.postgres import PostgresStore
from service.store.staff import StaffStore

pytestmark = pytest.mark.integration


@dataclass
class Roles:
    owner_url: str
    service_url: str


def _as(url: str, user: str, database: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}", path=f"/{database}"))


@pytest_asyncio.fixture
async def roles(postgres_server_url: str) -> AsyncIterator[Roles]:
    """A fresh database owned by a fresh owner role, a fresh service role, both dropped afterwards."""
    suffix = uuid.uuid4().hex[:10]
    owner, service, db = f"t_owner_{suffix}", f"t_service_{suffix}", f"test_roles_{suffix}"
    admin = await asyncpg.connect(postgres_server_url)
    try:
        await admin.execute(f'CREATE ROLE "{owner}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE')
        await admin.execute(f'CREATE ROLE "{service}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE')
        await admin.execute(f'CREATE DATABASE "{db}" OWNER "{owner}"')
    finally:
        await admin.close()
    yield Roles(_as(postgres_server_url, owner, db), _as(postgres_server_url, service, db))
    admin = await asyncpg.connect(postgres_server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.execute(f'DROP ROLE IF EXISTS "{service}"')
        await admin.execute(f'DROP ROLE IF EXISTS "{owner}"')
    finally:
        await admin.close()


@pytest_asyncio.fixture
async def migrated(roles: Roles) -> AsyncIterator[tuple[Roles, str, str]]:
    """Migrated by the owner, who also adds two staff members; yields their tokens."""
    await migrate_database(roles.owner_url, roles.service_url)
    owner = await PostgresStore.connect(roles.owner_url, run_migrations=False)
    staff = StaffStore(owner.pool)
    amy, bob = await staff.add("agent-amy", "cs_agent"), await staff.add("admin-bob", "admin")
    await owner.close()
    yield roles, amy, bob


FORBIDDEN = [
    "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update",
    "ALTER TABLE audit_log DISABLE TRIGGER ALL",
    "DROP TRIGGER audit_log_no_update ON audit_log",
    "DROP TABLE audit_log",
    "DROP FUNCTION audit_log_append_only() CASCADE",
    "ALTER TABLE audit_log ALTER COLUMN at DROP DEFAULT",
    "UPDATE audit_log SET actor = 'someone'",
    "DELETE FROM audit_log",
    "TRUNCATE audit_log",
    "INSERT INTO audit_log (at, actor, role, action) VALUES (now() - interval '30 days', 'admin-bob', 'admin', 'erase')",
    "INSERT INTO audit_log (actor, role, action) VALUES ('admin-bob', 'admin', 'erase')",
    "SELECT token_hash FROM staff_tokens",
    "INSERT INTO staff_tokens (name, role, token_hash) VALUES ('mallory', 'admin', '\\x00')",
    "UPDATE staff_tokens SET revoked_at = NULL",
    "SELECT session_hash FROM staff_sessions",
    "CREATE OR REPLACE FUNCTION audit_write(text, text, text, text, text, text) RETURNS void"
    " LANGUAGE sql AS 'SELECT NULL'",
    "ALTER FUNCTION audit_write(text, text, text, text, text, text) SECURITY INVOKER",
    "DELETE FROM schema_migrations",
    # every consent change writes its audit row (migration 0018): the service cannot switch it off
    "ALTER TABLE consent_events DISABLE TRIGGER consent_events_audit",
    "ALTER TABLE consent_events DISABLE TRIGGER ALL",
    "DROP TRIGGER consent_events_audit ON consent_events",
    "CREATE OR REPLACE FUNCTION consent_events_audit() RETURNS trigger LANGUAGE plpgsql"
    " AS 'BEGIN RETURN NULL; END'",
    "INSERT INTO audit_log (actor, role, action) VALUES ('customer', 'customer', 'consent_opt_in')",
]


@pytest.mark.parametrize("sql", FORBIDDEN)
async def test_the_service_role_cannot_alter_or_forge_the_audit_log(
    migrated: tuple[Roles, str, str], sql: str
) -> None:
    roles, _, _ = migrated
    conn = await asyncpg.connect(roles.service_url)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(sql)
    finally:
        await conn.close()


async def test_audit_write_takes_the_actor_from_the_secret_and_refuses_a_made_up_one(
    migrated: tuple[Roles, str, str],
) -> None:
    roles, _, _ = migrated
    conn = await asyncpg.connect(roles.service_url)
    try:
        for kind, secret in (("token", "not-a-token"), ("session", "not-a-session"), ("none", "")):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="needs a live credential"):
                await conn.execute("SELECT audit_write($1, $2, 'erase', 'SO-1', NULL, NULL)", kind, secret)
        # A refusal may be written without a credential, but only as "unknown".
        await conn.execute("SELECT audit_write('none', '', 'login_failed', NULL, '203.0.113.7', NULL)")
        assert [tuple(r) for r in await conn.fetch("SELECT actor, role, action FROM audit_log")] == [
            ("unknown", "none", "login_failed")
        ]
    finally:
        await conn.close()


async def test_the_service_role_writes_rows_with_the_real_actor_and_the_database_time(
    migrated: tuple[Roles, str, str],
) -> None:
    roles, amy, bob = migrated
    store = await PostgresStore.connect(roles.service_url)  # nothing pending: no DDL, it may start
    try:
        staff = StaffStore(store.pool)
        assert not await staff.can_alter_audit_log()
        before = await store.pool.fetchval("SELECT now()")
        admin = await staff.authenticate(bob)
        assert admin is not None
        await staff.audit(admin.credential, "erase", order_id="SO-1", remote="203.0.113.7", detail="1 sealed")
        agent = await staff.start_session(amy, idle_s=600, max_s=3600)
        assert agent is not None
        assert await staff.session(agent.credential.secret) == agent
        await staff.audit(agent.credential, "lookup", order_id="SO-1", remote="203.0.113.8")
        assert await staff.end_session(agent.credential.secret)
        assert await staff.session(agent.credential.secret) is None
        after = await store.pool.fetchval("SELECT now()")
        rows = await store.pool.fetch("SELECT actor, role, action, order_id, at FROM audit_log ORDER BY id")
    finally:
        await store.close()
    assert [tuple(r)[:4] for r in rows] == [
        ("admin-bob", "admin", "erase", "SO-1"),
        ("agent-amy", "cs_agent", "lookup", "SO-1"),
    ]
    assert all(before <= r["at"] <= after for r in rows)


async def test_a_consent_change_by_the_service_role_is_audited_by_the_database(
    migrated: tuple[Roles, str, str],
) -> None:
    roles, _, _ = migrated
    store = await PostgresStore.connect(roles.service_url)
    try:
        before = await store.pool.fetchval("SELECT now()")
        assert await store.set_consent([b"s1", b"s2"], opted_out=True, source="sms_reply:twilio") == 2
        assert await store.set_consent([b"s1"], opted_out=True, source="sms_reply:twilio") == 0  # no change
        await store.set_consent([b"s1"], opted_out=False, source="operator:admin-bob", order_id="SO-9")
        rows = await store.pool.fetch(
            "SELECT actor, role, action, order_id, detail, staff_id, at FROM audit_log ORDER BY id"
        )
    finally:
        await store.close()
    assert [tuple(r)[:6] for r in rows] == [
        ("customer", "customer", "consent_opt_out", None, "sms_reply:twilio, 2 subject(s)", None),
        ("admin-bob", "operator", "consent_opt_in", "SO-9", "operator:admin-bob, 1 subject(s)", None),
    ]
    assert all(r["at"] >= before for r in rows)


async def test_tables_of_later_migrations_get_the_service_roles_privileges(roles: Roles) -> None:
    await migrate_database(roles.owner_url, roles.service_url)
    owner = await asyncpg.connect(roles.owner_url)
    try:  # as a later migration would
        await owner.execute("CREATE TABLE later_feature (id bigserial PRIMARY KEY, v text)")
    finally:
        await owner.close()
    await migrate_database(roles.owner_url, roles.service_url)
    conn = await asyncpg.connect(roles.service_url)
    try:
        await conn.execute("INSERT INTO later_feature (v) VALUES ('x')")
        assert await conn.fetchval("SELECT count(*) FROM later_feature") == 1
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DROP TABLE later_feature")
    finally:
        await conn.close()


async def test_the_service_role_refuses_to_start_on_pending_migrations(
    migrated: tuple[Roles, str, str],
) -> None:
    roles, _, _ = migrated
    owner = await asyncpg.connect(roles.owner_url)
    try:
        await owner.execute("DELETE FROM schema_migrations WHERE name LIKE '0013%'")
    finally:
        await owner.close()
    with pytest.raises(ConfigError, match="notifier db migrate"):
        await PostgresStore.connect(roles.service_url)


async def test_one_role_for_both_still_works_and_says_so(roles: Roles) -> None:
    # Local development and most tests: a single URL; the role then owns (and could alter) the log.
    with capture_logs() as logs:
        await migrate_database(roles.owner_url, None)
    assert any(e["event"] == "single_database_role" and e["log_level"] == "warning" for e in logs)
    store = await PostgresStore.connect(roles.owner_url)
    try:
        assert await StaffStore(store.pool).can_alter_audit_log()
    finally:
        await store.close()
