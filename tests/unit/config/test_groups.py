"""The settings' groups: each field declared by exactly one group, each group validating its own."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings

from service.config.consuming import KafkaSettings
from service.config.content import ContentSettings
from service.config.database import DatabaseSettings
from service.config.public_pages import PublicPageSettings
from service.config.sending import SendingSettings
from service.settings import Settings

GROUPS = [base for base in Settings.__bases__ if base is not BaseSettings]


def test_every_field_is_declared_by_exactly_one_group() -> None:
    # A field in two groups would silently take the definition of whichever comes first in the MRO.
    declared = [name for group in GROUPS for name in group.model_fields]
    assert sorted(declared) == sorted(Settings.model_fields)
    assert all(issubclass(g, BaseModel) and not issubclass(g, BaseSettings) for g in GROUPS)


def test_the_groups_read_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_DATABASE_POOL_SIZE", "7")
    assert DatabaseSettings().database_pool_size == 4
    assert Settings().database_pool_size == 7


def test_each_group_splits_its_comma_separated_lists() -> None:
    assert KafkaSettings(input_topics="a.v1, b.v1").input_topics == ["a.v1", "b.v1"]
    assert SendingSettings(sms_providers="infobip").sms_providers == ["infobip"]
    proxies = PublicPageSettings(trusted_proxies="10.0.0.0/8, ::1").trusted_proxies
    assert proxies == ["10.0.0.0/8", "::1"]


@pytest.mark.parametrize(
    ("group", "values", "message"),
    [
        (DatabaseSettings, {"NOTIFIER_DATABASE_URL": "mysql://x"}, "must be a postgresql:// URL"),
        (DatabaseSettings, {"migration_database_url": "mysql://x"}, "must be a postgresql:// URL"),
        (PublicPageSettings, {"trusted_proxies": "10.0.0.0/33"}, "does not appear to be an IPv4 or IPv6"),
        (ContentSettings, {"templates_dir": "/nonexistent"}, "directory /nonexistent does not exist"),
    ],
)
def test_each_group_validates_its_own_fields(
    group: type[BaseModel], values: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        group(**values)
