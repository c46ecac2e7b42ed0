"""Compose one notification: the recipient's number (a Hong Kong mobile, or why not), the locale,
the SMS (shortened to the segment cap if need be) and the email (rendered only if the plan gets to it)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from service.compose.render import Renderer
from service.domain import reasons
from service.domain.errors import SmsTooLong
from service.domain.milestones import Milestone
from service.domain.model import ShipmentUpdate
from service.domain.phone import normalize_hk_mobile
from service.domain.ports import EmailMessage
from service.metrics import Metrics
from service.send.engine import SmsContent


@dataclass(frozen=True, slots=True)
class Message:
    locale: str
    e164: str | None = None  # the number to text, if it is a valid mobile
    phone_note: str | None = None  # why the phone is not used (``phone_invalid``, ``sms_too_long``, ...)
    sms: SmsContent | None = None
    email: Callable[[], EmailMessage] | None = None  # renders the email when the plan reaches it
    email_only: bool = False
    failed: str | None = None  # nothing can carry it: the outcome is ``failed`` with this reason


@dataclass(frozen=True, slots=True)
class FollowUpText:
    """A message that follows the milestone's (``domain.follow_ups``): its templates' name and the
    variables it adds to the milestone's context."""

    template: str
    extra: Mapping[str, object]


class Composer:
    def __init__(self, renderer: Renderer, metrics: Metrics, *, allow_foreign_mobiles: bool = False) -> None:
        self._renderer = renderer
        self._metrics = metrics
        self._foreign = allow_foreign_mobiles

    def locale(self, requested: str | None) -> str:
        return self._renderer.choose_locale(requested)

    def compose(
        self,
        milestone: Milestone,
        update: ShipmentUpdate,
        *,
        email_only: bool,
        at: datetime | None,
        follow_up: FollowUpText | None = None,
    ) -> Message:
        """Raises ``RenderError`` when a template cannot render (the outcome is ``render_error``)."""
        recipient = update.recipient
        locale = self.locale(recipient.locale)
        phone = (
            normalize_hk_mobile(recipient.phone, allow_foreign_mobiles=self._foreign)
            if recipient.phone and not email_only
            else None
        )
        note = None if phone is None or phone.e164 else f"{reasons.PHONE_PREFIX}{phone.reason}"
        sms: SmsContent | None = None
        if phone is not None and phone.e164:
            sms = self._sms(milestone, update, locale, at, follow_up)
            if sms is None:  # over the segment cap even shortened: the email carries it, else it fails
                if not recipient.email:
                    return Message(locale, failed=reasons.SMS_TOO_LONG)
                email_only, note = True, reasons.SMS_TOO_LONG
        email = (
            functools.partial(
                self._renderer.render_email,
                milestone,
                update,
                locale,
                at=at,
                template=_template(follow_up),
                extra=_extra(follow_up),
            )
            if recipient.email
            else None
        )
        return Message(locale, phone.e164 if phone else None, note, sms, email, email_only)

    def _sms(
        self,
        milestone: Milestone,
        update: ShipmentUpdate,
        locale: str,
        at: datetime | None,
        follow_up: FollowUpText | None = None,
    ) -> SmsContent | None:
        """The SMS, shortened to the segment cap if need be; None when even shortened it is over."""
        try:
            msg = self._renderer.render_sms(
                milestone, update, locale, at=at, template=_template(follow_up), extra=_extra(follow_up)
            )
        except SmsTooLong:
            self._metrics.sms_shortened.labels("too_long").inc()
            return None
        for cut in msg.shortened:
            self._metrics.sms_shortened.labels(cut).inc()
        return SmsContent(msg.body, msg.segments, msg.encoding)


def _template(follow_up: FollowUpText | None) -> str | None:
    """The template of a follow-up (None: the milestone's own)."""
    return None if follow_up is None else follow_up.template


def _extra(follow_up: FollowUpText | None) -> Mapping[str, object] | None:
    return None if follow_up is None else follow_up.extra
