"""The follow-ups of the pickup notice on real Kafka and PostgreSQL, with an injected clock (no real
waiting for days): a pickup reminder goes out N days after ready_for_pickup, none after pickup and
none beyond M; the survey link goes its delay after pickup, once, across restarts; a recipient who
opted out gets neither, and the follow-ups' receipts say so."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import aiohttp
import asyncpg
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from service.app import Service
from service.domain.follow_ups import FollowUp, follow_up_id
from service.domain.milestones import Milestone
from service.domain.model import notification_id
from service.domain.quiet_hours import HKT
from service.domain.survey import SurveySigner
from service.privacy.blind_index import BlindIndex
from service.sandbox.serve import SandboxState
from service.settings import Settings
from service.store.postgres import PostgresStore
from service.store.staff import StaffStore
from tests.contracts.follow_ups import FollowUpStoreContract, Stores
from tests.integration.conftest import random_key
from tests.integration.helpers import event, produce, read_topic, running, wait_until

pytestmark = pytest.mark.integration

READY = datetime(2026, 11, 20, 11, 0, tzinfo=HKT)  # a weekday morning: outside quiet hours
SURVEY_URL = "https://survey.example.com.hk/bike?src=sms"
NAME, PHONE, EMAIL = "Test Customer", "9123 4567", "customer@example.com"  # ``helpers.event``'s customer


class TestFollowUpStoreContractOnPostgres(FollowUpStoreContract):
    @pytest.fixture
    async def subject(self, database_url: str) -> AsyncIterator[Stores]:  # type: ignore[override]
        store = await PostgresStore.connect(database_url)
        yield Stores(store, store, store)
        await store.close()


class Clock:
    """The service's time, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now.astimezone(UTC)


def follow_ups(settings: Settings, **update: object) -> Settings:
    return settings.model_copy(
        update={
            "quiet_release_interval_s": 0.05,
            "quiet_release_rate_per_s": 50.0,
            "pickup_reminder_after_days": 3,
            "pickup_reminder_max": 2,
            **update,
        }
    )


def with_survey(settings: Settings, key: str, **update: object) -> Settings:
    return follow_ups(
        settings,
        **{
            "survey_base_url": SURVEY_URL,
            "survey_link_key": SecretStr(key),
            "survey_delay_hours": 24,
            **update,
        },
    )


def at(when: datetime, order: str, status: str, n: int = 1, **kw: object) -> tuple[bytes, bytes]:
    return event(order, status, n=n, occurred_at=when.isoformat(), locale="en", **kw)


async def receipts(s: Settings) -> list[dict[str, object]]:
    records = await read_topic(s.kafka_bootstrap_servers, s.receipts_topic, at_least=0, timeout_s=1)
    return [json.loads(r.value) for r in records if json.loads(r.value)["outcome"] != "delivered"]


async def wait_receipts(s: Settings, at_least: int) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []

    async def enough() -> bool:
        nonlocal found
        found = await receipts(s)
        return len(found) >= at_least

    await wait_until(enough, what=f"{at_least} receipts")
    return found


async def settle(seconds: float = 0.5) -> None:
    """Let the follow-up job run several times (every 0.05 s) at the clock's present time."""
    await asyncio.sleep(seconds)


async def support_steps(s: Settings, service: Service, order: str) -> list[dict[str, object]]:
    """The steps of the order's one notification on the support API, as an agent sees them."""
    pool = await asyncpg.create_pool(s.database_url, min_size=1, max_size=1)
    try:
        token = await StaffStore(pool).add(f"agent-{uuid.uuid4().hex[:8]}", "cs_agent")
    finally:
        await pool.close()
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"http://127.0.0.1:{service.http_port}/api/cs/orders",
            params={"q": order},
            headers={"Authorization": f"Bearer {token}"},
        ) as r,
    ):
        assert r.status == 200
        [card] = (await r.json())["notifications"]
        steps: list[dict[str, object]] = card["steps"]
        return steps


def upcoming(steps: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(step["time"], step["what"]["en"]) for step in steps if step["upcoming"]]  # type: ignore[index]


async def picked_up_recorded(s: Settings, order: str) -> bool:
    conn = await asyncpg.connect(s.database_url)
    try:
        return bool(
            await conn.fetchval(
                "SELECT picked_up_at IS NOT NULL FROM pickup_dwell WHERE order_id = $1", order
            )
        )
    finally:
        await conn.close()


