"""Customer-service look-up API on a real PostgreSQL: auth, roles, masking, audit."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
from aiohttp import web

from service.domain.milestones import Milestone
from service.domain.model import notification_id
from service.domain.outcome import ClaimRequest, Outcome, SealedContact
from service.http.support import SupportSite
from service.privacy.blind_index import BlindIndex
from service.privacy.crypto import Keyring
from service.store.postgres import PostgresStore
from service.store.staff import StaffStore
from service.templates_check import sample_update

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
ORDER = "SO-HK-777"
EVENT = json.dumps(
    {
        "event_id": "e1",
        "order_id": ORDER,
        "waybill": "SF777",
        "status": "ARRIVED_HK_WAREHOUSE",
        "occurred_at": "2026-11-20T09:00:00+08:00",
        "bike_model": "Tarmac",
        "recipient": {
            "name": "陳大文",
            "phone": "9123 4567",
            "email": "tai.man@example.com",
            "locale": "zh-HK",
        },
    }
).encode()


@dataclass
class Desk:
    base: str
    agent: str
    admin: str
    url: str
    store: PostgresStore
    blind: BlindIndex

    async def call(self, method: str, path: str, token: str | None) -> tuple[int, dict[str, object]]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with aiohttp.ClientSession() as s, s.request(method, self.base + path, headers=headers) as r:
            return r.status, await r.json(content_type=None)


@pytest_asyncio.fixture
async def desk(database_url: str) -> AsyncIterator[Desk]:
    store = await PostgresStore.connect(database_url)
    keyring = Keyring({"k1": os.urandom(32)}, "k1")
    blind = BlindIndex(os.urandom(32))
    m = Milestone.ARRIVED_HK_WAREHOUSE
    update = replace(sample_update(worst_case=False), order_id=ORDER, waybill="SF777")
    nid = notification_id(ORDER, m)
    phone, email = blind.phone("+85291234567"), blind.email("tai.man@example.com")
    await store.claim([ClaimRequest(nid, update, m, "claimed", None, phone, email)])
    key_id, blob = keyring.encrypt(EVENT, nid.bytes)
    sent = Outcome(
        nid, update, m, "sent", "sms", datetime.now(UTC), provider="twilio", reference=f"{nid.hex}.1"
    )
    await store.finish([sent], [], [SealedContact(nid, key_id, blob)])
    staff = StaffStore(store.pool)
    agent, admin = await staff.add("agent-amy", "cs_agent"), await staff.add("admin-bob", "admin")

    app = web.Application()
    SupportSite(
        templates_dir=REPO / "templates",
        store=store,
        keyring=keyring,
        page_globals={
            "brand": "Specialized",
            "contact_phone": "+852 3001 2345",
            "contact_email": "hk@example.com",
        },
    ).routes(app)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield Desk(f"http://127.0.0.1:{runner.addresses[0][1]}", agent, admin, database_url, store, blind)
    await runner.cleanup()
    await store.close()


async def _audit(url: str) -> list[tuple[str, str, str | None]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT actor, action, order_id FROM audit_log ORDER BY id")
    finally:
        await conn.close()
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_lookup_needs_a_token(desk: Desk) -> None:
    assert (await desk.call("GET", f"/api/cs/orders/{ORDER}", None))[0] == 401
    assert (await desk.call("GET", f"/api/cs/orders/{ORDER}", "not-a-token"))[0] == 401
    assert await _audit(desk.url) == []


async def test_agent_sees_the_masked_timeline_by_order_or_waybill_and_is_audited(desk: Desk) -> None:
    status, body = await desk.call("GET", f"/api/cs/orders/{ORDER}", desk.agent)
    assert status == 200
    assert body["recipient"] == {"phone": "+852 ****4567", "email": "t***@example.com"}
    (n,) = body["notifications"]  # type: ignore[misc]
    assert (n["milestone"], n["state"], n["channel"], n["provider"]) == (
        "arrived_hk_warehouse",
        "sent",
        "sms",
        "twilio",
    )
    assert (await desk.call("GET", "/api/cs/orders/SF777", desk.agent))[0] == 200
    text = json.dumps(body, ensure_ascii=False)
    assert "9123 4567" not in text
    assert "91234567" not in text
    assert "陳大文" not in text
    assert await _audit(desk.url) == [("agent-amy", "lookup", ORDER), ("agent-amy", "lookup", ORDER)]


async def test_agent_cannot_erase_or_opt_out_but_admin_can(desk: Desk) -> None:
    assert (await desk.call("POST", f"/api/cs/orders/{ORDER}/erase", desk.agent))[0] == 403
    assert (await desk.call("POST", f"/api/cs/orders/{ORDER}/optout", desk.agent))[0] == 403
    assert await desk.store.contact(notification_id(ORDER, Milestone.ARRIVED_HK_WAREHOUSE)) is not None

    assert await desk.call("POST", f"/api/cs/orders/{ORDER}/optout", desk.admin) == (200, {"opted_out": 2})
    assert await desk.store.opted_out([desk.blind.phone("+85291234567")]) == {
        desk.blind.phone("+85291234567")
    }
    assert await desk.call("POST", f"/api/cs/orders/{ORDER}/erase", desk.admin) == (200, {"erased": 1})
    assert await desk.store.contact(notification_id(ORDER, Milestone.ARRIVED_HK_WAREHOUSE)) is None
    _, body = await desk.call("GET", f"/api/cs/orders/{ORDER}", desk.admin)
    assert body["recipient"] == {"phone": "—", "email": "—"}  # history stays, personal data gone
    actions = [(a, act) for a, act, _ in await _audit(desk.url)]
    assert actions == [
        ("agent-amy", "denied"),
        ("agent-amy", "denied"),
        ("admin-bob", "opt_out"),
        ("admin-bob", "erase"),
        ("admin-bob", "lookup"),
    ]


async def test_the_audit_log_cannot_be_changed_or_emptied(desk: Desk) -> None:
    await desk.call("GET", f"/api/cs/orders/{ORDER}", desk.agent)
    conn = await asyncpg.connect(desk.url)
    try:
        for sql in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await conn.execute(sql)
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == 1
    finally:
        await conn.close()


def test_email_masking_keeps_only_the_first_letter_and_the_domain() -> None:
    from service.http.support import mask_email

    assert mask_email("tai.man@example.com") == "t***@example.com"
    assert mask_email("broken") == "***"
