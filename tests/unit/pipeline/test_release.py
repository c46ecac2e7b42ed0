"""The release job on fakes: what each taken send comes to (sent, superseded, opted out meanwhile,
erased meanwhile, decided meanwhile, held), and nothing while sends are paused."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from service.domain.due_sends import DueKind, DueSend
from service.domain.errors import ProviderRejected
from service.domain.lifecycle import State
from service.domain.milestones import Milestone
from service.domain.model import notification_id
from service.domain.outcome import SealedContact
from service.domain.quiet_hours import HKT
from service.pipeline.release import Release
from service.testing import FakeStore
from tests.builders import event
from tests.unit.pipeline.test_quiet_hours_dispatch import NIGHT, Quiet

END = datetime(2026, 11, 21, 9, 0, tzinfo=HKT)


class FakeSchedule:
    """``scheduled_sends`` over the fake store's notifications: a row per scheduled one."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.rows: dict[uuid.UUID, dict[str, object]] = {}

    def schedule_all(self) -> None:
        for row in self.store.rows.values():
            if row.state == State.SCHEDULED:
                assert row.outcome is not None
                self.rows[row.request.notification_id] = {
                    "due": row.outcome.scheduled_for,
                    "not_before": None,
                    "releases": 0,
                    "first": None,
                }

    async def take_due(
        self, kind: DueKind, *, now: datetime, limit: int, lease_s: float, rate_per_s: float
    ) -> list[DueSend]:
        by_id = {r.request.notification_id: r for r in self.store.rows.values()}
        taken = []
        for nid, s in list(self.rows.items())[:limit]:
            if s["due"] > now or (s["not_before"] is not None and s["not_before"] > now):  # type: ignore[operator]
                continue
            s["not_before"] = now + timedelta(seconds=lease_s)
            s["releases"] = int(s["releases"]) + 1  # type: ignore[call-overload]
            s["first"] = s["first"] or now
            row = by_id[nid]
            u = row.request.update
            latest = max(
                r.request.milestone.rank for r in by_id.values() if r.request.update.order_id == u.order_id
            )
            taken.append(
                DueSend(
                    nid,
                    nid,
                    u.order_id,
                    u.waybill,
                    u.event_id,
                    u.occurred_at,
                    row.request.milestone,
                    State(row.state),
                    int(s["releases"]),  # type: ignore[call-overload]
                    s["first"],  # type: ignore[arg-type]
                    latest,
                )
            )
        return taken

    async def release_later(
        self, schedule_ids: Sequence[uuid.UUID], *, not_before: datetime, given_back: bool
    ) -> None:
        for sid in schedule_ids:
            self.rows[sid]["not_before"] = not_before
            if given_back:
                self.rows[sid]["releases"] = int(self.rows[sid]["releases"]) - 1  # type: ignore[call-overload]

    async def drop_scheduled(self, schedule_ids: Sequence[uuid.UUID]) -> None:
        for sid in schedule_ids:
            self.rows.pop(sid, None)

    async def contact(self, notification: uuid.UUID) -> SealedContact | None:
        return await self.store.contact(notification)

    async def planned_releases(
        self, notifications: Sequence[uuid.UUID], *, rate_per_s: float
    ) -> dict[uuid.UUID, datetime]:
        return {}


class Night(Quiet):
    def __init__(self) -> None:
        super().__init__(NIGHT)
        self.schedule = FakeSchedule(self.store)
        self.paused = False
        self.release = Release(
            store=self.schedule,
            sender=self.stages.sender,
            reports=self.stages.reports,
            keyring=self.keyring,
            metrics=self.metrics,
            clock=lambda: self.now.astimezone(UTC),
            rate_per_s=5.0,
            interval_s=1.0,
            lease_s=300.0,
            hold_s=30.0,
            paused=lambda: self.paused,
        )

    async def night(self, *events: bytes) -> None:
        await self.feed(*events)
        self.schedule.schedule_all()

    def released(self) -> list[tuple[str, str]]:
        return [(m, o) for m, o in self.outcomes() if o != "scheduled"]

    def counted(self, result: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "notifier_scheduled_releases_total", {"result": result}
        )
        return value or 0.0


