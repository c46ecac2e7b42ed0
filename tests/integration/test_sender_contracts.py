"""The senders' contracts (``tests.contracts.senders``) on the real provider clients, talking HTTP
to the sandbox providers (the same APIs, proven against the official SDKs and OpenAPI specs)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from service.domain.ports import EmailSender, SmsSender
from service.sandbox.faults import Fault
from service.sandbox.serve import SandboxState
from service.send.providers.infobip import InfobipClient
from service.send.providers.sendgrid import SendGridClient
from service.send.providers.twilio import TwilioClient
from tests.contracts.senders import EmailSenderContract, SmsSenderContract

pytestmark = pytest.mark.integration


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


class OnTheSandbox:
    """Faults are the sandbox's: every send of that provider answers ``status`` from now on."""

    provider: str
    state: SandboxState

    def fail_sends(self, sender: object, status: int, retry_after: int | None = None) -> None:
        self.state.set_fault(self.provider, Fault(error_rate=1.0, error_code=status, retry_after=retry_after))


class TestSmsSenderContractOnTwilio(OnTheSandbox, SmsSenderContract):
    provider = "twilio"

    @pytest.fixture
    def subject(  # type: ignore[override]
        self, sandbox: tuple[SandboxState, str], session: aiohttp.ClientSession
    ) -> SmsSender:
        self.state, url = sandbox
        return TwilioClient(
            session,
            base_url=url,
            account_sid=self.state.account_sid,
            auth_token=self.state.auth_token,
            sender="Specialized",
        )


class TestSmsSenderContractOnInfobip(OnTheSandbox, SmsSenderContract):
    provider = "infobip"

    @pytest.fixture
    def subject(  # type: ignore[override]
        self, sandbox: tuple[SandboxState, str], session: aiohttp.ClientSession
    ) -> SmsSender:
        self.state, url = sandbox
        return InfobipClient(session, base_url=url, api_key=self.state.infobip_api_key, sender="Specialized")


class TestEmailSenderContractOnSendGrid(OnTheSandbox, EmailSenderContract):
    provider = "sendgrid"

    @pytest.fixture
    def subject(  # type: ignore[override]
        self, sandbox: tuple[SandboxState, str], session: aiohttp.ClientSession
    ) -> EmailSender:
        self.state, url = sandbox
        return SendGridClient(
            session,
            base_url=url,
            api_key=self.state.sendgrid_api_key,
            sender_email="notifications@example.com",
            sender_name="Specialized Hong Kong",
        )
