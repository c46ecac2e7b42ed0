"""Settings of sending: the plan, attempts and deadlines, rate limits, circuit breakers."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import NoDecode

from service.config.parsing import split_commas


class SendingSettings(BaseModel):
    """Sending: the plan is SMS provider A (Twilio), then B (Infobip), then email (SendGrid)."""

    send_concurrency: int = Field(default=32, ge=1, le=1000)
    sms_providers: Annotated[list[Literal["twilio", "infobip"]], NoDecode] = Field(
        default=["twilio", "infobip"], description="SMS providers in order of preference; comma-separated."
    )
    email_provider: Literal["sendgrid", "none"] = "sendgrid"
    send_attempts_per_provider: int = Field(default=3, ge=1, le=20)
    send_deadline_s: float = Field(default=120.0, gt=0, le=3600)
    provider_timeout_s: float = Field(default=10.0, gt=0, le=120)
    # Rate limits in SMS segments (emails for SendGrid) per second for the whole consumer group;
    # each instance takes a share in proportion to its assigned partitions.
    twilio_rate_per_s: float = Field(default=100.0, gt=0)
    twilio_burst: float = Field(default=10.0, ge=1)
    infobip_rate_per_s: float = Field(default=100.0, gt=0)
    infobip_burst: float = Field(default=10.0, ge=1)
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
    sendgrid_rate_per_s: float = Field(default=50.0, gt=0)
    sendgrid_burst: float = Field(default=10.0, ge=1)
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
    breaker_window: int = Field(default=20, ge=2)
    breaker_min_calls: int = Field(default=10, ge=1)
    breaker_failure_ratio: float = Field(default=0.5, gt=0, le=1)
    breaker_open_s: float = Field(default=15.0, gt=0)
    breaker_max_open_s: float = Field(default=300.0, gt=0)

    @field_validator("sms_providers", mode="before")
    @classmethod
    def _split_providers(cls, v: object) -> object:
        return split_commas(v)
