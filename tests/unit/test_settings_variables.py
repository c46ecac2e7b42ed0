"""The environment variables the settings read, frozen: splitting the settings into groups (or any
later edit) can never silently drop or rename one. A new setting is added here on purpose."""

from __future__ import annotations

import os

import pytest
from pydantic_settings import EnvSettingsSource

from service.settings import Settings

#: Every field, as read from ``NOTIFIER_<FIELD>`` (taken from the settings before the split).
FIELDS = [
    "kafka_bootstrap_servers",
    "input_topics",
    "input_topic_pattern",
    "receipts_topic",
    "dead_letter_topic",
    "dead_letter_retention_days",
    "consumer_group",
    "batch_max_records",
    "batch_timeout_ms",
    "batches_in_flight",
    "poison_attempts",
    "rebalance_drain_s",
    "outbox_relay_interval_s",
    "outbox_lease_s",
    "email_fallback_retry_s",
    "email_fallback_attempts",
    "status_check_after_s",
    "status_check_max_age_s",
    "status_check_interval_s",
    "status_check_batch",
    "status_check_share",
    "watchdog_stall_s",
    "commit_stall_s",
    "database_url",
    "migration_database_url",
    "database_pool_size",
    "send_concurrency",
    "sms_providers",
    "email_provider",
    "send_attempts_per_provider",
    "send_deadline_s",
    "provider_timeout_s",
    "twilio_rate_per_s",
    "twilio_burst",
    "infobip_rate_per_s",
    "infobip_burst",
    "infobip_batch_max",
    "infobip_batch_requests",
    "sendgrid_rate_per_s",
    "sendgrid_burst",
    "rate_limit_scope",
    "rate_headroom",
    "breaker_window",
    "breaker_min_calls",
    "breaker_failure_ratio",
    "breaker_open_s",
    "breaker_max_open_s",
    "twilio_base_url",
    "twilio_account_sid",
    "twilio_auth_token",
    "twilio_sender",
    "infobip_base_url",
    "infobip_api_key",
    "infobip_sender",
    "sendgrid_base_url",
    "sendgrid_api_key",
    "email_sender_address",
    "email_sender_name",
    "sandbox_mode",
    "callback_base_url",
    "infobip_webhook_user",
    "infobip_webhook_password",
    "sendgrid_webhook_public_key",
    "sendgrid_signature_max_skew_s",
    "sendgrid_event_max_age_s",
    "pii_keys",
    "retention_days",
    "purge_interval_s",
    "blind_index_key",
    "public_base_url",
    "link_signing_key",
    "link_ttl_days",
    "staff_session_idle_s",
    "staff_session_max_s",
    "signin_failures_per_client",
    "signin_failures_total",
    "signin_window_s",
    "trusted_proxies",
    "allow_foreign_mobiles",
    "templates_dir",
    "brand_name",
    "contact_phone",
    "contact_email",
    "default_locale",
    "sms_max_segments",
    "http_host",
    "http_port",
    "http_reuse_port",
    "http_max_body_bytes",
    "metrics_host",
    "metrics_port",
    "workers",
    "log_level",
    "log_format",
    "event_loop",
    # quiet hours (issue 15)
    "quiet_hours",
    "quiet_hours_breakthrough",
    "quiet_release_rate_per_s",
    "quiet_release_interval_s",
    "quiet_release_lease_s",
    "quiet_release_hold_s",
    "coalesce_backlog_after_s",
    # issue 15: pickups (service/config/pickups.py)
    "dwell_places",
    "pickup_reminder_after_days",
    "pickup_reminder_max",
    "survey_base_url",
    "survey_link_key",
    "survey_link_ttl_days",
    "survey_delay_hours",
    "survey_channel",
    # issue 15: pilot mode and bad-number hygiene
    "pilot_mode",
    "bad_number_undelivered_reports",
]

#: The fields also read from a variable without the prefix, and that variable.
UNPREFIXED = {"kafka_bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS", "database_url": "DATABASE_URL"}

VARIABLES = [
    (field, variable)
    for field in FIELDS
    for variable in (f"NOTIFIER_{field.upper()}", *filter(None, [UNPREFIXED.get(field)]))
]


def test_the_settings_have_exactly_the_frozen_fields_in_their_order() -> None:
    assert set(Settings.model_fields) == set(FIELDS)
    assert len(FIELDS) == len(set(FIELDS))
    # The order is the order of the error lines of a bad configuration, of repr and of dumps.
    assert list(Settings.model_fields) == FIELDS


def test_the_settings_read_exactly_the_frozen_variables() -> None:
    # What each field's alias (or the prefix) makes the environment source look for.
    read = set()
    for name, field in Settings.model_fields.items():
        choices = getattr(field.validation_alias, "choices", None)
        read |= {str(c) for c in choices} if choices else {f"NOTIFIER_{name.upper()}"}
    assert read == {variable for _, variable in VARIABLES}


@pytest.mark.parametrize(("field", "variable"), VARIABLES)
def test_each_frozen_variable_reaches_its_field(
    monkeypatch: pytest.MonkeyPatch, field: str, variable: str
) -> None:
    for name in list(os.environ):
        if name.upper().startswith("NOTIFIER_") or name.upper() in UNPREFIXED.values():
            monkeypatch.delenv(name)
    monkeypatch.setenv(variable, "probe")
    found = EnvSettingsSource(Settings)()  # the source Settings() reads the environment with
    alias = getattr(Settings.model_fields[field].validation_alias, "choices", [field])[0]
    assert found == {alias: "probe"}
