"""The customer-facing pages behind the links in messages: order status and unsubscribe.

``GET /s/{token}``  bilingual order status (milestones and times only: no personal data)
``GET /u/{token}``  bilingual confirmation page; nothing changes on GET, so link scanners that
                    only fetch pages cannot unsubscribe anyone
``POST /u/{token}`` records the opt-out for the recipient's phone and email (by blind index); the
                    link keeps working after the order's personal data was erased (the blind
                    indexes it needs are kept in ``erased_links``, see ``store.privacy``)

A tampered or expired token gets a clear bilingual error page (400 / 410). The page says "you are
unsubscribed" only when the opt-out is on record; a link with nothing to record it against gets
an error page instead (410).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web

from service.domain.links import LinkInvalid, LinkSigner
from service.domain.milestones import Milestone
from service.domain.outcome import LinkedNotification
from service.logs import get_logger
from service.store.postgres import PostgresStore
from service.store.privacy import PrivacyStore

log = get_logger(__name__)
_HK = ZoneInfo("Asia/Hong_Kong")

MILESTONE_LABELS = {
    Milestone.ARRIVED_HK_WAREHOUSE: ("已到達香港倉庫", "Arrived at our Hong Kong warehouse"),
    Milestone.CUSTOMS_CLEARED: ("已完成海關手續", "Cleared customs"),
    Milestone.READY_FOR_PICKUP: ("可以取車", "Ready to collect"),
}
_ERRORS = {
    "expired": (410, "連結已過期", "This link has expired"),
    "tampered": (400, "連結無效", "This link is not valid"),
    "malformed": (400, "連結無效", "This link is not valid"),
    "unknown": (404, "找不到此通知", "We could not find this notification"),
    "unrecordable": (410, "未能記錄您的要求", "We could not record your request"),
}


def add_page_routes(
    app: web.Application,
    *,
    templates_dir: Path,
    signer: LinkSigner,
    store: PostgresStore,
    page_globals: dict[str, str],
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    privacy = PrivacyStore(store.pool)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir), autoescape=True, undefined=jinja2.StrictUndefined
    )

    def page(name: str, status: int = 200, **context: object) -> web.Response:
        html = env.get_template(f"web/{name}.html.j2").render(**page_globals, **context)
        return web.Response(
            text=html,
            status=status,
            content_type="text/html",
            headers={
                "Cache-Control": "no-store",
                "Referrer-Policy": "no-referrer",
                "X-Frame-Options": "DENY",
            },
        )

    def error(reason: str) -> web.Response:
        status, zh, en = _ERRORS[reason]
        return page("error", status, zh=zh, en=en)

    async def resolve(request: web.Request) -> LinkedNotification | web.Response:
        try:
            link_id = signer.verify(request.match_info["token"], clock())
        except LinkInvalid as exc:
            log.info("link_refused", reason=exc.reason, path=request.path[:3])
            return error(exc.reason)
        found = await store.by_link(link_id)
        return found if found is not None else error("unknown")

    async def status_page(request: web.Request) -> web.Response:
        found = await resolve(request)
        if isinstance(found, web.Response):
            return found
        rows = []
        for entry in await store.timeline(found.order_id):
            zh, en = MILESTONE_LABELS[entry.milestone]
            rows.append({"zh": zh, "en": en, "when": f"{entry.occurred_at.astimezone(_HK):%Y-%m-%d %H:%M}"})
        return page(
            "status",
            waybill=found.waybill,
            milestones=rows,
            unsubscribe_path=f"/u/{request.match_info['token']}",
        )

    async def subjects_of(request: web.Request) -> tuple[tuple[bytes, ...], str | None] | web.Response:
        """The blind indexes an unsubscribe by this link records and its order (None once erased:
        an erased order is not linked to them again), or the error page to show."""
        try:
            link_id = signer.verify(request.match_info["token"], clock())
        except LinkInvalid as exc:
            log.info("link_refused", reason=exc.reason, path=request.path[:3])
            return error(exc.reason)
        found = await store.by_link(link_id)
        subjects = found.subjects if found is not None else await privacy.erased_link(link_id)
        if subjects is None:
            return error("unknown")
        if not subjects:
            log.warning("unsubscribe_unrecordable", has_notification=found is not None)
            return error("unrecordable")
        return subjects, found.order_id if found is not None else None

    async def unsubscribe_form(request: web.Request) -> web.Response:
        linked = await subjects_of(request)
        if isinstance(linked, web.Response):
            return linked
        return page("unsubscribe", done=False, action=f"/u/{request.match_info['token']}")

    async def unsubscribe(request: web.Request) -> web.Response:
        linked = await subjects_of(request)
        if isinstance(linked, web.Response):
            return linked
        subjects, order_id = linked
        # A database error raises here: the page then fails (5xx), it never claims an opt-out.
        changed = await store.set_consent(
            subjects, opted_out=True, source="unsubscribe_link", order_id=order_id
        )
        log.info("opted_out", source="unsubscribe_link", changed=changed)
        return page("unsubscribe", done=True, action="")

    app.router.add_get("/s/{token}", status_page)
    app.router.add_get("/u/{token}", unsubscribe_form)
    app.router.add_post("/u/{token}", unsubscribe)
