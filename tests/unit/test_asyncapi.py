"""schemas/asyncapi.yaml says what the code does: the topic defaults, the keys and headers the
producers write, the payload schemas and the examples. (That it is a valid AsyncAPI 3 document,
its $refs resolved, is checked by the official parser in `make lint-asyncapi`.)"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import pytest
import yaml
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from service import dlq
from service.config.consuming import KafkaSettings
from service.contracts import JSON_SCHEMA_DIALECT, SCHEMA_ID_BASE, ReceiptV1, json_schemas, parse_event
from service.domain.model import InboundRecord
from service.domain.outcome import OutboxRow
from service.domain.ports import DeadLetter
from service.feed import read_feed
from service.kafka.producer import DeadLetterPublisher, ReceiptPublisher

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"
DOC: dict[str, Any] = yaml.safe_load((SCHEMAS / "asyncapi.yaml").read_text(encoding="utf-8"))
MESSAGES: dict[str, Any] = DOC["components"]["messages"]
DOC_URI = "urn:notifier:asyncapi"
# The document as a schema resource (AsyncAPI 3.0 schemas are draft-07), so its internal $refs resolve.
REGISTRY = Registry().with_resource(DOC_URI, Resource.from_contents(DOC, default_specification=DRAFT7))


def _doc_validator(pointer: str) -> jsonschema.Draft7Validator:
    """A validator of a schema inside the document, e.g. ``/components/schemas/DeadLetterHeaders``."""
    return jsonschema.Draft7Validator(
        {"$ref": f"{DOC_URI}#{pointer}"},
        registry=REGISTRY,
        format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER,
    )


def _file_validator(ref: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / ref).read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def _message_of(channel: str) -> list[str]:
    return [m["$ref"].rsplit("/", 1)[1] for m in DOC["channels"][channel]["messages"].values()]


def test_the_channel_addresses_are_the_topic_settings_defaults() -> None:
    kafka = KafkaSettings()
    addresses = {name: ch["address"] for name, ch in DOC["channels"].items()}
    assert addresses == {
        "shipmentStatus": kafka.input_topics[0],
        "receipts": kafka.receipts_topic,
        "deadLetters": kafka.dead_letter_topic,
    }
    assert kafka.input_topics == ["shipment.status.v1"]  # one input topic by default
    for ch in DOC["channels"].values():
        assert ch["bindings"]["kafka"]["topic"] == ch["address"]
    dlq = DOC["channels"]["deadLetters"]["bindings"]["kafka"]["topicConfiguration"]
    assert dlq["retention.ms"] == kafka.dead_letter_retention_days * 86_400_000


def test_the_topic_settings_are_named_where_each_channel_is_described() -> None:
    for channel, variables in {
        "shipmentStatus": ["NOTIFIER_INPUT_TOPICS", "NOTIFIER_INPUT_TOPIC_PATTERN"],
        "receipts": ["NOTIFIER_RECEIPTS_TOPIC"],
        "deadLetters": ["NOTIFIER_DEAD_LETTER_TOPIC", "NOTIFIER_DEAD_LETTER_RETENTION_DAYS"],
    }.items():
        for variable in variables:
            assert variable in DOC["channels"][channel]["description"]


def test_the_consumer_group_is_the_settings_default() -> None:
    group = DOC["operations"]["receiveShipmentStatus"]["bindings"]["kafka"]["groupId"]
    assert group["default"] == KafkaSettings().consumer_group


def test_payloads_refer_to_the_generated_json_schemas_whose_ids_name_them() -> None:
    refs = {name: m["payload"].get("$ref") for name, m in MESSAGES.items()}
    assert refs["ShipmentStatusEvent"] == "./shipment-status-event.v1.json"
    assert refs["NotificationReceipt"] == "./notification-receipt.v1.json"
    for name, schema in json_schemas().items():
        assert schema["$schema"] == JSON_SCHEMA_DIALECT
        assert schema["$id"] == f"{SCHEMA_ID_BASE}{name}"
        assert str(schema["$id"]).startswith("https://")
        assert json.loads((SCHEMAS / name).read_text(encoding="utf-8"))["$id"] == schema["$id"]


def test_the_documents_major_version_is_the_topics_and_the_schemas() -> None:
    major = DOC["info"]["version"].split(".")[0]
    assert all(ch["address"].split(".")[2] == f"v{major}" for ch in DOC["channels"].values())
    assert all(f".v{major}.json" in name for name in json_schemas())


@pytest.mark.parametrize("name", ["ShipmentStatusEvent", "NotificationReceipt", "DeadLetter"])
def test_every_example_matches_its_message(name: str) -> None:
    message = MESSAGES[name]
    assert message["examples"]
    for example in message["examples"]:
        headers = _doc_validator(f"/components/messages/{name}/headers")
        headers.validate(example["headers"])
        if "$ref" in message["payload"]:
            _file_validator(message["payload"]["$ref"]).validate(example["payload"])
    if name == "ShipmentStatusEvent":  # and the service accepts it
        parse_event(json.dumps(message["examples"][0]["payload"]).encode())
    if name == "NotificationReceipt":
        ReceiptV1.model_validate(message["examples"][0]["payload"])


def test_input_keys_are_order_ids_as_the_feed_writes_them() -> None:
    key = _doc_validator("/components/messages/ShipmentStatusEvent/bindings/kafka/key")
    feed = read_feed(REPO / "deploy" / "samples" / "events.jsonl")
    keyed = [(k, json.loads(v)) for k, v in feed if k is not None]
    assert keyed
    for k, event in keyed:
        key.validate(k.decode())
        assert k.decode() == event["order_id"]


class CapturingProducer:
    """Acknowledges every message, or refuses those with a value over ``max_value`` (as too large)."""

    def __init__(self, max_value: int | None = None) -> None:
        self.max_value = max_value
        self.sent: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = []

    async def send(
        self, topic: str, *, value: bytes | None, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        error: KafkaError | None = None
        if self.max_value is not None and len(value or b"") > self.max_value:
            error = MessageSizeTooLargeError()
        if error is None:
            self.sent.append((topic, key, value, headers))
            future.set_result(None)
        else:
            future.set_exception(error)
        return future


def _decoded(headers: list[tuple[str, bytes]]) -> dict[str, str]:
    names = [k for k, _ in headers]
    assert len(names) == len(set(names)), "a header written twice"
    return {k: v.decode() for k, v in headers}


def _documented(schema: str) -> set[str]:
    return set(DOC["components"]["schemas"][schema]["properties"])


LETTER = DeadLetter(
    InboundRecord("shipment.status.v1", 3, 41, b"SO-HK-24007", b'{"event_id": "x"}', 0),
    "invalid_event",
    "waybill: missing; bike_model: missing",
    "EventRejected",
)


async def test_a_dead_letter_is_keyed_and_headed_as_documented() -> None:
    producer = CapturingProducer()
    await DeadLetterPublisher(producer, "shipment.status.v1.dlq").publish([LETTER])
    ((topic, key, value, headers),) = producer.sent
    h = _decoded(headers)
    assert topic == DOC["channels"]["deadLetters"]["address"]
    assert set(h) == _documented("DeadLetterHeaders")  # every header documented, and only those
    _doc_validator("/components/schemas/DeadLetterHeaders").validate(h)
    assert key is not None
    _doc_validator("/components/schemas/DeadLetterKey").validate(key.decode())
    assert key.decode() == h["dlq.id"] == "shipment.status.v1:3:41"
    assert value == LETTER.record.value  # the value unchanged
    assert _message_of("deadLetters") == ["DeadLetter", "BoundedDeadLetter"]


async def test_a_dead_letter_without_a_source_key_has_no_source_key_header() -> None:
    producer = CapturingProducer()
    keyless = DeadLetter(InboundRecord("in", 0, 1, None, b"{", 0), "malformed_json", "json", "EventRejected")
    await DeadLetterPublisher(producer, "dlq").publish([keyless])
    h = _decoded(producer.sent[0][3])
    assert "dlq.source_key" not in h
    _doc_validator("/components/schemas/DeadLetterHeaders").validate(h)


async def test_a_bounded_dead_letter_is_keyed_and_headed_as_documented() -> None:
    producer = CapturingProducer(max_value=8)
    await DeadLetterPublisher(producer, "dlq").publish([LETTER])
    ((_, key, value, headers),) = producer.sent
    h = _decoded(headers)
    assert set(h) == _documented("BoundedDeadLetterHeaders")
    _doc_validator("/components/schemas/BoundedDeadLetterHeaders").validate(h)
    _doc_validator("/components/messages/BoundedDeadLetter/payload").validate((value or b"").decode())
    assert value == b""
    assert key is not None
    assert key.decode() == h["dlq.id"]
    assert (h["dlq.reason"], h["dlq.first_reason"]) == ("oversized", "invalid_event")
    assert h["dlq.original_sha256"] == hashlib.sha256(LETTER.record.value or b"").hexdigest()


def test_the_header_schemas_refuse_what_the_code_never_writes() -> None:
    """The header schemas constrain (so the comparisons above could fail)."""
    full = _doc_validator("/components/schemas/DeadLetterHeaders")
    good = {
        "dlq.id": "t:0:1",
        "dlq.reason": "invalid_event",
        "dlq.detail": "waybill: missing",
        "dlq.error_class": "EventRejected",
        "dlq.source_topic": "t",
        "dlq.source_partition": "0",
        "dlq.source_offset": "1",
        "dlq.attempts": "1",
        "dlq.dead_lettered_at": "2026-12-01T10:00:00+00:00",
    }
    full.validate(good)
    assert not full.is_valid({**good, "dlq.reason": "oversized"})  # only on a bounded copy
    assert not full.is_valid({**good, "dlq.source_offset": "-1"})
    assert not full.is_valid({k: v for k, v in good.items() if k != "dlq.id"})
    assert not _doc_validator("/components/schemas/DeadLetterKey").is_valid("SO-HK-24001")


async def test_a_receipt_is_keyed_by_order_with_its_id_in_a_header_as_documented() -> None:
    example = MESSAGES["NotificationReceipt"]["examples"][0]["payload"]
    receipt = ReceiptV1.model_validate(example)
    row = OutboxRow(receipt.receipt_id, receipt.notification_id, receipt.order_id, receipt.to_bytes())
    producer = CapturingProducer()
    await ReceiptPublisher(producer, "notification.receipts.v1").publish([row])
    ((topic, key, value, headers),) = producer.sent
    h = _decoded(headers)
    assert topic == DOC["channels"]["receipts"]["address"]
    assert set(h) == set(MESSAGES["NotificationReceipt"]["headers"]["properties"])
    _doc_validator("/components/messages/NotificationReceipt/headers").validate(h)
    assert uuid.UUID(h["receipt_id"]) == receipt.receipt_id
    assert key is not None
    _doc_validator("/components/messages/NotificationReceipt/bindings/kafka/key").validate(key.decode())
    assert key.decode() == receipt.order_id
    _file_validator("notification-receipt.v1.json").validate(json.loads(value or b""))


class _ReplayProducer:
    """Stands in for ``AIOKafkaProducer`` in ``service.dlq``: records what a replay sends."""

    sent: ClassVar[list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]]] = []

    def __init__(self, **_: object) -> None:
        pass

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def flush(self) -> None:
        pass

    async def send(
        self, topic: str, *, value: bytes | None, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        self.sent.append((topic, key, value, headers))


async def test_a_replayed_dead_letter_goes_back_keyed_and_headed_as_documented(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    producer = CapturingProducer()
    await DeadLetterPublisher(producer, "shipment.status.v1.dlq").publish([LETTER])
    topic, key, value, headers = producer.sent[0]
    record = ConsumerRecord(topic, 1, 17, 0, 0, key, value, None, 0, len(value or b""), tuple(headers))
    monkeypatch.setattr(dlq, "AIOKafkaProducer", _ReplayProducer)
    monkeypatch.setattr(_ReplayProducer, "sent", [])
    await dlq.replay("unused:9092", topic, [dlq._letter(record)])
    ((source_topic, replay_key, replay_value, replay_headers),) = _ReplayProducer.sent
    assert (source_topic, replay_key, replay_value) == (
        LETTER.record.topic,
        LETTER.record.key,
        LETTER.record.value,
    )
    h = _decoded(replay_headers)
    assert set(h) == set(MESSAGES["ShipmentStatusEvent"]["headers"]["properties"])
    _doc_validator("/components/messages/ShipmentStatusEvent/headers").validate(h)
    assert h["dlq.replayed_from"] == "shipment.status.v1.dlq/1/17"
    assert replay_key is not None
    _doc_validator("/components/messages/ShipmentStatusEvent/bindings/kafka/key").validate(
        replay_key.decode()
    )
