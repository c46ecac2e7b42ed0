"""Hostile events on the real stack: each goes to the dead-letter topic at once, with its reason, and
the partition moves on; the event sealed for the email fallback holds only the contract's fields."""

from __future__ import annotations

import json

import asyncpg
import pytest

from service.app import Service
from service.privacy.crypto import Keyring
from service.sandbox.serve import SandboxState
from service.settings import Settings
from tests.integration.helpers import event, group_caught_up, produce, read_topic, running, wait_until

pytestmark = pytest.mark.integration


def _hostile(order: str, **fields: object) -> bytes:
    return event(order, "READY_FOR_PICKUP", **fields)[1]


def _pickup(**fields: object) -> dict[str, object]:
    base = json.loads(_hostile("HX-0"))["pickup"]
    return {**base, **fields}


async def test_hostile_events_are_dead_lettered_with_their_reason_and_the_partition_moves_on(
    settings: Settings, sandbox: tuple[SandboxState, str]
) -> None:
    state, _ = sandbox
    s = settings
    topic = s.input_topics[0]
    hostile = {
        "HX-DOCS": _hostile("HX-DOCS", pickup=_pickup(documents=["HKID"] * 5000)),
        "HX-UNIX": _hostile("HX-UNIX", occurred_at=1_763_600_400),
        "HX-NUMSTR": _hostile("HX-NUMSTR", pickup=_pickup(window_start="1764036000")),
        "HX-Y9999": _hostile("HX-Y9999", occurred_at="9999-12-31T23:59:59-01:00"),
        "HX-Y0001": _hostile("HX-Y0001", occurred_at="0001-01-01T00:00:00+08:00"),
        "HX-ESC": _hostile("HX-ESC", bike_model="Tarmac\u001b]0;pwned\u0007"),
    }
    good_before = event("HX-GOOD-1", "READY_FOR_PICKUP", internal_note="keep-me-not", crm={"score": 7})[1]
    good_after = event("HX-GOOD-2", "READY_FOR_PICKUP")[1]
    async with running(Service(s)) as service:
        await wait_until(lambda: bool(service.assignment()), what="partitions assigned (migrations have run)")
        # One key, one partition: every hostile event sits between two good ones.
        await produce(
            s.kafka_bootstrap_servers,
            topic,
            [(b"same-key", good_before)]
            + [(b"same-key", v) for v in hostile.values()]
            + [(b"same-key", good_after)],
        )
        dead = await read_topic(
            s.kafka_bootstrap_servers, s.dead_letter_topic, at_least=len(hostile), timeout_s=30
        )
        await wait_until(
            lambda: group_caught_up(s.kafka_bootstrap_servers, s.consumer_group, topic),
            what="the partition to move past the hostile events",
        )

    by_order = {json.loads(d.value)["order_id"]: dict(d.headers) for d in dead}
    assert sorted(by_order) == sorted(hostile)
    details = {order: (h["dlq.reason"], h["dlq.detail"].decode()) for order, h in by_order.items()}
    assert details == {
        "HX-DOCS": (b"invalid_event", "pickup.documents: too_long"),
        "HX-UNIX": (b"invalid_event", "occurred_at: datetime_not_rfc3339"),
        "HX-NUMSTR": (b"invalid_event", "pickup.window_start: datetime_not_rfc3339"),
        "HX-Y9999": (b"invalid_event", "occurred_at: datetime_not_rfc3339"),
        "HX-Y0001": (b"invalid_event", "occurred_at: datetime_not_rfc3339"),
        "HX-ESC": (b"invalid_event", "bike_model: string_pattern_mismatch"),
    }
    assert {h["dlq.attempts"] for h in by_order.values()} == {b"1"}  # at once, not after retries
    bodies = [m.body for m in state.messages]
    assert any("HX-GOOD-1" in b for b in bodies)
    assert any("HX-GOOD-2" in b for b in bodies)
    assert not any(order in b for b in bodies for order in hostile)

    # The sealed event (kept for the email fallback) is the validated one: no unknown fields.
    assert s.pii_keys is not None
    keyring = Keyring.parse(s.pii_keys.get_secret_value())
    conn = await asyncpg.connect(s.database_url)
    try:
        rows = await conn.fetch(
            "SELECT c.notification_id, c.key_id, c.ciphertext FROM notification_contacts c"
            " JOIN notifications n ON n.id = c.notification_id WHERE n.order_id = 'HX-GOOD-1'"
        )
    finally:
        await conn.close()
    assert len(rows) == 1
    plain = keyring.decrypt(rows[0]["key_id"], bytes(rows[0]["ciphertext"]), rows[0]["notification_id"].bytes)
    assert b"keep-me-not" not in plain
    assert b"crm" not in plain
    assert json.loads(plain)["order_id"] == "HX-GOOD-1"
