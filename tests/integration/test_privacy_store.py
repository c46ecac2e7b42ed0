"""Retention, erasure, key rotation and operator opt-outs on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import asyncpg
import pytest

from service.cli import main
from service.domain.milestones import Milestone
from service.domain.model import notification_id
from service.domain.outcome import ClaimRequest, Outcome, SealedContact
from service.privacy.blind_index import BlindIndex
from service.privacy.crypto import DecryptionFailed, Keyring
from service.store.postgres import PostgresStore
from service.store.privacy import PrivacyStore
from service.templates_check import sample_update

pytestmark = pytest.mark.integration
M = Milestone.ARRIVED_HK_WAREHOUSE
BLIND = BlindIndex(bytes(range(32)))


async def _seed(store: PostgresStore, keyring: Keyring, order: str, phone: str) -> uuid.UUID:
    update = replace(sample_update(worst_case=False), order_id=order)
    nid = notification_id(order, M)
    await store.claim(
        [ClaimRequest(nid, update, M, "claimed", None, BLIND.phone(phone), BLIND.email("a@example.com"))]
    )
    key_id, blob = keyring.encrypt(b'{"phone": "' + phone.encode() + b'"}', nid.bytes)
    outcome = Outcome(
        nid, update, M, "sent", "sms", datetime.now(UTC), provider="twilio", reference=f"{nid.hex}.1"
    )
    await store.finish([outcome], [], [SealedContact(nid, key_id, blob)])
    return nid


async def _age(database_url: str, order: str, days: int) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE notifications SET updated_at = now() - make_interval(days => $2),"
            " created_at = now() - make_interval(days => $2) WHERE order_id = $1",
            order,
            days,
        )
    finally:
        await conn.close()


async def _scalar(database_url: str, sql: str) -> object:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def test_purge_destroys_old_personal_data_keeps_history_and_logs_counts(database_url: str) -> None:
    store = await PostgresStore.connect(database_url)
    keyring = Keyring({"k1": os.urandom(32)}, "k1")
    try:
        await _seed(store, keyring, "OLD-1", "+85291234567")
        await _seed(store, keyring, "NEW-1", "+85291234568")
        await _age(database_url, "OLD-1", 100)
        d = await PrivacyStore(store.pool).purge(90, link_ttl_days=90)
    finally:
        await store.close()
    assert (d.contacts, d.subjects) == (1, 1)
    assert await _scalar(database_url, "SELECT count(*) FROM notification_contacts") == 1
    assert await _scalar(database_url, "SELECT count(*) FROM notifications") == 2  # history stays
    assert (
        await _scalar(database_url, "SELECT phone_subject FROM notifications WHERE order_id = 'OLD-1'")
        is None
    )
    assert await _scalar(database_url, "SELECT state FROM notifications WHERE order_id = 'OLD-1'") == "sent"
    log = await _scalar(
        database_url, "SELECT kind || ':' || contacts || ':' || subjects FROM destruction_log"
    )
    assert log == "retention:1:1"


async def test_erasure_by_phone_removes_that_customers_data_only(database_url: str) -> None:
    store = await PostgresStore.connect(database_url)
    keyring = Keyring({"k1": os.urandom(32)}, "k1")
    try:
        await _seed(store, keyring, "A-1", "+85291234567")
        await _seed(store, keyring, "B-1", "+85251234567")
        for number in ("+85291234567", "+85251234567"):  # both marked, both on the pilot's list
            await store.mark_number(BLIND.phone(number), "twilio_30005")
            await store.pool.execute(
                "INSERT INTO pilot_recipients (subject, kind, added_by) VALUES ($1, 'phone', 'test')",
                BLIND.phone(number),
            )
        d = await PrivacyStore(store.pool).erase_subject(BLIND.phone("+85291234567"), "phone")
    finally:
        await store.close()
    assert d.contacts == 1
    assert await _scalar(database_url, "SELECT count(*) FROM notification_contacts") == 1
    # What was kept of the erased number itself goes too; the other customer's stays.
    assert await _scalar(database_url, "SELECT count(*) FROM phone_health") == 1
    assert await _scalar(database_url, "SELECT count(*) FROM pilot_recipients") == 1
    assert await _scalar(database_url, "SELECT scope FROM destruction_log") == "phone"  # never the number


async def test_rotation_reencrypts_so_the_old_key_can_be_removed(database_url: str) -> None:
    k1, k2 = os.urandom(32), os.urandom(32)
    store = await PostgresStore.connect(database_url)
    try:
        nid = await _seed(store, Keyring({"k1": k1}, "k1"), "R-1", "+85291234567")
        rotated = await PrivacyStore(store.pool).rotate(Keyring({"k2": k2, "k1": k1}, "k2"))
        sealed = await store.contact(nid)
    finally:
        await store.close()
    assert rotated == 1
    assert sealed is not None
    assert sealed.key_id == "k2"
    only_k2 = Keyring({"k2": k2}, "k2")  # key 1 removed
    assert b"+85291234567" in only_k2.decrypt(sealed.key_id, sealed.ciphertext, nid.bytes)
    with pytest.raises(DecryptionFailed):
        only_k2.decrypt(sealed.key_id, sealed.ciphertext, uuid.uuid4().bytes)  # bound to its row


async def test_operator_opt_out_and_opt_in_are_recorded_with_their_source(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFIER_DATABASE_URL", database_url)
    monkeypatch.setenv("NOTIFIER_BLIND_INDEX_KEY", base64.b64encode(bytes(range(32))).decode())
    # the command runs its own event loop, as it does from a shell; the number comes on stdin
    monkeypatch.setattr(sys, "stdin", io.StringIO("9123 4567\n"))
    assert await asyncio.to_thread(main, ["optout", "--phone", "--by", "agent-7"]) == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO("+852 9123-4567\n"))
    assert await asyncio.to_thread(main, ["optout", "--phone", "-", "--opt-in", "--by", "ticket-42"]) == 0
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT subject, action, source FROM consent_events ORDER BY id")
        left = await conn.fetchval("SELECT count(*) FROM opt_outs")
    finally:
        await conn.close()
    assert [(bytes(r["subject"]), r["action"], r["source"]) for r in rows] == [
        (BLIND.phone("+85291234567"), "opt_out", "operator:agent-7"),
        (BLIND.phone("+85291234567"), "opt_in", "operator:ticket-42"),
    ]
    assert left == 0
