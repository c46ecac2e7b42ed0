"""Chaos: the service as a process on the real stack, broken on purpose; invariants checked after.

Workload: orders with their milestones shuffled, TMS duplicates and malformed lines. After each
scenario the verifier checks, from the database, the sandbox's records and the Kafka topics:
every (order, milestone) reached a decision; every decision has a receipt; every send beyond
one per (order, milestone) is matched by a counted re-claim, and there are at most the
batch of them per crash; every malformed event is on the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import signal
import socket
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from service.kafka.admin import ensure_topics
from service.kafka.consumer import read_all
from service.privacy.crypto import Keyring
from service.sandbox.server import Fault, SandboxState, run_sandbox
from tests.integration.helpers import event, group_caught_up, produce

pytestmark = pytest.mark.chaos

REPO = Path(__file__).resolve().parents[2]
STATUSES = ["ARRIVED_HK_WAREHOUSE", "CUSTOMS_CLEARED", "READY_FOR_PICKUP"]
IN_FLIGHT = 8
BATCH = 100


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Rig:
    env: dict[str, str]
    state: SandboxState
    malformed: int
    pairs: set[tuple[str, str]]

    @property
    def url(self) -> str:
        return self.env["DATABASE_URL"]

    async def start(self) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "service",
            "run",
            env=self.env,
            cwd=REPO,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )

    async def undecided(self) -> int:
        conn = await asyncpg.connect(self.url)
        try:
            rows = await conn.fetch("SELECT order_id, milestone, state FROM notifications")
        finally:
            await conn.close()
        done = {(r["order_id"], r["milestone"]) for r in rows if r["state"] != "claimed"}
        return len(self.pairs - done)

    async def settle(self, timeout_s: float = 90) -> float:
        """Wait until every pair is decided and every offset committed; returns the seconds it took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            caught_up = await group_caught_up(
                self.env["KAFKA_BOOTSTRAP_SERVERS"],
                self.env["NOTIFIER_CONSUMER_GROUP"],
                self.env["NOTIFIER_INPUT_TOPICS"],
            )
            if caught_up and await self.undecided() == 0:
                return time.monotonic() - started
            await asyncio.sleep(0.5)
        raise AssertionError(f"not settled after {timeout_s}s: {await self.undecided()} pairs undecided")

    async def verify(self, crashes: int) -> dict[str, int]:
        conn = await asyncpg.connect(self.url)
        try:
            rows = await conn.fetch("SELECT id, order_id, milestone, state, claims FROM notifications")
        finally:
            await conn.close()
        assert {(r["order_id"], r["milestone"]) for r in rows} == self.pairs
        assert all(r["state"] != "claimed" for r in rows)
        bootstrap = self.env["KAFKA_BOOTSTRAP_SERVERS"]
        receipts = await read_all(bootstrap, self.env["NOTIFIER_RECEIPTS_TOPIC"])
        receipted = {json.loads(r.value)["notification_id"] for r in receipts}
        missing = {str(r["id"]) for r in rows} - receipted
        assert not missing, f"{len(missing)} decisions without a receipt"
        # The body names the order and the milestone: the same body twice is the same notification twice.
        sends = Counter((m.to, m.body) for m in self.state.messages)
        extra = sum(n - 1 for n in sends.values())
        reclaimed = sum(r["claims"] - 1 for r in rows)
        assert extra <= reclaimed, f"{extra} duplicate sends but only {reclaimed} counted re-claims"
        # Outcomes are recorded per batch, so a crash can resend what its batch sent but had not
        # recorded yet: at most one batch per crash. (Issue 6 narrows this to the in-flight limit.)
        assert extra <= BATCH * crashes
        dead = await read_all(bootstrap, self.env["NOTIFIER_DEAD_LETTER_TOPIC"])
        # At least once: a crash before the commit dead-letters a record again, so count origins.
        origins = {tuple(v for k, v in r.headers if k.startswith("dlq.source_")) for r in dead}
        assert len(origins) == self.malformed
        return {"pairs": len(rows), "sends": sum(sends.values()), "duplicates": extra, "reclaimed": reclaimed}


