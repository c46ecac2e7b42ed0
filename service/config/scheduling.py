"""Settings of quiet hours (Hong Kong time) and of the paced release after them."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import NoDecode

from service.config.parsing import split_commas
from service.domain.quiet_hours import QuietHours, QuietWindow, parse_breakthrough


class QuietHoursSettings(BaseModel):
    """Quiet hours: notifications decided inside the window are scheduled for its end, then released paced;
    coalescing of milestones due together."""

    quiet_hours: str | None = Field(
        default=None,
        max_length=20,
        description="The quiet window in Hong Kong time, START-END (e.g. `21:30-09:00`, may cross midnight); "
        "unset: no quiet hours. Needs NOTIFIER_PII_KEYS (the event is sealed until its release).",
    )
    quiet_hours_breakthrough: Annotated[list[str], NoDecode] = Field(
        default=[],
        max_length=10,
        description="Milestones that are sent inside the quiet window too, comma-separated "
        "(e.g. `ready_for_pickup`).",
    )
    quiet_release_rate_per_s: float = Field(
        default=5.0,
        gt=0,
        le=1000,
        description="Scheduled notifications released per second after the window, for the whole group "
        "(each gets its own slot from the window's end, so 09:00 is not a burst); keep it below the "
        "SMS providers' rates, which still bound every send. Also the most pickup reminders and survey "
        "links the follow-up job releases per second.",
    )
    quiet_release_interval_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="How often the release job (and the follow-up job: pickup reminders, survey links) "
        "looks for scheduled sends that are due.",
    )
    quiet_release_lease_s: float = Field(
        default=300.0,
        ge=30,
        le=3600,
        description="A release taken by one instance is not taken by another for this long (if its taker "
        "dies, it goes when the lease ends, the providers asked first); above the send deadline.",
    )
    quiet_release_hold_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="A release no provider could take (all down) is tried again after this.",
    )

    coalesce_backlog_after_s: float | None = Field(
        default=None,
        gt=0,
        le=7 * 86_400,
        description="Coalescing of a backlog: when one batch holds several milestones of an order whose "
        "records waited in Kafka at least this long (e.g. after an outage), only the latest is sent, the "
        "others are recorded suppressed_superseded; unset: off (live traffic notifies every milestone). "
        "Releases after quiet hours are always coalesced.",
    )

    @field_validator("quiet_hours")
    @classmethod
    def _window(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        QuietWindow.parse(v)  # a ValueError names what is wrong
        return v.strip()

    @field_validator("quiet_hours_breakthrough", mode="before")
    @classmethod
    def _split(cls, v: object) -> object:
        return split_commas(v)

    @field_validator("quiet_hours_breakthrough")
    @classmethod
    def _milestones(cls, v: list[str]) -> list[str]:
        return sorted(m.value for m in parse_breakthrough(v))

    def quiet_hours_policy(self) -> QuietHours:
        """The quiet-hours policy these settings describe (no window: none)."""
        window = QuietWindow.parse(self.quiet_hours) if self.quiet_hours else None
        return QuietHours(window, parse_breakthrough(self.quiet_hours_breakthrough))
