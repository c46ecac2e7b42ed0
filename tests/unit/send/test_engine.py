"""The delivery engine with fake providers and a fake clock: no network, no real sleeps."""

from __future__ import annotations

import dataclasses
import os
import random
import uuid
from datetime import UTC, datetime

import pytest

from service.domain.backoff import RetryPolicy
from service.domain.breaker import BreakerPolicy, BreakerState
from service.domain.errors import (
    ContentRejected,
    InvalidRecipient,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    RecipientOptedOut,
)
from service.domain.ports import EmailMessage
from service.domain.references import MessageReferences
from service.metrics import Metrics
from service.send.engine import (
    DeliveryEngine,
    DeliveryRequest,
    ProviderLimits,
    SmsContent,
)
from service.testing import FakeClock, FakeEmailSender, FakeSmsSender

PHONE = "+85291234567"
EMAIL = "someone@example.com"
SMS = SmsContent("hello", 1, "GSM-7")


class Rig:
    def __init__(
        self, limits: dict[str, ProviderLimits] | None = None, breaker: BreakerPolicy | None = None
    ) -> None:
        self.a = FakeSmsSender(name="a")
        self.b = FakeSmsSender(name="b")
        self.mail = FakeEmailSender(name="mail")
        self.clock = FakeClock()
        self.metrics = Metrics()
        self.references = MessageReferences(os.urandom(32))
        self.engine = DeliveryEngine(
            sms=[self.a, self.b],
            email=self.mail,
            limits=limits or {},
            metrics=self.metrics,
            references=self.references,
            breaker=breaker
            or BreakerPolicy(
                window=10,
                min_calls=4,
                failure_ratio=0.5,
                open_for_s=30,
                half_open_probes=1,
                close_after_successes=2,
            ),
            retry=RetryPolicy(max_attempts_per_provider=3, base_s=0.1, cap_s=1.0, message_deadline_s=60),
            clock=self.clock,
            sleep=self.clock.sleep,
            rng=random.Random(3),
        )

    def request(
        self, *, phone: str | None = PHONE, email: str | None = EMAIL, skip_sms: bool = False
    ) -> DeliveryRequest:
        return DeliveryRequest(
            uuid.uuid4(),
            phone,
            email,
            SMS,
            lambda: EmailMessage("subject", "text", "<p>text</p>"),
            skip_sms=skip_sms,
        )

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def rig() -> Rig:
    return Rig()


async def test_first_provider_sends_and_the_reference_names_the_notification_and_step(rig: Rig) -> None:
    req = rig.request()
    result = await rig.engine.deliver(req)
    assert (result.outcome, result.channel, result.provider) == ("sent", "sms", "a")
    assert result.reference is not None
    assert rig.references.parse(result.reference) == (req.notification_id, 1)
    assert rig.b.sent == []


async def test_transient_errors_are_retried_with_backoff_then_fail_over(rig: Rig) -> None:
    rig.a.errors.extend(ProviderUnavailable("a", "503") for _ in range(3))
    rig.a.lookup_fails = False  # the provider can tell us it has nothing: no possible duplicate
    result = await rig.engine.deliver(rig.request())
    assert (result.outcome, result.provider) == ("sent", "b")
    assert len(rig.clock.slept) == 2  # two backoffs between three attempts at A
    assert all(0 <= s <= 1.0 for s in rig.clock.slept)
    assert rig.metric("notifier_provider_retries_total", provider="a") == 2
    assert rig.metric("notifier_possible_duplicate_sends_total") == 0


async def test_ambiguous_timeout_is_reconciled_and_not_sent_twice(rig: Rig) -> None:
    rig.a.swallowed = 1  # accepted by the provider, but the answer was lost
    result = await rig.engine.deliver(rig.request())
    assert (result.outcome, result.provider) == ("sent", "a")
    assert len(rig.a.sent) == 1
    assert rig.metric("notifier_reconciliations_total", provider="a", result="found") == 1
    assert rig.metric("notifier_possible_duplicate_sends_total") == 0


async def test_ambiguous_timeout_that_cannot_be_checked_is_resent_and_counted(rig: Rig) -> None:
    rig.a.swallowed = 1
    rig.a.lookup_fails = True
    result = await rig.engine.deliver(rig.request())
    assert result.outcome == "sent"
    assert len(rig.a.sent) == 2
    assert rig.metric("notifier_possible_duplicate_sends_total") == 1