@pytest_asyncio.fixture
async def rig(kafka_bootstrap: str, database_url: str) -> AsyncIterator[Rig]:
    state = SandboxState("ACchaos000000000000000000000000000", "chaos-token")
    state.set_fault("twilio", Fault(latency_ms=20))  # keep sends in flight long enough to be hit
    runner = await run_sandbox("127.0.0.1", 0, state)
    sandbox = f"http://127.0.0.1:{runner.addresses[0][1]}"
    run, port = uuid.uuid4().hex[:8], _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")},
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": database_url,
        "NOTIFIER_INPUT_TOPICS": f"chaos.{run}.shipment.status.v1",
        "NOTIFIER_RECEIPTS_TOPIC": f"chaos.{run}.receipts",
        "NOTIFIER_DEAD_LETTER_TOPIC": f"chaos.{run}.dlq",
        "NOTIFIER_CONSUMER_GROUP": f"chaos-{run}",
        "NOTIFIER_HTTP_PORT": str(port),
        "NOTIFIER_TWILIO_BASE_URL": sandbox,
        "NOTIFIER_TWILIO_ACCOUNT_SID": state.account_sid,
        "NOTIFIER_TWILIO_AUTH_TOKEN": state.auth_token,
        "NOTIFIER_INFOBIP_BASE_URL": sandbox,
        "NOTIFIER_SENDGRID_BASE_URL": sandbox,
        "NOTIFIER_SEND_CONCURRENCY": str(IN_FLIGHT),
        "NOTIFIER_BATCH_MAX_RECORDS": str(BATCH),
        "NOTIFIER_PII_KEYS": Keyring.generate_spec("k1"),
        "NOTIFIER_BLIND_INDEX_KEY": base64.b64encode(os.urandom(32)).decode(),
        "NOTIFIER_LOG_LEVEL": "WARNING",
    }
    await ensure_topics(
        kafka_bootstrap,
        {
            env["NOTIFIER_INPUT_TOPICS"]: 4,
            env["NOTIFIER_RECEIPTS_TOPIC"]: 4,
            env["NOTIFIER_DEAD_LETTER_TOPIC"]: 1,
        },
    )
    rng = random.Random(2026)
    messages, pairs, malformed = [], set(), 0
    for i in range(300):
        order = f"CH-{i:04d}"
        statuses = STATUSES[: rng.randint(1, 3)]
        rng.shuffle(statuses)  # milestones out of order within an order
        for status in statuses:
            pairs.add((order, status.lower()))
            messages.append(event(order, status, n=1))
            if rng.random() < 0.2:
                messages.append(event(order, status, n=2))  # a TMS re-send
    for j in range(len(messages) // 100):
        messages.insert(rng.randrange(len(messages)), (f"CH-BAD{j}".encode(), b'{"event_id": "broken'))
        malformed += 1
    await produce(kafka_bootstrap, env["NOTIFIER_INPUT_TOPICS"], messages)
    yield Rig(env, state, malformed, pairs)
    await runner.cleanup()


async def _until_sent(rig: Rig, count: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while len(rig.state.messages) < count and time.monotonic() < deadline:  # noqa: ASYNC110  # polling the sandbox
        await asyncio.sleep(0.01)


async def test_kill_minus_9_three_times_loses_nothing_and_counts_every_duplicate(rig: Rig) -> None:
    crashes = 0
    for fraction in (0.2, 0.45, 0.7):
        proc = await rig.start()
        await _until_sent(rig, int(len(rig.pairs) * fraction))
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        crashes += 1
    proc = await rig.start()
    try:
        recovered = await rig.settle()
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 60)
    numbers = await rig.verify(crashes)
    assert numbers["sends"] > 0
    print(f"\nchaos kill -9 x3: {numbers}, recovered in {recovered:.1f}s")


async def test_sigterm_at_peak_drains_in_time_and_a_restart_loses_nothing(rig: Rig) -> None:
    proc = await rig.start()
    await _until_sent(rig, len(rig.pairs) // 2)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(proc.wait(), 60)
    shutdown = time.monotonic() - started
    assert code == 0
    assert shutdown < 30  # the grace period
    proc = await rig.start()
    try:
        await rig.settle()
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 60)
    numbers = await rig.verify(crashes=0)
    assert numbers["duplicates"] == 0  # a clean shutdown leaves nothing half-sent
    assert numbers["sends"] > 0
    print(f"\nchaos SIGTERM: {numbers}, shutdown took {shutdown:.1f}s")
