"""The senders' contracts (``tests.contracts.senders``) on the fakes the unit suite uses."""

from __future__ import annotations

import pytest

from service.domain.errors import ProviderError, ProviderUnavailable, RateLimited
from service.domain.ports import EmailSender, SmsSender
from service.testing import FakeEmailSender, FakeSmsSender
from tests.contracts.senders import EmailSenderContract, SmsSenderContract


def _error(name: str, status: int, retry_after: int | None) -> ProviderError:
    return (
        RateLimited(name, str(status), retry_after)
        if status == 429
        else ProviderUnavailable(name, str(status))
    )


class TestSmsSenderContractOnTheFake(SmsSenderContract):
    @pytest.fixture
    def subject(self) -> SmsSender:
        return FakeSmsSender(name="sms-a")

    def fail_sends(self, sender: SmsSender, status: int, retry_after: int | None = None) -> None:
        assert isinstance(sender, FakeSmsSender)
        sender.errors.append(_error(sender.name, status, retry_after))


class TestEmailSenderContractOnTheFake(EmailSenderContract):
    @pytest.fixture
    def subject(self) -> EmailSender:
        return FakeEmailSender()

    def fail_sends(self, sender: EmailSender, status: int, retry_after: int | None = None) -> None:
        assert isinstance(sender, FakeEmailSender)
        sender.errors.append(_error(sender.name, status, retry_after))
