"""The consent snapshot of every decision and the audit of every consent change, on real PostgreSQL
and Kafka: the batch driver with an injected clock, the fake providers of ``service.testing``.

Each decision (sent, suppressed, stale) keeps the consent its batch's one look-up read: in its row
(``notifications.consent_*``) and in its receipt on the topic (state, the source's kind, the time
it was set; never a name, phone or email). Every change of consent writes an audit row naming who
made it: the customer (STOP reply, unsubscribe link), a provider, or a staff member.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from service.compose.render import Renderer
from service.domain.errors import RecipientOptedOut
from service.domain.model import InboundRecord
from service.domain.references import MessageReferences
from service.kafka.producer import Publishers
from service.metrics import Metrics
from service.pipeline.stages import Stages, build_stages
from service.privacy.blind_index import BlindIndex
from service.privacy.crypto import Keyring
from service.send.engine import DeliveryEngine
from service.send.providers.twilio_reports import parse_inbound_message
from service.settings import Settings
from service.store.migrate import migrate, migration_files
from service.store.postgres import PostgresStore
from service.testing import FakeClock, FakeEmailSender, FakeSmsSender
from tests.builders import event
from tests.integration.helpers import read_topic

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 20, 18, 30, tzinfo=UTC)  # the injected clock: 02:30 in Hong Kong


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


@dataclass
class Stack:
    settings: Settings
    store: PostgresStore
    stages: Stages
    blind: BlindIndex
    sms: FakeSmsSender
    lookups: list[int]
    offset: int = 0

    async def feed(self, *values: bytes) -> None:
        records = []
        for v in values:
            records.append(InboundRecord("in", 0, self.offset, b"k", v, 1_700_000_000_000))
            self.offset += 1
        await self.stages.driver.process_batch(records)

    async def receipts(self, at_least: int) -> dict[tuple[str, str], dict[str, object]]:
        found = await read_topic(
            self.settings.kafka_bootstrap_servers, self.settings.receipts_topic, at_least=at_least
        )
        return {(r["order_id"], r["outcome"]): r for r in (json.loads(x.value) for x in found)}


@pytest_asyncio.fixture
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    store = await PostgresStore.connect(settings.database_url)
    metrics = Metrics()
    publishers = Publishers(
        settings.kafka_bootstrap_servers,
        receipts_topic=settings.receipts_topic,
        dead_letter_topic=settings.dead_letter_topic,
        metrics=metrics,
    )
    await publishers.start()
    blind = BlindIndex(base64.b64decode(settings.blind_index_key.get_secret_value()))  # type: ignore[union-attr]
    clock, sms = FakeClock(), FakeSmsSender(name="twilio")
    engine = DeliveryEngine(
        sms=[sms],
        email=FakeEmailSender(),
        limits={},
        metrics=metrics,
        references=MessageReferences(blind.derive_key("message-reference")),
        clock=clock,
        sleep=clock.sleep,
        rng=random.Random(1),
    )
    lookups: list[int] = []
    consent_records = store.consent_records

    async def counted(subjects: list[bytes]) -> object:  # the look-ups the pipeline makes
        lookups.append(len(subjects))
        return await consent_records(subjects)

    store.consent_records = counted  # type: ignore[assignment,method-assign]
    stages = build_stages(
        store=store,
        engine=engine,
        renderer=Renderer(
            REPO / "templates",
            brand="Specialized",
            contact_phone="+852 3001 2345",
            contact_email="hk@example.com",
        ),
        receipts=publishers.receipts,
        dead_letters=publishers.dead_letters,
        metrics=metrics,
        blind_index=blind,
        keyring=Keyring({"k1": bytes(32)}, "k1"),
        clock=lambda: NOW,
    )
    try:
        yield Stack(settings, store, stages, blind, sms, lookups)
    finally:
        await publishers.stop()
        await store.close()


async def test_each_decision_records_the_consent_its_batch_read_and_each_change_says_who(
    stack: Stack,
) -> None:
    store, blind = stack.store, stack.blind
    stop_phone, back_phone = "+85291234560", "+85291234561"
    await stack.feed(event("SO-A", "ARRIVED_HK_WAREHOUSE", phone="9123 4560"))  # no record: sent
    assert stack.lookups == [2]  # phone and email, in one look-up

    # The customer replies STOP to the SMS (Twilio's inbound webhook, parsed as the route does).
    reply = parse_inbound_message({"From": stop_phone, "Body": "STOP"})
    assert reply is not None
    await store.set_consent([blind.phone(reply.phone_e164)], opted_out=reply.opted_out, source=reply.source)
    # Another customer unsubscribes by the link of an order, then opts back in by replying START.
    await store.set_consent(
        [blind.phone(back_phone)], opted_out=True, source="unsubscribe_link", order_id="SO-B0"
    )
    start = parse_inbound_message({"From": back_phone, "Body": "START"})
    assert start is not None
    await store.set_consent([blind.phone(start.phone_e164)], opted_out=start.opted_out, source=start.source)

    stack.lookups.clear()
    await stack.feed(
        event("SO-A", "CUSTOMS_CLEARED", phone="9123 4560"),  # opted out by STOP: nothing sent
        event("SO-B", "ARRIVED_HK_WAREHOUSE", phone="9123 4561"),  # opted back in: sent
        event("SO-C", "READY_FOR_PICKUP", phone="9123 4562"),
        event("SO-C", "ARRIVED_HK_WAREHOUSE", phone="9123 4562"),  # stale: recorded with its consent too
    )
    assert len(stack.lookups) == 1  # one consent look-up for the whole batch, not one per notification
    assert [to for to, _ in stack.sms.sent] == ["+85291234560", "+85291234561", "+85291234562"]

    stop_at, unsubscribed_at, start_at = (
        r["created_at"] for r in await store.pool.fetch("SELECT created_at FROM consent_events ORDER BY id")
    )
    receipts = await stack.receipts(at_least=5)
    got = {
        k: (r["consent_state"], r["consent_source"], r["consent_set_at"], r["decided_at"])
        for k, r in receipts.items()
    }
    now = iso(NOW)
    assert got == {
        ("SO-A", "sent"): ("no_record", None, None, now),
        ("SO-A", "suppressed_opted_out"): ("opted_out", "sms_reply:twilio", iso(stop_at), now),
        ("SO-B", "sent"): ("opted_in", "sms_reply:twilio", iso(start_at), now),
        ("SO-C", "sent"): ("no_record", None, None, now),
        ("SO-C", "suppressed_stale"): ("no_record", None, None, now),
    }
    text = json.dumps(list(receipts.values()), ensure_ascii=False)
    for personal in ("9123", "91234560", "tai.man@example.com", "陳大文"):
        assert personal not in text

    rows = await store.pool.fetch(
        "SELECT order_id, state, consent_state, consent_source, consent_set_at FROM notifications"
        " ORDER BY order_id, milestone_rank"
    )
    assert [tuple(r) for r in rows] == [
        ("SO-A", "sent", "no_record", None, None),
        ("SO-A", "suppressed_opted_out", "opted_out", "sms_reply:twilio", stop_at),
        ("SO-B", "sent", "opted_in", "sms_reply:twilio", start_at),
        ("SO-C", "suppressed_stale", "no_record", None, None),
        ("SO-C", "sent", "no_record", None, None),
    ]

    # The audit log: who changed consent, which order, when (the change's own time); no personal data.
    audit = await store.pool.fetch(
        "SELECT actor, role, action, order_id, detail, staff_id, at FROM audit_log ORDER BY id"
    )
    assert [tuple(r)[:6] for r in audit] == [
        ("customer", "customer", "consent_opt_out", "SO-A", "sms_reply:twilio, 1 subject(s)", None),
        ("customer", "customer", "consent_opt_out", "SO-B0", "unsubscribe_link, 1 subject(s)", None),
        # START names no order, and no order was notified to that phone yet
        ("customer", "customer", "consent_opt_in", None, "sms_reply:twilio, 1 subject(s)", None),
    ]
    assert [r["at"] for r in audit] == [stop_at, unsubscribed_at, start_at]
    # No personal data in anything the consent snapshot and its audit wrote.
    dump = ""
    for table in ("notifications", "opt_outs", "opt_ins", "consent_events", "audit_log", "receipt_outbox"):
        dump += "\n".join(str(dict(r)) for r in await store.pool.fetch(f"SELECT * FROM {table}"))  # noqa: S608
    for personal in ("9123 456", "+8529123456", "9123456", "tai.man@example.com", "陳大文"):
        assert personal not in dump


async def test_a_providers_opt_out_is_audited_against_the_order_it_refused(stack: Stack) -> None:
    stack.sms.errors.append(RecipientOptedOut("twilio", "21610"))  # the number replied STOP at the provider
    await stack.feed(event("SO-P", "ARRIVED_HK_WAREHOUSE", phone="9123 4563"))
    receipts = await stack.receipts(at_least=1)
    # The decision read no record; the provider refused; the consent record is now the provider's.
    assert receipts[("SO-P", "suppressed_opted_out")]["consent_state"] == "no_record"
    audit = await stack.store.pool.fetch("SELECT actor, role, action, order_id FROM audit_log")
    assert [tuple(r) for r in audit] == [("provider:twilio", "provider", "consent_opt_out", "SO-P")]
    found = await stack.store.consent_records([stack.blind.phone("+85291234563")])
    assert [(r.opted_out, r.source) for r in found.values()] == [(True, "provider:twilio")]


async def test_migration_0018_keeps_the_latest_opt_in_of_each_subject_that_opted_back_in(
    database_url: str,
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "CREATE TABLE schema_migrations (name text PRIMARY KEY, applied_at timestamptz DEFAULT now())"
        )
        for name, sql in migration_files():
            if name < "0018":
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
        history = [  # (subject, action, source, minutes after 00:00) as the history held them
            (b"back", "opt_out", "unsubscribe_link", 1),
            (b"back", "opt_in", "sms_reply:twilio", 2),
            (b"back", "opt_out", "operator:amy", 3),
            (b"back", "opt_in", "operator:bob", 4),
            (b"out", "opt_out", "sms_reply:twilio", 1),
            (b"out", "opt_in", "sms_reply:twilio", 2),
            (b"out", "opt_out", "provider:twilio", 3),
        ]
        for subject, action, source, minute in history:
            await conn.execute(
                "INSERT INTO consent_events (subject, action, source, created_at)"
                " VALUES ($1, $2, $3, '2026-11-01T00:00:00Z'::timestamptz + make_interval(mins => $4))",
                subject,
                action,
                source,
                minute,
            )
        await conn.execute("INSERT INTO opt_outs (subject, source) VALUES ('out', 'provider:twilio')")
        assert "0018_consent_snapshot.sql" in await migrate(conn)
        rows = await conn.fetch("SELECT subject, source, created_at FROM opt_ins")
        assert [(bytes(r["subject"]), r["source"], r["created_at"].minute) for r in rows] == [
            (b"back", "operator:bob", 4)
        ]
        assert (
            await conn.fetchval("SELECT count(*) FROM audit_log") == 0
        )  # history before it is not re-audited
    finally:
        await conn.close()
