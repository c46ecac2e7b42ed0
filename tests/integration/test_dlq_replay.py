"""Dead letters listed and replayed onto their source topic, on a real Kafka."""

from __future__ import annotations

import json

import pytest

from service import dlq
from service.app import Service
from service.settings import Settings
from tests.integration.helpers import event, produce, read_decisions, read_topic, running

pytestmark = pytest.mark.integration


async def test_dead_letters_are_counted_by_reason_and_replayed_after_a_fix(settings: Settings) -> None:
    incomplete = json.loads(event("IT-DLQ", "ARRIVED_HK_WAREHOUSE")[1])
    del incomplete["waybill"]
    async with running(Service(settings)):
        await produce(
            settings.kafka_bootstrap_servers,
            settings.input_topics[0],
            [(b"IT-DLQ", json.dumps(incomplete).encode()), (b"IT-BAD", b"{not json")],
        )
        await read_topic(settings.kafka_bootstrap_servers, settings.dead_letter_topic, at_least=2)

    letters = await dlq.read_letters(settings.kafka_bootstrap_servers, settings.dead_letter_topic)
    assert sorted(x.reason for x in letters) == ["invalid_event", "malformed_json"]
    assert "1  invalid_event" in dlq.summary(letters)

    # "The fix": the TMS adds the missing field upstream; here, replay the letter as it was and
    # check it goes back to its source topic, marked, while the other reason is left alone.
    chosen = dlq.select(letters, reason="invalid_event", from_offset=None, to_offset=None)
    assert len(chosen) == 1
    assert (
        await dlq.replay(
            settings.kafka_bootstrap_servers, settings.dead_letter_topic, chosen, lambda *_: None
        )
        == 1
    )
    source = await read_topic(settings.kafka_bootstrap_servers, settings.input_topics[0], at_least=3)
    replayed = [r for r in source if any(k == "dlq.replayed_from" for k, _ in r.headers or ())]
    assert len(replayed) == 1
    assert replayed[0].key == b"IT-DLQ"
    assert json.loads(replayed[0].value) == incomplete  # unchanged

    async with running(Service(settings)):  # still invalid: it lands on the DLQ again, nothing is lost
        await read_topic(settings.kafka_bootstrap_servers, settings.dead_letter_topic, at_least=3)
    assert (
        await read_decisions(settings.kafka_bootstrap_servers, settings.receipts_topic, 0, timeout_s=1) == []
    )


async def test_a_source_record_dead_lettered_twice_is_one_dead_letter_and_replayed_once(
    settings: Settings,
) -> None:
    # As after a crash between dead-lettering and committing: the same record is read, and
    # dead-lettered, again (here by a second group reading the topic from the start).
    await produce(settings.kafka_bootstrap_servers, settings.input_topics[0], [(b"IT-TWICE", b"{not json")])
    async with running(Service(settings)):
        await read_topic(settings.kafka_bootstrap_servers, settings.dead_letter_topic, at_least=1)
    again = settings.model_copy(update={"consumer_group": f"{settings.consumer_group}-again"})
    async with running(Service(again)):
        await read_topic(settings.kafka_bootstrap_servers, settings.dead_letter_topic, at_least=2)

    dead = await read_topic(settings.kafka_bootstrap_servers, settings.dead_letter_topic, at_least=2)
    assert len(dead) == 2
    ids = {dict(r.headers)["dlq.id"] for r in dead}
    assert len(ids) == 1  # a stable identity: the source coordinates
    assert {r.key for r in dead} == ids  # and the Kafka key, so consumers can tell a repeat
    letters = await dlq.read_letters(settings.kafka_bootstrap_servers, settings.dead_letter_topic)
    report = dlq.summary(letters)
    assert report.splitlines()[0].startswith("1 dead letter(s)")
    assert "1  malformed_json" in report
    assert "+1 repeat(s)" in report

    chosen = dlq.select(letters, reason=None, from_offset=None, to_offset=None)
    n = await dlq.replay(
        settings.kafka_bootstrap_servers, settings.dead_letter_topic, chosen, lambda *_: None
    )
    assert n == 1
    source = await read_topic(settings.kafka_bootstrap_servers, settings.input_topics[0], at_least=2)
    replayed = [r for r in source if any(k == "dlq.replayed_from" for k, _ in r.headers or ())]
    assert [(r.key, r.value) for r in replayed] == [(b"IT-TWICE", b"{not json")]  # its source key, once
