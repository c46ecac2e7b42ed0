from __future__ import annotations

import pytest

from service.domain.errors import ConfigError
from service.settings import load_settings


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
