"""Every reason a notification's outcome may carry (``notifications.reason``, a receipt's ``reason``).

Two kinds: a fixed code of ours (``STALE``, ``SMS_TOO_LONG``, ``phone_<why>`` …), or a provider's
word, ``<provider>_<what>``, where ``<what>`` is one of ``PROVIDER_CONDITIONS`` or the provider's
own status / error code (a short word, ``domain.report.CODE``, e.g. ``twilio_30003``). The code
writes reasons only from these names, and the support page labels each (a test enumerates them
here, so a new reason without a label fails). Pure: no I/O.
"""

from __future__ import annotations

from typing import Final

from service.domain.phone import REASONS as PHONE_REASONS

STALE: Final = "later_milestone_already_reached"  # a later milestone of the order was read first
OPTED_OUT: Final = "opted_out"  # our consent record says the recipient opted out
RENDER_ERROR: Final = "render_error"  # a template could not be rendered
RECONCILED: Final = "found_at_provider_after_restart"  # a re-claimed send the provider already held
SMS_TOO_LONG: Final = "sms_too_long"  # over the SMS segment cap even shortened
INVALID_PHONE: Final = "invalid_phone"  # no usable mobile number and no email
NO_CHANNEL: Final = "no_channel"  # nothing could carry it (no SMS allowed, no email address)
NO_SMS: Final = "no_sms"  # an SMS step without a number or a text
NO_EMAIL: Final = "no_email"  # an email step without an address or a message
QUIET_HOURS: Final = "quiet_hours"  # decided inside the quiet window: scheduled for its end
SUPERSEDED: Final = "superseded_by_later_milestone"  # released with a later milestone of its order
NO_SEALED_EVENT: Final = "no_sealed_event"  # a scheduled send whose event is gone (erased) or unreadable
PHONE_PREFIX: Final = "phone_"  # ``phone_<why>``: the number is not a Hong Kong mobile (email instead)
# pilot mode and bad-number hygiene (issue 15)
PILOT_NOT_LISTED: Final = "pilot_not_allow_listed"  # pilot mode: no contact of the recipient is allow-listed
PILOT_PHONE_NOT_LISTED: Final = "pilot_phone_not_allow_listed"  # pilot mode: the email is, the phone not
BAD_NUMBER: Final = "number_marked_undeliverable"  # the number failed for good before: email, or nothing

#: The fixed codes, ``phone_<why>`` included.
FIXED: Final = frozenset(
    {STALE, OPTED_OUT, RENDER_ERROR, RECONCILED, SMS_TOO_LONG, INVALID_PHONE, NO_CHANNEL, NO_SMS, NO_EMAIL}
    | {QUIET_HOURS, SUPERSEDED, NO_SEALED_EVENT}
    | {PHONE_PREFIX + why for why in PHONE_REASONS}
    | {PILOT_NOT_LISTED, PILOT_PHONE_NOT_LISTED, BAD_NUMBER}
)

PROVIDERS: Final = ("twilio", "infobip", "sendgrid")
UNAVAILABLE: Final = "unavailable"  # network error, timeout or 5xx, attempts used up
CIRCUIT_OPEN: Final = "circuit_open"  # its circuit breaker was open
RATE_LIMIT_DEADLINE: Final = "rate_limit_deadline"  # its rate limit would pass the message's deadline
UNDELIVERED: Final = "undelivered"  # it reported the message undelivered, without a code
#: What we say of a provider; any other ``<what>`` is the provider's own code.
PROVIDER_CONDITIONS: Final = (UNAVAILABLE, CIRCUIT_OPEN, RATE_LIMIT_DEADLINE, UNDELIVERED)


def provider_reason(provider: str, what: str) -> str:
    """``twilio_unavailable``, ``infobip_EC_ABSENT_SUBSCRIBER``: a provider's word as a reason."""
    return f"{provider}_{what}"


def split_provider_reason(reason: str) -> tuple[str, str] | None:
    """(provider, what) of a provider's reason; None for a fixed code or anything else."""
    provider, sep, what = reason.partition("_")
    return (provider, what) if sep and what and provider in PROVIDERS else None


def every_example() -> tuple[str, ...]:
    """Every fixed code and every provider condition, plus one provider code per provider."""
    per_provider = (*PROVIDER_CONDITIONS, "30003")
    return (*sorted(FIXED), *(provider_reason(p, w) for p in PROVIDERS for w in per_provider))
