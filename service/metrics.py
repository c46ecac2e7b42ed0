"""Prometheus metrics. One ``Metrics`` per service instance, on its own registry (tests build several).

Labels carry codes and names only, never personal data.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "notifier_events", "Shipment events consumed, by what became of them", ["result"], registry=r
        )
        self.notifications = Counter(
            "notifier_notifications",
            "Notification outcomes (one per receipt)",
            ["outcome", "channel"],
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
            "Moves from a provider to the next step of the plan",
            ["provider", "to"],
            registry=r,
        )
        self.rate_limit_wait = Counter(
            "notifier_rate_limit_wait_seconds",
            "Time spent waiting for a provider's rate limit",
            ["provider"],
            registry=r,
        )
        self.circuit_state = Gauge(
            "notifier_circuit_state",
            "Circuit breaker per provider: 0 closed, 1 half-open, 2 open",
            ["provider"],
            registry=r,
        )
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
            "Records waiting on this instance's partitions (high watermark minus position)",
            registry=r,
        )
        self.batch_size = Histogram(
            "notifier_batch_records",
            "Records per consumed batch",
            buckets=(1, 10, 50, 100, 250, 500, 1000),
            registry=r,
        )
        self.batch_seconds = Histogram(
            "notifier_batch_seconds",
            "Time to process one consumed batch",
            buckets=_REQUEST_BUCKETS,
            registry=r,
        )
        self.ready = Gauge(
            "notifier_ready",
            "1 when the consumer is assigned, the database reachable and commits advancing",
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
