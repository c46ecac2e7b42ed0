"""The steps of the delivery plan: each SMS provider in turn, then email.

A step sends one notification through one provider (its ``ProviderSlot`` admits and retries),
under that step's own reference: the one the provider echoes in its delivery reports and the one
an SMS provider is asked about when a re-claimed notification may have been sent already.
"""

from __future__ import annotations

from datetime import datetime

from service.domain import reasons
from service.domain.ports import EmailSender, SendAccepted, SmsSender
from service.domain.references import MessageReferences
from service.send.delivery import DeliveryRequest
from service.send.provider_slot import Blocked, ProviderSlot


class SmsStep:
    """Step ``number`` of the plan: one SMS provider."""

    def __init__(
        self, number: int, sender: SmsSender, slot: ProviderSlot, references: MessageReferences
    ) -> None:
        self.number, self.name = number, sender.name
        self._sender, self._slot, self._references = sender, slot, references

    def reference(self, req: DeliveryRequest) -> str:
        """This step's reference for one notification: echoed by the provider in its callbacks."""
        return self._references.make(req.notification_id, self.number)

    async def send(self, req: DeliveryRequest, deadline: float) -> SendAccepted | Blocked:
        phone, sms, reference = req.phone, req.sms, self.reference(req)
        if phone is None or sms is None:
            return Blocked(reasons.NO_SMS, provider_side=False)
        sender = self._sender

        async def send() -> SendAccepted:
            return await sender.send_sms(phone, sms.body, reference=reference)

        async def check(since: datetime) -> SendAccepted | None:
            return await sender.find_sent(phone, sms.body, reference=reference, since=since)

        return await self._slot.attempts(send, check, float(sms.segments), deadline)

    async def find_earlier(
        self, req: DeliveryRequest, phone: str, body: str, since: datetime
    ) -> tuple[SendAccepted | None, bool]:
        """The send an earlier claim made through this step, and whether the provider could say."""
        sender, reference = self._sender, self.reference(req)

        async def check(since: datetime) -> SendAccepted | None:
            return await sender.find_sent(phone, body, reference=reference, since=since)

        return await self._slot.reconcile(check, since)


class EmailStep:
    """The last step of the plan: the email provider (it has no look-up of earlier sends)."""

    def __init__(
        self, number: int, sender: EmailSender, slot: ProviderSlot, references: MessageReferences
    ) -> None:
        self.number, self.name = number, sender.name
        self._sender, self._slot, self._references = sender, slot, references

    def reference(self, req: DeliveryRequest) -> str:
        return self._references.make(req.notification_id, self.number)

    async def send(self, req: DeliveryRequest, deadline: float) -> SendAccepted | Blocked:
        if req.email is None or req.email_message is None:
            return Blocked(reasons.NO_EMAIL, provider_side=False)
        email, message, reference = req.email, req.email_message(), self.reference(req)
        before, sender = req.before_email, self._sender

        async def send() -> SendAccepted:
            nonlocal before
            if before is not None:  # once, before the first request (not before every retry)
                await before()
                before = None
            return await sender.send_email(email, message, reference=reference)

        return await self._slot.attempts(send, None, 1.0, deadline)
