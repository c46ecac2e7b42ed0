"""The benchmark's yardsticks, each run as its own process on a topic the service also read.

``naive``: what a first, simple implementation would do, one message at a time: parse (the
service's contract), one INSERT (``ON CONFLICT DO NOTHING``: the dedup), for a new pair one HTTP
request to the sandbox's Twilio API, then one awaited produce of a receipt (a dead letter for an
invalid event). No stale rule, consent, rendering, outbox or failover.

``raw``: aiokafka reading the topic and doing nothing, the ceiling any consumer of it has; the topic
is read again from the start until ``--seconds`` have passed, so that short topics still time well.

Both print one JSON line: counts, the seconds from the first record, and the peak RSS.

    python -m tests.bench.naive naive --topic T --database URL --sandbox URL --receipts-topic R [--seconds 20]
    python -m tests.bench.naive raw --topic T [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import time
import uuid

import aiohttp
import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from service.contracts import parse_event
from service.domain.errors import EventRejected
from service.kafka.admin import partitions_of

ACCOUNT = "AC00000000000000000000000000000000"  # the sandbox's defaults (and the service's)
TOKEN = "sandbox-token"


def peak_rss_mib(pid: int | str = "self") -> float | None:
    """The process's peak resident set (VmHWM), in MiB; None when /proc does not say."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


async def naive(args: argparse.Namespace) -> dict[str, object]:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    db = await asyncpg.connect(args.database)
    await db.execute(
        "CREATE TABLE IF NOT EXISTS naive_notifications"
        " (order_id text, milestone text, event_id text, PRIMARY KEY (order_id, milestone))"
    )
    consumer = AIOKafkaConsumer(
        args.topic,
        bootstrap_servers=bootstrap,
        group_id=f"naive-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await consumer.start()
    await producer.start()
    url = f"{args.sandbox}/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    events = sent = duplicates = invalid = 0
    first = last = 0.0
    try:
        total = sum((await consumer.end_offsets(await partitions_of(bootstrap, [args.topic]))).values())
        auth = {"Authorization": "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()}
        async with aiohttp.ClientSession(headers=auth) as http:
            while events < total:
                record = await consumer.getone()
                if not events:
                    first = time.perf_counter()
                events += 1
                try:
                    event = parse_event(record.value)
                except EventRejected as exc:
                    invalid += 1
                    receipt = {"outcome": "invalid", "reason": exc.reason}
                    await producer.send_and_wait(
                        args.receipts_topic, json.dumps(receipt).encode(), key=record.key
                    )
                    continue
                milestone = event.tms_status.lower()
                inserted = await db.fetchval(
                    "INSERT INTO naive_notifications (order_id, milestone, event_id) VALUES ($1, $2, $3)"
                    " ON CONFLICT DO NOTHING RETURNING true",
                    event.order_id,
                    milestone,
                    event.event_id,
                )
                if not inserted:
                    duplicates += 1
                    continue
                body = f"Your order {event.order_id} ({event.waybill}): {milestone.replace('_', ' ')}."
                async with http.post(url, data={"To": "+85291234567", "From": "Bench", "Body": body}) as r:
                    sid = (await r.json())["sid"]
                receipt = {"order_id": event.order_id, "milestone": milestone, "outcome": "sent", "sid": sid}
                await producer.send_and_wait(
                    args.receipts_topic, json.dumps(receipt).encode(), key=record.key
                )
                sent += 1
                last = time.perf_counter()
                if last - first > args.seconds:
                    break
    finally:
        await producer.stop()
        await consumer.stop()
        await db.close()
    return {
        "events": events,
        "sent": sent,
        "duplicates": duplicates,
        "invalid": invalid,
        "seconds": last - first,
        "rss_peak_mib": peak_rss_mib(),
    }


async def raw(args: argparse.Namespace) -> dict[str, object]:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    # earliest: assigning starts a position reset that a seek right after would race with
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    records = passes = skipped = 0
    first = last = 0.0
    try:
        partitions = await partitions_of(bootstrap, [args.topic])
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        total = sum(ends.values())
        while not passes or last - first < args.seconds:
            await consumer.seek_to_beginning(*partitions)
            seen = 0
            while seen < total:
                batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
                got = sum(len(msgs) for msgs in batch.values())
                seen += got
                if got and not first:  # the clock starts with the first records: count from after them
                    first, skipped = time.perf_counter(), got
            records += seen
            passes += 1
            last = time.perf_counter()
        records -= skipped
    finally:
        await consumer.stop()
    return {"events": records, "passes": passes, "seconds": last - first, "rss_peak_mib": peak_rss_mib()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)
    n = sub.add_parser("naive")
    n.add_argument("--topic", required=True)
    n.add_argument("--database", required=True)
    n.add_argument("--sandbox", required=True)
    n.add_argument("--receipts-topic", required=True)
    n.add_argument("--seconds", type=float, default=20.0, help="stop after this long")
    r = sub.add_parser("raw")
    r.add_argument("--topic", required=True)
    r.add_argument("--seconds", type=float, default=3.0, help="read the topic again until this long")
    args = p.parse_args()
    print(json.dumps(asyncio.run(naive(args) if args.mode == "naive" else raw(args))), flush=True)


if __name__ == "__main__":
    main()
