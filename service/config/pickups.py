"""Settings of what follows a pickup notice: dwell-time places, pickup reminders, the survey link."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from service.config.parsing import split_commas
from service.domain.dwell import MAX_PLACES, OTHER_PLACE, normalise_place
from service.domain.reminders import MAX_AFTER_DAYS, MAX_REMINDERS, MAX_SPAN_DAYS
from service.domain.survey import MAX_TTL_DAYS, MIN_KEY_BYTES


class PickupSettings(BaseModel):
    """After the pickup notice: dwell time, reminders of an uncollected bike, the satisfaction survey."""

    dwell_places: Annotated[list[str], NoDecode] = Field(
        default=[],
        description="Pickup places (comma-separated, as the TMS names them) that get their own `place` "
        f"label on notifier_pickup_dwell_seconds; every other place counts as `{OTHER_PLACE}`, so the "
        f"label set stays bounded (at most {MAX_PLACES}). `notifier report dwell` shows every place.",
    )
    pickup_reminder_after_days: int = Field(
        default=3,
        ge=1,
        le=MAX_AFTER_DAYS,
        description="A pickup reminder is due this many days after ready_for_pickup while the bike is "
        "not collected, and again every as many days (reminder k at k times this).",
    )
    pickup_reminder_max: int = Field(
        default=2,
        ge=0,
        le=MAX_REMINDERS,
        description="Most reminders per order (0: none); none is due once the bike is picked up.",
    )
    survey_base_url: str | None = Field(
        default=None,
        max_length=200,
        description="The satisfaction survey's address (https), to which the signed link's token is "
        "added (`?t=`); None: no survey link.",
    )
    survey_link_key: SecretStr | None = Field(
        default=None,
        description=f"Base64 key ({MIN_KEY_BYTES}+ bytes) signing the survey links, distinct from the other "
        "keys (`notifier keys generate --kind blind-index`); required with NOTIFIER_SURVEY_BASE_URL.",
    )
    survey_link_ttl_days: int = Field(
        default=30, ge=1, le=MAX_TTL_DAYS, description="How long a survey link stays valid."
    )
    survey_delay_hours: int = Field(
        default=24, ge=1, le=14 * 24, description="The survey link is due this long after pickup."
    )
    survey_channel: Literal["sms", "email"] = Field(
        default="sms", description="How the survey link goes: SMS, or email (to customers with an address)."
    )

    @field_validator("dwell_places", mode="before")
    @classmethod
    def _split_places(cls, v: object) -> object:
        return split_commas(v)

    @field_validator("dwell_places")
    @classmethod
    def _bounded_places(cls, v: list[str]) -> list[str]:
        places = [normalise_place(p) for p in v]
        if len(places) > MAX_PLACES:
            raise ValueError(f"at most {MAX_PLACES} places (a label value each), not {len(places)}")
        if any(not p or len(p) > 100 for p in places):
            raise ValueError("each place is 1 to 100 characters")
        if OTHER_PLACE in places:
            raise ValueError(f"'{OTHER_PLACE}' is the label of every unlisted place; it cannot be listed")
        if len(set(places)) != len(places):
            raise ValueError("a place is listed twice")
        return places

    @field_validator("survey_base_url")
    @classmethod
    def _survey_url(cls, v: str | None) -> str | None:
        if v is None:
            return None
        parts = urlsplit(v)
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.fragment:
            raise ValueError("must be an http(s) URL with a host and no #fragment")
        return v

    @field_validator("survey_link_key")
    @classmethod
    def _survey_key(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None:
            return None
        try:
            raw = base64.b64decode(v.get_secret_value(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("not base64 (`notifier keys generate --kind blind-index` makes one)") from None
        if len(raw) < MIN_KEY_BYTES:
            raise ValueError(f"must decode to at least {MIN_KEY_BYTES} bytes")
        return v

    @model_validator(mode="after")
    def _reminders_within_reach(self) -> PickupSettings:
        span = self.pickup_reminder_after_days * self.pickup_reminder_max
        if span > MAX_SPAN_DAYS:
            raise ValueError(
                f"NOTIFIER_PICKUP_REMINDER_AFTER_DAYS x NOTIFIER_PICKUP_REMINDER_MAX is {span} days: the last "
                f"reminder may come at most {MAX_SPAN_DAYS} days after ready_for_pickup; lower either"
            )
        # The whole Settings has the retention too: a reminder needs the customer's sealed contact,
        # which the purge destroys NOTIFIER_RETENTION_DAYS after the order's last milestone.
        retention = getattr(self, "retention_days", None)
        if isinstance(retention, int) and span >= retention:
            raise ValueError(
                f"the last pickup reminder would be due {span} days after ready_for_pickup, when the "
                f"customer's contact is purged (NOTIFIER_RETENTION_DAYS={retention}): lower "
                "NOTIFIER_PICKUP_REMINDER_AFTER_DAYS or NOTIFIER_PICKUP_REMINDER_MAX, or raise the retention"
            )
        if self.survey_base_url is not None and self.survey_link_key is None:
            raise ValueError("NOTIFIER_SURVEY_LINK_KEY is required with NOTIFIER_SURVEY_BASE_URL")
        if self.survey_link_key is not None:
            key = self.survey_link_key.get_secret_value()
            for other in ("link_signing_key", "blind_index_key"):
                value = getattr(self, other, None)  # the whole Settings has them
                if isinstance(value, SecretStr) and value.get_secret_value() == key:
                    raise ValueError(
                        f"NOTIFIER_SURVEY_LINK_KEY is NOTIFIER_{other.upper()}: give the survey links a key of "
                        "their own (a survey tool holding it must not be able to sign anything else)"
                    )
        return self
