"""Delivery reports lost for good (the callback URL unreachable while the SMS is delivered): the
status look-up job asks the sandbox provider, and the final status is receipted exactly once,
like a callback, on real Kafka and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
import pytest

from service.app import Service
from service.sandbox.serve import Fault, SandboxState
from service.settings import Settings
from tests.integration.conftest import free_port
from tests.integration.helpers import event, produce, read_topic, wait_until

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def running(service: Service) -> AsyncIterator[Service]:
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await wait_until(lambda: service.http_port is not None, what="the service to start")
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def steps(s: Settings, order: str) -> Counter[tuple[str, str]]:
    records = await read_topic(s.kafka_bootstrap_servers, s.receipts_topic, at_least=0, timeout_s=1)
    docs = [json.loads(r.value) for r in records]
    return Counter((d["outcome"], d["channel"]) for d in docs if d["order_id"] == order)


def looked_up(service: Service, provider: str) -> float:
    samples = service.metrics.registry.get_sample_value
    results = ("delivered", "undelivered", "pending", "not_found", "error", "stale", "deferred", "gave_up")
    return sum(
        samples("notifier_status_reconciliations_total", {"provider": provider, "result": r}) or 0.0
        for r in results
    )


@pytest.mark.parametrize(
    ("provider", "undelivered"),
    [("twilio", False), ("infobip", True)],
)
async def test_a_lost_delivery_report_is_recovered_from_the_provider_and_receipted_once(
    settings: Settings, sandbox: tuple[SandboxState, str], provider: str, undelivered: bool
) -> None:
    state, _ = sandbox
    if undelivered:
        state.set_fault(provider, Fault(undelivered_rate=1.0))
    s = settings.model_copy(
        update={
            "sms_providers": [provider],
            # The providers call back on a URL nobody answers: every delivery report is lost.
            "callback_base_url": f"http://127.0.0.1:{free_port()}",
            "status_check_after_s": 1.0,
            "status_check_interval_s": 0.3,
        }
    )
    service = Service(s)
    final = ("undelivered", "sms") if undelivered else ("delivered", "sms")
    async with running(service):
        await produce(s.kafka_bootstrap_servers, s.input_topics[0], [event("IT-LOST", "READY_FOR_PICKUP")])

        async def recovered() -> bool:
            seen = await steps(s, "IT-LOST")
            return seen[final] >= 1 and (not undelivered or seen[("sent", "email")] >= 1)

        await wait_until(recovered, timeout_s=60, what=f"the {final[0]} status from the {provider} look-up")
        # A second send, recovered the same way, lets the job run several more times meanwhile.
        # Another number: the first one's undelivered report may have marked it (a permanent code).
        await produce(
            s.kafka_bootstrap_servers,
            s.input_topics[0],
            [event("IT-NEXT", "ARRIVED_HK_WAREHOUSE", phone="9234 5678")],
        )

        async def next_recovered() -> bool:
            return (await steps(s, "IT-NEXT"))[final] >= 1

        await wait_until(next_recovered, timeout_s=60, what="the second send's status")
        looks = looked_up(service, provider)
    seen = await steps(s, "IT-LOST")
    assert seen[("sent", "sms")] == 1
    assert seen[final] == 1  # exactly once
    if undelivered:
        assert seen[("sent", "email")] == 1  # the email fallback, as a callback would have sent it
        assert len(state.listed("sendgrid")) == 2  # one per send, each after its undelivered SMS
    # The reports really were lost: the provider tried to call back and could not.
    sms_callbacks = [c for c in state.callbacks.sent + state.callbacks.failures if c.provider == provider]
    assert sms_callbacks
    assert all(c.status is None for c in sms_callbacks)
    # Asked once per send: a final answer is never asked for again.
    assert looks == 2
    conn = await asyncpg.connect(s.database_url)
    try:
        rows = await conn.fetch("SELECT order_id, state, status_checks FROM notifications ORDER BY order_id")
    finally:
        await conn.close()
    assert {r["order_id"]: r["status_checks"] for r in rows} == {"IT-LOST": 1, "IT-NEXT": 1}
    if not undelivered:
        assert {r["state"] for r in rows} == {"delivered"}
