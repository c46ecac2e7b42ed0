"""The support site's look-up answers: the JSON API and the search page, for a signed-in staff member."""

from __future__ import annotations

import json
from collections.abc import Callable

from aiohttp import web

from service.http.staff_pages import StaffPages, api_error
from service.http.support_desk import QUERY_MAX, SupportDesk, valid_query
from service.store.staff import Staff


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


class SupportViews:
    def __init__(self, desk: SupportDesk, pages: StaffPages, client: Callable[[web.Request], str]) -> None:
        self.desk, self.pages, self.client = desk, pages, client

    # --- JSON API ---------------------------------------------------------------------------------
    async def api_lookup(self, request: web.Request, staff: Staff) -> web.StreamResponse:
        return await self._api_answer(request, staff, request.match_info["order"])

    async def api_query(self, request: web.Request, staff: Staff) -> web.StreamResponse:
        return await self._api_answer(request, staff, request.query.get("q", ""))

    async def api_opt_out(self, request: web.Request, staff: Staff) -> web.StreamResponse:
        order = await order_in_body(request, api=True)
        if order is None:
            return api_error(400, 'a JSON body {"order": "<order id>"}')
        return web.json_response({"opted_out": await self.desk.opt_out(staff, order, self.client(request))})

    async def api_erase(self, request: web.Request, staff: Staff) -> web.StreamResponse:
        order = await order_in_body(request, api=True)
        if order is None:
            return api_error(400, 'a JSON body {"order": "<order id>"}')
        return web.json_response({"erased": await self.desk.erase(staff, order, self.client(request))})

    async def _api_answer(self, request: web.Request, staff: Staff, raw: str) -> web.StreamResponse:
        query = valid_query(raw)
        if query is None:
            return api_error(
                400, f"an order number or waybill: 1 to {QUERY_MAX} characters, no control characters"
            )
        rows = await self.desk.find(staff, query, self.client(request))
        if not rows:
            return api_error(404, "not found")
        phone, email = self.desk.masked(rows)
        return web.json_response(
            {
                "order_id": rows[0].order_id,
                "waybill": rows[0].waybill,
                "recipient": {"phone": phone, "email": email},
                "notifications": await self.desk.details(rows),
            },
            dumps=lambda o: json.dumps(o, ensure_ascii=False),
        )

    # --- the page ---------------------------------------------------------------------------------
    async def orders_page(self, request: web.Request, staff: Staff) -> web.StreamResponse:
        return await self._render_order(request, staff, valid_query(request.query.get("q", "")), None)

    async def opt_out_page(self, request: web.Request, staff: Staff) -> web.StreamResponse:
        order = await order_in_body(request, api=False)
        if order is None:
            return await self._render_order(request, staff, None, None)
        changed = await self.desk.opt_out(staff, order, self.client(request))
        return await self._render_order(request, staff, order, f"已記錄 Recorded ({changed})")

    async def erase_page(self, request: web.Request, staff: Staff) -> web.StreamResponse:
        order = await order_in_body(request, api=False)
        if order is None:
            return await self._render_order(request, staff, None, None)
        n = await self.desk.erase(staff, order, self.client(request))
        return await self._render_order(request, staff, order, f"已刪除 Erased ({n})")

    async def _render_order(
        self, request: web.Request, staff: Staff, query: str | None, message: str | None
    ) -> web.Response:
        if query is None:
            return self.pages.page(
                "cs_search",
                400,
                staff=staff,
                q="",
                rows=[],
                error=f"訂單編號無效 Not an order number or waybill (1–{QUERY_MAX} characters)",
            )
        rows = await self.desk.find(staff, query, self.client(request))
        phone, email = self.desk.masked(rows)
        return self.pages.page(
            "cs_search",
            staff=staff,
            q=query,
            rows=await self.desk.details(rows),
            message=message,
            order_id=rows[0].order_id if rows else "",
            waybill=rows[0].waybill if rows else "",
            masked_phone=phone,
            masked_email=email,
        )
