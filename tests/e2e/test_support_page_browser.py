"""The customer-service page in a real headless Chromium (Debian's package, driven by Playwright)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio
from playwright.async_api import Browser, async_playwright

from tests.integration.test_support import ORDER, Desk, desk  # noqa: F401  # the fixture is shared

pytestmark = pytest.mark.e2e

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Browser]:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("Chromium is not installed: `make test` installs it (deploy/local/prereqs.sh)")
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        yield b
        await b.close()


async def test_agent_signs_in_searches_and_sees_the_masked_timeline(browser: Browser, desk: Desk) -> None:  # noqa: F811
    page = await browser.new_page()
    response = await page.goto(f"{desk.base}/cs/orders?q={ORDER}")
    assert response is not None
    assert response.status == 401  # not signed in: the sign-in page, nothing else

    await page.goto(f"{desk.base}/cs")
    await page.fill("#token", "wrong-token")
    await page.click("#login")
    assert "Invalid token" in await page.text_content("body") or ""

    await page.fill("#token", desk.agent)
    await page.click("#login")
    await page.fill("#q", ORDER)
    await page.click("#search")
    await page.wait_for_selector("#timeline")
    assert await page.text_content("#masked-phone") == "+852 ****4567"
    rows = await page.locator("#timeline tr").count()
    assert rows == 2  # header + one notification
    body = await page.text_content("body") or ""
    assert "arrived_hk_warehouse" in body
    assert "9123 4567" not in body
    assert await page.locator("#erase").count() == 0  # an agent is offered no erase button

    # Even a hand-made POST from the agent's session is refused.
    status = await page.evaluate(f"fetch('/cs/orders/{ORDER}/erase', {{method: 'POST'}}).then(r => r.status)")
    assert status == 403

    conn = await asyncpg.connect(desk.url)
    try:
        audit = [tuple(r) for r in await conn.fetch("SELECT actor, action FROM audit_log ORDER BY id")]
    finally:
        await conn.close()
    assert audit == [
        ("unknown", "login_failed"),
        ("agent-amy", "login"),
        ("agent-amy", "lookup"),
        ("agent-amy", "denied"),
    ]


async def test_admin_can_erase_from_the_page(browser: Browser, desk: Desk) -> None:  # noqa: F811
    page = await browser.new_page()
    await page.goto(f"{desk.base}/cs")
    await page.fill("#token", desk.admin)
    await page.click("#login")
    await page.fill("#q", ORDER)
    await page.click("#search")
    await page.click("#erase")
    await page.wait_for_selector("#message")
    assert "Erased (1)" in (await page.text_content("#message") or "")
    assert await page.text_content("#masked-phone") == "—"