async def test_nothing_is_taken_before_the_windows_end_then_it_is_sent_and_dropped() -> None:
    h = Night()
    await h.night(event("A", "CUSTOMS_CLEARED"))
    h.now = END - timedelta(seconds=1)
    assert await h.release.run_once() == 0
    h.now = END
    assert await h.release.run_once() == 1
    assert h.released() == [("customs_cleared", "sent")]
    assert len(h.sender.sent) == 1
    assert h.schedule.rows == {}
    assert h.counted("sent") == 1
    assert await h.release.run_once() == 0  # never twice


async def test_superseded_ones_get_their_receipt_and_no_sms() -> None:
    h = Night()
    await h.night(event("A", "ARRIVED_HK_WAREHOUSE"), event("A", "CUSTOMS_CLEARED"))
    h.now = END
    await h.release.run_once()
    assert sorted(h.released()) == [
        ("arrived_hk_warehouse", "suppressed_superseded"),
        ("customs_cleared", "sent"),
    ]
    assert len(h.sender.sent) == 1
    assert h.counted("suppressed_superseded") == 1


async def test_an_opt_out_during_the_night_is_honoured_at_the_release() -> None:
    h = Night()
    await h.night(event("A", "CUSTOMS_CLEARED"))
    await h.store.set_consent([h.blind.phone("+85291234567")], opted_out=True, source="operator:test")
    h.now = END
    await h.release.run_once()
    assert h.released() == [("customs_cleared", "suppressed_opted_out")]
    assert h.sender.sent == []


async def test_an_erased_event_fails_with_its_reason_never_a_made_up_message() -> None:
    h = Night()
    await h.night(event("A", "CUSTOMS_CLEARED"))
    h.store.contacts.clear()  # erased by `notifier erase` during the night
    h.now = END
    await h.release.run_once()
    assert h.released() == [("customs_cleared", "failed")]
    assert json.loads(h.receipts.published[-1].payload)["reason"] == "no_sealed_event"
    assert h.sender.sent == []


async def test_one_decided_meanwhile_is_only_dropped() -> None:
    h = Night()
    await h.night(event("A", "CUSTOMS_CLEARED"))
    nid = notification_id("A", Milestone.CUSTOMS_CLEARED)
    next(r for r in h.store.rows.values() if r.request.notification_id == nid).state = State.SENT
    h.now = END
    await h.release.run_once()
    assert h.released() == []
    assert h.sender.sent == []
    assert h.schedule.rows == {}


async def test_held_when_no_provider_can_take_it_then_released_after_the_hold() -> None:
    h = Night()
    await h.night(event("A", "CUSTOMS_CLEARED"))
    h.sender.errors.append(ProviderRejected("sms-a", "20003"))
    h.backup.errors.append(ProviderRejected("sms-b", "401"))
    h.email.errors.append(ProviderRejected("fake-email", "403"))
    h.now = END
    await h.release.run_once()
    assert h.released() == []  # held: still scheduled, no receipt
    assert h.counted("held") == 1
    nid = notification_id("A", Milestone.CUSTOMS_CLEARED)
    assert h.schedule.rows[nid]["releases"] == 0  # given back: the next take is not a re-take
    h.now = END + timedelta(seconds=29)
    assert await h.release.run_once() == 0
    h.now = END + timedelta(seconds=30)
    await h.release.run_once()
    assert h.released() == [("customs_cleared", "sent")]


async def test_nothing_is_released_while_sends_are_paused() -> None:
    h = Night()
    await h.night(event("A", "CUSTOMS_CLEARED"))
    h.now, h.paused = END, True
    assert await h.release.run_once() == 0
    assert h.sender.sent == []
