"""The pickup settings: bounded place labels, reminders the purge cannot outrun, a signed survey link."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import pytest

from service.app import reminder_policy, survey_signer
from service.config.pickups import PickupSettings
from service.domain.errors import ConfigError
from service.settings import load_settings

KEY = base64.b64encode(bytes(range(32))).decode()


def test_the_defaults_are_valid_and_remind_within_the_retention() -> None:
    s = load_settings()
    assert (s.pickup_reminder_after_days, s.pickup_reminder_max) == (3, 2)
    assert s.dwell_places == []
    assert s.survey_base_url is None


def test_places_are_a_comma_separated_list_spelt_one_way() -> None:
    assert PickupSettings(dwell_places="Kwun Tong ,  Sha  Tin").dwell_places == ["Kwun Tong", "Sha Tin"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"dwell_places": ",".join(f"p{i}" for i in range(51))}, "at most 50 places"),
        ({"dwell_places": "Kwun Tong, other"}, "'other' is the label of every unlisted place"),
        ({"dwell_places": "Kwun Tong, Kwun  Tong"}, "a place is listed twice"),
        ({"dwell_places": ["x" * 101]}, "each place is 1 to 100 characters"),
        ({"pickup_reminder_after_days": 0}, "greater than or equal to 1"),
        ({"pickup_reminder_max": 6}, "less than or equal to 5"),
        ({"pickup_reminder_after_days": 30, "pickup_reminder_max": 3}, "is 90 days"),
        ({"survey_base_url": "ftp://survey.example"}, "must be an http"),
        ({"survey_base_url": "https://s.example/" + "s" * 190, "survey_link_key": KEY}, "at most 200"),
        ({"survey_base_url": "https://survey.example/s#x", "survey_link_key": KEY}, "no #fragment"),
        ({"survey_base_url": "https://survey.example/s"}, "NOTIFIER_SURVEY_LINK_KEY is required"),
        ({"survey_link_key": "not base64!"}, "not base64"),
        ({"survey_link_key": base64.b64encode(b"short").decode()}, "at least 32 bytes"),
    ],
)
def test_a_bad_value_stops_start_up_saying_what_to_fix(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(**values)


def test_reminders_due_after_the_purge_would_destroy_the_contact_are_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(retention_days=10, pickup_reminder_after_days=5, pickup_reminder_max=2)
    text = str(caught.value)
    assert "NOTIFIER_RETENTION_DAYS=10" in text
    assert "NOTIFIER_PICKUP_REMINDER_AFTER_DAYS" in text
    assert "\n  : " not in text  # a rule across settings names them itself, with no empty variable
    assert load_settings(retention_days=11, pickup_reminder_after_days=5, pickup_reminder_max=2)


def test_a_survey_link_needs_its_key_and_gets_it() -> None:
    s = load_settings(survey_base_url="https://survey.example.com.hk/hk?src=sms", survey_link_key=KEY)
    assert s.survey_link_key is not None
    assert KEY not in repr(s)


@pytest.mark.parametrize("other", ["link_signing_key", "blind_index_key"])
def test_the_survey_key_is_a_key_of_its_own(other: str) -> None:
    with pytest.raises(ConfigError, match=f"NOTIFIER_SURVEY_LINK_KEY is NOTIFIER_{other.upper()}"):
        load_settings(survey_base_url="https://survey.example.com.hk/hk", survey_link_key=KEY, **{other: KEY})


def test_the_settings_build_the_survey_signer_and_the_reminder_policy() -> None:
    assert survey_signer(load_settings()) is None
    s = load_settings(
        survey_base_url="https://survey.example.com.hk/hk", survey_link_key=KEY, survey_link_ttl_days=7
    )
    signer = survey_signer(s)
    assert signer is not None
    now = datetime(2026, 11, 25, tzinfo=UTC)
    token = signer.url(uuid.uuid4(), "en", now).rsplit("t=", 1)[1]
    assert signer.verify(token, now).expires_at == datetime(2026, 12, 2, tzinfo=UTC)
    policy = reminder_policy(load_settings(pickup_reminder_after_days=4, pickup_reminder_max=3))
    assert (policy.after_days, policy.max_reminders) == (4, 3)
