"""Settings of the background loops: the outbox relay, owed email fallbacks, status look-ups, watchdogs."""

from __future__ import annotations

from pydantic import BaseModel, Field


class BackgroundJobSettings(BaseModel):
    """The loops beside the consumer: receipts left unpublished, owed email fallbacks, status look-ups
    of SMS with no final status, and the watchdogs of a stalled fetch or commit."""

    outbox_relay_interval_s: float = Field(
        default=30.0,
        gt=0,
        description="How often receipts left unpublished (Kafka was down) are published again.",
    )
    outbox_lease_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="A receipt is born leased to the operation that recorded it, which publishes it at "
        "once; only when the lease runs out (the process died) does the relay take it. Above the "
        "producer's 30 s request timeout, so a slow publish is never raced.",
    )
    email_fallback_retry_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="An owed email fallback (SMS reported undelivered) that could not go out is tried "
        "again after a random wait of up to this, the limit doubling each time up to 30 minutes.",
    )
    email_fallback_attempts: int = Field(
        default=12,
        ge=1,
        le=100,
        description="Attempts at an owed email fallback before it is recorded as failed.",
    )
    status_check_after_s: float = Field(
        default=900.0,
        gt=0,
        le=86_400,
        description="An SMS with no final status (its delivery report was lost) this long after its send "
        "is looked up at its provider; again after a wait doubling from this up to an hour.",
    )
    status_check_max_age_s: float = Field(
        default=172_800.0,
        gt=0,
        le=30 * 86_400,
        description="Look-ups of a send stop at this age (Infobip keeps logs 48 h): counted as given up, "
        "the notification stays 'sent'.",
    )
    status_check_interval_s: float = Field(
        default=60.0, gt=0, le=3600, description="How often the status look-up job runs."
    )
    status_check_batch: int = Field(
        default=100, ge=1, le=10_000, description="Most status look-ups one run of the job makes."
    )
    status_check_share: float = Field(
        default=0.1,
        gt=0,
        le=0.5,
        description="Status look-ups per second, as a share of each SMS provider's rate limit (split "
        "across instances like sends); they never take from the sends' own budget.",
    )
    watchdog_stall_s: float = Field(
        default=120.0,
        ge=5,
        description="No fetch for this long while records wait on our partitions: /healthz fails.",
    )
    commit_stall_s: float = Field(
        default=300.0,
        ge=1,
        description="A partition's committed offset not advancing for this long while records wait on "
        "it (a batch failing or held for ever): /readyz fails and the stall is counted.",
    )
