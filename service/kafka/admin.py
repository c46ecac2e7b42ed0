"""Topic provisioning for local runs and tests (production topics are provisioned by the platform)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from service.settings import Settings


async def ensure_topics(
    bootstrap_servers: str, topics: Mapping[str, int], configs: Mapping[str, Mapping[str, str]] | None = None
) -> None:
    """Create each topic with its partition count (and topic configs) unless it exists already."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="notifier-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, n, 1, topic_configs=dict((configs or {}).get(name, {})))
            for name, n in topics.items()
            if name not in existing
        ]
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


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """The dead-letter topic holds raw events, personal data included: it keeps them only briefly."""
    return {
        settings.dead_letter_topic: {"retention.ms": str(settings.dead_letter_retention_days * 86_400_000)}
    }
