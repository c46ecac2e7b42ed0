"""Decisions are a function of the events and their order, never of how far an earlier attempt got.

The stale rule (``service/domain/plan.py``) through the pipeline and the fake store: the issue's
crash case made exact, events of one order on two partitions, and a property test that kills
the "process" at any store call and restarts it from the first uncommitted record.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import uuid
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.compose.render import Renderer
from service.contracts import parse_event
from service.domain.errors import StoreUnavailable
from service.domain.milestones import Milestone, milestone_for
from service.domain.model import InboundRecord, notification_id
from service.domain.outcome import ClaimRequest, OutboxRow, Outcome
from service.domain.references import MessageReferences
from service.metrics import Metrics
from service.pipeline.driver import BatchDriver
from service.pipeline.stages import build_stages
from service.privacy.blind_index import BlindIndex
from service.privacy.crypto import Keyring
from service.send.engine import DeliveryEngine
from service.testing import (
    FakeClock,
    FakeDeadLetterSink,
    FakeEmailSender,
    FakeReceiptSink,
    FakeSmsSender,
    FakeStore,
)
from tests.builders import event

REPO = Path(__file__).resolve().parents[3]
RENDERER = Renderer(
    REPO / "templates", brand="Specialized", contact_phone="+852 3001 2345", contact_email="hk@example.com"
)
BLIND = BlindIndex(os.urandom(32))
KEYS = Keyring({"k1": os.urandom(32)}, "k1")
A, R = Milestone.ARRIVED_HK_WAREHOUSE, Milestone.READY_FOR_PICKUP


@dataclass
class KilledStore(FakeStore):
    """The fake store of a process that dies (kill -9) at its ``die_at``-th call: that call and
    every later one fail, and nothing after the death is kept. ``revive`` is the restart."""

    die_at: int | None = None
    calls: int = 0
    dead: bool = False

    def _maybe_fail(self) -> None:
        super()._maybe_fail()
        self.calls += 1
        if self.dead or self.calls == self.die_at:
            self.dead = True
            raise StoreUnavailable("database: the process was killed")

    def revive(self) -> None:
        self.dead, self.die_at = False, None


REFERENCES = MessageReferences(BLIND.derive_key("message-reference"))


def pipeline(store: FakeStore, sms: FakeSmsSender) -> BatchDriver:
    """A fresh process: its own engine, limits and breakers; the store and the provider persist."""
    metrics, clock = Metrics(), FakeClock()
    engine = DeliveryEngine(
        sms=[sms],
        references=REFERENCES,
        email=FakeEmailSender(),
        limits={},
        metrics=metrics,
        clock=clock,
        sleep=clock.sleep,
        rng=random.Random(1),
    )
    return build_stages(
        store=store,
        engine=engine,
        renderer=RENDERER,
        receipts=FakeReceiptSink(),
        dead_letters=FakeDeadLetterSink(),
        metrics=metrics,
        blind_index=BLIND,
        keyring=KEYS,
    ).driver


def rec(offset: int, order: str, status: str, n: int = 1, partition: int = 0) -> InboundRecord:
    return InboundRecord("t", partition, offset, order.encode(), event(order, status, n), 1_700_000_000_000)


def states(store: FakeStore) -> dict[tuple[str, str], str]:
    return {key: row.state for key, row in store.rows.items()}


def texted(sms: FakeSmsSender) -> set[uuid.UUID]:
    refs = (REFERENCES.parse(r) for r in sms.references)
    return {ref[0] for ref in refs if ref is not None}


async def interrupted_attempt(store: FakeStore, records: list[InboundRecord], claimed: list[int]) -> None:
    """What an attempt killed mid-batch leaves: every event recorded, some pairs claimed."""
    parsed = [(r, parse_event(r.value)) for r in records]
    await store.record_events([(r, u, (m := milestone_for(u.tms_status)) and m.value) for r, u in parsed])
    await store.claim(
        [
            ClaimRequest(notification_id(u.order_id, m), u, m, "claimed")
            for i, (_, u) in enumerate(parsed)
            if i in claimed and (m := milestone_for(u.tms_status)) is not None
        ]
    )


async def test_an_earlier_milestone_read_again_after_a_crash_is_sent_though_a_later_one_was_claimed() -> None:
    # The case: [ARRIVED, READY] of one order in one batch; READY claimed, kill -9 before
    # ARRIVED's send was recorded. On the re-read, READY came *after* ARRIVED: nothing is stale.
    store, sms = FakeStore(), FakeSmsSender()
    batch = [rec(0, "A", "ARRIVED_HK_WAREHOUSE"), rec(1, "A", "READY_FOR_PICKUP")]
    await interrupted_attempt(store, batch, claimed=[1])
    await pipeline(store, sms).process_batch(batch)
    assert states(store) == {("A", A.value): "sent", ("A", R.value): "sent"}
    assert texted(sms) == {notification_id("A", A), notification_id("A", R)}


async def test_a_later_milestone_recorded_sent_first_does_not_make_the_earlier_one_stale_on_a_re_read() -> (
    None
):
    # Sends of one batch run concurrently: READY's send can be recorded before ARRIVED's. Counting
    # recorded sends would still make ARRIVED stale after a crash; the order of the events does not.
    store, sms = FakeStore(), FakeSmsSender()
    batch = [rec(0, "A", "ARRIVED_HK_WAREHOUSE"), rec(1, "A", "READY_FOR_PICKUP")]
    await interrupted_attempt(store, batch, claimed=[0, 1])
    ready = notification_id("A", R)
    sent = Outcome(ready, parse_event(batch[1].value), R, "sent", "sms", store.now, provider="fake-sms")
    await store.finish([sent], [OutboxRow(uuid.uuid4(), ready, "A", b"{}")])
    await pipeline(store, sms).process_batch(batch)
    assert states(store) == {("A", A.value): "sent", ("A", R.value): "sent"}
    assert texted(sms) == {notification_id("A", A)}  # READY was sent (and recorded) before the crash


async def test_events_of_one_order_on_two_partitions_are_ordered_as_first_read_even_after_a_crash() -> None:
    store, sms = FakeStore(), FakeSmsSender()
    arrived, ready = (
        rec(0, "A", "ARRIVED_HK_WAREHOUSE", partition=0),
        rec(0, "A", "READY_FOR_PICKUP", partition=1),
    )
    await interrupted_attempt(store, [arrived, ready], claimed=[1])  # read ARRIVED first, then READY
    # After the restart the consumer happens to read partition 1 before partition 0.
    await pipeline(store, sms).process_batch([ready])
    await pipeline(store, sms).process_batch([arrived])
    assert states(store) == {("A", A.value): "sent", ("A", R.value): "sent"}

    # Read the other way round the first time, ARRIVED is stale, whatever the order of the re-read.
    store, sms = FakeStore(), FakeSmsSender()
    await interrupted_attempt(store, [ready, arrived], claimed=[0, 1])
    await pipeline(store, sms).process_batch([arrived, ready])
    assert states(store) == {("A", A.value): "suppressed_stale", ("A", R.value): "sent"}


STATUSES = ["ARRIVED_HK_WAREHOUSE", "CUSTOMS_CLEARED", "READY_FOR_PICKUP", "IN_TRANSIT"]
EVENTS = st.lists(st.tuples(st.sampled_from("AB"), st.sampled_from(STATUSES), st.integers(1, 2)), max_size=10)


def expected(events: list[tuple[str, str, int]]) -> dict[tuple[str, str], str]:
    """From the events alone: each pair's first event is sent unless a later milestone came first."""
    first: dict[tuple[str, Milestone], int] = {}
    for i, (order, status, _) in enumerate(events):
        if (m := milestone_for(status)) is not None:
            first.setdefault((order, m), i)
    return {
        (o, m.value): "suppressed_stale"
        if any(first.get((o, later), i) < i for later in Milestone if later.rank > m.rank)
        else "sent"
        for (o, m), i in first.items()
    }


