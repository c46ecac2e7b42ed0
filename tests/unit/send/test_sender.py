"""Sending one notification (consent, compose, the engine's plan), on the pipeline's fakes."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from service.contracts import parse_event
from service.domain.errors import ContentRejected, InvalidRecipient, RenderError, SmsTooLong, StoreUnavailable
from service.domain.milestones import Milestone
from service.domain.model import notification_id
from service.domain.outcome import Outcome
from tests.builders import EMAIL, NAME, event
from tests.unit.pipeline.test_driver import Harness

MS = Milestone.ARRIVED_HK_WAREHOUSE
NID = notification_id("A", MS)


@pytest.fixture
def h() -> Harness:
    return Harness()


def segments(h: Harness, provider: str, encoding: str) -> float:
    labels = {"provider": provider, "encoding": encoding}
    return h.metrics.registry.get_sample_value("notifier_sms_segments_total", labels) or 0.0


async def deliver(h: Harness, doc: bytes | None = None, **kw: object) -> Outcome:
    update = parse_event(doc or event("A", "ARRIVED_HK_WAREHOUSE"))
    return await h.stages.sender.deliver(NID, update, MS, **kw)  # type: ignore[arg-type]


async def test_a_sent_sms_carries_what_the_provider_and_the_message_say(h: Harness) -> None:
    o = await deliver(h)
    assert (o.outcome, o.channel, o.provider, o.provider_message_id) == ("sent", "sms", "sms-a", "FAKE000000")
    assert (o.locale, o.sms_encoding, o.reason, o.maybe_sent) == ("zh-HK", "UCS-2", None, False)
    assert (o.sms_segments or 0) >= 1
    assert segments(h, "sms-a", "UCS-2") == o.sms_segments


async def test_an_email_only_send_skips_the_sms_and_counts_no_segments(h: Harness) -> None:
    o = await deliver(h, email_only=True)
    assert (o.outcome, o.channel, o.provider) == ("sent", "email", "fake-email")
    assert (h.sender.sent, len(h.email.sent)) == ([], 1)
    assert segments(h, "fake-email", "UCS-2") == 0


async def test_an_sms_refused_everywhere_that_goes_out_by_email_counts_no_segments(h: Harness) -> None:
    h.sender.errors.append(InvalidRecipient("sms-a", "21211"))
    o = await deliver(h)
    assert (o.outcome, o.channel) == ("sent", "email")
    assert segments(h, "fake-email", "UCS-2") == 0
    assert segments(h, "sms-a", "UCS-2") == 0


async def test_the_callers_consent_look_up_is_taken_as_given(h: Harness) -> None:
    await h.store.set_consent([h.blind.phone("+85291234567")], opted_out=True, source="operator:test")
    assert (await deliver(h, opted_out=False)).outcome == "sent"  # the bulk look-up said no
    o = await deliver(h)  # not looked up by the caller: looked up here
    assert (o.outcome, o.reason, o.channel) == ("suppressed_opted_out", "opted_out", "none")
    assert (await deliver(h, opted_out=True)).outcome == "suppressed_opted_out"


async def test_a_message_nothing_can_carry_fails_with_its_locale_and_reason(h: Harness) -> None:
    def too_long(*args: object, **kw: object) -> object:
        raise SmsTooLong("over the cap even shortened")

    h.renderer.render_sms = too_long  # type: ignore[method-assign]
    doc = event("A", "ARRIVED_HK_WAREHOUSE", recipient={"name": NAME, "phone": "9123 4567"})  # no email
    o = await deliver(h, doc)
    assert (o.outcome, o.reason, o.locale) == ("failed", "sms_too_long", "zh-HK")


async def test_a_template_that_cannot_render_fails_the_notification_and_logs_why(h: Harness) -> None:
    def broken(*args: object, **kw: object) -> object:
        raise RenderError("template exploded")

    h.renderer.render_sms = broken  # type: ignore[method-assign]
    with capture_logs() as logs:
        o = await deliver(h)
    assert (o.outcome, o.channel, o.reason, o.locale) == ("failed", "none", "render_error", "zh-HK")
    assert {
        "event": "render_failed",
        "log_level": "error",
        "notification_id": str(NID),
        "error": "template exploded",
    } in logs


async def test_no_send_starts_once_the_batch_is_aborted(h: Harness) -> None:
    abort = asyncio.Event()
    abort.set()
    with pytest.raises(StoreUnavailable, match="could not be recorded; no more are started"):
        await deliver(h, abort=abort)
    assert h.sender.sent == []


async def test_a_notification_not_sent_is_logged_with_its_outcome_and_reason(h: Harness) -> None:
    h.sender.errors.append(ContentRejected("sms-a", "30007"))
    h.backup.errors.append(ContentRejected("sms-b", "EC_CONTENT"))
    doc = event("A", "ARRIVED_HK_WAREHOUSE", recipient={"name": NAME, "phone": "9123 4567"})
    with capture_logs() as logs:
        o = await deliver(h, doc)
    assert (o.outcome, o.reason) == ("failed", "sms-b_EC_CONTENT")
    assert {
        "event": "notification_not_sent",
        "log_level": "warning",
        "notification_id": str(NID),
        "outcome": "failed",
        "reason": "sms-b_EC_CONTENT",
    } in logs


async def test_a_sent_notification_logs_no_warning(h: Harness) -> None:
    with capture_logs() as logs:
        await deliver(h, event("A", "ARRIVED_HK_WAREHOUSE", email=EMAIL))
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == []
