# ruff: noqa: F811  # the shared fixtures desk and make_desk are imported, and tests take them as arguments
"""Staff sign-in on the real PostgreSQL: server-side sessions, throttling, CSRF, proxies, names."""

from __future__ import annotations

import asyncpg
import pytest
from aiohttp import ClientSession
from aiohttp.client_reqrep import ClientResponse

from service.domain.milestones import Milestone
from service.domain.model import notification_id
from service.http.proxies import Proxies
from service.http.support import COOKIE, StaffWebPolicy
from service.store.staff import StaffNameTaken, StaffStore
from tests.integration.test_support import ORDER, Desk, DeskMaker, desk, make_desk  # noqa: F401  # shared fixtures

pytestmark = pytest.mark.integration


SAME = "same"  # the desk's own origin


async def _post(
    desk: Desk,
    path: str,
    data: dict[str, str],
    *,
    cookie: str = "",
    origin: str | None = SAME,
    **headers: str,
) -> ClientResponse:
    """A POST as a browser makes it: with an Origin (the page's own unless told), the cookie."""
    h = dict(headers)
    if origin is not None:
        h["Origin"] = desk.base if origin == SAME else origin
    if cookie:
        h["Cookie"] = f"{COOKIE}={cookie}"
    async with (
        ClientSession() as s,
        s.post(desk.base + path, data=data, headers=h, allow_redirects=False) as r,
    ):
        await r.read()
        return r


async def _get(desk: Desk, path: str, cookie: str, **headers: str) -> tuple[int, str]:
    h = {"Cookie": f"{COOKIE}={cookie}", **headers}
    async with ClientSession() as s, s.get(desk.base + path, headers=h, allow_redirects=False) as r:
        return r.status, await r.text()


async def _login(desk: Desk, token: str, **headers: str) -> str:
    r = await _post(desk, "/cs/login", {"token": token}, **headers)
    assert r.status == 303
    return r.cookies[COOKIE].value


