"""Customer-service look-up API on a real PostgreSQL: auth, roles, masking, audit."""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
from aiohttp import web
from yarl import URL

from service.domain.consent_snapshot import snapshot
from service.domain.lifecycle import State
from service.domain.milestones import Milestone
from service.domain.model import notification_id
from service.domain.outcome import ClaimRequest, Outcome, SealedContact
from service.domain.phone import normalize_hk_mobile
from service.http.security_headers import add_stylesheet_route, security_headers
from service.http.support import StaffWebPolicy, SupportSite
from service.privacy.blind_index import BlindIndex
from service.privacy.crypto import Keyring
from service.report.receipts import receipt_row
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


# Order ids the contract allows that must not be confused with a path: one that a browser would
# normalise onto ORDER, and one with slashes.
DOTTED = "X/../SO-HK-777"
SLASHED = "SO/HK/1"
PAGE_GLOBALS = {"brand": "Specialized", "contact_phone": "+852 3001 2345", "contact_email": "hk@example.com"}


@dataclass
class Desk:
    base: str
    agent: str
    admin: str
    url: str
    store: PostgresStore
    blind: BlindIndex
    site: SupportSite

    async def call(
        self,
        method: str,
        path: str,
        token: str | None,
        *,
        body: object = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, object]]:
        h = {"Authorization": f"Bearer {token}"} if token else {}
        h.update(headers or {})
        url = URL(self.base + path, encoded=True)  # sent as written: no client-side normalising
        async with (
            aiohttp.ClientSession() as s,
            s.request(method, url, headers=h, json=body) as r,
        ):
            text = await r.text()
            try:
                return r.status, json.loads(text)
            except ValueError:
                return r.status, {"text": text}


async def seed_order(
    store: PostgresStore, keyring: Keyring, blind: BlindIndex, *, order: str, waybill: str, phone: str
) -> None:
    """One sent SMS for ``order``, with its sealed event, as the pipeline would leave it."""
    m = Milestone.ARRIVED_HK_WAREHOUSE
    update = replace(sample_update(worst_case=False), order_id=order, waybill=waybill)
    nid = notification_id(order, m)
    event = json.loads(EVENT)
    event.update(order_id=order, waybill=waybill)
    event["recipient"]["phone"] = phone
    subjects = blind.phone(normalize_hk_mobile(phone).e164 or ""), blind.email("tai.man@example.com")
    await store.claim([ClaimRequest(nid, update, m, "claimed", None, *subjects)])
    key_id, blob = keyring.encrypt(json.dumps(event).encode(), nid.bytes)
    sent = Outcome(
        nid, update, m, "sent", "sms", datetime.now(UTC), provider="twilio", reference=f"{nid.hex}.1"
    )
    await store.finish([sent], [receipt_row(sent)], [SealedContact(nid, key_id, blob)])


DeskMaker = Callable[..., Awaitable[Desk]]


@pytest_asyncio.fixture
async def make_desk(database_url: str) -> AsyncIterator[DeskMaker]:
    """Builds the support site on a fresh database with three orders; ``policy`` as given."""
    cleanup: list[Callable[[], Awaitable[None]]] = []
    seeded: list[tuple[Keyring, BlindIndex, tuple[str, str]]] = []

    async def make(policy: StaffWebPolicy | None = None, clock: Callable[[], float] | None = None) -> Desk:
        store = await PostgresStore.connect(database_url)
        if not seeded:  # a second site (another policy) shares the database, orders and staff
            keyring, blind = Keyring({"k1": os.urandom(32)}, "k1"), BlindIndex(os.urandom(32))
            await seed_order(store, keyring, blind, order=ORDER, waybill="SF777", phone="9123 4567")
            await seed_order(store, keyring, blind, order=DOTTED, waybill="SF778", phone="9123 4568")
            await seed_order(store, keyring, blind, order=SLASHED, waybill="SF779", phone="9123 4569")
            staff = StaffStore(store.pool)
            tokens = await staff.add("agent-amy", "cs_agent"), await staff.add("admin-bob", "admin")
            seeded.append((keyring, blind, tokens))
        keyring, blind, (agent, admin) = seeded[0]
        app = web.Application(middlewares=[security_headers])
        site = SupportSite(
            templates_dir=REPO / "templates",
            store=store,
            keyring=keyring,
            page_globals=PAGE_GLOBALS,
            policy=policy,
            clock=clock or time.monotonic,
        )
        site.routes(app)
        add_stylesheet_route(app, REPO / "templates")
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        cleanup.extend([runner.cleanup, store.close])
        return Desk(
            f"http://127.0.0.1:{runner.addresses[0][1]}", agent, admin, database_url, store, blind, site
        )

    yield make
    for step in cleanup:
        await step()


