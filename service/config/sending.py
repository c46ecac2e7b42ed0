"""Settings of sending: the plan, attempts and deadlines, rate limits, circuit breakers."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import NoDecode

from service.config.parsing import split_commas


class SendingSettings(BaseModel):
    """Sending: the plan is SMS provider A (Twilio), then B (Infobip), then email (SendGrid)."""

    send_concurrency: int = Field(
        default=128,
        ge=1,
        le=1000,
        description="Notifications being sent at once: also the most a crash can leave sent but unrecorded.",
    )
    sms_providers: Annotated[list[Literal["twilio", "infobip"]], NoDecode] = Field(
        default=["twilio", "infobip"], description="SMS providers in order of preference; comma-separated."
    )
    email_provider: Literal["sendgrid", "none"] = Field(
        default="sendgrid", description="Email provider of the fallback (none: no email at all)."
    )
    send_attempts_per_provider: int = Field(
        default=3,
        ge=1,
        le=20,
        description="Attempts at one provider (retries after a retriable error) before the next provider.",
    )
    send_deadline_s: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        description="Time from a message's first attempt after which no provider is tried (it is held, or fails).",
    )
    provider_timeout_s: float = Field(
        default=10.0, gt=0, le=120, description="Timeout of one request to a provider."
    )
    # Rate limits in SMS segments (emails for SendGrid) per second for the whole consumer group;
    # each instance takes a share in proportion to its assigned partitions.
    twilio_rate_per_s: float = Field(
        default=100.0,
        gt=0,
        description="Twilio's rate limit for the whole consumer group, in SMS segments per second (shared through the group's schedule: NOTIFIER_RATE_LIMIT_SCOPE).",
    )
    twilio_burst: float = Field(
        default=10.0, ge=1, description="Segments Twilio may take at once above its rate."
    )
    infobip_rate_per_s: float = Field(
        default=100.0,
        gt=0,
        description="Infobip's rate limit for the whole consumer group, in SMS segments per second.",
    )
    infobip_burst: float = Field(
        default=10.0, ge=1, description="Segments Infobip may take at once above its rate."
    )
    infobip_batch_max: int = Field(
        default=50,
        ge=1,
        le=1000,
        description="Most messages in one Infobip request (1: a request per SMS).",
    )
    infobip_batch_requests: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Most Infobip requests in flight at once; sends made meanwhile queue and share the next.",
    )
    sendgrid_rate_per_s: float = Field(
        default=50.0,
        gt=0,
        description="SendGrid's rate limit for the whole consumer group, in emails per second.",
    )
    sendgrid_burst: float = Field(
        default=10.0, ge=1, description="Emails SendGrid may take at once above its rate."
    )
    rate_limit_scope: Literal["group", "instance"] = Field(
        default="group",
        description="group: every instance books its sends in one schedule per provider kept in "
        "PostgreSQL, so the group uses the whole limit wherever the backlog is; instance: each "
        "instance paces alone at its share of the limit (its share of the partitions).",
    )
    rate_headroom: float = Field(
        default=0.98,
        gt=0,
        le=1,
        description="Fraction of each limit actually used: absorbs timer and network jitter, so the "
        "provider, measuring on its side, never sees more than the limit.",
    )
    # Circuit breakers (per provider)
    breaker_window: int = Field(
        default=20, ge=2, description="Circuit breaker: the last calls to a provider it judges by."
    )
    breaker_min_calls: int = Field(
        default=10, ge=1, description="Circuit breaker: fewest calls in the window before it may open."
    )
    breaker_failure_ratio: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Circuit breaker: share of failed calls in the window that opens it.",
    )
    breaker_open_s: float = Field(
        default=15.0,
        gt=0,
        description="Circuit breaker: how long it first stays open before a probe (doubling while probes fail).",
    )
    breaker_max_open_s: float = Field(
        default=300.0, gt=0, description="Circuit breaker: the longest it stays open before a probe."
    )

    @field_validator("sms_providers", mode="before")
    @classmethod
    def _split_providers(cls, v: object) -> object:
        return split_commas(v)
