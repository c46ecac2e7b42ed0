# ruff: noqa: F811  # the shared fixture desk is imported, and tests take it as an argument
"""The customer-service page in a real headless Chromium (Debian's package, driven by Playwright)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, Route, async_playwright

from service.domain.milestones import Milestone
from service.domain.model import notification_id
from tests.integration.test_support import (  # noqa: F401  # the fixtures are shared
    DOTTED,
    ORDER,
    SLASHED,
    Desk,
    desk,
    make_desk,
)

pytestmark = pytest.mark.e2e
#: Screenshots of the page, kept after the run (ignored by git, like all of .local/).
ARTIFACTS = Path(__file__).resolve().parents[2] / ".local" / "artifacts" / "support-page"
VIEWPORTS = {"laptop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}

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


async def test_agent_signs_in_searches_and_sees_the_masked_timeline(browser: Browser, desk: Desk) -> None:
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
    assert await page.locator("#timeline .notification").count() == 1
    card = await page.text_content("#timeline .notification") or ""
    assert "已到達香港倉庫" in card  # the staff's words, not the codes
    assert "已發送，等待送達報告" in card
    assert "arrived_hk_warehouse" not in card
    steps = [await li.inner_text() for li in await page.locator(".steps li").all()]
    assert [step.split("\n")[1] for step in steps] == [
        "決定發送通知 Decided to notify",
        "已發送 Sent · 短訊 SMS · Twilio",
    ]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", step.split("\n")[0]) for step in steps)
    assert "陳***您好" in (await page.text_content(".text pre") or "")
    body = await page.text_content("body") or ""
    assert "9123 4567" not in body
    assert "陳大文" not in body
    assert await page.locator("#erase").count() == 0  # an agent is offered no erase button

    # Even a hand-made POST from the agent's session is refused.
    async with page.expect_navigation() as answer:
        await page.evaluate(
            "o => { const f = document.createElement('form'); f.method = 'post'; f.action = '/cs/orders/erase';"
            " const i = document.createElement('input'); i.name = 'order'; i.value = o; f.append(i);"
            " document.body.append(f); f.submit(); }",
            ORDER,
        )
    assert (await answer.value).status == 403

    # Signing out ends the session on the server: the old cookie, replayed, is refused.
    cookie = next(c for c in await page.context.cookies() if c["name"] == "notifier_staff")
    await page.goto(f"{desk.base}/cs")
    await page.click("text=Sign out")
    await page.wait_for_selector("#token")
    replay = await browser.new_context()
    await replay.add_cookies([cookie])  # type: ignore[list-item]
    again = await (await replay.new_page()).goto(f"{desk.base}/cs/orders?q={ORDER}")
    assert again is not None
    assert again.status == 401
    await replay.close()

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
        ("agent-amy", "logout"),
        ("unknown", "auth_failed"),
    ]


async def test_admin_can_erase_from_the_page(browser: Browser, desk: Desk) -> None:
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


EVIL = "http://evil.example/"


async def _serve(page: Page, url: str, html: str) -> None:
    """Make ``url`` (another site) answer ``html`` in this browser."""

    async def fulfil(route: Route) -> None:
        await route.fulfill(body=html, content_type="text/html")

    await page.route(url, fulfil)


async def _admin_looks_up(browser: Browser, desk: Desk, order: str) -> Page:
    page = await (await browser.new_context()).new_page()
    await page.goto(f"{desk.base}/cs")
    await page.fill("#token", desk.admin)
    await page.click("#login")
    await page.fill("#q", order)
    await page.click("#search")
    await page.wait_for_selector("#timeline")
    return page


async def test_an_order_id_with_dots_or_slashes_is_acted_on_and_no_other(
    browser: Browser, desk: Desk
) -> None:
    # DOTTED ("X/../SO-HK-777") in a path would be normalised by the browser onto ORDER.
    page = await _admin_looks_up(browser, desk, DOTTED)
    await page.click("#optout")
    await page.wait_for_selector("#message")
    assert "Recorded (2)" in (await page.text_content("#message") or "")
    assert await desk.store.opted_out([desk.blind.phone("+85291234568")]) == {
        desk.blind.phone("+85291234568")
    }
    assert await desk.store.opted_out([desk.blind.phone("+85291234567")]) == set()  # ORDER untouched

    page = await _admin_looks_up(browser, desk, SLASHED)
    await page.click("#erase")
    await page.wait_for_selector("#message")
    assert "Erased (1)" in (await page.text_content("#message") or "")
    assert await desk.store.contact(notification_id(SLASHED, Milestone.ARRIVED_HK_WAREHOUSE)) is None
    assert await desk.store.contact(notification_id(ORDER, Milestone.ARRIVED_HK_WAREHOUSE)) is not None


async def test_the_page_is_styled_under_its_csp_and_cannot_be_framed(browser: Browser, desk: Desk) -> None:
    page = await browser.new_page()
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    response = await page.goto(f"{desk.base}/cs")
    assert response is not None
    assert "frame-ancestors 'none'" in (await response.all_headers())["content-security-policy"]
    assert await page.evaluate("getComputedStyle(document.body).maxWidth") == "576px"  # web.css applied
    assert violations == []

    # Another site framing the sign-in page gets nothing (clickjacking).
    framer = await browser.new_page()
    await _serve(framer, EVIL, f'<iframe id="f" src="{desk.base}/cs"></iframe>')
    await framer.goto(EVIL)  # "load" waits for the frame too
    assert len(framer.frames) == 2
    for frame in framer.frames:
        assert await frame.locator("#token").count() == 0


async def test_a_form_posted_from_another_site_changes_nothing(browser: Browser, desk: Desk) -> None:
    page = await _admin_looks_up(browser, desk, ORDER)
    # The admin, still signed in, visits a page elsewhere that posts the erase form to us.
    # (SameSite=Strict keeps the cookie off it; the Origin check refuses it even if it came along.)
    evil = await page.context.new_page()
    form = f'<form id="f" method="post" action="{desk.base}/cs/orders/erase"><input name="order" value="{ORDER}"></form>'
    await _serve(evil, EVIL, form)
    await evil.goto(EVIL)
    async with evil.expect_response(f"{desk.base}/cs/orders/erase") as answer:
        await evil.evaluate("document.getElementById('f').submit()")
    assert (await answer.value).status == 403
    assert await desk.store.contact(notification_id(ORDER, Milestone.ARRIVED_HK_WAREHOUSE)) is not None


def _cjk_fonts() -> list[str]:
    try:
        found = subprocess.run(
            ["fc-list", ":lang=zh-hk", "family"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return []
    return [line for line in found.stdout.splitlines() if line.strip()]


async def _fonts_rendering(page: Page, selector: str) -> dict[str, int]:
    """The platform fonts Chromium really drew the element's text with, and their glyph counts."""
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("DOM.enable")
    await cdp.send("CSS.enable")
    root = await cdp.send("DOM.getDocument")
    node = await cdp.send("DOM.querySelector", {"nodeId": root["root"]["nodeId"], "selector": selector})
    fonts = await cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node["nodeId"]})
    await cdp.detach()
    return {f["familyName"]: int(f["glyphCount"]) for f in fonts["fonts"]}


