"""Quiet hours in the dispatch of a batch: inside the window a notification is scheduled (recorded
with its receipt and sealed event, nothing sent), a breakthrough milestone and anything outside the
window go now, an opted-out recipient is suppressed now, not scheduled."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from service.app import check_quiet_hours
from service.domain.errors import ConfigError
from service.domain.milestones import Milestone
from service.domain.model import InboundRecord, notification_id
from service.domain.quiet_hours import HKT, QuietHours, QuietWindow
from service.pipeline.stages import build_stages
from service.settings import load_settings
from tests.builders import event
from tests.unit.pipeline.test_driver import Harness

NIGHT = datetime(2026, 11, 21, 2, 0, tzinfo=HKT)


class Quiet(Harness):
    def __init__(
        self,
        now: datetime,
        breakthrough: frozenset[Milestone] = frozenset(),
        *,
        window: str = "21:30-09:00",
        backlog_after_s: float | None = None,
    ) -> None:
        super().__init__()
        self.now = now
        self.stages = build_stages(
            store=self.store,
            engine=self.pipeline_engine,
            renderer=self.renderer,
            receipts=self.receipts,
            dead_letters=self.dlq,
            metrics=self.metrics,
            blind_index=self.blind,
            keyring=self.keyring,
            clock=lambda: self.now.astimezone(UTC),
            quiet=QuietHours(QuietWindow.parse(window), breakthrough),
            coalesce_backlog_after_s=backlog_after_s,
        )
        self.driver = self.stages.driver

    def receipt(self, n: int = 0) -> dict[str, object]:
        payload: dict[str, object] = json.loads(self.receipts.published[n].payload)
        return payload


async def test_inside_the_window_a_notification_is_scheduled_not_sent() -> None:
    h = Quiet(NIGHT)
    await h.feed(event("A", "CUSTOMS_CLEARED"))
    assert h.sender.sent == []
    assert h.outcomes() == [("customs_cleared", "scheduled")]
    r = h.receipt()
    assert r["reason"] == "quiet_hours"
    assert r["channel"] == "none"
    assert datetime.fromisoformat(str(r["scheduled_for"])) == datetime(2026, 11, 21, 9, 0, tzinfo=HKT)
    # its event is sealed for the release, which renders it then
    assert await h.store.contact(notification_id("A", Milestone.CUSTOMS_CLEARED)) is not None
    await h.feed(event("A", "CUSTOMS_CLEARED", n=2))  # a TMS re-send: a duplicate of a decided one
    assert len(h.receipts.published) == 1


async def test_a_breakthrough_milestone_goes_at_once_the_others_wait() -> None:
    h = Quiet(NIGHT, frozenset({Milestone.READY_FOR_PICKUP}))
    await h.feed(event("A", "ARRIVED_HK_WAREHOUSE"), event("B", "READY_FOR_PICKUP"))
    assert sorted(h.outcomes()) == [("arrived_hk_warehouse", "scheduled"), ("ready_for_pickup", "sent")]
    assert len(h.sender.sent) == 1


async def test_outside_the_window_everything_goes_at_once() -> None:
    h = Quiet(datetime(2026, 11, 21, 9, 0, tzinfo=HKT))  # the window's end is outside it
    await h.feed(event("A", "CUSTOMS_CLEARED"))
    assert h.outcomes() == [("customs_cleared", "sent")]
    assert "scheduled_for" not in h.receipt() or h.receipt()["scheduled_for"] is None


async def test_an_opted_out_recipient_is_suppressed_now_not_scheduled() -> None:
    h = Quiet(NIGHT)
    await h.store.set_consent([h.blind.phone("+85291234567")], opted_out=True, source="operator:test")
    await h.feed(event("A", "CUSTOMS_CLEARED"))
    assert h.outcomes() == [("customs_cleared", "suppressed_opted_out")]


def test_quiet_hours_without_pii_keys_stop_start_up_saying_what_to_fix() -> None:
    s = load_settings(quiet_hours="21:30-09:00")
    with pytest.raises(ConfigError, match="NOTIFIER_QUIET_HOURS needs NOTIFIER_PII_KEYS"):
        check_quiet_hours(s, None)
    check_quiet_hours(load_settings(), None)  # no quiet hours: no keys needed for them


MIDDAY = datetime(2026, 11, 21, 12, 0, tzinfo=HKT)
THREE = ("ARRIVED_HK_WAREHOUSE", "CUSTOMS_CLEARED", "READY_FOR_PICKUP")


async def test_a_backlog_of_three_milestones_sends_the_latest_and_supersedes_the_others() -> None:
    h = Quiet(MIDDAY, backlog_after_s=600)
    waited = int((MIDDAY.timestamp() - 3600) * 1000)  # read an hour after they reached Kafka
    await h.driver.process_batch(
        [InboundRecord("t", 0, i, b"A", event("A", st), waited) for i, st in enumerate(THREE)]
    )
    assert sorted(h.outcomes()) == [
        ("arrived_hk_warehouse", "suppressed_superseded"),
        ("customs_cleared", "suppressed_superseded"),
        ("ready_for_pickup", "sent"),
    ]
    assert len(h.sender.sent) == 1
    reasons = {h.receipt(n)["milestone"]: h.receipt(n)["reason"] for n in range(3)}
    assert reasons["arrived_hk_warehouse"] == reasons["customs_cleared"] == "superseded_by_later_milestone"


async def test_live_milestones_in_one_batch_are_each_sent() -> None:
    h = Quiet(MIDDAY, backlog_after_s=600)
    fresh = int((MIDDAY.timestamp() - 2) * 1000)
    await h.driver.process_batch(
        [InboundRecord("t", 0, i, b"A", event("A", st), fresh) for i, st in enumerate(THREE)]
    )
    assert [o for _, o in h.outcomes()] == ["sent"] * 3


async def test_without_the_setting_a_backlog_is_not_coalesced() -> None:
    h = Quiet(MIDDAY)
    await h.feed(*(event("A", st) for st in THREE))  # records from 2023: a long backlog
    assert [o for _, o in h.outcomes()] == ["sent"] * 3
