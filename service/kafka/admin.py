"""Topic provisioning for local runs and tests (production topics are provisioned by the platform)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError


async def ensure_topics(bootstrap_servers: str, topics: Mapping[str, int]) -> None:
    """Create each topic with its partition count unless it exists already."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="notifier-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(name, n, 1) for name, n in topics.items() if name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another instance created it meanwhile
                await admin.create_topics(missing)
    finally:
        await admin.close()


async def partitions_of(bootstrap_servers: str, topics: Sequence[str]) -> list[TopicPartition]:
    """Every partition of the given topics, from the cluster's metadata."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="notifier-admin")
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
