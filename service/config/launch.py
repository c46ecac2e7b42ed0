"""Settings of the recipient lists: pilot mode's allow-list, and when a failing number is marked."""

from __future__ import annotations

from pydantic import BaseModel, Field


class LaunchSettings(BaseModel):
    """Pilot mode (an allow-list during launch) and bad-number hygiene."""

    pilot_mode: bool = Field(
        default=False,
        description="Pilot mode: message only the recipients on the allow-list (`notifier pilot add`; an "
        "SMS only to a listed phone, an email only to a listed address); every other notification is "
        "decided and receipted as suppressed_pilot, never sent.",
    )
    bad_number_undelivered_reports: int = Field(
        default=3,
        ge=1,
        le=20,
        description="Undelivered reports in a row that mark a number undeliverable (a delivered one ends "
        "the streak; a permanent code or a refused send marks it at once): later milestones go by email, "
        "or are suppressed without one.",
    )
