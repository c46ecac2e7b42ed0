"""Settings: the only module that reads the environment. Read once at start-up, passed down as objects.

Every setting is an environment variable ``NOTIFIER_<NAME>``; ``KAFKA_BOOTSTRAP_SERVERS`` and
``DATABASE_URL`` are also accepted without the prefix. Defaults point at the local stack started
by ``make stack-up``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from service.domain.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFIER_", extra="ignore", frozen=True)

    # Kafka
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092",
        validation_alias=AliasChoices("NOTIFIER_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
    )
    input_topics: Annotated[list[str], NoDecode] = Field(
        default=["shipment.status.v1"], description="Topics to consume; comma-separated in the environment."
    )
    input_topic_pattern: str | None = Field(
        default=None, description="A regex of topics to consume instead of input_topics."
    )
    receipts_topic: str = "notification.receipts.v1"
    dead_letter_topic: str = "shipment.status.v1.dlq"
    dead_letter_retention_days: int = Field(
        default=7, ge=1, le=365, description="The DLQ keeps raw events (personal data): short retention."
    )
    consumer_group: str = "milestone-notifier"
    batch_max_records: int = Field(default=500, ge=1, le=10_000)
    batch_timeout_ms: int = Field(default=200, ge=1, le=60_000)
    poison_attempts: int = Field(
        default=5,
        ge=2,
        le=100,
        description="A batch failing this many times while the database answers is retried record by "
        "record, and a record that still fails goes to the dead-letter topic.",
    )
    rebalance_drain_s: float = Field(
        default=20.0,
        gt=0,
        le=25,
        description="On a rebalance, how long to wait for the batch in flight (no new sends start) "
        "before letting the partitions go; under the consumer's 30 s rebalance timeout.",
    )
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
    watchdog_stall_s: float = Field(
        default=120.0,
        ge=5,
        description="No fetch for this long while records wait on our partitions: /healthz fails.",
    )

    # PostgreSQL
    database_url: str = Field(
        default="postgresql://notifier@127.0.0.1:15432/notifier",
        validation_alias=AliasChoices("NOTIFIER_DATABASE_URL", "DATABASE_URL"),
    )
    database_pool_size: int = Field(default=4, ge=1, le=100)

    # Sending: the plan is SMS provider A (Twilio), then B (Infobip), then email (SendGrid).
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
    # Provider accounts (the defaults are the sandbox's)
    twilio_base_url: str = "http://127.0.0.1:18700"
    twilio_account_sid: str = "AC00000000000000000000000000000000"
    twilio_auth_token: SecretStr = SecretStr("sandbox-token")
    twilio_sender: str = "Specialized"
    infobip_base_url: str = "http://127.0.0.1:18700"
    infobip_api_key: SecretStr = SecretStr("sandbox-infobip-key")
    infobip_sender: str = "Specialized"
    sendgrid_base_url: str = "http://127.0.0.1:18700"
    sendgrid_api_key: SecretStr = SecretStr("sandbox-sendgrid-key")
    email_sender_address: str = "notifications@example.com"
    email_sender_name: str = "Specialized Hong Kong"
    # Delivery callbacks: the public base URL providers call back on, and their secrets
    callback_base_url: str | None = Field(
        default=None, description="e.g. https://notifier.example.com; None: no delivery callbacks requested."
    )
    infobip_webhook_user: str = "infobip"
    infobip_webhook_password: SecretStr = SecretStr("sandbox-infobip-webhook")
    sendgrid_webhook_public_key: str | None = Field(
        default=None, description="Base64 DER public key of SendGrid's Signed Event Webhook."
    )

    # Personal data at rest
    pii_keys: SecretStr | None = Field(
        default=None,
        description="AES-256 keys 'id:base64,id:base64', the first active (`notifier keys generate`). "
        "Without keys no event is kept, so an undelivered SMS cannot fall back to email.",
    )

    retention_days: int = Field(
        default=90, ge=1, le=3650, description="Keep personal data this long after an order's last milestone."
    )
    purge_interval_s: float = Field(
        default=3600.0, gt=0, description="How often the service runs the retention purge."
    )
    blind_index_key: SecretStr | None = Field(
        default=None,
        description="Base64 key (32+ bytes) of the keyed hashes that find phones/emails (opt-outs) "
        "without storing them; required by `notifier run` (`notifier keys generate --kind blind-index`).",
    )

    # Links in messages: order status and unsubscribe pages served by this service
    public_base_url: str | None = Field(
        default=None,
        description="Public URL of this service's pages, e.g. https://n.example.hk; None: no links.",
    )
    link_signing_key: SecretStr | None = Field(
        default=None,
        description="Base64 key (32+ bytes) signing the links (`notifier keys generate --kind blind-index`).",
    )
    link_ttl_days: int = Field(default=90, ge=1, le=3650)

    allow_foreign_mobiles: bool = Field(
        default=False, description="Also text mobiles outside Hong Kong (E.164 with their country code)."
    )

    # Content
    templates_dir: Path = REPO_ROOT / "templates"
    brand_name: str = "Specialized"
    contact_phone: str = "+852 3001 2345"
    contact_email: str = "hk-support@example.com"
    default_locale: Literal["zh-HK", "en"] = "zh-HK"

    # Operations
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"

    @field_validator("input_topics", "sms_providers", mode="before")
    @classmethod
    def _split_topics(cls, v: object) -> object:
        if isinstance(v, str) and not v.lstrip().startswith("["):
            return [t.strip() for t in v.split(",") if t.strip()]
        return v

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, v: str) -> str:
        if not v.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        return v

    @field_validator("templates_dir")
    @classmethod
    def _templates_exist(cls, v: Path) -> Path:
        if not v.is_dir():
            raise ValueError(f"directory {v} does not exist")
        return v


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; a bad value stops start-up with a message naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]  # pydantic-settings accepts field overrides
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False, include_input=False):
            field = ".".join(str(p) for p in err["loc"])
            lines.append(f"  NOTIFIER_{field.upper()}: {err['msg']}")
        raise ConfigError(
            "invalid configuration; fix these environment variables:\n" + "\n".join(lines)
        ) from None
    except SettingsError as exc:  # a value the environment source could not even parse
        raise ConfigError(f"invalid configuration: {exc}") from None
