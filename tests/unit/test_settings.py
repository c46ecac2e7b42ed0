from __future__ import annotations

import asyncio

import pytest

from service.domain.errors import ConfigError
from service.settings import SANDBOX_SECRETS, Settings, env_names, load_settings, refuse_sandbox_secrets


def test_defaults_point_at_the_local_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "NOTIFIER_INPUT_TOPICS"):
        monkeypatch.delenv(var, raising=False)
    s = load_settings()
    assert s.kafka_bootstrap_servers == "127.0.0.1:19092"
    assert s.input_topics == ["shipment.status.v1"]


def test_comma_separated_topics_and_unprefixed_urls_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_INPUT_TOPICS", "a.v1, b.v1")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h:1/d")
    s = load_settings()
    assert s.input_topics == ["a.v1", "b.v1"]
    assert s.database_url == "postgresql://u@h:1/d"


def test_bad_configuration_names_the_variable_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_SEND_CONCURRENCY", "0")
    monkeypatch.setenv("NOTIFIER_DATABASE_URL", "mysql://nope")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "NOTIFIER_SEND_CONCURRENCY" in message
    assert "NOTIFIER_DATABASE_URL" in message
    assert "postgresql://" in message


def test_every_config_error_names_the_real_variable_never_a_doubled_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("NOTIFIER_DATABASE_URL", "mysql://nope")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "x")
    monkeypatch.setenv("NOTIFIER_HTTP_PORT", "70000")
    with pytest.raises(ConfigError) as info:
        load_settings()
    named = [line.split(":")[0].strip() for line in str(info.value).splitlines()[1:]]
    assert named == ["NOTIFIER_DATABASE_URL (or DATABASE_URL)", "NOTIFIER_HTTP_PORT"]
    assert "NOTIFIER_NOTIFIER_" not in str(info.value)


def test_each_field_error_names_a_variable_the_settings_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every field, aliased or not: the name in the message is one the environment source reads.
    for name in Settings.model_fields:
        variable = env_names((name,)).split(" ")[0]
        monkeypatch.setenv(variable, "[")
    with pytest.raises(ConfigError) as info:
        load_settings()
    lines = str(info.value).splitlines()[1:]
    assert len(lines) > 20
    for line in lines:
        variable = line.split(":")[0].strip().split(" ")[0]
        assert variable.startswith("NOTIFIER_")
        assert not variable.startswith("NOTIFIER_NOTIFIER_")
        assert variable.removeprefix("NOTIFIER_").lower() in Settings.model_fields


SANDBOX_VARIABLES = [
    "NOTIFIER_TWILIO_AUTH_TOKEN",
    "NOTIFIER_INFOBIP_API_KEY",
    "NOTIFIER_INFOBIP_WEBHOOK_PASSWORD",
    "NOTIFIER_SENDGRID_API_KEY",
]
REAL_SECRETS = {
    "twilio_auth_token": "real-twilio",
    "infobip_api_key": "real-infobip",
    "infobip_webhook_password": "real-hook",
    "sendgrid_api_key": "real-sendgrid",
}


@pytest.mark.parametrize(
    ("exposed", "variable"),
    [
        ({"twilio_base_url": "https://api.twilio.com"}, "NOTIFIER_TWILIO_BASE_URL"),
        ({"infobip_base_url": "https://xyz.api.infobip.com"}, "NOTIFIER_INFOBIP_BASE_URL"),
        ({"sendgrid_base_url": "https://api.sendgrid.com"}, "NOTIFIER_SENDGRID_BASE_URL"),
        ({"callback_base_url": "https://notifier.example.com"}, "NOTIFIER_CALLBACK_BASE_URL"),
        ({"public_base_url": "https://n.example.hk"}, "NOTIFIER_PUBLIC_BASE_URL"),
        ({"http_host": "0.0.0.0"}, "NOTIFIER_HTTP_HOST"),  # noqa: S104  # what is refused
        ({"twilio_base_url": "http://127.0.0.1.nip.io:18700"}, "NOTIFIER_TWILIO_BASE_URL"),
    ],
)
def test_start_up_refuses_the_sandbox_secrets_off_loopback_and_names_each_variable(
    exposed: dict[str, str], variable: str
) -> None:
    s = load_settings(**exposed)
    with pytest.raises(ConfigError) as info:
        refuse_sandbox_secrets(s)
    message = str(info.value)
    assert variable in message  # what is not on loopback
    for secret in SANDBOX_VARIABLES:  # every variable to set
        assert f"  {secret}:" in message
    assert "NOTIFIER_SANDBOX_MODE" in message


