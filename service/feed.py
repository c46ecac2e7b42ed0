"""Publishing a file of events (JSON lines) to a topic, keyed by order id: the local sample feed."""

from __future__ import annotations

import json
from pathlib import Path

from aiokafka import AIOKafkaProducer

from service.progress import Report, quiet


def read_feed(path: Path) -> list[tuple[bytes | None, bytes]]:
    """(key, value) per non-blank line. A line that is not JSON is kept as it is: feeds may test the DLQ."""
    out: list[tuple[bytes | None, bytes]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            out.append((None, line.encode()))
            continue
        order = doc.get("order_id") if isinstance(doc, dict) else None
        out.append((str(order).encode() if order else None, line.encode()))
    return out


async def publish_feed(
    bootstrap_servers: str, topic: str, messages: list[tuple[bytes | None, bytes]], progress: Report = quiet
) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", linger_ms=5)
    try:
        await producer.start()  # in the try: a failed start is stopped too (no 'Unclosed' warning)
        for n, (key, value) in enumerate(messages, start=1):
            await producer.send(topic, value=value, key=key)
            progress(n, len(messages))
        await producer.flush()
    finally:
        await producer.stop()
    return len(messages)
