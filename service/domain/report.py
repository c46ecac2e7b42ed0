"""What a provider's webhook says, as plain values, and the rules every webhook parser shares.

Each provider's parser lives next to its client, with that provider's status vocabulary
(``service.send.providers.twilio_reports.parse_status_callback`` / ``parse_inbound_message``,
``service.send.providers.infobip_reports.parse_reports``,
``service.send.providers.sendgrid_reports.parse_events``; each client module re-exports its own). They
are pure: bytes or a form in, these values out, ``MalformedReport`` for a body that is not what
the provider sends (checked entirely before any value is returned, so none of a bad body's
entries is applied). The HTTP layer verifies the request, calls the parser and routes the result.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from service.domain.errors import MalformedReport

#: A provider's status or error code as it may appear in a receipt's reason: a short word.
CODE: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: A code that is not a short word is kept as this word (its text never reaches a receipt).
OTHER_CODE: Final = "other"
#: The longest reference a report may name (ours are far shorter: see ``domain.references``).
REFERENCE_MAX: Final = 200

_STOP_WORDS: Final = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "退訂", "取消", "停止"}
)
_START_WORDS: Final = frozenset({"START", "UNSTOP", "訂閱"})


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """A provider's final status of one message we sent, naming the attempt by our reference.

    ``expired``: authentic, but dated outside the window we accept: ignored (and counted).
    """

    provider: str
    reference: str
    delivered: bool
    code: str | None = None
    expired: bool = False


@dataclass(frozen=True, slots=True)
class ConsentReply:
    """A customer's SMS reply that opts out of messages (STOP, 退訂 …) or back in (START …)."""

    phone_e164: str = field(repr=False)
    opted_out: bool
    source: str  # e.g. ``sms_reply:twilio``


def consent_word(body: str) -> bool | None:
    """True for an opt-out keyword (STOP, 退訂 …), False for an opt-in (START …), None otherwise."""
    word = body.strip().upper().rstrip(".!。！")
    if word in _STOP_WORDS:
        return True
    if word in _START_WORDS:
        return False
    return None


def json_document(raw: bytes) -> object:
    """A webhook's JSON body, strictly UTF-8; ``MalformedReport`` otherwise (also when too deep)."""
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeError, ValueError, RecursionError):  # JSONDecodeError is a ValueError
        raise MalformedReport("unreadable JSON") from None


def report_code(value: object) -> str | None:
    """A code as a receipt may carry it: None when absent, ``other`` when not a short word."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MalformedReport("a code is not a string")
    text = str(value)
    return text if CODE.fullmatch(text) else OTHER_CODE


def report_reference(*values: object) -> str:
    """The first reference given (a short string), else ``""`` (which names no attempt)."""
    for value in values:
        if value is None or value == "":
            continue
        if not isinstance(value, str) or len(value) > REFERENCE_MAX:
            raise MalformedReport("a reference is not a short string")
        return value
    return ""


def entry_object(entry: Mapping[str, object], key: str) -> dict[str, object]:
    """``entry[key]`` when it is an object, ``{}`` when absent; ``MalformedReport`` otherwise."""
    value = entry.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedReport(f"{key} is not an object")
    return value


def entry_text(entry: Mapping[str, object], key: str) -> str:
    """``entry[key]`` when it is a string, ``""`` when absent; ``MalformedReport`` otherwise."""
    value = entry.get(key, "")
    if not isinstance(value, str):
        raise MalformedReport(f"{key} is not a string")
    return value
