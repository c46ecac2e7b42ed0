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

import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from service.compose.render import Renderer
from service.http.staff_pages import StaffPages
from service.http.staff_sessions import COOKIE, StaffGate, StaffWebPolicy
from service.http.support_desk import SupportDesk, mask_email
from service.http.support_views import SupportViews
from service.privacy.crypto import Keyring
from service.store.postgres import PostgresStore
from service.store.privacy import PrivacyStore
from service.store.staff import StaffStore

__all__ = ["COOKIE", "StaffWebPolicy", "SupportSite", "mask_email"]  # what callers import from here


class SupportSite:
    """The look-up API and page; ``routes`` mounts them on an application.

    Who may call (``service.http.staff_sessions``), what they may do (``service.http.support_desk``)
    and how the answers look (``service.http.support_views``) each live in a module of their own.
    """

    def __init__(
        self,
        *,
        templates_dir: Path,
        store: PostgresStore,
        keyring: Keyring | None,
        page_globals: dict[str, str],
        policy: StaffWebPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        renderer: Renderer | None = None,
        release_rate_per_s: float = 5.0,  # quiet hours: the pace scheduled sends are released at
    ) -> None:
        self.store, self.keyring, self.page_globals = store, keyring, page_globals
        self.policy, self.clock = policy or StaffWebPolicy(), clock
        self.staff_store, self.privacy = StaffStore(store.pool), PrivacyStore(store.pool)
        pages = StaffPages(templates_dir, page_globals)
        self.gate = StaffGate(self.staff_store, pages, self.policy, clock)
        # The text a customer received is rendered again without links: a link's token is theirs.
        renderer = renderer or Renderer(
            templates_dir,
            brand=page_globals["brand"],
            contact_phone=page_globals["contact_phone"],
            contact_email=page_globals["contact_email"],
        )
        self.desk = SupportDesk(
            store, self.staff_store, self.privacy, keyring, renderer, release_rate_per_s=release_rate_per_s
        )
        self.views = SupportViews(self.desk, pages, self.gate.client)

    def routes(self, app: web.Application) -> None:
        gate, views = self.gate, self.views
        api, api_admin = gate.authed(api=True), gate.authed(api=True, admin=True)
        page, page_admin = gate.authed(api=False), gate.authed(api=False, admin=True)
        app.router.add_get("/api/cs/orders", api(views.api_query))
        app.router.add_get("/api/cs/orders/{order}", api(views.api_lookup))
        app.router.add_post("/api/cs/orders/optout", api_admin(views.api_opt_out))
        app.router.add_post("/api/cs/orders/erase", api_admin(views.api_erase))
        app.router.add_get("/cs", gate.home)
        app.router.add_post("/cs/login", gate.login)
        app.router.add_post("/cs/logout", gate.logout)
        app.router.add_get("/cs/orders", page(views.orders_page))
        app.router.add_post("/cs/orders/optout", page_admin(views.opt_out_page))
        app.router.add_post("/cs/orders/erase", page_admin(views.erase_page))
