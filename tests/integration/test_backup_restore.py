"""The documented backup and restore, run as scripts against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from service.domain.milestones import Milestone
from service.domain.model import notification_id
from service.domain.outcome import ClaimRequest
from service.store.postgres import PostgresStore
from service.templates_check import sample_update

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=120, check=False)


async def test_a_dump_restores_into_a_fresh_database_with_the_notifications(
    database_url: str, postgres_server_url: str, tmp_path: Path
) -> None:
    store = await PostgresStore.connect(database_url)
    update = sample_update(worst_case=False)
    nid = notification_id(update.order_id, Milestone.READY_FOR_PICKUP)
    try:
        await store.claim([ClaimRequest(nid, update, Milestone.READY_FOR_PICKUP, "claimed")])
    finally:
        await store.close()

    env = {**os.environ, "DATABASE_URL": database_url}
    dump = tmp_path / "notifier.dump"
    backup = await asyncio.to_thread(_run, str(REPO / "deploy/backup/backup.sh"), str(dump), env=env)
    assert backup.returncode == 0, backup.stderr
    assert dump.stat().st_size > 0

    fresh = f"restore_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(postgres_server_url)
    await admin.execute(f'CREATE DATABASE "{fresh}"')
    target = urlunsplit(urlsplit(postgres_server_url)._replace(path=f"/{fresh}"))
    try:
        restore = await asyncio.to_thread(
            _run, str(REPO / "deploy/backup/restore.sh"), str(dump), target, env=env
        )
        assert restore.returncode == 0, restore.stderr
        assert "1 notification(s)" in restore.stdout
        conn = await asyncpg.connect(target)
        try:
            row = await conn.fetchrow("SELECT order_id, milestone FROM notifications WHERE id = $1", nid)
            migrations = await conn.fetchval("SELECT count(*) FROM schema_migrations")
        finally:
            await conn.close()
        assert tuple(row) == (update.order_id, "ready_for_pickup")
        assert migrations >= 4

        again = await asyncio.to_thread(
            _run, str(REPO / "deploy/backup/restore.sh"), str(dump), target, env=env
        )
        assert again.returncode != 0  # never over a live database
        assert "refusing" in again.stderr
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)')
        await admin.close()
