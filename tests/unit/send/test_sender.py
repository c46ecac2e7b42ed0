"""Sending one notification (consent, compose, the engine's plan), on the pipeline's fakes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from structlog.testing import capture_logs

from service.compose.consent import Consent
from service.compose.message import Composer
from service.compose.render import Renderer
from service.contracts import parse_event
from service.domain.consent_snapshot import NO_RECORD, ConsentSnapshot, ConsentState
from service.domain.errors import (
    ContentRejected,
    InvalidRecipient,
    ProviderRejected,
    RenderError,
    SmsTooLong,
    StoreUnavailable,
)
from service.domain.links import LinkSigner
from service.domain.milestones import Milestone
from service.domain.model import notification_id
from service.domain.outcome import Outcome
from service.privacy.subjects import RecipientSubjects
from service.send.sender import Sender
from tests.builders import EMAIL, NAME, event
from tests.unit.pipeline.test_driver import REPO, Harness

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
    sent = await deliver(h, consent=NO_RECORD)
    assert (sent.outcome, sent.consent) == ("sent", NO_RECORD)  # the bulk look-up said no
    o = await deliver(h)  # not looked up by the caller: looked up here, and kept on the outcome
    assert (o.outcome, o.reason, o.channel) == ("suppressed_opted_out", "opted_out", "none")
    assert o.consent is not None
    assert (o.consent.state, o.consent.source, o.consent.set_at) == (
        "opted_out",
        "operator:test",
        h.store.now,
    )
    given = ConsentSnapshot(ConsentState.OPTED_OUT, "unsubscribe_link", datetime(2026, 11, 1, tzinfo=UTC))
    assert (await deliver(h, consent=given)).consent == given


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
    with pytest.raises(
        StoreUnavailable, match=r"^a send of this batch could not be recorded; no more are started$"
    ):
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


async def test_the_outcome_is_in_the_recipients_locale(h: Harness) -> None:
    o = await deliver(h, event("A", "ARRIVED_HK_WAREHOUSE", locale="en"))
    assert (o.outcome, o.locale) == ("sent", "en")


async def test_an_sms_over_the_cap_goes_by_email_as_planned_not_as_a_failover(h: Harness) -> None:
    def too_long(*args: object, **kw: object) -> object:
        raise SmsTooLong("over the cap even shortened")

    h.renderer.render_sms = too_long  # type: ignore[method-assign]
    o = await deliver(h)
    assert (o.outcome, o.channel, o.reason) == ("sent", "email", "sms_too_long")
    assert h.sender.sent == []
    assert not h.metrics.registry.get_sample_value(
        "notifier_failovers_total", {"provider": "sms-b", "to": "email"}
    )


async def test_a_send_after_a_failover_has_no_reason(h: Harness) -> None:
    h.sender.errors.extend(ProviderRejected("sms-a", "20003") for _ in range(3))
    o = await deliver(h)
    assert (o.outcome, o.provider, o.reason) == ("sent", "sms-b", None)


async def test_a_reclaimed_notification_is_composed_as_of_its_first_claim(h: Harness) -> None:
    links = Renderer(
        REPO / "templates",
        brand="Specialized",
        contact_phone="+852 3001 2345",
        contact_email="hk@example.com",
        links=LinkSigner(b"k" * 32, "https://n.example"),
    )
    sender = Sender(
        engine=h.pipeline_engine,
        composer=Composer(links, h.metrics),
        consent=Consent(h.store, RecipientSubjects(h.blind)),
        store=h.store,
        metrics=h.metrics,
        clock=lambda: datetime(2026, 11, 20, tzinfo=UTC),
        send_concurrency=4,
    )
    update = parse_event(event("A", "ARRIVED_HK_WAREHOUSE"))
    await sender.deliver(NID, update, MS, consent=NO_RECORD)
    h.sender.lookup_fails = h.backup.lookup_fails = True  # the earlier send cannot be found: sent again
    await sender.deliver(NID, update, MS, consent=NO_RECORD, reconcile_since=datetime(2020, 1, 1, tzinfo=UTC))
    (_, now), (_, then) = h.sender.sent
    assert now != then  # the links expire from when it was first claimed
