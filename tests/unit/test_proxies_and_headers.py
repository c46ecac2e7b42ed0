"""Proxy headers believed only from configured proxies; security headers on every response."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from service.domain.errors import ConfigError
from service.http.proxies import Proxies
from service.http.server import create_app, create_public_app
from service.metrics import Metrics
from service.settings import load_settings


def _request(peer: str, **headers: str) -> web.Request:
    request = make_mocked_request("GET", "/cs", headers=headers)
    return request.clone(remote=peer)


FORWARDED = {"X-Forwarded-For": "198.51.100.9, 203.0.113.7, 10.0.0.5", "X-Forwarded-Proto": "https"}


def test_without_trusted_proxies_the_headers_are_ignored() -> None:
    request = _request("10.0.0.1", **FORWARDED)
    assert Proxies().client(request) == "10.0.0.1"
    assert not Proxies().secure(request)


def test_from_a_trusted_proxy_the_client_is_the_last_untrusted_hop() -> None:
    proxies = Proxies.parse(["10.0.0.0/8"])
    request = _request("10.0.0.1", **FORWARDED)
    assert proxies.client(request) == "203.0.113.7"  # 198.51.100.9 could be made up by the client
    assert proxies.secure(request)
    assert proxies.client(_request("10.0.0.1", **{"X-Forwarded-For": "not-an-ip"})) == "10.0.0.1"
    other = _request("192.0.2.1", **FORWARDED)  # not a proxy of ours
    assert (proxies.client(other), proxies.secure(other)) == ("192.0.2.1", False)


def test_trusted_proxies_setting_is_a_list_of_networks() -> None:
    assert load_settings(trusted_proxies="10.0.0.0/8, 192.0.2.7").trusted_proxies == [
        "10.0.0.0/8",
        "192.0.2.7",
    ]
    with pytest.raises(ConfigError, match="NOTIFIER_TRUSTED_PROXIES"):
        load_settings(trusted_proxies="10.0.0.0/33")
    with pytest.raises(ConfigError, match="NOTIFIER_MIGRATION_DATABASE_URL"):
        load_settings(migration_database_url="mysql://x")


async def test_every_response_of_the_public_app_carries_the_security_headers() -> None:
    app = create_public_app(1024)

    async def boom(_: web.Request) -> web.Response:
        raise RuntimeError("unexpected")

    app.router.add_get("/boom", boom)
    async with TestClient(TestServer(app)) as client:
        for path, status in (("/no-such-path", 404), ("/boom", 500)):
            reply = await client.get(path)
            assert reply.status == status
            assert "frame-ancestors 'none'" in reply.headers["Content-Security-Policy"]
            assert reply.headers["X-Frame-Options"] == "DENY"


async def test_every_response_of_the_ops_app_carries_the_security_headers() -> None:
    async def ready() -> dict[str, bool]:
        return {"database": True}

    async with TestClient(TestServer(create_app(Metrics(), ready))) as client:
        for path in ("/healthz", "/metrics", "/no-such-path"):
            reply = await client.get(path)
            csp = reply.headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in csp
            assert "default-src 'none'" in csp
            assert "unsafe-inline" not in csp
            assert reply.headers["X-Frame-Options"] == "DENY"
            assert reply.headers["X-Content-Type-Options"] == "nosniff"
            assert reply.headers["Referrer-Policy"] == "same-origin"