async def scheduled(s: Settings, kind: FollowUp) -> int:
    conn = await asyncpg.connect(s.database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM scheduled_sends WHERE kind = $1", kind.value))
    finally:
        await conn.close()


async def test_a_reminder_goes_after_n_days_and_none_after_pickup(
    settings: Settings, sandbox: tuple[SandboxState, str]
) -> None:
    state, _ = sandbox
    s = follow_ups(settings)
    clock = Clock(READY + timedelta(minutes=1))
    await produce(s.kafka_bootstrap_servers, s.input_topics[0], [at(READY, "FU-0001", "READY_FOR_PICKUP")])
    with capture_logs() as logs:
        async with running(Service(s, clock=clock)) as service:
            await wait_until(lambda: len(state.messages) == 1, what="the pickup notice")
            assert await scheduled(s, FollowUp.PICKUP_REMINDER) == 1
            assert upcoming(await support_steps(s, service, "FU-0001")) == [
                ("2026-11-23 11:00", "Pickup reminder 1: Planned (unless collected first)")
            ]
            clock.now = READY + timedelta(days=3) - timedelta(minutes=1)  # not yet N days
            await settle()
            assert len(state.messages) == 1
            clock.now = READY + timedelta(days=3)
            await wait_until(lambda: len(state.messages) == 2, what="the first reminder")
            reminder = state.messages[1]
            assert reminder.to == state.messages[0].to
            assert "a reminder" in reminder.body
            assert "ready to collect for 3 days" in reminder.body
            assert "FU-0001" in reminder.body
            # The support page shows it in the pickup notice's story, named as the reminder it is.
            steps = await support_steps(s, service, "FU-0001")
            assert "Pickup reminder 1: Sent" in [step["what"]["en"] for step in steps]  # type: ignore[index]
            assert upcoming(steps) == [
                ("2026-11-26 11:00", "Pickup reminder 2: Planned (unless collected first)")
            ]

            # Collected a day later: the second reminder (due at 6 days) never goes.
            picked = READY + timedelta(days=4)
            clock.now = picked + timedelta(minutes=1)
            await produce(s.kafka_bootstrap_servers, s.input_topics[0], [at(picked, "FU-0001", "PICKED_UP")])
            await wait_until(lambda: picked_up_recorded(s, "FU-0001"), what="the pickup")
            assert upcoming(await support_steps(s, service, "FU-0001")) == []  # collected: no reminder
            clock.now = READY + timedelta(days=6)
            await settle()
            clock.now = READY + timedelta(days=12)
            await settle()
            decided = await wait_receipts(s, 2)
            metrics = service.metrics.render().decode()

    assert len(state.messages) == 2, "a reminder after pickup"
    assert await scheduled(s, FollowUp.PICKUP_REMINDER) == 0
    notice = notification_id("FU-0001", Milestone.READY_FOR_PICKUP)
    assert [(d["outcome"], d.get("follow_up"), d.get("follow_up_number")) for d in decided] == [
        ("sent", None, None),
        ("sent", "pickup_reminder", 1),
    ]
    first, second = decided
    assert first["notification_id"] == second["notification_id"] == str(notice)
    assert second["milestone"] == "ready_for_pickup"
    assert second["receipt_id"] != first["receipt_id"]
    assert second["consent_state"] == "no_record"
    assert datetime.fromisoformat(str(second["decided_at"])) >= READY + timedelta(days=3)
    assert 'notifier_follow_ups_total{kind="pickup_reminder",result="sent"} 1.0' in metrics
    assert 'notifier_follow_ups_total{kind="pickup_reminder",result="picked_up"} 1.0' in metrics
    # No personal data on the new paths: the schedule, the follow-ups, their receipts, logs, metrics.
    conn = await asyncpg.connect(s.database_url)
    try:
        rows = []
        for table in ("follow_ups", "scheduled_sends", "receipt_outbox", "pickup_dwell"):
            rows += await conn.fetch(f"SELECT * FROM {table}")  # noqa: S608  # fixed table names
    finally:
        await conn.close()
    assert any(e["event"] == "follow_up_decided" for e in logs)  # the logs were captured
    text = "\n".join(str(dict(r)) for r in rows) + json.dumps(decided) + repr(logs) + metrics
    digits = PHONE.replace(" ", "")
    for pii in (PHONE, digits, "+852" + digits, NAME, EMAIL):
        assert pii not in text


async def test_no_more_than_m_reminders_each_once_across_a_restart(
    settings: Settings, sandbox: tuple[SandboxState, str]
) -> None:
    state, _ = sandbox
    s = follow_ups(settings, pickup_reminder_after_days=1, pickup_reminder_max=2)
    clock = Clock(READY + timedelta(minutes=1))
    await produce(s.kafka_bootstrap_servers, s.input_topics[0], [at(READY, "FU-0002", "READY_FOR_PICKUP")])
    async with running(Service(s, clock=clock)):
        await wait_until(lambda: len(state.messages) == 1, what="the pickup notice")
        clock.now = READY + timedelta(days=1)
        await wait_until(lambda: len(state.messages) == 2, what="reminder 1")
    # Restarted: reminder 1 is not sent again, reminder 2 goes a day later, and then no more.
    async with running(Service(s, clock=clock)):
        await settle()
        assert len(state.messages) == 2
        clock.now = READY + timedelta(days=2)
        await wait_until(lambda: len(state.messages) == 3, what="reminder 2")
        for days in (3, 4, 10):
            clock.now = READY + timedelta(days=days)
            await settle(0.3)
        decided = await wait_receipts(s, 3)
    assert len(state.messages) == 3, "more than M reminders"
    assert "for 2 days" in state.messages[2].body
    assert [(d.get("follow_up"), d.get("follow_up_number")) for d in decided] == [
        (None, None),
        ("pickup_reminder", 1),
        ("pickup_reminder", 2),
    ]
    assert await scheduled(s, FollowUp.PICKUP_REMINDER) == 0


async def test_the_survey_link_goes_after_its_delay_once_across_a_restart(
    settings: Settings, sandbox: tuple[SandboxState, str]
) -> None:
    state, _ = sandbox
    key = random_key()
    s = with_survey(settings, key, pickup_reminder_max=0)
    picked = READY + timedelta(days=1)
    clock = Clock(picked + timedelta(minutes=1))
    await produce(
        s.kafka_bootstrap_servers,
        s.input_topics[0],
        [at(READY, "FU-0003", "READY_FOR_PICKUP"), at(picked, "FU-0003", "PICKED_UP")],
    )
    async with running(Service(s, clock=clock)):
        await wait_until(lambda: len(state.messages) == 1, what="the pickup notice")
        await wait_until(lambda: picked_up_recorded(s, "FU-0003"), what="the pickup")
        assert await scheduled(s, FollowUp.SURVEY) == 1
        clock.now = picked + timedelta(hours=24) - timedelta(minutes=1)
        await settle()
        assert len(state.messages) == 1
    assert await scheduled(s, FollowUp.SURVEY) == 1  # durable: a row, not a timer of the stopped instance

    clock.now = picked + timedelta(hours=24)
    async with running(Service(s, clock=clock)):
        await wait_until(lambda: len(state.messages) == 2, what="the survey link")
        # The TMS re-sends the pickup: not a second survey.
        await produce(s.kafka_bootstrap_servers, s.input_topics[0], [at(picked, "FU-0003", "PICKED_UP", n=2)])
        await settle()
    clock.now = picked + timedelta(days=5)
    async with running(Service(s, clock=clock)):
        await settle()
        decided = await wait_receipts(s, 2)

    assert len(state.messages) == 2, "the survey link went twice"
    survey = state.messages[1]
    assert "survey" in survey.body
    [url] = [w for w in survey.body.split() if w.startswith("https://survey.example.com.hk/")]
    parts = urlsplit(url)
    assert parse_qs(parts.query)["src"] == ["sms"]
    [token] = parse_qs(parts.query)["t"]
    signer = SurveySigner(base64.b64decode(key), SURVEY_URL)
    ref = signer.verify(token, now=clock())
    notice = notification_id("FU-0003", Milestone.READY_FOR_PICKUP)
    assert ref.survey_id == signer.survey_id(notice)
    assert ref.locale == "en"
    assert [(d["outcome"], d.get("follow_up")) for d in decided] == [("sent", None), ("sent", "survey")]
    assert decided[1]["notification_id"] == str(notice)
    assert datetime.fromisoformat(str(decided[1]["decided_at"])) >= picked + timedelta(hours=24)
    assert await scheduled(s, FollowUp.SURVEY) == 0


async def test_opted_out_recipients_get_neither_reminder_nor_survey(
    settings: Settings, sandbox: tuple[SandboxState, str]
) -> None:
    state, _ = sandbox
    s = with_survey(settings, random_key(), pickup_reminder_after_days=1, pickup_reminder_max=1)
    blind = BlindIndex(base64.b64decode(s.blind_index_key.get_secret_value()))  # type: ignore[union-attr]
    early, late = "9456 1230", "9456 1231"  # opted out before anything; after the pickup notice
    store = await PostgresStore.connect(s.database_url)
    try:
        await store.set_consent(
            [blind.phone("+852" + early.replace(" ", ""))], opted_out=True, source="operator"
        )
    finally:
        await store.close()
    clock = Clock(READY + timedelta(minutes=1))
    await produce(
        s.kafka_bootstrap_servers,
        s.input_topics[0],
        [
            at(READY, "FU-0004", "READY_FOR_PICKUP", phone=early),
            at(READY, "FU-0005", "READY_FOR_PICKUP", phone=late),
        ],
    )
    async with running(Service(s, clock=clock)):
        await wait_until(lambda: len(state.messages) == 1, what="the pickup notice of the second")
        store = await PostgresStore.connect(s.database_url)
        try:
            await store.set_consent(
                [blind.phone("+852" + late.replace(" ", ""))], opted_out=True, source="operator"
            )
        finally:
            await store.close()
        clock.now = READY + timedelta(days=1)  # the reminders are due
        await wait_receipts(s, 3)
        picked = READY + timedelta(days=1, hours=2)
        clock.now = picked + timedelta(minutes=1)
        await produce(
            s.kafka_bootstrap_servers,
            s.input_topics[0],
            [at(picked, "FU-0004", "PICKED_UP", phone=early), at(picked, "FU-0005", "PICKED_UP", phone=late)],
        )
        await wait_until(lambda: picked_up_recorded(s, "FU-0005"), what="the pickups")
        clock.now = picked + timedelta(days=2)  # the survey links are due
        await wait_receipts(s, 4)
        await settle()
        decided = await receipts(s)

    assert [m.to for m in state.messages] == [state.messages[0].to]  # the second's pickup notice only
    by_order: dict[str, list[tuple[object, object]]] = {}
    for d in decided:
        by_order.setdefault(str(d["order_id"]), []).append((d["outcome"], d.get("follow_up")))
    # Opted out before: the pickup notice was suppressed and kept no contact; nothing follows it.
    assert by_order["FU-0004"] == [("suppressed_opted_out", None)]
    # Opted out after the notice: each follow-up is decided, suppressed, and receipted.
    assert by_order["FU-0005"] == [
        ("sent", None),
        ("suppressed_opted_out", "pickup_reminder"),
        ("suppressed_opted_out", "survey"),
    ]
    assert all(d["consent_state"] == "opted_out" for d in decided if d.get("follow_up"))
    assert follow_up_id("FU-0005", FollowUp.PICKUP_REMINDER) != follow_up_id("FU-0005", FollowUp.SURVEY)


async def test_the_store_gives_a_due_follow_up_to_one_taker_and_records_it_once(settings: Settings) -> None:
    s = follow_ups(settings)
    clock = Clock(READY + timedelta(minutes=1))
    await produce(s.kafka_bootstrap_servers, s.input_topics[0], [at(READY, "FU-0006", "READY_FOR_PICKUP")])
    async with running(Service(s.model_copy(update={"pickup_reminder_max": 0}), clock=clock)):
        await wait_receipts(s, 1)
    store = await PostgresStore.connect(s.database_url)
    try:
        due = READY + timedelta(days=3)
        assert await store.schedule_follow_ups([(FollowUp.PICKUP_REMINDER, "FU-0006", due)]) == 1
        assert await store.schedule_follow_ups([(FollowUp.PICKUP_REMINDER, "FU-0006", due)]) == 0  # kept
        assert await store.schedule_follow_ups([(FollowUp.SURVEY, "NO-NOTICE", due)]) == 0  # no notice
        kinds = [FollowUp.PICKUP_REMINDER, FollowUp.SURVEY]
        assert (
            await store.take_due_follow_ups(kinds, now=due - timedelta(seconds=1), limit=5, lease_s=60) == []
        )
        first, second = await asyncio.gather(
            store.take_due_follow_ups(kinds, now=due, limit=5, lease_s=60),
            store.take_due_follow_ups(kinds, now=due, limit=5, lease_s=60),
        )
        [taken] = first + second  # two takers at once never share a row
        assert (taken.kind, taken.order_id, taken.releases, taken.decided) == (
            FollowUp.PICKUP_REMINDER,
            "FU-0006",
            1,
            0,
        )
        assert taken.ready_at == READY
        assert taken.picked_up_at is None
        assert (
            await store.take_due_follow_ups(kinds, now=due + timedelta(seconds=59), limit=5, lease_s=60) == []
        )
        [again] = await store.take_due_follow_ups(kinds, now=due + timedelta(seconds=60), limit=5, lease_s=60)
        assert again.retaken  # the lease ended: an earlier take never finished
    finally:
        await store.close()


async def test_a_pickup_notice_read_after_the_pickup_is_stale_and_nothing_follows_it(
    settings: Settings, sandbox: tuple[SandboxState, str]
) -> None:
    state, _ = sandbox
    s = follow_ups(settings, pickup_reminder_after_days=1)
    clock = Clock(READY + timedelta(hours=2))
    await produce(
        s.kafka_bootstrap_servers,
        s.input_topics[0],
        [at(READY + timedelta(hours=1), "FU-0007", "PICKED_UP"), at(READY, "FU-0007", "READY_FOR_PICKUP")],
    )
    async with running(Service(s, clock=clock)):
        [decided] = await wait_receipts(s, 1)
        clock.now = READY + timedelta(days=2)
        await settle()
    assert (decided["milestone"], decided["outcome"]) == ("ready_for_pickup", "suppressed_stale")
    assert decided["reason"] == "later_milestone_already_reached"
    assert state.messages == []
    assert await scheduled(s, FollowUp.PICKUP_REMINDER) == 0


async def test_a_reminder_due_at_night_goes_at_the_quiet_windows_end_and_the_survey_by_email(
    settings: Settings, sandbox: tuple[SandboxState, str]
) -> None:
    state, _ = sandbox
    evening = datetime(2026, 11, 20, 23, 0, tzinfo=HKT)  # the pickup notice breaks through
    s = with_survey(
        settings,
        random_key(),
        pickup_reminder_after_days=1,
        pickup_reminder_max=1,
        survey_channel="email",
        survey_delay_hours=1,
        quiet_hours="21:30-09:00",
        quiet_hours_breakthrough=["ready_for_pickup"],
    )
    clock = Clock(evening + timedelta(minutes=1))
    await produce(s.kafka_bootstrap_servers, s.input_topics[0], [at(evening, "FU-0008", "READY_FOR_PICKUP")])
    async with running(Service(s, clock=clock)):
        await wait_until(lambda: len(state.messages) == 1, what="the pickup notice")
        clock.now = evening + timedelta(days=1)  # 23:00 the next day: due, but inside quiet hours
        await settle()
        clock.now = datetime(2026, 11, 22, 8, 59, tzinfo=HKT)
        await settle()
        assert len(state.messages) == 1, "a reminder inside the quiet hours"
        clock.now = datetime(2026, 11, 22, 9, 0, tzinfo=HKT)
        await wait_until(lambda: len(state.messages) == 2, what="the reminder at the window's end")
        picked = datetime(2026, 11, 22, 10, 0, tzinfo=HKT)
        clock.now = picked + timedelta(minutes=1)
        await produce(s.kafka_bootstrap_servers, s.input_topics[0], [at(picked, "FU-0008", "PICKED_UP")])
        await wait_until(lambda: picked_up_recorded(s, "FU-0008"), what="the pickup")
        clock.now = picked + timedelta(hours=1)
        await wait_until(lambda: len(state.messages) == 3, what="the survey link")
        decided = await wait_receipts(s, 3)
    reminder, survey = state.messages[1], state.messages[2]
    assert reminder.provider == "twilio"
    assert (survey.provider, survey.to) == ("sendgrid", EMAIL)  # by email, as configured
    assert SURVEY_URL.split("?", maxsplit=1)[0] in survey.body
    [r] = [d for d in decided if d.get("follow_up") == "pickup_reminder"]
    assert datetime.fromisoformat(str(r["decided_at"])) >= datetime(2026, 11, 22, 9, 0, tzinfo=HKT)
    [sv] = [d for d in decided if d.get("follow_up") == "survey"]
    assert (sv["outcome"], sv["channel"]) == ("sent", "email")