async def _sql(desk: Desk, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(desk.url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def _audit(desk: Desk) -> list[tuple[str, str, str | None]]:
    return [tuple(r) for r in await _sql(desk, "SELECT actor, action, remote FROM audit_log ORDER BY id")]  # type: ignore[misc]


async def test_the_cookie_is_a_session_not_the_token_and_logout_ends_it(desk: Desk) -> None:
    session = await _login(desk, desk.agent)
    assert session != desk.agent
    assert desk.agent not in session
    assert (await _get(desk, f"/cs/orders?q={ORDER}", session))[0] == 200
    assert (await _get(desk, f"/cs/orders?q={ORDER}", desk.agent))[0] == 401  # the token is no cookie
    hashes = await _sql(desk, "SELECT session_hash FROM staff_sessions")
    assert len(hashes) == 1
    assert session.encode() not in bytes(hashes[0]["session_hash"])  # stored hashed

    r = await _post(desk, "/cs/logout", {}, cookie=session)
    assert r.status == 303
    assert r.cookies[COOKIE].value == ""  # the browser forgets it
    assert (await _get(desk, f"/cs/orders?q={ORDER}", session))[0] == 401  # and the server too
    actions = [(a, act) for a, act, _ in await _audit(desk)]
    assert actions == [
        ("agent-amy", "login"),
        ("agent-amy", "lookup"),
        ("unknown", "auth_failed"),
        ("agent-amy", "logout"),
        ("unknown", "auth_failed"),
    ]


@pytest.mark.parametrize(
    "expire",
    [
        "UPDATE staff_sessions SET last_seen_at = now() - make_interval(secs => idle_s + 1)",  # idle
        "UPDATE staff_sessions SET expires_at = now() - interval '1 second'",  # absolute
    ],
)
async def test_a_session_expires_on_the_server(desk: Desk, expire: str) -> None:
    session = await _login(desk, desk.agent)
    assert (await _get(desk, "/cs/orders?q=x", session))[0] == 200
    await _sql(desk, expire)
    assert (await _get(desk, "/cs/orders?q=x", session))[0] == 401


async def test_using_a_session_keeps_it_alive(desk: Desk) -> None:
    session = await _login(desk, desk.agent)
    await _sql(desk, "UPDATE staff_sessions SET last_seen_at = now() - make_interval(secs => idle_s - 5)")
    assert (await _get(desk, "/cs/orders?q=x", session))[0] == 200  # touched: the idle time restarts
    assert (await _get(desk, "/cs/orders?q=x", session))[0] == 200


async def test_revoking_the_token_ends_its_sessions(desk: Desk) -> None:
    session = await _login(desk, desk.admin)
    assert await StaffStore(desk.store.pool).revoke("admin-bob") == 1
    assert (await _get(desk, "/cs/orders?q=x", session))[0] == 401
    assert (await _post(desk, "/cs/orders/erase", {"order": ORDER}, cookie=session)).status == 401
    assert await desk.store.contact(notification_id(ORDER, Milestone.ARRIVED_HK_WAREHOUSE)) is not None


@pytest.mark.parametrize(
    ("origin", "headers"),
    [
        ("http://evil.example", {}),
        ("null", {}),
        (None, {"Referer": "http://evil.example/page"}),
        (None, {}),  # neither: refused too
    ],
)
async def test_a_post_from_another_origin_is_refused(
    desk: Desk, origin: str | None, headers: dict[str, str]
) -> None:
    session = await _login(desk, desk.admin)
    r = await _post(desk, "/cs/orders/erase", {"order": ORDER}, cookie=session, origin=origin, **headers)
    assert r.status == 403
    assert await desk.store.contact(notification_id(ORDER, Milestone.ARRIVED_HK_WAREHOUSE)) is not None
    assert (await _post(desk, "/cs/login", {"token": desk.admin}, origin=origin, **headers)).status == 403
    assert (await _post(desk, "/cs/logout", {}, cookie=session, origin=origin, **headers)).status == 403
    assert (await _get(desk, "/cs/orders?q=x", session))[0] == 200  # still signed in
    # The same POST from the page's own origin (the Referer alone will do) goes through.
    referer = f"{desk.base}/cs/orders?q={ORDER}"
    r = await _post(desk, "/cs/orders/erase", {"order": ORDER}, cookie=session, origin=None, Referer=referer)
    assert r.status == 200


async def test_failed_sign_ins_are_throttled_per_client_with_bounded_audit(make_desk: DeskMaker) -> None:
    now = [1000.0]
    desk = await make_desk(StaffWebPolicy(failures_per_client=3, window_s=60), clock=lambda: now[0])
    for _ in range(3):
        assert (await _post(desk, "/cs/login", {"token": "guess"})).status == 401
    for _ in range(10):
        r = await _post(desk, "/cs/login", {"token": "guess"})
        assert r.status == 429
        assert r.headers["Retry-After"] == "60"
    assert (await _post(desk, "/cs/login", {"token": desk.agent})).status == 429  # every attempt
    async with (
        ClientSession() as s,
        s.get(desk.base + "/api/cs/orders/x", headers={"Authorization": "Bearer guess"}) as r,
    ):
        assert r.status == 429  # the API shares the count
    actions = [act for _, act, _ in await _audit(desk)]
    assert actions == ["login_failed"] * 3 + ["throttled"]  # 14 refusals, 4 rows

    now[0] += 61  # the window is over
    assert await _login(desk, desk.agent)


async def test_failures_from_everyone_are_audited_up_to_a_cap(make_desk: DeskMaker) -> None:
    desk = await make_desk(StaffWebPolicy(failures_per_client=100, failures_total=2, window_s=60))
    for _ in range(6):
        assert (await _post(desk, "/cs/login", {"token": "guess"})).status == 401
    actions = [act for _, act, _ in await _audit(desk)]
    assert actions == ["login_failed"] * 3  # two, then one saying the rest are not
    assert await _login(desk, desk.agent)  # the cap never refuses a right token


async def test_refused_bearer_tokens_are_audited(desk: Desk) -> None:
    async with ClientSession() as s:
        for header in ("Bearer nope", f"Bearer {'x' * 5000}"):
            async with s.get(desk.base + "/api/cs/orders/x", headers={"Authorization": header}) as r:
                assert r.status == 401
    assert [act for _, act, _ in await _audit(desk)] == ["auth_failed", "auth_failed"]


async def test_proxy_headers_count_only_from_a_trusted_proxy(make_desk: DeskMaker) -> None:
    forwarded = {"X-Forwarded-For": "198.51.100.9, 203.0.113.7", "X-Forwarded-Proto": "https"}
    untrusted = await make_desk()
    r = await _post(untrusted, "/cs/login", {"token": untrusted.agent}, **forwarded)
    assert not r.cookies[COOKIE]["secure"]
    assert (await _audit(untrusted))[-1] == ("agent-amy", "login", "127.0.0.1")

    trusted = await make_desk(StaffWebPolicy(proxies=Proxies.parse(["127.0.0.1/32"])))
    # Behind a TLS-terminating proxy the browser's Origin is the public https one.
    origin = "https://" + trusted.base.removeprefix("http://")
    r = await _post(trusted, "/cs/login", {"token": trusted.agent}, origin=origin, **forwarded)
    assert r.status == 303
    assert r.cookies[COOKIE]["secure"]
    assert (await _audit(trusted))[-1] == ("agent-amy", "login", "203.0.113.7")


async def test_staff_names_are_unique_and_revoke_names_one_person(desk: Desk) -> None:
    staff = StaffStore(desk.store.pool)
    with pytest.raises(StaffNameTaken, match="exists already"):
        await staff.add("agent-amy", "admin")
    assert await staff.revoke("agent-amy") == 1
    with pytest.raises(StaffNameTaken):
        await staff.add("agent-amy", "cs_agent")  # also once revoked: the audit log names one person
    assert await staff.revoke("agent-amy") == 0
    assert await staff.authenticate(desk.admin) is not None