async def test_rate_limited_provider_is_paused_for_retry_after_and_used_again(rig: Rig) -> None:
    rig.a.errors.append(RateLimited("a", "429", retry_after=7))
    start = rig.clock.now
    result = await rig.engine.deliver(rig.request())
    assert (result.outcome, result.provider) == ("sent", "a")
    assert rig.clock.now - start >= 7
    assert rig.metric("notifier_rate_limit_wait_seconds_total", provider="a") >= 7


async def test_invalid_number_skips_every_sms_provider_for_email(rig: Rig) -> None:
    rig.a.errors.append(InvalidRecipient("a", "21211"))
    result = await rig.engine.deliver(rig.request())
    assert (result.outcome, result.channel, result.provider) == ("sent", "email", "mail")
    assert rig.b.sent == []


async def test_content_rejected_by_one_provider_goes_to_the_other(rig: Rig) -> None:
    rig.a.errors.append(ContentRejected("a", "30007"))
    result = await rig.engine.deliver(rig.request())
    assert (result.outcome, result.provider) == ("sent", "b")


async def test_opt_out_at_a_provider_stops_everything(rig: Rig) -> None:
    rig.a.errors.append(RecipientOptedOut("a", "21610"))
    result = await rig.engine.deliver(rig.request())
    assert result.outcome == "suppressed_opted_out"
    assert rig.b.sent == []
    assert rig.mail.sent == []


async def test_no_valid_phone_and_no_email_is_suppressed(rig: Rig) -> None:
    result = await rig.engine.deliver(rig.request(phone=None, email=None))
    assert result.outcome == "suppressed_invalid_recipient"
    assert rig.a.sent == rig.b.sent == []


async def test_email_only_request_skips_sms(rig: Rig) -> None:
    result = await rig.engine.deliver(rig.request(skip_sms=True))
    assert (result.outcome, result.channel) == ("sent", "email")
    assert rig.a.sent == []


async def test_every_provider_refusing_our_account_holds_the_notification(rig: Rig) -> None:
    rig.a.errors.append(ProviderRejected("a", "20003"))
    rig.b.errors.append(ProviderRejected("b", "401"))
    rig.mail.errors.append(ProviderRejected("mail", "403"))
    result = await rig.engine.deliver(rig.request())
    assert (result.outcome, result.reason, result.maybe_sent) == ("held", "mail_403", False)


async def test_every_provider_down_holds_and_says_whether_a_send_may_have_happened(rig: Rig) -> None:
    rig.a.errors.extend(ProviderUnavailable("a", "503") for _ in range(3))
    rig.a.lookup_fails = True  # the ambiguous 503s cannot be reconciled
    rig.b.errors.extend(ProviderUnavailable("b", "503") for _ in range(3))
    rig.mail.errors.extend(ProviderUnavailable("mail", "503") for _ in range(3))
    result = await rig.engine.deliver(rig.request())
    assert (result.outcome, result.channel, result.maybe_sent) == ("held", "none", True)
    assert rig.a.sent == rig.b.sent == rig.mail.sent == []


async def test_message_specific_refusals_fail_rather_than_hold(rig: Rig) -> None:
    rig.a.errors.append(ContentRejected("a", "30007"))
    rig.b.errors.append(ContentRejected("b", "EC_CONTENT"))
    result = await rig.engine.deliver(rig.request(email=None))
    assert (result.outcome, result.reason) == ("failed", "b_EC_CONTENT")


async def test_content_refused_by_one_provider_while_the_other_is_down_holds(rig: Rig) -> None:
    rig.a.errors.append(ContentRejected("a", "30007"))
    rig.b.errors.extend(ProviderUnavailable("b", "503") for _ in range(3))
    result = await rig.engine.deliver(rig.request(email=None))
    assert result.outcome == "held"  # B may carry it once it is back


async def test_a_reclaimed_notification_already_sent_is_found_not_resent(rig: Rig) -> None:
    first = rig.request()
    await rig.engine.deliver(first)  # sent through A; then "the process crashed" before recording it
    again = DeliveryRequest(
        first.notification_id, PHONE, EMAIL, SMS, first.email_message, reconcile_since=datetime.now(UTC)
    )
    result = await rig.engine.deliver(again)
    assert (result.outcome, result.provider, result.reconciled) == ("sent", "a", True)
    assert len(rig.a.sent) == 1
    assert rig.metric("notifier_reconciliations_total", provider="a", result="found") == 1


async def test_a_reclaimed_notification_found_nowhere_is_sent(rig: Rig) -> None:
    rig.a.lookup_fails = True
    req = DeliveryRequest(uuid.uuid4(), PHONE, EMAIL, SMS, None, reconcile_since=datetime.now(UTC))
    result = await rig.engine.deliver(req)
    assert (result.outcome, result.provider, result.reconciled) == ("sent", "a", False)
    assert result.earlier_unchecked  # A could not answer: this send may repeat one it holds
    assert len(rig.a.sent) == 1
    assert rig.metric("notifier_reconciliations_total", provider="b", result="not_found") == 1


