"""``notifier demo``: the whole thing on the local stack, in one process, with the sample feed.

Starts the sandbox provider and the service, publishes the sample events (order ids suffixed
with a run tag, so every demo run notifies afresh), waits until the receipts settle, prints what
the customers received and the receipts, and stops. Kafka and PostgreSQL must be up
(``make demo`` starts them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from service.app import Service
from service.domain.phone import mask_phone
from service.feed import publish_feed, read_feed
from service.kafka.admin import ensure_topics, partitions_of, topic_configs
from service.sandbox.serve import SandboxState, run_sandbox
from service.settings import Settings

_QUIET_S = 3.0  # receipts have settled when none arrived for this long


def _tagged(messages: list[tuple[bytes | None, bytes]], tag: str) -> list[tuple[bytes | None, bytes]]:
    out: list[tuple[bytes | None, bytes]] = []
    for key, value in messages:
        try:
            doc = json.loads(value)
        except json.JSONDecodeError:
            out.append((key, value))
            continue
        for field in ("order_id", "event_id"):
            if isinstance(doc.get(field), str):
                doc[field] = f"{doc[field]}-{tag}"
        order = doc.get("order_id")
        out.append(
            (order.encode() if isinstance(order, str) else key, json.dumps(doc, ensure_ascii=False).encode())
        )
    return out


async def _end_offsets(settings: Settings, topics: list[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(await partitions_of(settings.kafka_bootstrap_servers, topics)))
    finally:
        await consumer.stop()


async def _collect(
    settings: Settings, start: dict[TopicPartition, int], timeout_s: float
) -> list[tuple[str, bytes]]:
    """Records that arrive after ``start`` on its topics, until quiet for a few seconds."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    consumer.assign(list(start))
    for tp, offset in start.items():
        consumer.seek(tp, offset)
    got: list[tuple[str, bytes]] = []
    deadline = time.monotonic() + timeout_s
    last = time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=250)
            for tp, msgs in batch.items():
                got.extend((tp.topic, m.value or b"") for m in msgs)
                last = time.monotonic()
            if got and time.monotonic() - last > _QUIET_S:
                break
    finally:
        await consumer.stop()
    return got


async def run_demo(settings: Settings, feed: Path, *, timeout_s: float = 60.0) -> int:
    tag = uuid.uuid4().hex[:6]
    topics = dict.fromkeys([*settings.input_topics, settings.receipts_topic, settings.dead_letter_topic], 4)
    await ensure_topics(settings.kafka_bootstrap_servers, topics, topic_configs(settings))
    sandbox_port = int(settings.twilio_base_url.rsplit(":", 1)[1].split("/")[0])
    own = f"http://127.0.0.1:{settings.http_port}"
    state = SandboxState(
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token.get_secret_value(),
        infobip_api_key=settings.infobip_api_key.get_secret_value(),
        infobip_webhook_user=settings.infobip_webhook_user,
        infobip_webhook_password=settings.infobip_webhook_password.get_secret_value(),
        sendgrid_api_key=settings.sendgrid_api_key.get_secret_value(),
        sendgrid_event_webhook_url=f"{own}/callbacks/sendgrid/events",
    )
    sandbox = await run_sandbox("127.0.0.1", sandbox_port, state)
    # Providers report delivery to the service's own callback endpoints, and links point at it.
    service = Service(
        settings.model_copy(
            update={
                "callback_base_url": settings.callback_base_url or own,
                "public_base_url": settings.public_base_url or own,
                "sendgrid_webhook_public_key": state.sendgrid_signer.public_key_b64,
            }
        )
    )
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        start = await _end_offsets(settings, [settings.receipts_topic, settings.dead_letter_topic])
        messages = _tagged(read_feed(feed), tag)
        await publish_feed(settings.kafka_bootstrap_servers, settings.input_topics[0], messages)
        print(f"published {len(messages)} sample events from {feed} (run tag {tag})\n")
        out = await _collect(settings, start, timeout_s)
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 30)
        await sandbox.cleanup()

    print(f"Messages received by the sandbox providers ({len(state.messages)}):")
    for m in state.messages:
        to = (
            mask_phone(m.to)
            if m.provider != "sendgrid"
            else m.to.split("@")[0][:1] + "***@" + m.to.split("@")[-1]
        )
        print(f"--- {m.provider} to {to}" + (f" — {m.subject}" if m.subject else "") + f"\n{m.body}\n")
    receipts = [json.loads(v) for t, v in out if t == settings.receipts_topic]
    print(f"Receipts on {settings.receipts_topic} ({len(receipts)}):")
    for r in receipts:
        detail = r["reason"] or r["provider_message_id"] or ""
        print(f"  {r['order_id']:<20} {r['milestone']:<21} {r['outcome']:<29} {r['channel']:<5} {detail}")
    dead = [v for t, v in out if t == settings.dead_letter_topic]
    print(f"\nDead letters on {settings.dead_letter_topic}: {len(dead)}")
    print("\nMetrics (as served on /metrics):")
    for line in service.metrics.render().decode().splitlines():
        if line.startswith(
            ("notifier_events_total", "notifier_notifications_total", "notifier_sms_segments_total")
        ) and not line.endswith(" 0.0"):  # the series exported at 0 from start-up
            print(f"  {line}")
    return 0 if receipts else 1
