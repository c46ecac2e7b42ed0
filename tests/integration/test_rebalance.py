"""A second instance joins mid-run: the first drains its batch in flight before giving partitions up."""

from __future__ import annotations

import collections

import asyncpg
import pytest

from service.app import Service
from service.sandbox.serve import Fault, SandboxState
from service.settings import Settings
from tests.integration.conftest import free_port
from tests.integration.helpers import event, group_caught_up, produce, running, wait_until

pytestmark = pytest.mark.integration


async def test_a_rebalance_mid_batch_drains_and_hands_over_without_re_claims(
    settings: Settings, sandbox: tuple[SandboxState, str]
) -> None:
    state, _ = sandbox
    state.set_fault("twilio", Fault(latency_ms=300))  # batches take seconds: a rebalance lands mid-batch
    first = settings.model_copy(update={"send_concurrency": 2, "batch_max_records": 60})
    second = first.model_copy(update={"http_port": free_port(), "callback_base_url": None})
    orders = [f"RB-{i:04d}" for i in range(120)]
    await produce(
        first.kafka_bootstrap_servers,
        first.input_topics[0],
        [event(o, "CUSTOMS_CLEARED", phone=f"9{2_000_000 + i:07d}") for i, o in enumerate(orders)],
    )
    async with running(Service(first)) as a:
        await wait_until(lambda: _sent_at_least(state, 10), what="the first instance to be sending")
        async with running(Service(second)) as b:
            await wait_until(lambda: _both_assigned(a, b), what="the group to rebalance over both instances")
            await wait_until(
                lambda: group_caught_up(
                    first.kafka_bootstrap_servers, first.consumer_group, first.input_topics[0]
                ),
                what="every offset committed",
                timeout_s=60,
            )

    sends = collections.Counter(m.to for m in state.messages)
    assert len(sends) == len(orders)
    assert max(sends.values()) == 1, "an order was texted twice across the rebalance"
    conn = await asyncpg.connect(first.database_url)
    try:
        rows = await conn.fetch("SELECT state, claims FROM notifications")
    finally:
        await conn.close()
    assert {r["state"] for r in rows} <= {"sent", "delivered"}
    # Drained: the batch in flight finished (or held what had not begun) and committed before the
    # partitions moved, so the new owner never found a claim left behind.
    assert max(r["claims"] for r in rows) == 1


async def _sent_at_least(state: SandboxState, n: int) -> bool:
    return len(state.messages) >= n


async def _both_assigned(a: Service, b: Service) -> bool:
    return bool(a.assignment() and b.assignment())
