"""Prometheus metrics. One ``Metrics`` per service instance, on its own registry (tests build several).

Labels carry codes and names only, never personal data. Every labelled series an alert or the
SLI reads exists from start-up at 0 (``increase()`` cannot see a series' first increment): the
labels that do not depend on configuration here, the providers' when the composition root names
them (``expect_providers``). Gauges that describe the present are computed when scraped:
``watch_circuits`` and ``watch_lag`` take callables, ``on_scrape`` probes that need I/O
(readiness, the receipt outbox), which ``scrape()`` awaits before rendering.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from service.domain.dwell import DWELL_BUCKETS, OTHER_PLACE, place_label
from service.domain.lifecycle import TRANSITIONS, State
from service.domain.screening import MarkedBy
from service.resources import version

# End to end: seconds when all is well, minutes behind a backlog or a held provider, hours at worst.
#: Scrapes closer together than this share one run of the probes (see ``Metrics.scrape``).
PROBE_EVERY_S = 1.0

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 10800)
# One provider call: bounded by NOTIFIER_PROVIDER_TIMEOUT_S (10 s by default, 30 s at most in practice).
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60)
# One batch: its sends wait for rate limits and retries up to NOTIFIER_SEND_DEADLINE_S (120 s by default),
# a batch retried after an outage longer.
_BATCH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 120, 300)
_BATCH_RECORDS_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 5000)

#: What the pipeline may decide for a claimed notification: one decision per notification.
DECISIONS = tuple(
    dict.fromkeys(
        t.target
        for t in TRANSITIONS
        if t.source in (State.CLAIMED, State.SCHEDULED) and t.target not in (State.CLAIMED, t.source)
    )
)
#: Receipts by outcome and the channels each outcome can have.
_RECEIPTS = {
    State.SENT: ("sms", "email"),
    State.DELIVERED: ("sms", "email"),
    State.UNDELIVERED: ("sms", "email"),
    State.FAILED: ("sms", "email", "none"),
    State.SUPPRESSED_INVALID_RECIPIENT: ("none",),
    State.SUPPRESSED_OPTED_OUT: ("none",),
    State.SUPPRESSED_STALE: ("none",),
    State.SUPPRESSED_PILOT: ("none",),
    # quiet hours and coalescing
    State.SCHEDULED: ("none",),
    State.SUPPRESSED_SUPERSEDED: ("none",),
}
#: What a release of a scheduled send (quiet hours) came to: its outcome, or held.
RELEASE_RESULTS = (
    State.SENT,
    State.SUPPRESSED_SUPERSEDED,
    State.SUPPRESSED_OPTED_OUT,
    State.SUPPRESSED_INVALID_RECIPIENT,
    State.FAILED,
    "held",
)
EVENT_RESULTS = ("new_milestone", "duplicate", "stale", "not_a_milestone", "dead_lettered")
DEAD_LETTER_REASONS = ("empty_value", "malformed_json", "invalid_event", "processing_failed")
BOUNDED_REASONS = ("oversized", "unpublishable")
BAD_NUMBER_SKIPS = ("email", "suppressed")
FALLBACK_RESULTS = ("sent", "failed", "held", "gave_up", "no_email", "no_fallback", "pilot")
CALLBACK_RESULTS = (
    "delivered",
    "undelivered",
    "undelivered_email_sent",
    "undelivered_email_failed",
    "undelivered_email_held",
    "undelivered_email_gave_up",
    "undelivered_no_email",
    "undelivered_no_fallback",
    "undelivered_pilot",  # pilot mode: the fallback's address is not on the allow-list
    "stale",
    "held",
    "wrong_provider",
    "bad_reference",
    "forged",
    "expired",
)
STATUS_CHECK_RESULTS = (
    "delivered",
    "undelivered",
    "pending",
    "not_found",
    "error",
    "stale",
    "deferred",
    "gave_up",
)
SHORTENED = ("name", "documents", "too_long")
CIRCUIT_STATES = ("closed", "half_open", "open")

Probe = Callable[[], Awaitable[None]]


class _Circuits(Collector):
    """``notifier_circuit_state``, read from the breakers when scraped (an open period that ended
    shows as half-open at once, not at the next call)."""

    def __init__(self) -> None:
        self.levels: Callable[[], Mapping[str, int]] = dict

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "notifier_circuit_state",
            "Circuit breaker per provider: 0 closed, 1 half-open, 2 open (as of the scrape)",
            labels=["provider"],
        )
        for provider, level in sorted(self.levels().items()):
            family.add_metric([provider], level)
        yield family


class Metrics:
    def __init__(
        self, registry: CollectorRegistry | None = None, *, build_version: str | None = None
    ) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # The process (CPU, memory, open files) and the Python runtime (version, garbage collector).
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.build_info = Gauge(
            "notifier_build_info",
            "The running build: always 1, its version as a label",
            ["version"],
            registry=r,
        )
        self.build_info.labels(build_version or version()).set(1)
        self._probes: list[Probe] = []
        self._probed_at = -math.inf  # monotonic time the probes last ran
        self._probe_lock = asyncio.Lock()
        self.events = Counter(
            "notifier_events", "Shipment events consumed, by what became of them", ["result"], registry=r
        )
        self.notifications = Counter(
            "notifier_notifications",
            "Receipts by outcome: one per recorded outcome, so one notification counts under each"
            " outcome it reaches (sent, then delivered); the SLI is notifier_decisions",
            ["outcome", "channel"],
            registry=r,
        )
        self.decisions = Counter(
            "notifier_decisions",
            "What became of each claimed notification, once per notification when it is recorded:"
            " sent, failed or suppressed_* (the success-rate SLI: sent / (sent + failed)); a notification"
            " scheduled by quiet hours counts 'scheduled', then its release's decision",
            ["decision"],
            registry=r,
        )
        self.end_to_end = Histogram(
            "notifier_end_to_end_seconds",
            "From the event reaching Kafka to its outcome being decided",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.provider_latency = Histogram(
            "notifier_provider_request_seconds",
            "Provider API request latency",
            ["provider", "result"],
            buckets=_REQUEST_BUCKETS,
            registry=r,
        )
        self.provider_errors = Counter(
            "notifier_provider_errors", "Provider errors by class", ["provider", "error"], registry=r
        )
        self.sms_segments = Counter(
            "notifier_sms_segments", "SMS segments sent (cost)", ["provider", "encoding"], registry=r
        )
        self.sms_shortened = Counter(
            "notifier_sms_shortened",
            "SMS over the segment cap: what was cut (name, documents), or too_long (no SMS: email or failed)",
            ["cut"],
            registry=r,
        )
        self.attempts = Counter(
            "notifier_provider_attempts", "Send attempts per provider", ["provider"], registry=r
        )
        self.retries = Counter(
            "notifier_provider_retries", "Retries of a send at the same provider", ["provider"], registry=r
        )
        self.failovers = Counter(
            "notifier_failovers",
            "Moves from a provider to the next step of the plan (to: next_sms, email), whatever the"
            " cause (an error, its open circuit, its rate limit)",
            ["provider", "to"],
            registry=r,
        )
        self.rate_limit_wait = Counter(
            "notifier_rate_limit_wait_seconds",
            "Time spent waiting for a provider's rate limit",
            ["provider"],
            registry=r,
        )
        self._circuits = _Circuits()
        r.register(self._circuits)
        self.circuit_transitions = Counter(
            "notifier_circuit_transitions",
            "Circuit breaker changes per provider, by the state entered (flapping shows here)",
            ["provider", "to"],
            registry=r,
        )
        self.reconciliations = Counter(
            "notifier_reconciliations",
            "Checks with a provider after an ambiguous error, by answer",
            ["provider", "result"],
            registry=r,
        )
        self.status_reconciliations = Counter(
            "notifier_status_reconciliations",
            "Status look-ups of SMS sends left without a final status (delivery report lost), by"
            " answer: delivered / undelivered (applied like a callback), pending / not_found / error"
            " (looked up again later), stale (a report came meanwhile), deferred (rate limit, open"
            " circuit, provider not configured), gave_up (no final status by the maximum age)",
            ["provider", "result"],
            registry=r,
        )
        self.callbacks = Counter(
            "notifier_callbacks", "Provider delivery callbacks, by result", ["provider", "result"], registry=r
        )
        self.email_fallbacks = Counter(
            "notifier_email_fallbacks",
            "Email fallbacks for SMS reported undelivered, by result: sent, failed (refused), held"
            " (provider down: tried again later), gave_up (out of attempts: recorded failed),"
            " no_email / no_fallback (nothing to send it with)",
            ["result"],
            registry=r,
        )
        self.dead_letters = Counter(
            "notifier_dead_letters", "Events sent to the dead-letter topic", ["reason"], registry=r
        )
        self.dead_letters_bounded = Counter(
            "notifier_dead_letters_bounded",
            "Dead letters refused as they were (too large, corrupt) and sent as a bounded copy without"
            " their value, by reason: oversized, unpublishable",
            ["reason"],
            registry=r,
        )
        self.possible_duplicates = Counter(
            "notifier_possible_duplicate_sends",
            "Sends of a notification whose earlier send could not be ruled out (a crash, a provider's"
            " ambiguous answer)",
            registry=r,
        )
        # bad-number hygiene (issue 15): numbers marked undeliverable, and the milestones they turned
        self.bad_numbers_marked = Counter(
            "notifier_bad_numbers_marked",
            "Numbers marked undeliverable, by why: refused (invalid or unreachable at the send), "
            "permanent_report (reported undelivered with a permanent code), repeated_undelivered",
            ["why"],
            registry=r,
        )
        self.bad_number_skips = Counter(
            "notifier_bad_number_skips",
            "Notifications not texted because their number is marked undeliverable: then email, or suppressed",
            ["then"],
            registry=r,
        )
        self.held = Counter(
            "notifier_held_notifications",
            "Notifications no provider could take (all down): held, not dropped, tried again later",
            registry=r,
        )
        self.fetch_stalled = Gauge(
            "notifier_fetch_stalled",
            "1 while the consumer has not fetched for longer than the watchdog allows while lag grows",
            registry=r,
        )
        self.commit_stalled_partitions = Gauge(
            "notifier_commit_stalled_partitions",
            "Assigned partitions with records waiting whose committed offset has not advanced for"
            " NOTIFIER_COMMIT_STALL_S (a batch retried or held for ever); /readyz fails meanwhile",
            registry=r,
        )
        self.commit_stall_seconds = Gauge(
            "notifier_commit_stall_seconds",
            "The longest time an assigned partition with records waiting has gone without its committed"
            " offset advancing",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "notifier_consumer_lag",
            "Records waiting on this instance's partitions (high watermark minus position), as of the scrape",
            registry=r,
        )
        self.batch_size = Histogram(
            "notifier_batch_records",
            "Records per consumed batch",
            buckets=_BATCH_RECORDS_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "notifier_batch_seconds",
            "Time to process one consumed batch",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.ready = Gauge(
            "notifier_ready",
            "1 when the consumer is assigned, the database reachable and commits advancing (as /readyz"
            " answers, checked at every scrape)",
            registry=r,
        )
        self.outbox_backlog = Gauge(
            "notifier_outbox_backlog",
            "Receipts recorded and not yet published to the receipts topic (the group's shared"
            " outbox: every instance reports the same table), as of the scrape; NaN if unknown",
            registry=r,
        )
        self.outbox_oldest_seconds = Gauge(
            "notifier_outbox_oldest_seconds",
            "Age of the oldest receipt not yet published (0 when none waits), as of the scrape",
            registry=r,
        )
        self._after_the_notice(r)
        self._at_zero()

    def _after_the_notice(self, r: CollectorRegistry) -> None:
        """The series of what comes after a notice is decided: pickups, quiet-hours releases, follow-ups."""
        # Pickups: how long bikes wait to be collected, by place (a bounded set: see expect_pickup_places)
        self.pickup_dwell = Histogram(
            "notifier_pickup_dwell_seconds",
            "From ready_for_pickup to picked up (the TMS's times), once per order when both are known;"
            f" place: a listed pickup place (NOTIFIER_DWELL_PLACES), else {OTHER_PLACE}",
            ["place"],
            buckets=DWELL_BUCKETS,
            registry=r,
        )
        self._dwell_places: frozenset[str] = frozenset()
        self.scheduled_releases = Counter(
            "notifier_scheduled_releases",
            "Scheduled sends (quiet hours) released after their window, by what became of each:"
            " sent, suppressed_superseded (a later milestone of the order went instead), another"
            " outcome, or held (no provider could take it: released again later)",
            ["result"],
            registry=r,
        )
        self.scheduled_backlog = Gauge(
            "notifier_scheduled_sends",
            "Sends scheduled by quiet hours and not yet released (the group's one schedule: every"
            " instance reports the same), as of the scrape; NaN if unknown",
            registry=r,
        )
        self.scheduled_late_seconds = Gauge(
            "notifier_scheduled_late_seconds",
            "How long past its window's end the oldest scheduled send still waits (0 when none is"
            " due); grows while the release job is stuck or far behind",
            registry=r,
        )
        # Follow-ups of the pickup notice (pickup reminders, the survey link): issue 15, items 3-4
        self.follow_ups = Counter(
            "notifier_follow_ups",
            "Follow-ups of the pickup notice by kind (pickup_reminder, survey) and what became of each"
            " due one: an outcome (sent, failed, suppressed_*; each with its receipt), held (released"
            " again later), or dropped unsent without a receipt: picked_up, exhausted, lapsed, off,"
            " already_sent, survey_off, no_ready_time, no_contact (its sealed event is gone)",
            ["kind", "result"],
            registry=r,
        )

    def expect_pickup_places(self, places: Sequence[str]) -> None:
        """The places that get their own dwell series (each at 0 now); every other is ``other``."""
        self._dwell_places = frozenset(places)
        for place in self._dwell_places:
            self.pickup_dwell.labels(place)

    def observe_dwell(self, place: str | None, seconds: float) -> None:
        self.pickup_dwell.labels(place_label(place, self._dwell_places)).observe(seconds)

    def _at_zero(self) -> None:
        """The series whose label values do not depend on configuration, at 0 from the start."""
        for d in DECISIONS:
            self.decisions.labels(d)
        for outcome, channels in _RECEIPTS.items():
            for channel in channels:
                self.notifications.labels(outcome, channel)
        for result in EVENT_RESULTS:
            self.events.labels(result)
        for reason in DEAD_LETTER_REASONS:
            self.dead_letters.labels(reason)
        for reason in BOUNDED_REASONS:
            self.dead_letters_bounded.labels(reason)
        for result in FALLBACK_RESULTS:
            self.email_fallbacks.labels(result)
        for cut in SHORTENED:
            self.sms_shortened.labels(cut)
        for result in RELEASE_RESULTS:
            self.scheduled_releases.labels(result)
        for why in MarkedBy:
            self.bad_numbers_marked.labels(why.value)
        for then in BAD_NUMBER_SKIPS:
            self.bad_number_skips.labels(then)
        self.pickup_dwell.labels(OTHER_PLACE)

    def expect_providers(self, sms: Sequence[str], email: Sequence[str] = ()) -> None:
        """Every provider's series at 0: its attempts, transitions, callbacks, look-ups, failovers."""
        for provider in (*sms, *email):
            self.attempts.labels(provider)
            self.retries.labels(provider)
            self.rate_limit_wait.labels(provider)
            for to in CIRCUIT_STATES:
                self.circuit_transitions.labels(provider, to)
            for result in CALLBACK_RESULTS:
                self.callbacks.labels(provider, result)
            for found in ("found", "not_found", "unknown"):
                self.reconciliations.labels(provider, found)
        for provider in sms:
            for result in STATUS_CHECK_RESULTS:
                self.status_reconciliations.labels(provider, result)
        for provider in sms[:-1]:
            self.failovers.labels(provider, "next_sms")
        if sms and email:
            self.failovers.labels(sms[-1], "email")  # the engine's email failover names the last SMS step

    def watch_circuits(self, levels: Callable[[], Mapping[str, int]]) -> None:
        """``levels()``: provider -> circuit level (``BreakerState.level``), read at every scrape."""
        self._circuits.levels = levels

    def watch_lag(self, lag: Callable[[], float]) -> None:
        """``lag()``: the records waiting on this instance's partitions, read at every scrape."""
        self.consumer_lag.set_function(lag)

    def on_scrape(self, probe: Probe) -> None:
        """Awaited by ``scrape`` before each rendering (it sets its gauges; it must not raise)."""
        self._probes.append(probe)

    async def scrape(self, *, now: Callable[[], float] = time.monotonic) -> bytes:
        """Run the probes (at once), then render: what ``/metrics`` serves.

        The probes ask PostgreSQL: they run at most once every ``PROBE_EVERY_S`` however often
        ``/metrics`` is asked (several Prometheus replicas, a benchmark polling a counter), and a
        scrape that comes while they run waits for that run, so scraping never competes with the
        pipeline for the database pool.
        """
        async with self._probe_lock:
            if now() - self._probed_at >= PROBE_EVERY_S:
                await asyncio.gather(*(probe() for probe in self._probes))
                self._probed_at = now()
        return self.render()

    def render(self) -> bytes:
        return generate_latest(self.registry)
