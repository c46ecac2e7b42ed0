"""The service as its own process, driven only through its CLI, Kafka and HTTP, like production."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer

from service.kafka.admin import ensure_topics
from service.privacy.crypto import Keyring

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "deploy/samples/events.jsonl"
_DWELLS = 'notifier_pickup_dwell_seconds_count{place="other"} 2.0'
# Personal data in the sample feed: none of it may reach a log line.
SAMPLE_PII = [
    "9123 4567",
    "91234567",
    "5123-4567",
    "51234567",
    "6234 5678",
    "62345678",
    "2123 4567",
    "6987 6543",
    "陳大文",
    "Emily Wong",
    "李小美",
    "Jason Lam",
    "Ho Ka Yan",
    "example.com",
]


_OPS_PATHS = ("/metrics", "/healthz", "/readyz")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _spawn(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service",
        *args,
        env=env,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _get(url: str) -> tuple[int, str]:
    try:
        async with aiohttp.ClientSession() as s, s.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
            return r.status, await r.text()
    except aiohttp.ClientError:
        return 0, ""


async def _eventually(url: str, status: int = 200, timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        code, text = await _get(url)
        if code == status:
            return text
        await asyncio.sleep(0.2)
    raise AssertionError(f"{url} did not answer {status} within {timeout_s}s")


@pytest_asyncio.fixture
async def env(kafka_bootstrap: str, database_url: str) -> AsyncIterator[dict[str, str]]:
    run = uuid.uuid4().hex[:8]
    port, sandbox = _free_port(), f"http://127.0.0.1:{_free_port()}"
    e = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")},
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": database_url,
        "NOTIFIER_INPUT_TOPICS": f"e2e.{run}.shipment.status.v1",
        "NOTIFIER_RECEIPTS_TOPIC": f"e2e.{run}.receipts",
        "NOTIFIER_DEAD_LETTER_TOPIC": f"e2e.{run}.dlq",
        "NOTIFIER_CONSUMER_GROUP": f"e2e-{run}",
        "NOTIFIER_HTTP_PORT": str(port),
        "NOTIFIER_METRICS_PORT": str(_free_port()),
        "NOTIFIER_TWILIO_BASE_URL": sandbox,
        "NOTIFIER_INFOBIP_BASE_URL": sandbox,
        "NOTIFIER_SENDGRID_BASE_URL": sandbox,
        "NOTIFIER_CALLBACK_BASE_URL": f"http://127.0.0.1:{port}",
        "NOTIFIER_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "NOTIFIER_PII_KEYS": Keyring.generate_spec("k1"),
        "NOTIFIER_BLIND_INDEX_KEY": base64.b64encode(os.urandom(32)).decode(),
        "NOTIFIER_LINK_SIGNING_KEY": base64.b64encode(os.urandom(32)).decode(),
        "NOTIFIER_LOG_LEVEL": "DEBUG",
    }
    await ensure_topics(
        kafka_bootstrap,
        {e["NOTIFIER_INPUT_TOPICS"]: 4, e["NOTIFIER_RECEIPTS_TOPIC"]: 4, e["NOTIFIER_DEAD_LETTER_TOPIC"]: 1},
    )
    yield e


async def _read(bootstrap: str, topic: str, at_least: int, timeout_s: float = 45) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(values) < at_least and time.monotonic() < deadline:
            for msgs in (await consumer.getmany(timeout_ms=250)).values():
                values.extend(m.value or b"" for m in msgs)
    finally:
        await consumer.stop()
    return values


async def test_sample_feed_through_the_running_service(env: dict[str, str]) -> None:
    sandbox_port = env["NOTIFIER_TWILIO_BASE_URL"].rsplit(":", 1)[1]
    events_url = f"{env['NOTIFIER_CALLBACK_BASE_URL']}/callbacks/sendgrid/events"
    sandbox = await _spawn(env, "sandbox", "--port", sandbox_port, "--sendgrid-events-url", events_url)
    key = json.loads(await _eventually(f"http://127.0.0.1:{sandbox_port}/sandbox/sendgrid/public-key"))
    service = await _spawn({**env, "NOTIFIER_SENDGRID_WEBHOOK_PUBLIC_KEY": key["public_key"]}, "run")
    try:
        await _eventually(f"http://127.0.0.1:{env['NOTIFIER_METRICS_PORT']}/readyz")

        feed = await _spawn(env, "feed", str(SAMPLES))
        out, err = await asyncio.wait_for(feed.communicate(), 60)
        assert feed.returncode == 0, err.decode()
        assert b"published 15 events" in out

        receipts = [
            json.loads(v)
            # 9 outcomes, then a "delivered" report for each of the 8 sends (7 SMS, 1 email)
            for v in await _read(env["KAFKA_BOOTSTRAP_SERVERS"], env["NOTIFIER_RECEIPTS_TOPIC"], 17)
        ]
        dead = await _read(env["KAFKA_BOOTSTRAP_SERVERS"], env["NOTIFIER_DEAD_LETTER_TOPIC"], 2)
        _, body = await _get(f"http://127.0.0.1:{sandbox_port}/sandbox/messages")
        # A batch observes its end-to-end latencies once all it decided is durable, which can be a
        # moment after its last receipt is on the topic: wait for the count (or give up, and fail below).
        for _ in range(50):
            _, metrics = await _get(f"http://127.0.0.1:{env['NOTIFIER_METRICS_PORT']}/metrics")
            if "notifier_end_to_end_seconds_count 9.0" in metrics and _DWELLS in metrics:
                break
            await asyncio.sleep(0.1)
        # The public listener serves callbacks and pages only: metrics and health stay off the ingress.
        public = [await _get(f"http://127.0.0.1:{env['NOTIFIER_HTTP_PORT']}{p}") for p in _OPS_PATHS]
    finally:
        service.send_signal(signal.SIGTERM)
        sandbox.send_signal(signal.SIGTERM)
        _, service_log = await asyncio.wait_for(service.communicate(), 30)
        await asyncio.wait_for(sandbox.communicate(), 30)

    decided = [r for r in receipts if r["outcome"] != "delivered"]
    outcomes = sorted((r["order_id"], r["milestone"], r["outcome"], r["channel"]) for r in decided)
    assert outcomes == [
        ("SO-HK-24001", "arrived_hk_warehouse", "sent", "sms"),
        ("SO-HK-24001", "customs_cleared", "sent", "sms"),
        ("SO-HK-24001", "ready_for_pickup", "sent", "sms"),
        ("SO-HK-24002", "arrived_hk_warehouse", "sent", "sms"),
        ("SO-HK-24002", "customs_cleared", "sent", "sms"),
        ("SO-HK-24003", "ready_for_pickup", "sent", "sms"),
        ("SO-HK-24004", "arrived_hk_warehouse", "sent", "email"),  # a fixed-line number: email instead
        ("SO-HK-24005", "arrived_hk_warehouse", "suppressed_stale", "none"),
        ("SO-HK-24005", "ready_for_pickup", "sent", "sms"),
    ]
    assert [r["reason"] for r in decided if r["order_id"] == "SO-HK-24004"] == ["phone_fixed_line"]
    delivered = sorted((r["order_id"], r["milestone"]) for r in receipts if r["outcome"] == "delivered")
    assert delivered == sorted((o, m) for o, m, kind, _ in outcomes if kind == "sent")
    recorded = json.loads(body)
    sms = [m for m in recorded if m["provider"] == "twilio"]
    assert len(sms) == 7
    assert [m["provider"] for m in recorded if m["provider"] != "twilio"] == ["sendgrid"]
    assert {m["to"] for m in sms} == {"+85291234567", "+85251234567", "+85262345678", "+85269876543"}
    english = [m["body"] for m in sms if "Emily" in m["body"]]
    assert english
    assert all("Order: SO-HK-24002" in b for b in english)
    assert any("訂單編號：SO-HK-24001" in m["body"] for m in sms)
    assert len(dead) == 2

    assert 'notifier_notifications_total{channel="sms",outcome="sent"} 7.0' in metrics
    assert 'notifier_notifications_total{channel="email",outcome="sent"} 1.0' in metrics
    assert 'notifier_dead_letters_total{reason="malformed_json"} 1.0' in metrics
    assert "notifier_end_to_end_seconds_count 9.0" in metrics
    assert _DWELLS in metrics  # the two bikes collected (PICKED_UP), which notified no one
    assert [status for status, _ in public] == [404] * len(_OPS_PATHS)

    assert service.returncode == 0, service_log.decode()[-2000:]
    log = service_log.decode()
    assert '"event": "service_stopped"' in log
    pg_dump = await asyncio.create_subprocess_exec(
        "pg_dump", "--data-only", "--no-owner", env["DATABASE_URL"], stdout=asyncio.subprocess.PIPE
    )
    dump = (await pg_dump.communicate())[0].decode()
    assert pg_dump.returncode == 0
    assert "SO-HK-24001" in dump  # the dump does hold the notifications
    texts = {
        "log": log,
        "receipts": json.dumps(receipts, ensure_ascii=False),
        "metrics": metrics,
        "database": dump,
    }
    for where, text in texts.items():
        for pii in SAMPLE_PII:
            assert pii not in text, f"personal data in the {where}: {pii!r}"


async def test_two_workers_share_the_group_the_public_port_and_stop_together(env: dict[str, str]) -> None:
    """NOTIFIER_WORKERS=2: one supervisor, two service processes in one consumer group. Every event
    is decided once, the callbacks on the one public port reach the worker that sent, each worker
    has its own metrics port, and SIGTERM stops both cleanly."""
    sandbox_port = env["NOTIFIER_TWILIO_BASE_URL"].rsplit(":", 1)[1]
    base = _free_port()
    while base + 1 == int(env["NOTIFIER_HTTP_PORT"]) or base == int(env["NOTIFIER_HTTP_PORT"]):
        base = _free_port()
    env = {**env, "NOTIFIER_WORKERS": "2", "NOTIFIER_METRICS_PORT": str(base), "NOTIFIER_LOG_LEVEL": "INFO"}
    events_url = f"{env['NOTIFIER_CALLBACK_BASE_URL']}/callbacks/sendgrid/events"
    sandbox = await _spawn(env, "sandbox", "--port", sandbox_port, "--sendgrid-events-url", events_url)
    key = json.loads(await _eventually(f"http://127.0.0.1:{sandbox_port}/sandbox/sendgrid/public-key"))
    service = await _spawn({**env, "NOTIFIER_SENDGRID_WEBHOOK_PUBLIC_KEY": key["public_key"]}, "run")
    ops = [f"http://127.0.0.1:{base + i}" for i in range(2)]
    try:
        for url in ops:
            await _eventually(f"{url}/readyz")
        feed = await _spawn(env, "feed", str(SAMPLES))
        _, err = await asyncio.wait_for(feed.communicate(), 60)
        assert feed.returncode == 0, err.decode()
        receipts = [
            json.loads(v)
            for v in await _read(env["KAFKA_BOOTSTRAP_SERVERS"], env["NOTIFIER_RECEIPTS_TOPIC"], 17)
        ]
        decided = 0.0
        for _ in range(100):  # both workers' decisions, from their own metrics
            texts = [(await _get(f"{url}/metrics"))[1] for url in ops]
            decided = sum(_sample(t, "notifier_decisions_total") for t in texts)
            if decided >= 9:
                break
            await asyncio.sleep(0.1)
    finally:
        service.send_signal(signal.SIGTERM)
        sandbox.send_signal(signal.SIGTERM)
        _, service_log = await asyncio.wait_for(service.communicate(), 45)
        await asyncio.wait_for(sandbox.communicate(), 30)

    log = service_log.decode()
    assert service.returncode == 0, log[-2000:]
    assert log.count('"event": "service_stopped"') == 2
    assert '"event": "workers_stopped"' in log
    outcomes = [(r["order_id"], r["milestone"]) for r in receipts if r["outcome"] != "delivered"]
    assert len(outcomes) == 9
    assert len(set(outcomes)) == 9  # each decided once
    delivered = [r for r in receipts if r["outcome"] == "delivered"]
    assert len(delivered) == 8  # every provider callback reached the worker that sent
    assert decided == 9
    assert all(texts), "each worker serves its own metrics"
    for pii in SAMPLE_PII:
        assert pii not in log, f"personal data in the log: {pii!r}"


def _sample(metrics: str, name: str) -> float:
    """The sum of a metric's samples in a scrape."""
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith(name) and not line.startswith(name + "_") and " " in line:
            total += float(line.rsplit(" ", 1)[1])
    return total
