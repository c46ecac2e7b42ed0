"""Settings: the only module that reads the environment. Read once at start-up, passed down as objects.

Every setting is an environment variable ``NOTIFIER_<NAME>``; ``KAFKA_BOOTSTRAP_SERVERS`` and
``DATABASE_URL`` are also accepted without the prefix. Defaults point at the local stack started
by ``make stack-up``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from service.domain.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent


# A URL's password, in its user-info or in a query parameter (libpq accepts ?password=).
_URL_PASSWORD = re.compile(r"(?P<pre>://[^/:@?#\s]*:)[^@/?#\s]*(?=@)|(?P<qpre>[?&]password=)[^&#\s]*")


def mask_url_passwords(value: object) -> object:
    """A setting's value as shown in repr/str/model_dump: any URL with its password masked."""
    if not isinstance(value, str) or "://" not in value:
        return value
    return _URL_PASSWORD.sub(lambda m: (m.group("pre") or m.group("qpre")) + "***", value)


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

    # PostgreSQL
    database_url: str = Field(
        default="postgresql://notifier@127.0.0.1:15432/notifier",
        validation_alias=AliasChoices("NOTIFIER_DATABASE_URL", "DATABASE_URL"),
    )
    migration_database_url: str | None = Field(
        default=None,
        description="The owner role's URL, used by `notifier db migrate` (and `staff add/revoke`), which "
        "then grants the NOTIFIER_DATABASE_URL role its privileges. None: that one role does both "
        "(local development only: it could then alter the audit log).",
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
    sandbox_mode: bool = Field(
        default=False,
        description="Allow the sandbox's public default secrets although a provider, callback or public "
        "URL (or the HTTP listener) is not on loopback, e.g. the sandbox in another container. Never in "
        "production: anyone can sign callbacks with those secrets.",
    )
    # Delivery callbacks: the public base URL providers call back on, and their secrets
    callback_base_url: str | None = Field(
        default=None, description="e.g. https://notifier.example.com; None: no delivery callbacks requested."
    )
    infobip_webhook_user: str = "infobip"
    infobip_webhook_password: SecretStr = SecretStr("sandbox-infobip-webhook")
    sendgrid_webhook_public_key: str | None = Field(
        default=None, description="Base64 DER public key of SendGrid's Signed Event Webhook."
    )
    sendgrid_signature_max_skew_s: float = Field(
        default=300.0,
        gt=0,
        le=3600,
        description="A SendGrid Event Webhook request whose signed timestamp is further than this from "
        "our clock is refused (a replay).",
    )
    sendgrid_event_max_age_s: float = Field(
        default=259_200.0,
        gt=0,
        le=30 * 86_400,
        description="A SendGrid event older than this (SendGrid retries a webhook for 24 hours), or "
        "dated more than the signature skew ahead, is ignored and counted.",
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

    # Customer-service page: staff sessions, sign-in throttling, proxies
    staff_session_idle_s: int = Field(
        default=1800, ge=60, le=86400, description="A staff session unused this long has ended."
    )
    staff_session_max_s: int = Field(
        default=8 * 3600, ge=60, le=86400, description="A staff session ends this long after sign-in."
    )
    signin_failures_per_client: int = Field(
        default=5, ge=1, le=1000, description="Failed sign-ins from one address per window before 429."
    )
    signin_failures_total: int = Field(
        default=100, ge=1, le=100_000, description="Failed sign-ins from all addresses per window before 429."
    )
    signin_window_s: int = Field(default=300, ge=1, le=86400)
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default=[],
        description="Addresses or CIDRs of reverse proxies (comma-separated): only from them are "
        "X-Forwarded-For and X-Forwarded-Proto believed.",
    )

    allow_foreign_mobiles: bool = Field(
        default=False, description="Also text mobiles outside Hong Kong (E.164 with their country code)."
    )

    # Content
    templates_dir: Path = REPO_ROOT / "templates"
    brand_name: str = "Specialized"
    contact_phone: str = "+852 3001 2345"
    contact_email: str = "hk-support@example.com"
    default_locale: Literal["zh-HK", "en"] = "zh-HK"
    sms_max_segments: int = Field(
        default=6,
        ge=1,
        le=10,
        description="Hard cap on one SMS in segments: a longer one is shortened (name left out, then "
        "the document list cut), else sent by email (or failed without an address).",
    )

    # Operations
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    http_max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        le=64 * 1_048_576,
        description="Largest request body the public listener reads; larger gets 413.",
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="Listener of /metrics, /healthz and /readyz, kept off the ingress."
    )
    metrics_port: int = Field(default=8081, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"

    # Secrets never show: SecretStr fields are masked by pydantic; every URL-valued setting (the
    # database URL, any DSN) has its password masked in repr, str and model_dump. The values
    # themselves (``settings.database_url``) are untouched.
    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for key, value in super().__repr_args__():
            yield key, mask_url_passwords(value)

    @model_serializer(mode="wrap")
    def _mask_url_passwords(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: mask_url_passwords(v) for k, v in handler(self).items()}

    @field_validator("input_topics", "sms_providers", "trusted_proxies", mode="before")
    @classmethod
    def _split_topics(cls, v: object) -> object:
        if isinstance(v, str) and not v.lstrip().startswith("["):
            return [t.strip() for t in v.split(",") if t.strip()]
        return v

    @field_validator("database_url", "migration_database_url")
    @classmethod
    def _postgres_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        return v

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for net in v:
            ipaddress.ip_network(net, strict=False)  # ValueError names the bad entry
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
            lines.append(f"  {env_names(err['loc'])}: {err['msg']}")
        raise ConfigError(
            "invalid configuration; fix these environment variables:\n" + "\n".join(lines)
        ) from None
    except SettingsError as exc:  # a value the environment source could not even parse
        raise ConfigError(f"invalid configuration: {exc}") from None


def _aliases(name: str) -> list[str]:
    """The environment variables that set field ``name``, the preferred one first."""
    alias = Settings.model_fields[name].validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    if isinstance(alias, str):
        return [alias]
    return [f"{Settings.model_config.get('env_prefix', '')}{name}".upper()]


def env_names(loc: tuple[int | str, ...]) -> str:
    """The variable(s) an error location is about: pydantic reports a field by its name, or by
    its first alias when it has aliases (which already carry the prefix)."""
    head = str(loc[0]) if loc else ""
    for name in Settings.model_fields:
        names = _aliases(name)
        if head == name or head in names:
            return names[0] + (f" (or {', '.join(names[1:])})" if names[1:] else "")
    return ".".join(str(p) for p in loc).upper()


#: Secrets whose defaults are the sandbox's, published in this repository: anyone can sign with them.
SANDBOX_SECRETS: dict[str, str] = {
    "twilio_auth_token": "sandbox-token",
    "infobip_api_key": "sandbox-infobip-key",
    "infobip_webhook_password": "sandbox-infobip-webhook",
    "sendgrid_api_key": "sandbox-sendgrid-key",
}


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (a name or an address) can only be reached from this machine."""
    host = (host or "").strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refuse_sandbox_secrets(s: Settings) -> None:
    """Start-up check: the sandbox's public default secrets are refused unless everything they
    guard is on loopback (the local stack, the tests) or ``sandbox_mode`` says so explicitly."""
    defaults = [name for name, value in SANDBOX_SECRETS.items() if _secret(s, name) == value]
    if not defaults or s.sandbox_mode:
        return
    urls = {
        "twilio_base_url": s.twilio_base_url,
        "infobip_base_url": s.infobip_base_url,
        "sendgrid_base_url": s.sendgrid_base_url,
        "callback_base_url": s.callback_base_url,
        "public_base_url": s.public_base_url,
    }
    exposed = [
        name for name, url in urls.items() if url is not None and not is_loopback(urlsplit(url).hostname)
    ]
    if not is_loopback(s.http_host):
        exposed.append("http_host")
    if not exposed:
        return
    lines = [
        f"  {env_names((name,))}: still the sandbox's public default; set the real secret"
        for name in defaults
    ]
    raise ConfigError(
        "refusing to start with the sandbox's public secrets while these are not on loopback: "
        + ", ".join(env_names((name,)) for name in exposed)
        + "; set these environment variables:\n"
        + "\n".join(lines)
        + "\n(or NOTIFIER_SANDBOX_MODE=true for a sandbox that is not on loopback; never in production)"
    )


def _secret(s: Settings, name: str) -> str:
    value = getattr(s, name)
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)
