"""Checks shared by the provider clients' tests."""

from __future__ import annotations

import socket
import traceback
from collections.abc import Iterable


def free_port() -> int:
    """A loopback port nobody listens on (for connection-refused cases)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def assert_no_secrets(exc: BaseException, secrets: Iterable[str]) -> None:
    """Neither the message, the repr nor the full traceback (with its causes) shows any secret."""
    rendered = [str(exc), repr(exc), "".join(traceback.format_exception(exc)), str(exc.args)]
    for text in rendered:
        for secret in secrets:
            assert secret not in text, f"{secret!r} leaked"