async def test_a_reclaimed_notification_every_provider_denies_is_sent_as_a_first_send(rig: Rig) -> None:
    req = DeliveryRequest(uuid.uuid4(), PHONE, EMAIL, SMS, None, reconcile_since=datetime.now(UTC))
    result = await rig.engine.deliver(req)
    assert (result.outcome, result.reconciled, result.earlier_unchecked) == ("sent", False, False)


async def test_a_failing_provider_opens_its_circuit_and_traffic_returns_after_recovery(rig: Rig) -> None:
    # A rejects everything: after min_calls failures its circuit opens and B takes the traffic.
    rig.a.errors.extend(ProviderRejected("a", "500") for _ in range(4))
    for _ in range(4):
        assert (await rig.engine.deliver(rig.request())).provider == "b"
    assert rig.engine.circuit("a") is BreakerState.OPEN
    sent_at_a = len(rig.a.sent)
    for _ in range(5):  # while open, A is not even tried
        assert (await rig.engine.deliver(rig.request())).provider == "b"
    assert len(rig.a.sent) == sent_at_a
    # Each of the 9 sends moved from A to B once, whether A failed or its circuit was open.
    assert rig.metric("notifier_failovers_total", provider="a", to="next_sms") == 9
    rig.metrics.watch_circuits(rig.engine.circuit_levels)  # as the composition root does
    assert rig.metric("notifier_circuit_state", provider="a") == 2
    assert rig.metric("notifier_circuit_state", provider="b") == 0

    rig.clock.now += 31  # the open period passes; A has recovered
    # A scrape shows it half-open at once, before any send tries A (not open until the next call).
    assert rig.metric("notifier_circuit_state", provider="a") == 1
    providers = [(await rig.engine.deliver(rig.request())).provider for _ in range(6)]
    assert providers == ["a"] * 6  # probes succeed, the circuit closes, traffic stays on A
    assert rig.engine.circuit("a") is BreakerState.CLOSED
    assert rig.metric("notifier_circuit_state", provider="a") == 0


async def test_rate_limit_paces_sends_in_segments() -> None:
    rig = Rig(limits={"a": ProviderLimits(rate_per_s=10, burst=1)})
    start = rig.clock.now
    for _ in range(21):
        await rig.engine.deliver(rig.request())
    # 21 one-segment messages at 10 segments/s with a burst of 1: the last waits 2 s
    assert rig.clock.now - start == pytest.approx(2.0, abs=0.01)


async def test_share_of_the_rate_scales_this_instances_pace() -> None:
    rig = Rig(limits={"a": ProviderLimits(rate_per_s=10, burst=1)})
    rig.engine.set_share(0.5)  # half the partitions: half the rate
    start = rig.clock.now
    for _ in range(11):
        await rig.engine.deliver(rig.request())
    assert rig.clock.now - start == pytest.approx(2.0, abs=0.01)


async def test_an_email_step_is_marked_once_before_its_first_request_not_per_retry(rig: Rig) -> None:
    marks: list[int] = []

    async def mark() -> None:
        marks.append(len(rig.mail.sent))  # how many emails had gone out when the mark was made

    rig.mail.errors.extend(ProviderUnavailable("mail", "503") for _ in range(2))  # two retries
    req = dataclasses.replace(rig.request(skip_sms=True), before_email=mark)
    result = await rig.engine.deliver(req)
    assert (result.outcome, result.channel) == ("sent", "email")
    assert marks == [0]  # once, and before anything could have gone out


# What the engine does with each provider error: the table at the top of service.domain.errors,
# seen from outside. A raises the error once; B and email work.
ONCE = [
    # error, (outcome, channel, provider), attempts at A, B tried
    (ProviderError("a", "x"), ("sent", "sms", "b"), 1, True),
    (ProviderUnavailable("a", "503"), ("sent", "sms", "a"), 2, False),
    (RateLimited("a", "429", retry_after=7), ("sent", "sms", "a"), 2, False),
    (InvalidRecipient("a", "21211"), ("sent", "email", "mail"), 1, False),
    (RecipientOptedOut("a", "21610"), ("suppressed_opted_out", "none", "a"), 1, False),
    (ContentRejected("a", "30007"), ("sent", "sms", "b"), 1, True),
    (ProviderRejected("a", "20003"), ("sent", "sms", "b"), 1, True),
]