@pytest_asyncio.fixture
async def desk(make_desk: DeskMaker) -> Desk:
    return await make_desk()


async def _audit(url: str) -> list[tuple[str, str, str | None]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT actor, action, order_id FROM audit_log ORDER BY id")
    finally:
        await conn.close()
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_lookup_needs_a_token_and_a_refused_token_is_audited(desk: Desk) -> None:
    assert (await desk.call("GET", f"/api/cs/orders/{ORDER}", None))[0] == 401
    assert await _audit(desk.url) == []  # no credential at all: not a sign-in, nothing written
    assert (await desk.call("GET", f"/api/cs/orders/{ORDER}", "not-a-token"))[0] == 401
    assert await _audit(desk.url) == [("unknown", "auth_failed", None)]


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
    assert n["label"]["state"] == {
        "zh": "已發送，等待送達報告",
        "en": "Sent, waiting for the delivery report",
    }
    assert n["label"]["milestone"]["en"] == "Arrived at the Hong Kong warehouse"
    # Its steps from the store (the claim, then the send's receipt), and the text, name masked.
    assert [s["what"]["en"] for s in n["steps"]] == ["Decided to notify", "Sent"]
    assert n["steps"][1]["details"] == [{"zh": "短訊", "en": "SMS"}, {"zh": "Twilio", "en": "Twilio"}]
    assert "陳***您好" in n["text"]
    assert ORDER in n["text"]
    assert (await desk.call("GET", "/api/cs/orders/SF777", desk.agent))[0] == 200
    text = json.dumps(body, ensure_ascii=False)
    assert "9123 4567" not in text
    assert "91234567" not in text
    assert "陳大文" not in text
    assert await _audit(desk.url) == [("agent-amy", "lookup", ORDER), ("agent-amy", "lookup", ORDER)]


async def test_agent_cannot_erase_or_opt_out_but_admin_can(desk: Desk) -> None:
    order = {"order": ORDER}
    assert (await desk.call("POST", "/api/cs/orders/erase", desk.agent, body=order))[0] == 403
    assert (await desk.call("POST", "/api/cs/orders/optout", desk.agent, body=order))[0] == 403
    assert await desk.store.contact(notification_id(ORDER, Milestone.ARRIVED_HK_WAREHOUSE)) is not None

    assert await desk.call("POST", "/api/cs/orders/optout", desk.admin, body=order) == (200, {"opted_out": 2})
    assert await desk.store.opted_out([desk.blind.phone("+85291234567")]) == {
        desk.blind.phone("+85291234567")
    }
    assert await desk.call("POST", "/api/cs/orders/erase", desk.admin, body=order) == (200, {"erased": 1})
    assert await desk.store.contact(notification_id(ORDER, Milestone.ARRIVED_HK_WAREHOUSE)) is None
    _, body = await desk.call("GET", f"/api/cs/orders/{ORDER}", desk.admin)
    assert body["recipient"] == {"phone": "—", "email": "—"}  # history stays, personal data gone
    actions = [(a, act) for a, act, _ in await _audit(desk.url)]
    assert actions == [
        ("agent-amy", "denied"),
        ("agent-amy", "denied"),
        ("admin-bob", "consent_opt_out"),  # the consent record's own row (its trigger), then the action's
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


async def test_an_order_id_with_a_slash_or_dots_names_that_order_and_no_other(desk: Desk) -> None:
    # DOTTED would become ORDER if anything normalised "..": the actions take the id in the body.
    status, body = await desk.call("POST", "/api/cs/orders/optout", desk.admin, body={"order": DOTTED})
    assert (status, body) == (200, {"opted_out": 2})
    assert await desk.store.opted_out([desk.blind.phone("+85291234567")]) == set()  # ORDER untouched
    assert await desk.store.opted_out([desk.blind.phone("+85291234568")]) == {
        desk.blind.phone("+85291234568")
    }
    assert await desk.call("POST", "/api/cs/orders/erase", desk.admin, body={"order": SLASHED}) == (
        200,
        {"erased": 1},
    )
    assert await desk.store.contact(notification_id(SLASHED, Milestone.ARRIVED_HK_WAREHOUSE)) is None
    assert await desk.store.contact(notification_id(ORDER, Milestone.ARRIVED_HK_WAREHOUSE)) is not None
    # Look-ups: in the query, or percent-encoded in the path, which the server never normalises.
    for path in (f"/api/cs/orders?q={quote(DOTTED, safe='')}", f"/api/cs/orders/{quote(DOTTED, safe='')}"):
        status, body = await desk.call("GET", path, desk.agent)
        assert (status, body["order_id"]) == (200, DOTTED)
    assert (await desk.call("GET", f"/api/cs/orders/{quote('../SO-HK-777', safe='')}", desk.agent))[0] == 404
    # The id is not taken from a path any more: such a request changes nothing.
    assert (await desk.call("POST", f"/api/cs/orders/{ORDER}/erase", desk.admin))[0] in {404, 405}
    assert await desk.store.contact(notification_id(ORDER, Milestone.ARRIVED_HK_WAREHOUSE)) is not None


@pytest.mark.parametrize(
    "path",
    [
        "/api/cs/orders?q=SO%00HK",
        "/api/cs/orders/SO%00HK",
        "/api/cs/orders?q=%1b%5b2J",
        f"/api/cs/orders?q={'A' * 65}",
        "/api/cs/orders?q=",
    ],
)
async def test_an_invalid_look_up_is_a_400_not_a_database_outage(desk: Desk, path: str) -> None:
    status, body = await desk.call("GET", path, desk.agent)
    assert status == 400
    assert "order number or waybill" in str(body["error"])
    assert await desk.store.ping()


async def test_an_invalid_order_in_an_action_body_is_a_400(desk: Desk) -> None:
    for body in ({"order": "SO\x00HK"}, {"order": 7}, ["SO-HK-777"], {}):
        assert (await desk.call("POST", "/api/cs/orders/erase", desk.admin, body=body))[0] == 400
    async with aiohttp.ClientSession() as s:
        headers = {"Authorization": f"Bearer {desk.admin}", "Content-Type": "application/json"}
        async with s.post(desk.base + "/api/cs/orders/erase", data=b"\xff{", headers=headers) as r:
            assert r.status == 400
    assert await desk.store.contact(notification_id(ORDER, Milestone.ARRIVED_HK_WAREHOUSE)) is not None


async def test_every_answer_carries_the_security_headers(desk: Desk) -> None:
    async with aiohttp.ClientSession() as s:
        for path in ("/cs", "/api/cs/orders/x", "/no-such-page", "/static/web.css"):
            async with s.get(desk.base + path) as r:
                assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
                assert "unsafe-inline" not in r.headers["Content-Security-Policy"]
                assert r.headers["X-Frame-Options"] == "DENY"
                assert r.headers["X-Content-Type-Options"] == "nosniff"
                assert r.headers["Referrer-Policy"] == "same-origin"


async def test_the_timeline_shows_an_undelivered_sms_and_the_email_fallback_it_owes(desk: Desk) -> None:
    nid = notification_id(ORDER, Milestone.ARRIVED_HK_WAREHOUSE)
    update = replace(sample_update(worst_case=False), order_id=ORDER, waybill="SF777")
    report = Outcome(
        nid, update, Milestone.ARRIVED_HK_WAREHOUSE, "undelivered", "sms", datetime.now(UTC),
        provider="twilio", reason="twilio_30003", reference=f"{nid.hex}.1",
    )  # fmt: skip
    assert await desk.store.record_delivery(
        nid, f"{nid.hex}.1", State.UNDELIVERED, "twilio_30003", receipt_row(report), fallback_in_s=600
    )
    status, body = await desk.call("GET", f"/api/cs/orders?q={ORDER}", desk.agent)
    assert status == 200
    (n,) = body["notifications"]  # type: ignore[misc]
    assert n["label"]["state"]["en"] == "Not delivered"
    assert n["label"]["reason"] == {"zh": "Twilio 代碼 30003", "en": "Twilio code 30003"}
    assert [(s["what"]["en"], s["upcoming"]) for s in n["steps"]] == [
        ("Decided to notify", False),
        ("Sent", False),
        ("Not delivered", False),
        ("Email fallback scheduled", True),
    ]
    assert n["steps"][2]["details"][-1]["en"] == "Twilio code 30003"
    due = datetime.fromisoformat(n["steps"][3]["at"])
    assert 500 < (due - datetime.now(UTC)).total_seconds() <= 600
    assert await _audit(desk.url) == [("agent-amy", "lookup", ORDER)]  # the look-up is audited as before


async def test_the_timeline_shows_the_consent_each_decision_applied_and_who_set_it(desk: Desk) -> None:
    # An admin opts the customer out; the next milestone is decided with the consent the batch reads.
    assert await desk.call("POST", "/api/cs/orders/optout", desk.admin, body={"order": ORDER}) == (
        200,
        {"opted_out": 2},
    )
    phone = desk.blind.phone("+85291234567")
    records = await desk.store.consent_records([phone])
    consent = snapshot(records.values())
    m = Milestone.CUSTOMS_CLEARED
    update = replace(sample_update(worst_case=False), order_id=ORDER, waybill="SF777")
    nid = notification_id(ORDER, m)
    await desk.store.claim([ClaimRequest(nid, update, m, "claimed", None, phone)])
    out = Outcome(
        nid,
        update,
        m,
        State.SUPPRESSED_OPTED_OUT,
        "none",
        datetime.now(UTC),
        reason="opted_out",
        consent=consent,
    )
    await desk.store.finish([out], [receipt_row(out)])

    status, body = await desk.call("GET", f"/api/cs/orders/{ORDER}", desk.agent)
    assert status == 200
    first, second = body["notifications"]  # type: ignore[misc]
    assert first["consent"] is None  # decided before the snapshot existed (seeded without one)
    set_at = records[phone].set_at
    hk = f"{set_at.astimezone(ZoneInfo('Asia/Hong_Kong')):%Y-%m-%d %H:%M}"
    label = {
        "zh": f"同意紀錄：已取消通知（職員 admin-bob，{hk}）",
        "en": f"Consent: opted out (staff admin-bob, {hk})",
    }
    assert second["consent"] == {
        "state": "opted_out",
        "source": "operator:admin-bob",
        "set_at": set_at.isoformat(),
        "label": label,
    }
    assert [s["what"]["en"] for s in second["steps"]] == [
        "Decided to notify",
        "Not sent: the customer opted out",
    ]
    assert second["steps"][1]["details"][-1] == label
    # The receipt has the kind only; who it was is in the audit log, with the order.
    (payload,) = (await desk.site.staff_store.receipts([nid]))[nid]
    assert json.loads(payload)["consent_source"] == "operator"
    assert ("admin-bob", "consent_opt_out", ORDER) in await _audit(desk.url)
