"""Settings: the only module that reads the environment. Read once at start-up, passed down as objects.

Every setting is an environment variable ``NOTIFIER_<NAME>``; ``KAFKA_BOOTSTRAP_SERVERS`` and
``DATABASE_URL`` are also accepted without the prefix. Defaults point at the local stack started
by ``make stack-up``. The fields live in groups, a module per concern, in ``service/config/``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from pydantic import AliasChoices, SecretStr, SerializerFunctionWrapHandler, ValidationError, model_serializer
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from service.config.accounts import ProviderAccountSettings
from service.config.background import BackgroundJobSettings
from service.config.consuming import KafkaSettings
from service.config.content import ContentSettings
from service.config.database import DatabaseSettings
from service.config.launch import LaunchSettings
from service.config.operations import OperationsSettings
from service.config.personal_data import PersonalDataSettings
from service.config.pickups import PickupSettings
from service.config.public_pages import PublicPageSettings
from service.config.scheduling import QuietHoursSettings
from service.config.sending import SendingSettings
from service.domain.errors import ConfigError

__all__ = [
    "SANDBOX_SECRETS",
    "Settings",
    "env_names",
    "is_loopback",
    "load_settings",
    "mask_url_passwords",
    "refuse_sandbox_secrets",
]

# A URL's password, in its user-info or in a query parameter (libpq accepts ?password=).
_URL_PASSWORD = re.compile(r"(?P<pre>://[^/:@?#\s]*:)[^@/?#\s]*(?=@)|(?P<qpre>[?&]password=)[^&#\s]*")


def mask_url_passwords(value: object) -> object:
    """A setting's value as shown in repr/str/model_dump: any URL with its password masked."""
    if not isinstance(value, str) or "://" not in value:
        return value
    return _URL_PASSWORD.sub(lambda m: (m.group("pre") or m.group("qpre")) + "***", value)


# pydantic collects the fields along the bases from the last one: the groups are listed last first so
# that the fields, and with them every error message, repr and dump, come Kafka first as they always did.
class Settings(
    LaunchSettings,
    PickupSettings,
    QuietHoursSettings,
    OperationsSettings,
    ContentSettings,
    PublicPageSettings,
    PersonalDataSettings,
    ProviderAccountSettings,
    SendingSettings,
    DatabaseSettings,
    BackgroundJobSettings,
    KafkaSettings,
    BaseSettings,
):
    model_config = SettingsConfigDict(env_prefix="NOTIFIER_", extra="ignore", frozen=True)

    # Secrets never show: SecretStr fields are masked by pydantic; every URL-valued setting (the
    # database URL, any DSN) has its password masked in repr, str and model_dump. The values
    # themselves (``settings.database_url``) are untouched.
    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for key, value in super().__repr_args__():
            yield key, mask_url_passwords(value)

    @model_serializer(mode="wrap")
    def _mask_url_passwords(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: mask_url_passwords(v) for k, v in handler(self).items()}


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; a bad value stops start-up with a message naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]  # pydantic-settings accepts field overrides
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False, include_input=False):
            where = env_names(err["loc"])  # none for a rule across settings: its message names them
            lines.append(f"  {where}: {err['msg']}" if where else f"  {err['msg']}")
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