@pytest.mark.parametrize(("error", "expected", "attempts", "b_tried"), ONCE, ids=lambda v: type(v).__name__)
async def test_what_the_engine_does_after_one_error_of_each_class(
    rig: Rig, error: ProviderError, expected: tuple[str, str, str], attempts: int, b_tried: bool
) -> None:
    rig.a.errors.append(error)
    result = await rig.engine.deliver(rig.request())
    assert (result.outcome, result.channel, result.provider) == expected
    assert rig.metric("notifier_provider_attempts_total", provider="a") == attempts
    assert (rig.metric("notifier_provider_attempts_total", provider="b") > 0) is b_tried
    assert bool(rig.mail.sent) is (expected[1] == "email")
    # only an ambiguous error is looked up at the provider, and only a pause waits Retry-After
    looked_up = rig.metric("notifier_reconciliations_total", provider="a", result="not_found")
    assert looked_up == (1 if error.ambiguous else 0)
    assert (rig.metric("notifier_rate_limit_wait_seconds_total", provider="a") >= 7) is (
        error.pause_s is not None
    )
    if error.retriable and error.pause_s is None:
        [backoff] = rig.clock.slept
        assert backoff <= 1.0


# Every provider raises it every time: what the notification becomes.
ALWAYS = [
    (ProviderError, ("held", "none")),
    (ProviderUnavailable, ("held", "none")),
    (RateLimited, ("held", "none")),
    (InvalidRecipient, ("failed", "email")),
    (RecipientOptedOut, ("suppressed_opted_out", "none")),
    (ContentRejected, ("failed", "email")),
    (ProviderRejected, ("held", "none")),
]


@pytest.mark.parametrize(("cls", "expected"), ALWAYS, ids=lambda v: getattr(v, "__name__", ""))
async def test_what_a_notification_becomes_when_every_provider_raises_an_error_of_each_class(
    rig: Rig, cls: type[ProviderError], expected: tuple[str, str]
) -> None:
    for sender in (rig.a, rig.b, rig.mail):
        sender.errors.extend(cls(sender.name, "x") for _ in range(3))
    result = await rig.engine.deliver(rig.request())
    assert (result.outcome, result.channel) == expected
    assert rig.a.sent == rig.b.sent == rig.mail.sent == []


@pytest.mark.parametrize("cls", [cls for cls, _ in ALWAYS], ids=lambda c: c.__name__)
async def test_only_errors_that_say_something_about_the_provider_open_its_circuit(
    rig: Rig, cls: type[ProviderError]
) -> None:
    rig.a.errors.extend(cls("a", "x") for _ in range(12))
    for _ in range(4):
        await rig.engine.deliver(rig.request())
    opened = rig.engine.circuit("a") is BreakerState.OPEN
    assert opened is cls.breaker_failure


class _RetriedContentError(ContentRejected):
    """Not a class the engine knows: it goes by what the attributes say."""

    retriable = True


class _StopError(ProviderError):
    opted_out = True


async def test_the_engine_reads_the_attributes_not_the_class(rig: Rig) -> None:
    rig.a.errors.append(_RetriedContentError("a", "30007"))
    result = await rig.engine.deliver(rig.request())
    assert (result.outcome, result.provider) == ("sent", "a")  # retried at A, not failed over

    rig.b.errors.append(_StopError("b", "STOP"))
    rig.a.errors.append(ProviderRejected("a", "20003"))
    result = await rig.engine.deliver(rig.request())
    assert (result.outcome, result.reason) == ("suppressed_opted_out", "b_STOP")
    assert rig.mail.sent == []


async def test_an_email_provider_reporting_an_opt_out_raises_it_to_the_caller(rig: Rig) -> None:
    # No email client of ours raises it; were one to, an email opt-out must not become the phone's.
    rig.mail.errors.append(RecipientOptedOut("mail", "unsubscribed"))
    with pytest.raises(RecipientOptedOut):
        await rig.engine.deliver(rig.request(skip_sms=True))


async def test_a_rate_limit_answer_says_the_attempt_before_it_did_not_go_out(rig: Rig) -> None:
    # 503 that cannot be checked (a retry may duplicate: counted once), then 429 (the request was
    # not processed: the retry after it duplicates nothing more), then the send.
    rig.a.lookup_fails = True
    rig.a.errors.extend([ProviderUnavailable("a", "503"), RateLimited("a", "429", retry_after=1)])
    result = await rig.engine.deliver(rig.request())
    assert (result.outcome, result.provider) == ("sent", "a")
    assert rig.metric("notifier_possible_duplicate_sends_total") == 1