async def consume(
    store: FakeStore, sms: FakeSmsSender, records: list[InboundRecord], sizes: list[int]
) -> int:
    """Process records in batches as a consumer would; returns the offset to resume from after a crash."""
    p, i = pipeline(store, sms), 0
    for size in itertools.cycle(sizes):
        if i >= len(records):
            return i
        try:
            assert await p.process_batch(records[i : i + size]) == {}  # nothing held here
        except StoreUnavailable:
            return i  # not committed: the restart reads this batch again
        i += size
    raise AssertionError("unreachable")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=EVENTS,
    sizes=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    kill=st.integers(0, 999),
    resizes=st.lists(st.integers(1, 4), min_size=1, max_size=3),
)
def test_a_kill_at_any_store_call_and_a_restart_send_what_one_clean_run_sends(
    events: list[tuple[str, str, int]], sizes: list[int], kill: int, resizes: list[int]
) -> None:
    records = [rec(i, o, s, n) for i, (o, s, n) in enumerate(events)]

    async def run() -> None:
        clean, clean_sms = KilledStore(), FakeSmsSender()
        await consume(clean, clean_sms, records, sizes)
        assert states(clean) == expected(events)
        # The same run killed at one of the store calls it makes (any of them), then restarted.
        store, sms = KilledStore(die_at=1 + kill * clean.calls // 1000), FakeSmsSender()
        resume = await consume(store, sms, records, sizes)
        assert store.dead or not records
        store.revive()
        await consume(store, sms, records[resume:], resizes)
        assert states(store) == states(clean)
        assert texted(sms) == texted(clean_sms)  # every send at least once (a re-claim finds it)

    asyncio.run(run())
