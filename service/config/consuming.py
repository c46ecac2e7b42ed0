"""Settings of the Kafka side: brokers, topics, the consumer group and its batches."""

from __future__ import annotations

from typing import Annotated

from pydantic import AliasChoices, BaseModel, Field, field_validator
from pydantic_settings import NoDecode

from service.config.parsing import split_commas


class KafkaSettings(BaseModel):
    """Kafka: brokers, topics in and out, the consumer group, its batches and rebalances."""

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092",
        validation_alias=AliasChoices("NOTIFIER_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
        description="Kafka brokers, comma-separated host:port.",
    )
    input_topics: Annotated[list[str], NoDecode] = Field(
        default=["shipment.status.v1"], description="Topics to consume; comma-separated in the environment."
    )
    input_topic_pattern: str | None = Field(
        default=None, description="A regex of topics to consume instead of input_topics."
    )
    receipts_topic: str = Field(
        default="notification.receipts.v1",
        description="Topic of the receipts: one per outcome of every notification.",
    )
    dead_letter_topic: str = Field(
        default="shipment.status.v1.dlq",
        description="Topic of the input records that cannot be processed (malformed, invalid, poison).",
    )
    dead_letter_retention_days: int = Field(
        default=7, ge=1, le=365, description="The DLQ keeps raw events (personal data): short retention."
    )
    consumer_group: str = Field(
        default="milestone-notifier",
        description="Consumer group of the input topics: scale out by adding instances with the same group.",
    )
    batch_max_records: int = Field(
        default=500, ge=1, le=10_000, description="Most records one fetch (one batch) takes."
    )
    batch_timeout_ms: int = Field(
        default=200, ge=1, le=60_000, description="Longest wait for a batch to fill before it is processed."
    )
    batches_in_flight: int = Field(
        default=2,
        ge=1,
        le=4,
        description="Batches processed at once: the next is read and begun while earlier ones send. "
        "Records of one key (order id) never run in two batches at once, and offsets are committed "
        "only up to the first unfinished batch. 1 processes one batch at a time.",
    )
    poison_attempts: int = Field(
        default=5,
        ge=2,
        le=100,
        description="A batch failing this many times while the database answers is retried record by "
        "record, and a record that still fails goes to the dead-letter topic.",
    )
    rebalance_drain_s: float = Field(
        default=20.0,
        gt=0,
        le=25,
        description="On a rebalance, how long to wait for the batches in flight (no new sends start) "
        "before letting the partitions go; under the consumer's 30 s rebalance timeout.",
    )

    @field_validator("input_topics", mode="before")
    @classmethod
    def _split_topics(cls, v: object) -> object:
        return split_commas(v)
