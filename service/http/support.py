"""Customer-service look-up: "was this customer notified, and when?" A JSON API and a small page.

Authentication: ``Authorization: Bearer <token>`` (API) or the page's sign-in, which starts a
server-side session (a random id in an HttpOnly, SameSite=Strict cookie; only its hash is
stored) that ends at logout, when unused for ``NOTIFIER_STAFF_SESSION_IDLE_S``, after
``NOTIFIER_STAFF_SESSION_MAX_S``, or when the token is revoked. Tokens are stored hashed
(``notifier staff add``). Roles: ``cs_agent`` looks up; ``admin`` also records opt-outs and erases
personal data. Every look-up, action, sign-in, logout and refused sign-in is written to the
append-only audit log with who, when, what, which order and from which address; failed sign-ins
are throttled per client (429 with Retry-After), which also bounds the audit rows they write.

A state-changing POST authenticated by the cookie must come from the service's own origin
(``Origin``, else ``Referer``): with the SameSite=Strict cookie, a page elsewhere cannot act for
a signed-in staff member. An order is named in the query or the body, never in the path, so an
order id with ``/`` or ``..`` names that order and no other.

Staff see a masked phone (``+852 ****4567``) and email (``t***@example.com``), never the full
ones: the sealed event is decrypted in memory only to mask it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web

from service.contracts import parse_event
from service.domain.errors import NotifierError
from service.domain.phone import mask_phone, normalize_hk_mobile
from service.domain.throttle import SigninThrottle
from service.http.proxies import Proxies
from service.logs import get_logger
from service.privacy.crypto import Keyring
from service.settings import Settings
from service.store.postgres import PostgresStore
from service.store.privacy import PrivacyStore
from service.store.staff import NO_CREDENTIAL, Staff, StaffStore, SupportRow

log = get_logger(__name__)
_HK = ZoneInfo("Asia/Hong_Kong")
COOKIE = "notifier_staff"
COOKIE_PATH = "/cs"
QUERY_MAX = 64  # the contract's longest order id or waybill
SECRET_MAX = 256  # longer than any token or session id we hand out
Handler = Callable[[web.Request, Staff], Awaitable[web.StreamResponse]]


def valid_query(raw: object) -> str | None:
    """An order id or waybill as the contract allows them (1-64 characters, no control
    character), stripped; None for anything else (a NUL, an over-long string, not text)."""
    if not isinstance(raw, str):
        return None
    q = raw.strip()
    if not 0 < len(q) <= QUERY_MAX or any(ord(c) < 0x20 or ord(c) == 0x7F for c in q):
        return None
    try:
        q.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return None
    return q


def origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


@dataclass(frozen=True, slots=True)
class StaffWebPolicy:
    """Sessions, throttling, the origin POSTs must come from, and which proxies to believe."""

    idle_s: int = 1800
    max_s: int = 8 * 3600
    public_origin: str | None = None  # None: the origin the request was made to
    proxies: Proxies = field(default_factory=Proxies)
    failures_per_client: int = 5
    failures_total: int = 100
    window_s: int = 300

    @classmethod
    def from_settings(cls, s: Settings) -> StaffWebPolicy:
        return cls(
            idle_s=s.staff_session_idle_s,
            max_s=s.staff_session_max_s,
            public_origin=origin_of(s.public_base_url) if s.public_base_url else None,
            proxies=Proxies.parse(s.trusted_proxies),
            failures_per_client=s.signin_failures_per_client,
            failures_total=s.signin_failures_total,
            window_s=s.signin_window_s,
        )


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
        policy: StaffWebPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store, self.keyring, self.page_globals = store, keyring, page_globals
        self.policy, self.clock = policy or StaffWebPolicy(), clock
        self.throttle = SigninThrottle(
            per_client=self.policy.failures_per_client,
            total=self.policy.failures_total,
            window_s=self.policy.window_s,
        )
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

    # --- who is calling ---------------------------------------------------------------------------
    def client(self, request: web.Request) -> str:
        return self.policy.proxies.client(request)

    def same_origin(self, request: web.Request) -> bool:
        """A POST made by a page of this service (CSRF): its Origin (or Referer) is ours."""
        sent = request.headers.get("Origin") or request.headers.get("Referer")
        origin = origin_of(sent) if sent else None
        if origin is None:
            return False
        scheme = "https" if self.policy.proxies.secure(request) else "http"
        return origin == (self.policy.public_origin or f"{scheme}://{request.host}".lower())

    def throttled(self, request: web.Request) -> tuple[int, bool] | None:
        """(Retry-After, audit it) when this client has failed too often."""
        refusal = self.throttle.refused(self.client(request), self.clock())
        return None if refusal is None else (refusal.retry_after_s, refusal.first)

    async def refuse_throttled(self, request: web.Request, retry_after: int, first: bool) -> None:
        if first:  # once per client and window
            await self.staff_store.audit(
                NO_CREDENTIAL, "throttled", order_id=None, remote=self.client(request), detail=request.path
            )
        log.warning("signin_throttled", path=request.path, retry_after_s=retry_after)

    async def failed(self, request: web.Request, action: str, kind: str) -> None:
        """A refused sign-in (wrong token, dead session): counted, and audited within the cap."""
        verdict = self.throttle.failed(self.client(request), self.clock())
        if verdict == "none":
            return
        detail = f"{kind} {request.method} {request.path}"
        if verdict == "summary":
            detail = f"more failed sign-ins this window are not audited ({detail})"
        await self.staff_store.audit(
            NO_CREDENTIAL, action, order_id=None, remote=self.client(request), detail=detail[:200]
        )

    # --- what staff do ---------------------------------------------------------------------------
    async def find(self, request: web.Request, staff: Staff, query: str) -> list[SupportRow]:
        rows = await self.staff_store.lookup(query)
        await self.staff_store.audit(
            staff.credential,
            "lookup",
            order_id=rows[0].order_id if rows else None,
            remote=self.client(request),
            detail=None if rows else "no match",
        )
        return rows

    async def opt_out(self, staff: Staff, request: web.Request, order: str) -> int:
        rows = await self.staff_store.lookup(order)
        subjects = sorted({s for r in rows for s in (r.phone_subject, r.email_subject) if s is not None})
        changed = await self.store.set_consent(subjects, opted_out=True, source=f"operator:{staff.name}")
        await self.staff_store.audit(
            staff.credential,
            "opt_out",
            order_id=order,
            remote=self.client(request),
            detail=f"{changed} changed",
        )
        return changed

    async def erase(self, staff: Staff, request: web.Request, order: str) -> int:
        d = await self.privacy.erase_order(order)
        await self.staff_store.audit(
            staff.credential,
            "erase",
            order_id=order,
            remote=self.client(request),
            detail=f"{d.contacts} sealed",
        )
        return d.contacts

    def routes(self, app: web.Application) -> None:  # noqa: PLR0915  # one small handler per route
        def bearer(request: web.Request) -> str:
            header = request.headers.get("Authorization", "")
            return header[7:].strip() if header.startswith("Bearer ") else ""

        def api_error(status: int, error: str, **headers: str) -> web.Response:
            return web.json_response({"error": error}, status=status, headers=headers)

        def too_many(retry_after: int, *, api: bool) -> web.Response:
            headers = {"Retry-After": str(retry_after)}
            if api:
                return api_error(429, "too many failed sign-ins: try again later", **headers)
            response = self.page(
                "cs_login", 429, error="嘗試次數過多，請稍後再試 Too many attempts: try again later"
            )
            response.headers.update(headers)
            return response

        async def identify(request: web.Request, *, api: bool) -> Staff | web.Response:
            """The staff member of the request's bearer token (API) or session (page), or the answer."""
            secret = bearer(request) if api else request.cookies.get(COOKIE, "")
            if not secret:
                return api_error(401, "unauthorized") if api else self.page("cs_login", 401, error=None)
            if (refusal := self.throttled(request)) is not None:
                await self.refuse_throttled(request, *refusal)
                return too_many(refusal[0], api=api)
            staff = None
            if len(secret) <= SECRET_MAX:
                staff = await (
                    self.staff_store.authenticate(secret) if api else self.staff_store.session(secret)
                )
            if staff is not None:
                return staff
            await self.failed(request, "auth_failed", "token" if api else "session")
            if api:
                return api_error(401, "unauthorized")
            response = self.page("cs_login", 401, error=None)
            response.del_cookie(COOKIE, path=COOKIE_PATH)
            return response

        def authed(
            *, admin: bool = False, api: bool
        ) -> Callable[[Handler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
            def wrap(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
                async def inner(request: web.Request) -> web.StreamResponse:
                    if not api and request.method == "POST" and not self.same_origin(request):
                        log.warning("cross_origin_post_refused", path=request.path)
                        return self.page("error", 403, zh="請求被拒絕", en="Request refused")
                    staff = await identify(request, api=api)
                    if not isinstance(staff, Staff):
                        return staff
                    if admin and not staff.is_admin:
                        await self.staff_store.audit(
                            staff.credential,
                            "denied",
                            order_id=None,
                            remote=self.client(request),
                            detail=request.path,
                        )
                        return api_error(403, "forbidden: admin only")
                    return await handler(request, staff)

                return inner

            return wrap

        async def order_in_body(request: web.Request, *, api: bool) -> str | None:
            try:
                if api:
                    body = await request.json()
                    raw = body.get("order") if isinstance(body, dict) else None
                else:
                    raw = (await request.post()).get("order")
            except (ValueError, UnicodeDecodeError):  # not JSON, not a form
                return None
            return valid_query(raw)

        # --- JSON API -----------------------------------------------------------------------------
        async def api_answer(request: web.Request, staff: Staff, raw: str) -> web.StreamResponse:
            query = valid_query(raw)
            if query is None:
                return api_error(
                    400, f"an order number or waybill: 1 to {QUERY_MAX} characters, no control characters"
                )
            rows = await self.find(request, staff, query)
            if not rows:
                return api_error(404, "not found")
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

        @authed(api=True)
        async def api_lookup(request: web.Request, staff: Staff) -> web.StreamResponse:
            return await api_answer(request, staff, request.match_info["order"])

        @authed(api=True)
        async def api_query(request: web.Request, staff: Staff) -> web.StreamResponse:
            return await api_answer(request, staff, request.query.get("q", ""))

        @authed(api=True, admin=True)
        async def api_opt_out(request: web.Request, staff: Staff) -> web.StreamResponse:
            order = await order_in_body(request, api=True)
            if order is None:
                return api_error(400, 'a JSON body {"order": "<order id>"}')
            return web.json_response({"opted_out": await self.opt_out(staff, request, order)})

        @authed(api=True, admin=True)
        async def api_erase(request: web.Request, staff: Staff) -> web.StreamResponse:
            order = await order_in_body(request, api=True)
            if order is None:
                return api_error(400, 'a JSON body {"order": "<order id>"}')
            return web.json_response({"erased": await self.erase(staff, request, order)})

        # --- the page -------------------------------------------------------------------------------
        async def home(request: web.Request) -> web.StreamResponse:
            session = request.cookies.get(COOKIE, "")
            staff = await self.staff_store.session(session) if 0 < len(session) <= SECRET_MAX else None
            if staff is None:
                return self.page("cs_login", error=None)
            return self.page("cs_search", staff=staff, q="", rows=[])

        async def login(request: web.Request) -> web.StreamResponse:
            if not self.same_origin(request):
                log.warning("cross_origin_post_refused", path=request.path)
                return self.page("error", 403, zh="請求被拒絕", en="Request refused")
            if (refusal := self.throttled(request)) is not None:
                await self.refuse_throttled(request, *refusal)
                return too_many(refusal[0], api=False)
            try:
                token = str((await request.post()).get("token", ""))
            except (ValueError, UnicodeDecodeError):
                token = ""
            staff = None
            if 0 < len(token) <= SECRET_MAX:
                staff = await self.staff_store.start_session(
                    token, idle_s=self.policy.idle_s, max_s=self.policy.max_s
                )
            if staff is None:
                await self.failed(request, "login_failed", "token")
                return self.page("cs_login", 401, error="權杖無效 Invalid token")
            response = web.Response(status=303, headers={"Location": "/cs"})
            response.set_cookie(
                COOKIE,
                staff.credential.secret,
                httponly=True,
                samesite="Strict",
                path=COOKIE_PATH,
                max_age=self.policy.max_s,
                secure=self.policy.proxies.secure(request)
                or (self.policy.public_origin or "").startswith("https:"),
            )
            await self.staff_store.audit(
                staff.credential, "login", order_id=None, remote=self.client(request)
            )
            return response

        async def logout(request: web.Request) -> web.StreamResponse:
            if not self.same_origin(request):
                log.warning("cross_origin_post_refused", path=request.path)
                return self.page("error", 403, zh="請求被拒絕", en="Request refused")
            session = request.cookies.get(COOKIE, "")
            staff = await self.staff_store.session(session) if 0 < len(session) <= SECRET_MAX else None
            if staff is not None:
                await self.staff_store.audit(
                    staff.credential, "logout", order_id=None, remote=self.client(request)
                )
                await self.staff_store.end_session(session)
            response = web.Response(status=303, headers={"Location": "/cs"})
            response.del_cookie(COOKIE, path=COOKIE_PATH)
            return response

        async def render_order(
            request: web.Request, staff: Staff, query: str | None, message: str | None
        ) -> web.Response:
            if query is None:
                return self.page(
                    "cs_search",
                    400,
                    staff=staff,
                    q="",
                    rows=[],
                    error=f"訂單編號無效 Not an order number or waybill (1–{QUERY_MAX} characters)",
                )
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
            return await render_order(request, staff, valid_query(request.query.get("q", "")), None)

        @authed(api=False, admin=True)
        async def opt_out_page(request: web.Request, staff: Staff) -> web.StreamResponse:
            order = await order_in_body(request, api=False)
            if order is None:
                return await render_order(request, staff, None, None)
            changed = await self.opt_out(staff, request, order)
            return await render_order(request, staff, order, f"已記錄 Recorded ({changed})")

        @authed(api=False, admin=True)
        async def erase_page(request: web.Request, staff: Staff) -> web.StreamResponse:
            order = await order_in_body(request, api=False)
            if order is None:
                return await render_order(request, staff, None, None)
            n = await self.erase(staff, request, order)
            return await render_order(request, staff, order, f"已刪除 Erased ({n})")

        app.router.add_get("/api/cs/orders", api_query)
        app.router.add_get("/api/cs/orders/{order}", api_lookup)
        app.router.add_post("/api/cs/orders/optout", api_opt_out)
        app.router.add_post("/api/cs/orders/erase", api_erase)
        app.router.add_get("/cs", home)
        app.router.add_post("/cs/login", login)
        app.router.add_post("/cs/logout", logout)
        app.router.add_get("/cs/orders", orders_page)
        app.router.add_post("/cs/orders/optout", opt_out_page)
        app.router.add_post("/cs/orders/erase", erase_page)
