"""Who is calling the support site: bearer tokens, sign-in sessions, throttling and same-origin POSTs.

The API authenticates with ``Authorization: Bearer <token>``; the page's sign-in starts a
server-side session (a random id in an HttpOnly, SameSite=Strict cookie; only its hash is stored)
that ends at logout, when unused for ``idle_s``, after ``max_s``, or when the token is revoked.
Failed sign-ins are throttled per client (429 with Retry-After), which also bounds the audit rows
they write. A state-changing POST authenticated by the cookie must come from the service's own
origin (``Origin``, else ``Referer``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp import web

from service.domain.throttle import SigninThrottle
from service.http.proxies import Proxies
from service.http.staff_pages import StaffPages, api_error
from service.logs import get_logger
from service.settings import Settings
from service.store.staff import NO_CREDENTIAL, Staff, StaffStore

log = get_logger(__name__)
COOKIE = "notifier_staff"
COOKIE_PATH = "/cs"
SECRET_MAX = 256  # longer than any token or session id we hand out
Handler = Callable[[web.Request, Staff], Awaitable[web.StreamResponse]]
Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


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


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.startswith("Bearer ") else ""


class StaffGate:
    """Lets staff in (``authed``), signs them in and out, and audits every refusal."""

    def __init__(
        self, staff_store: StaffStore, pages: StaffPages, policy: StaffWebPolicy, clock: Callable[[], float]
    ) -> None:
        self.staff_store, self.pages, self.policy, self.clock = staff_store, pages, policy, clock
        self.throttle = SigninThrottle(
            per_client=policy.failures_per_client, total=policy.failures_total, window_s=policy.window_s
        )

    def client(self, request: web.Request) -> str:
        return self.policy.proxies.client(request)

    def authed(self, *, admin: bool = False, api: bool) -> Callable[[Handler], Route]:
        """A handler for the staff member of the request, who must be an admin if ``admin``."""

        def wrap(handler: Handler) -> Route:
            async def inner(request: web.Request) -> web.StreamResponse:
                if not api and request.method == "POST" and not self.same_origin(request):
                    log.warning("cross_origin_post_refused", path=request.path)
                    return self.pages.refused()
                staff = await self.identify(request, api=api)
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

    async def identify(self, request: web.Request, *, api: bool) -> Staff | web.Response:
        """The staff member of the request's bearer token (API) or session (page), or the answer."""
        secret = _bearer(request) if api else request.cookies.get(COOKIE, "")
        if not secret:
            return api_error(401, "unauthorized") if api else self.pages.page("cs_login", 401, error=None)
        if (refusal := self.throttled(request)) is not None:
            await self.refuse_throttled(request, *refusal)
            return self.too_many(refusal[0], api=api)
        staff = None
        if len(secret) <= SECRET_MAX:
            staff = await (self.staff_store.authenticate(secret) if api else self.staff_store.session(secret))
        if staff is not None:
            return staff
        await self.failed(request, "auth_failed", "token" if api else "session")
        if api:
            return api_error(401, "unauthorized")
        response = self.pages.page("cs_login", 401, error=None)
        response.del_cookie(COOKIE, path=COOKIE_PATH)
        return response

    # --- the page's sign-in -----------------------------------------------------------------------
    async def home(self, request: web.Request) -> web.StreamResponse:
        staff = await self._signed_in(request)
        if staff is None:
            return self.pages.page("cs_login", error=None)
        return self.pages.page("cs_search", staff=staff, q="", rows=[])

    async def login(self, request: web.Request) -> web.StreamResponse:
        if not self.same_origin(request):
            log.warning("cross_origin_post_refused", path=request.path)
            return self.pages.refused()
        if (refusal := self.throttled(request)) is not None:
            await self.refuse_throttled(request, *refusal)
            return self.too_many(refusal[0], api=False)
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
            return self.pages.page("cs_login", 401, error="權杖無效 Invalid token")
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
        await self.staff_store.audit(staff.credential, "login", order_id=None, remote=self.client(request))
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        if not self.same_origin(request):
            log.warning("cross_origin_post_refused", path=request.path)
            return self.pages.refused()
        session = request.cookies.get(COOKIE, "")
        staff = await self._signed_in(request)
        if staff is not None:
            await self.staff_store.audit(
                staff.credential, "logout", order_id=None, remote=self.client(request)
            )
            await self.staff_store.end_session(session)
        response = web.Response(status=303, headers={"Location": "/cs"})
        response.del_cookie(COOKIE, path=COOKIE_PATH)
        return response

    async def _signed_in(self, request: web.Request) -> Staff | None:
        session = request.cookies.get(COOKIE, "")
        return await self.staff_store.session(session) if 0 < len(session) <= SECRET_MAX else None

    # --- refusals ---------------------------------------------------------------------------------
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

    def too_many(self, retry_after: int, *, api: bool) -> web.Response:
        headers = {"Retry-After": str(retry_after)}
        if api:
            return api_error(429, "too many failed sign-ins: try again later", **headers)
        response = self.pages.page(
            "cs_login", 429, error="嘗試次數過多，請稍後再試 Too many attempts: try again later"
        )
        response.headers.update(headers)
        return response

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
