"""The ``SmsSender`` and ``EmailSender`` ports' contracts: what a send returns, how an attempt is
found again after an ambiguous failure, what a status look-up answers, and which of our errors a
provider's refusal becomes. Run on ``FakeSmsSender``/``FakeEmailSender``
(tests/unit/test_sender_contracts.py) and on the Twilio, Infobip and SendGrid clients against the
sandbox providers (tests/integration/test_sender_contracts.py).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from service.domain.errors import ProviderUnavailable, RateLimited
from service.domain.ports import EmailMessage, EmailSender, SmsSender
from service.domain.status_check import Answer


def reference() -> str:
    return f"ref-{uuid.uuid4().hex[:16]}"


class SmsSenderContract:
    """What every ``SmsSender`` does. Subclasses give ``subject`` and ``fail_sends`` (the provider
    answers every send with this HTTP status, and ``retry_after`` seconds on a 429)."""

    @pytest.fixture
    def subject(self) -> SmsSender:
        raise NotImplementedError

    def fail_sends(self, sender: SmsSender, status: int, retry_after: int | None = None) -> None:
        raise NotImplementedError

    async def test_an_accepted_message_names_its_provider_an_id_and_a_status(
        self, subject: SmsSender
    ) -> None:
        first = await subject.send_sms("+85291234567", "Your bike has arrived", reference=reference())
        second = await subject.send_sms("+85291234567", "Your bike has arrived", reference=reference())
        assert first.provider == subject.name
        assert first.message_id
        assert first.status
        assert first.message_id != second.message_id

    async def test_a_message_sent_is_found_again_by_its_attempt(self, subject: SmsSender) -> None:
        since = datetime.now(UTC) - timedelta(seconds=2)
        ref = reference()
        accepted = await subject.send_sms("+85291234568", f"Your order {ref}", reference=ref)
        found = await subject.find_sent("+85291234568", f"Your order {ref}", reference=ref, since=since)
        assert found is not None
        assert (found.provider, found.message_id) == (subject.name, accepted.message_id)

    async def test_an_attempt_that_sent_nothing_is_not_found(self, subject: SmsSender) -> None:
        await subject.send_sms("+85291234569", "Another message", reference=reference())
        since = datetime.now(UTC) - timedelta(seconds=2)
        assert (
            await subject.find_sent("+85291234560", "Never sent", reference=reference(), since=since) is None
        )

    async def test_a_message_just_sent_has_no_final_status_but_delivered(self, subject: SmsSender) -> None:
        ref = reference()
        accepted = await subject.send_sms("+85291234561", "Status?", reference=ref)
        status = await subject.delivery_status(accepted.message_id, reference=ref)
        assert status is not None
        assert status.answer in (Answer.PENDING, Answer.DELIVERED)
        assert status.code is None

    async def test_a_message_the_provider_never_took_has_no_status(self, subject: SmsSender) -> None:
        assert await subject.delivery_status("SM" + "0" * 32, reference=reference()) is None

    async def test_a_provider_answering_500_is_unavailable(self, subject: SmsSender) -> None:
        self.fail_sends(subject, 500)
        with pytest.raises(ProviderUnavailable) as caught:
            await subject.send_sms("+85291234562", "Down", reference=reference())
        assert caught.value.provider == subject.name
        assert caught.value.retriable

    async def test_a_provider_answering_429_is_rate_limited_for_as_long_as_it_says(
        self, subject: SmsSender
    ) -> None:
        self.fail_sends(subject, 429, retry_after=3)
        with pytest.raises(RateLimited) as caught:
            await subject.send_sms("+85291234563", "Slow down", reference=reference())
        assert caught.value.provider == subject.name
        assert caught.value.retry_after == 3


class EmailSenderContract:
    """What every ``EmailSender`` does; hooks as for ``SmsSenderContract``."""

    MESSAGE = EmailMessage(subject="Your bike has arrived", text="Hello", html="<p>Hello</p>")

    @pytest.fixture
    def subject(self) -> EmailSender:
        raise NotImplementedError

    def fail_sends(self, sender: EmailSender, status: int, retry_after: int | None = None) -> None:
        raise NotImplementedError

    async def test_an_accepted_email_is_queued_at_its_provider(self, subject: EmailSender) -> None:
        accepted = await subject.send_email("tai.man@example.com", self.MESSAGE, reference=reference())
        assert (accepted.provider, accepted.status) == (subject.name, "queued")
        assert accepted.message_id

    async def test_a_provider_answering_500_is_unavailable(self, subject: EmailSender) -> None:
        self.fail_sends(subject, 500)
        with pytest.raises(ProviderUnavailable) as caught:
            await subject.send_email("tai.man@example.com", self.MESSAGE, reference=reference())
        assert caught.value.provider == subject.name

    async def test_a_provider_answering_429_is_rate_limited(self, subject: EmailSender) -> None:
        self.fail_sends(subject, 429, retry_after=3)
        with pytest.raises(RateLimited) as caught:
            await subject.send_email("tai.man@example.com", self.MESSAGE, reference=reference())
        assert caught.value.provider == subject.name
        assert caught.value.retry_after is not None
        assert caught.value.retry_after > 0
