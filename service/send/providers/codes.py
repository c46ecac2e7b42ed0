"""What a provider's own error code in a delivery report says of the number: whether it is for good.

An undelivered report whose code the provider's client reads as ``InvalidRecipient`` (Twilio 30005
unknown handset, Infobip ``EC_UNKNOWN_SUBSCRIBER``, …) says the number cannot take SMS at all: it is
marked at once (bad-number hygiene, ``service.compose.recipient_checks``). Any other code (30003
unreachable for now, absent subscriber) only lengthens the number's undelivered streak.
"""

from __future__ import annotations

from service.domain.errors import InvalidRecipient
from service.send.providers import infobip, twilio


def permanent_code(provider: str, code: str) -> bool:
    """Whether ``code``, reported by ``provider`` for an undelivered SMS, means the number is bad."""
    if provider == twilio.PROVIDER:
        found = twilio.ERROR_CLASSES.get(int(code)) if code.isdigit() else None
    elif provider == infobip.PROVIDER:
        found = infobip.ERROR_CLASSES.get(code)
    else:
        found = None
    return found is not None and issubclass(found, InvalidRecipient)
