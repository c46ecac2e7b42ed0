"""Customer-service look-up: "was this customer notified, and when?" A JSON API and a small page.

Authentication: ``Authorization: Bearer <token>`` (API) or the page's sign-in, which keeps the
token in an HttpOnly, SameSite=Strict cookie. Tokens are stored hashed (``notifier staff add``).
Roles: ``cs_agent`` looks up; ``admin`` also records opt-outs and erases personal data. Every
look-up and every action, and every refused sign-in, is written to the append-only audit log
with who, when, what, which order and from which address.

Staff see a masked phone (``+852 ****4567``) and email (``t***@example.com``), never the full
ones: the sealed event is decrypted in memory only to mask it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web

from service.contracts import parse_event
from service.domain.errors import NotifierError
from service.domain.phone import mask_phone, normalize_hk_mobile
from service.privacy.crypto import Keyring
from service.store.postgres import PostgresStore
from service.store.privacy import PrivacyStore
from service.store.staff import Staff, StaffStore, SupportRow

_HK = ZoneInfo("Asia/Hong_Kong")
COOKIE = "notifier_staff"
Handler = Callable[[web.Request, Staff], Awaitable[web.StreamResponse]]


def timeline(rows: list[SupportRow]) -> list[dict[str, object]]:
    return [
        {
            "milestone": r.milestone,
            "state": r.state,
            "reason": r.reason,
            "channel": r.channel,
            "provider": r.provider,
            "occurred_at": r.occurred_at.isoformat(),
            "updated_at": r.updated_at.isoformat(),
            "delivered_at": r.delivered_at.isoformat() if r.delivered_at else None,
            "time": f"{r.updated_at.astimezone(_HK):%Y-%m-%d %H:%M}",
        }
        for r in rows
    ]


def mask_email(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


class SupportSite:
    """The look-up API and page; ``routes`` mounts them on an application."""

    def __init__(
        self,
        *,
        templates_dir: Path,
        store: PostgresStore,
        keyring: Keyring | None,
        page_globals: dict[str, str],
    ) -> None:
        self.store, self.keyring, self.page_globals = store, keyring, page_globals
        self.staff_store, self.privacy = StaffStore(store.pool), PrivacyStore(store.pool)
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(templates_dir), autoescape=True)

    def page(self, name: str, status: int = 200, **context: object) -> web.Response:
        html = self.env.get_template(f"web/{name}.html.j2").render(**self.page_globals, **context)
        return web.Response(
            text=html, status=status, content_type="text/html", headers={"Cache-Control": "no-store"}
        )

    def masked(self, rows: list[SupportRow]) -> tuple[str, str]:
        """The recipient's masked phone and email, from the first sealed event that can be read."""
        for r in rows:
            if self.keyring is None or r.key_id is None or r.ciphertext is None:
                continue
            try:
                update = parse_event(self.keyring.decrypt(r.key_id, r.ciphertext, r.notification_id.bytes))
            except NotifierError:
                continue
            phone = normalize_hk_mobile(update.recipient.phone).e164 if update.recipient.phone else None
            email = update.recipient.email
            return (mask_phone(phone) if phone else "—", mask_email(email) if email else "—")
        return ("—", "—")

    async def find(self, request: web.Request, staff: Staff, query: str) -> list[SupportRow]:
        rows = await self.staff_store.lookup(query)
        await self.staff_store.audit(
            staff,
            "lookup",
            order_id=rows[0].order_id if rows else None,
            remote=request.remote,
            detail=None if rows else "no match",
        )
        return rows

    async def opt_out(self, staff: Staff, request: web.Request, order: str) -> int:
        rows = await self.staff_store.lookup(order)
        subjects = sorted({s for r in rows for s in (r.phone_subject, r.email_subject) if s is not None})
        changed = await self.store.set_consent(subjects, opted_out=True, source=f"operator:{staff.name}")
        await self.staff_store.audit(
            staff, "opt_out", order_id=order, remote=request.remote, detail=f"{changed} changed"
        )
        return changed

    async def erase(self, staff: Staff, request: web.Request, order: str) -> int:
        d = await self.privacy.erase_order(order)
        await self.staff_store.audit(
            staff, "erase", order_id=order, remote=request.remote, detail=f"{d.contacts} sealed"
        )
        return d.contacts

    def routes(self, app: web.Application) -> None:  # one small handler per route
        def token_of(request: web.Request) -> str:
            header = request.headers.get("Authorization", "")
            if header.startswith("Bearer "):
                return header[7:].strip()
            return request.cookies.get(COOKIE, "")

        def authed(
            *, admin: bool = False, api: bool
        ) -> Callable[[Handler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
            def wrap(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
                async def inner(request: web.Request) -> web.StreamResponse:
                    staff = await self.staff_store.authenticate(token_of(request))
                    if staff is None:
                        if api:
                            return web.json_response({"error": "unauthorized"}, status=401)
                        return self.page("cs_login", 401, error=None)
                    if admin and not staff.is_admin:
                        await self.staff_store.audit(
                            staff,
                            "denied",
                            order_id=request.match_info.get("order"),
                            remote=request.remote,
                            detail=request.path,
                        )
                        return web.json_response({"error": "forbidden: admin only"}, status=403)
                    return await handler(request, staff)

                return inner

            return wrap

        # --- JSON API -----------------------------------------------------------------------------
        @authed(api=True)
        async def api_lookup(request: web.Request, staff: Staff) -> web.StreamResponse:
            rows = await self.find(request, staff, request.match_info["order"])
            if not rows:
                return web.json_response({"error": "not found"}, status=404)
            phone, email = self.masked(rows)
            return web.json_response(
                {
                    "order_id": rows[0].order_id,
                    "waybill": rows[0].waybill,
                    "recipient": {"phone": phone, "email": email},
                    "notifications": timeline(rows),
                },
                dumps=lambda o: json.dumps(o, ensure_ascii=False),
            )

        @authed(api=True, admin=True)
        async def api_opt_out(request: web.Request, staff: Staff) -> web.StreamResponse:
            return web.json_response(
                {"opted_out": await self.opt_out(staff, request, request.match_info["order"])}
            )

        @authed(api=True, admin=True)
        async def api_erase(request: web.Request, staff: Staff) -> web.StreamResponse:
            return web.json_response(
                {"erased": await self.erase(staff, request, request.match_info["order"])}
            )

        # --- the page -------------------------------------------------------------------------------
        async def home(request: web.Request) -> web.StreamResponse:
            staff = await self.staff_store.authenticate(token_of(request))
            if staff is None:
                return self.page("cs_login", error=None)
            return self.page("cs_search", staff=staff, q="", rows=[])

        async def login(request: web.Request) -> web.StreamResponse:
            token = str((await request.post()).get("token", ""))
            staff = await self.staff_store.authenticate(token)
            if staff is None:
                await self.staff_store.audit(
                    Staff("unknown", "none"), "login_failed", order_id=None, remote=request.remote
                )
                return self.page("cs_login", 401, error="權杖無效 Invalid token")
            response = web.Response(status=303, headers={"Location": "/cs"})
            response.set_cookie(
                COOKIE,
                token,
                httponly=True,
                samesite="Strict",
                path="/",
                max_age=8 * 3600,
                secure=request.secure,
            )
            await self.staff_store.audit(staff, "login", order_id=None, remote=request.remote)
            return response

        async def logout(_: web.Request) -> web.StreamResponse:
            response = web.Response(status=303, headers={"Location": "/cs"})
            response.del_cookie(COOKIE, path="/")
            return response

        async def render_order(
            request: web.Request, staff: Staff, query: str, message: str | None
        ) -> web.Response:
            rows = await self.find(request, staff, query)
            phone, email = self.masked(rows)
            return self.page(
                "cs_search",
                staff=staff,
                q=query,
                rows=timeline(rows),
                message=message,
                order_id=rows[0].order_id if rows else "",
                waybill=rows[0].waybill if rows else "",
                masked_phone=phone,
                masked_email=email,
            )

        @authed(api=False)
        async def orders_page(request: web.Request, staff: Staff) -> web.StreamResponse:
            return await render_order(request, staff, request.query.get("q", ""), None)

        @authed(api=False, admin=True)
        async def opt_out_page(request: web.Request, staff: Staff) -> web.StreamResponse:
            changed = await self.opt_out(staff, request, request.match_info["order"])
            return await render_order(
                request, staff, request.match_info["order"], f"已記錄 Recorded ({changed})"
            )

        @authed(api=False, admin=True)
        async def erase_page(request: web.Request, staff: Staff) -> web.StreamResponse:
            n = await self.erase(staff, request, request.match_info["order"])
            return await render_order(request, staff, request.match_info["order"], f"已刪除 Erased ({n})")

        app.router.add_get("/api/cs/orders/{order}", api_lookup)
        app.router.add_post("/api/cs/orders/{order}/optout", api_opt_out)
        app.router.add_post("/api/cs/orders/{order}/erase", api_erase)
        app.router.add_get("/cs", home)
        app.router.add_post("/cs/login", login)
        app.router.add_post("/cs/logout", logout)
        app.router.add_get("/cs/orders", orders_page)
        app.router.add_post("/cs/orders/{order}/optout", opt_out_page)
        app.router.add_post("/cs/orders/{order}/erase", erase_page)