def test_only_the_secrets_still_at_their_sandbox_default_are_named() -> None:
    s = load_settings(
        twilio_base_url="https://api.twilio.com",
        **{**REAL_SECRETS, "infobip_webhook_password": "sandbox-infobip-webhook"},
    )
    with pytest.raises(ConfigError) as info:
        refuse_sandbox_secrets(s)
    named = [line.split(":")[0].strip() for line in str(info.value).splitlines()[1:-1]]
    assert named == ["NOTIFIER_INFOBIP_WEBHOOK_PASSWORD"]


@pytest.mark.parametrize(
    "overrides",
    [
        {},  # the local stack: everything on loopback
        {
            "twilio_base_url": "http://localhost:18700",
            "callback_base_url": "http://[::1]:8080",
            "public_base_url": "http://127.0.0.2:8080",
        },
        {"twilio_base_url": "http://sandbox:18700", "http_host": "0.0.0.0", "sandbox_mode": True},  # noqa: S104
        {"twilio_base_url": "https://api.twilio.com", "http_host": "0.0.0.0", **REAL_SECRETS},  # noqa: S104
    ],
)
def test_start_up_allows_the_sandbox_on_loopback_sandbox_mode_and_real_secrets(
    overrides: dict[str, object],
) -> None:
    refuse_sandbox_secrets(load_settings(**overrides))


def test_the_sandbox_secret_defaults_are_the_settings_defaults() -> None:
    # The check compares against these values: they must be what a service starts with by default.
    s = Settings()
    for name, value in SANDBOX_SECRETS.items():
        assert getattr(s, name).get_secret_value() == value


def test_the_service_refuses_to_start_before_connecting_to_anything() -> None:
    from service.app import Service

    s = load_settings(
        twilio_base_url="https://api.twilio.com",
        database_url="postgresql://nobody@192.0.2.1:1/none",  # would hang if it tried to connect
        kafka_bootstrap_servers="192.0.2.1:1",
    )
    with pytest.raises(ConfigError, match="NOTIFIER_TWILIO_AUTH_TOKEN"):
        asyncio.run(asyncio.wait_for(Service(s).run(asyncio.Event()), 5))


def test_secrets_and_database_passwords_never_show_in_repr_str_or_dump() -> None:
    s = load_settings(
        database_url="postgresql://notifier:hunter2@db.internal:5432/notifier?sslmode=require&password=pw-two",
        twilio_auth_token="tok-secret-1",
        infobip_api_key="key-secret-2",
        sendgrid_api_key="key-secret-3",
        infobip_webhook_password="hook-secret-4",
        pii_keys="k1:" + "A" * 44,
        blind_index_key="blind-secret-5",
        link_signing_key="link-secret-6",
    )
    shown = repr(s) + str(s) + str(s.model_dump()) + s.model_dump_json() + str(s.model_dump(mode="json"))
    for secret in (
        "hunter2",
        "pw-two",
        "tok-secret",
        "key-secret",
        "hook-secret",
        "AAAA",
        "blind-secret",
        "link-secret",
    ):
        assert secret not in shown, secret
    assert "postgresql://notifier:***@db.internal:5432/notifier" in shown  # still says where it connects
    assert s.database_url.startswith("postgresql://notifier:hunter2@")  # the value itself is intact
    assert s.model_copy(update={"http_port": 1}).database_url == s.database_url
