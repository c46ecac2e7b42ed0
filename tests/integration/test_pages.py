"""Status and unsubscribe pages on a real PostgreSQL, through real HTTP."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
from aiohttp import web

from service.domain.links import LinkSigner
from service.domain.milestones import Milestone
from service.domain.model import notification_id
from service.domain.outcome import ClaimRequest
from service.http.pages import add_page_routes
from service.privacy.blind_index import BlindIndex
from service.store.postgres import PostgresStore
from service.store.privacy import PrivacyStore
from service.templates_check import sample_update

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC)


class Site:
    def __init__(self, store: PostgresStore, base: str, signer: LinkSigner, blind: BlindIndex) -> None:
        self.store, self.base, self.signer, self.blind = store, base, signer, blind


@pytest_asyncio.fixture
async def site(database_url: str) -> AsyncIterator[Site]:
    store = await PostgresStore.connect(database_url)
    signer = LinkSigner(os.urandom(32), "http://127.0.0.1", ttl_days=30)
    blind = BlindIndex(os.urandom(32))
    app = web.Application()
    add_page_routes(
        app,
        templates_dir=REPO / "templates",
        signer=signer,
        store=store,
        page_globals={
            "brand": "Specialized",
            "contact_phone": "+852 3001 2345",
            "contact_email": "hk@example.com",
        },
    )
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield Site(store, f"http://127.0.0.1:{runner.addresses[0][1]}", signer, blind)
    await runner.cleanup()
    await store.close()


async def _notified(site: Site) -> tuple[str, bytes, bytes]:
    update = sample_update(worst_case=False)
    m = Milestone.READY_FOR_PICKUP
    nid = notification_id(update.order_id, m)
    phone, email = site.blind.phone("+85291234567"), site.blind.email("customer@example.com")
    await site.store.claim([ClaimRequest(nid, update, m, "claimed", site.signer.link_id(nid), phone, email)])
    return site.signer.token(nid, NOW), phone, email


async def _get(url: str, method: str = "GET") -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.request(method, url) as r:
        return r.status, await r.text()


async def test_status_page_shows_the_milestones_and_no_personal_data(site: Site) -> None:
    token, _, _ = await _notified(site)
    status, html = await _get(f"{site.base}/s/{token}")
    assert status == 200
    assert "可以取車" in html
    assert "Ready to collect" in html
    assert f"/u/{token}" in html
    for pii in ("陳大文", "9123 4567", "91234567", "customer@example.com"):
        assert pii not in html


async def test_unsubscribe_needs_a_post_and_then_opts_out_phone_and_email(
    site: Site, database_url: str
) -> None:
    token, phone, email = await _notified(site)
    status, html = await _get(f"{site.base}/u/{token}")
    assert status == 200
    assert "<form" in html
    assert await site.store.opted_out([phone, email]) == set()  # a GET changes nothing

    status, html = await _get(f"{site.base}/u/{token}", "POST")
    assert status == 200
    assert "You are unsubscribed" in html
    assert await site.store.opted_out([phone, email]) == {phone, email}
    conn = await asyncpg.connect(database_url)
    try:
        sources = await conn.fetch("SELECT action, source FROM consent_events ORDER BY id")
        audit = await conn.fetch("SELECT actor, role, action, order_id, detail FROM audit_log")
    finally:
        await conn.close()
    assert [tuple(r) for r in sources] == [("opt_out", "unsubscribe_link")] * 2
    # who changed consent: the customer, by the link of this order (one row for the one change)
    assert [tuple(r) for r in audit] == [
        ("customer", "customer", "consent_opt_out", "SO-HK-24001", "unsubscribe_link, 2 subject(s)")
    ]


async def test_tampered_and_expired_links_get_an_error_page_and_change_nothing(site: Site) -> None:
    token, phone, _ = await _notified(site)
    forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    status, html = await _get(f"{site.base}/u/{forged}", "POST")
    assert status == 400
    assert "This link is not valid" in html
    old = site.signer.token(
        notification_id("SO-HK-24001", Milestone.READY_FOR_PICKUP), NOW - timedelta(days=31)
    )
    status, html = await _get(f"{site.base}/u/{old}", "POST")
    assert status == 410
    assert "連結已過期" in html
    assert await site.store.opted_out([phone]) == set()


async def test_unsubscribe_after_the_order_was_erased_still_records_the_opt_out(
    site: Site, database_url: str
) -> None:
    token, phone, email = await _notified(site)
    await PrivacyStore(site.store.pool).erase_order("SO-HK-24001")
    conn = await asyncpg.connect(database_url)
    try:  # the notification keeps no blind index and no link id: nothing ties it to the customer
        row = await conn.fetchrow("SELECT phone_subject, email_subject, link_id FROM notifications")
    finally:
        await conn.close()
    assert tuple(row) == (None, None, None)

    status, html = await _get(f"{site.base}/u/{token}")
    assert (status, "<form" in html) == (200, True)
    status, html = await _get(f"{site.base}/u/{token}", "POST")
    assert status == 200
    assert "You are unsubscribed" in html
    assert await site.store.opted_out([phone, email]) == {phone, email}
    conn = await asyncpg.connect(database_url)
    try:  # audited, but not against the erased order: the erasure is not undone by the audit log
        audit = await conn.fetch("SELECT actor, action, order_id FROM audit_log")
    finally:
        await conn.close()
    assert [tuple(r) for r in audit] == [("customer", "consent_opt_out", None)]


async def test_erased_links_are_dropped_by_the_retention_job_once_they_have_expired(
    site: Site, database_url: str
) -> None:
    token, _, _ = await _notified(site)
    privacy = PrivacyStore(site.store.pool)
    await privacy.erase_order("SO-HK-24001")
    await privacy.purge(90, link_ttl_days=30)
    assert (await _get(f"{site.base}/u/{token}"))[0] == 200  # still valid: kept
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE erased_links SET last_issued = now() - interval '32 days'")
    finally:
        await conn.close()
    await privacy.purge(90, link_ttl_days=30)
    status, html = await _get(f"{site.base}/u/{token}", "POST")
    assert status == 404
    assert "You are unsubscribed" not in html


async def test_a_link_with_nothing_to_record_does_not_claim_an_unsubscribe(site: Site) -> None:
    update = sample_update(worst_case=False)
    m = Milestone.READY_FOR_PICKUP
    nid = notification_id(update.order_id, m)
    await site.store.claim([ClaimRequest(nid, update, m, "claimed", site.signer.link_id(nid), None, None)])
    status, html = await _get(f"{site.base}/u/{site.signer.token(nid, NOW)}", "POST")
    assert status == 410
    assert "We could not record your request" in html
    assert "You are unsubscribed" not in html
