"""The shared HTTP shell: library failures become ours, without the URL (which may hold a number)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from service.domain.errors import ProviderUnavailable
from service.send.providers.wire import Reply, as_dict, decode_json, request, safe_word
from tests.unit.send.providers.helpers import assert_no_secrets

URL = "https://api.example/2010-04-01/Accounts/AC1/Messages.json?To=%2B85291234567"


class RaisingSession:
    """Stands in for ``aiohttp.ClientSession``: every request raises ``exc``."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def request(self, *args: Any, **kwargs: Any) -> Any:
        raise self.exc


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (aiohttp.ConnectionTimeoutError(f"Connection timeout to host {URL}"), "timeout"),
        (aiohttp.SocketTimeoutError("Timeout on reading data from socket"), "timeout"),
        (TimeoutError(), "timeout"),
        (aiohttp.ClientConnectionError(f"Cannot connect to {URL}"), "network"),
        (aiohttp.InvalidURL(URL), "network"),
        (aiohttp.ClientPayloadError(f"Response payload is not completed for {URL}"), "network"),
    ],
)
async def test_failures_become_provider_unavailable_without_the_url(exc: BaseException, code: str) -> None:
    with pytest.raises(ProviderUnavailable) as info:
        await request(
            RaisingSession(exc),  # type: ignore[arg-type]
            "GET",
            URL,
            provider="twilio",
            client_timeout=aiohttp.ClientTimeout(total=1),
            headers={},
        )
    assert (info.value.provider, info.value.code) == ("twilio", code)
    assert info.value.__suppress_context__
    assert_no_secrets(info.value, ["85291234567", "Messages.json"])


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [(b"", None), (b"<html>+85291234567</html>", None), (b'{"a": 1}', {"a": 1}), (b"\xff\xfe", None)],
)
def test_decode_json(raw: bytes, decoded: object) -> None:
    assert decode_json(raw) == decoded


@pytest.mark.parametrize(
    ("value", "word"),
    [
        ("UNAUTHORIZED", "UNAUTHORIZED"),
        ("EC_UNKNOWN_SUBSCRIBER", "EC_UNKNOWN_SUBSCRIBER"),
        ("E401", "E401"),
        ("+85291234567", None),
        ("Invalid login details", None),
        ("lower_case", None),
        ("A" * 65, None),
        (401, None),
        (None, None),
    ],
)
def test_safe_word_lets_only_upper_case_codes_through(value: object, word: str | None) -> None:
    assert safe_word(value) == word


def test_reply_repr_shows_no_payload() -> None:
    reply = Reply(200, None, {"to": "+85291234567"})  # type: ignore[arg-type]
    assert "852" not in repr(reply)
    assert as_dict(reply.payload) == {"to": "+85291234567"}
    assert as_dict([1]) == {}


async def test_a_form_is_sent_url_encoded_and_reads_back_as_sent() -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    seen: dict[str, Any] = {}

    async def echo(req: web.Request) -> web.Response:
        seen["type"] = req.content_type
        seen["form"] = dict(await req.post())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/m", echo)
    form = {"To": "+85291234567", "Body": "你好 a&b=c+d %20 ✓", "From": "Brand"}
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        reply = await request(
            session,
            "POST",
            str(server.make_url("/m")),
            provider="twilio",
            client_timeout=aiohttp.ClientTimeout(total=5),
            headers={"Authorization": "Basic x"},
            data=form,
        )
    assert reply.status == 200
    assert reply.payload == {"ok": True}
    assert seen == {"type": "application/x-www-form-urlencoded", "form": form}
