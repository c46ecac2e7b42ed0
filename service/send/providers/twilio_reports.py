"""What Twilio's webhooks tell us, parsed: a message's status callback (``parse_status_callback``)
and a customer's reply (``parse_inbound_message``), with Twilio's status vocabulary, which the
client's status look-ups read too. Pure: a form in, ``service.domain.report`` values out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from service.domain.phone import normalize_hk_mobile
from service.domain.report import ConsentReply, DeliveryReport, consent_word, entry_text, report_code
from service.domain.status_check import Answer

PROVIDER: Final = "twilio"
#: The query parameter of our StatusCallback URL that carries the message's reference.
REFERENCE_PARAM: Final = "ref"
#: Message statuses that are final, as the status callback and a look-up read them; any other
#: (queued, sending, sent, ...) is still pending.
FINAL_STATUSES: Final[dict[str, Answer]] = {
    "delivered": Answer.DELIVERED,
    "undelivered": Answer.UNDELIVERED,
    "failed": Answer.UNDELIVERED,
}


def parse_status_callback(form: Mapping[str, object], query: Mapping[str, str]) -> DeliveryReport | None:
    """The final status a StatusCallback reports (``MessageStatus``, ``ErrorCode``) for the message
    our URL's ``ref`` names; None while the status is not final. ``MalformedReport`` for a field of
    the wrong type (a form read from a request has only strings)."""
    answer = FINAL_STATUSES.get(entry_text(form, "MessageStatus"))
    if answer is None:
        return None
    reference = query.get(REFERENCE_PARAM, "")
    code = report_code(form.get("ErrorCode"))
    return DeliveryReport(PROVIDER, reference, delivered=answer is Answer.DELIVERED, code=code)


def parse_inbound_message(form: Mapping[str, object]) -> ConsentReply | None:
    """A customer's reply (the inbound-message webhook's ``Body`` and ``From``) that opts out
    (STOP, 退訂 …) or in (START …); None for any other text or a sender that is not a mobile."""
    opted_out = consent_word(entry_text(form, "Body"))
    phone = normalize_hk_mobile(entry_text(form, "From"), allow_foreign_mobiles=True).e164
    if opted_out is None or not phone:
        return None
    return ConsentReply(phone, opted_out, f"sms_reply:{PROVIDER}")