@pytest.mark.parametrize("viewport", sorted(VIEWPORTS))
async def test_the_page_reads_in_chinese_on_a_laptop_and_a_phone(
    browser: Browser, desk: Desk, viewport: str
) -> None:
    assert _cjk_fonts(), "no font for zh-HK: deploy/local/prereqs.sh installs fonts-noto-cjk"
    context = await browser.new_context(viewport=VIEWPORTS[viewport])  # type: ignore[arg-type]
    page = await context.new_page()
    await page.goto(f"{desk.base}/cs")
    await page.fill("#token", desk.agent)
    await page.click("#login")
    await page.fill("#q", ORDER)
    await page.click("#search")
    await page.wait_for_selector("#timeline")

    # The Chinese is drawn with a CJK font (no empty boxes): every glyph of the heading from it.
    fonts = await _fonts_rendering(page, ".notification h3")
    cjk = {name: n for name, n in fonts.items() if "CJK" in name or "HK" in name or "TC" in name}
    assert cjk, fonts
    assert sum(cjk.values()) >= len("已到達香港倉庫"), fonts
    # Nothing is cut off or scrolls sideways at this width.
    width = VIEWPORTS[viewport]["width"]
    assert await page.evaluate("document.documentElement.scrollWidth") <= width
    box = await page.locator(".notification").bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= width
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"support-page-{viewport}.png"
    await page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")  # the artefact's path, in the test's output
    assert shot.stat().st_size > 10_000
    await context.close()
