"""Pilot mode and bad-number hygiene on real Kafka + PostgreSQL, the sandbox providers over HTTP:
what the providers received, the receipts on the topic, the metrics and the support look-up."""

from __future__ import annotations

import json

import pytest

from service.app import Service
from service.http.support_desk import timeline
from service.http.support_labels import NUMBER_MARKED
from service.privacy.blind_index import BlindIndex
from service.sandbox.serve import Fault, SandboxState
from service.settings import Settings
from service.store.postgres import PostgresStore
from service.store.staff import StaffStore
from tests.integration.helpers import event, produce, read_topic, wait_until
from tests.integration.test_delivery_on_real_stack import decided, metric, running

pytestmark = pytest.mark.integration

STAFF, CUSTOMER, NEW = "9123 4567", "9876 5432", "9234 5678"


def e164(number: str) -> str:
    return "+852" + number.replace(" ", "")


def blind(s: Settings) -> BlindIndex:
    assert s.blind_index_key is not None
    return BlindIndex.parse(s.blind_index_key.get_secret_value())


async def receipts_text(s: Settings) -> str:
    records = await read_topic(s.kafka_bootstrap_servers, s.receipts_topic, at_least=0, timeout_s=1)
    return "\n".join(r.value.decode() for r in records)


async def test_pilot_mode_texts_only_allow_listed_recipients(
    settings: Settings, sandbox: tuple[SandboxState, str]
) -> None:
    state, _ = sandbox
    s = settings.model_copy(update={"pilot_mode": True})
    store = await PostgresStore.connect(s.database_url)
    try:
        await store.set_pilot(blind(s).phone(e164(STAFF)), "phone", listed=True, source="operator:it")
    finally:
        await store.close()
    service = Service(s)
    async with running(service):
        await produce(
            s.kafka_bootstrap_servers,
            s.input_topics[0],
            [
                event("IT-PL-STAFF", "ARRIVED_HK_WAREHOUSE", phone=STAFF),
                event("IT-PL-CUST1", "ARRIVED_HK_WAREHOUSE", phone=CUSTOMER),
                event("IT-PL-CUST2", "CUSTOMS_CLEARED", phone=NEW),
            ],
        )
        receipts = await decided(s, 3)
        published = await receipts_text(s)
        suppressed = metric(service, "notifier_decisions_total", decision="suppressed_pilot")
    by_order = {r["order_id"]: (r["outcome"], r["channel"], r["reason"]) for r in receipts}
    assert by_order == {
        "IT-PL-STAFF": ("sent", "sms", None),
        "IT-PL-CUST1": ("suppressed_pilot", "none", "pilot_not_allow_listed"),
        "IT-PL-CUST2": ("suppressed_pilot", "none", "pilot_not_allow_listed"),
    }
    # the providers saw the listed number only: no SMS, no email to a customer who is not listed
    assert [(m.provider, m.to) for m in state.messages] == [("twilio", e164(STAFF))]
    assert suppressed == 2
    for personal in (CUSTOMER.replace(" ", ""), NEW.replace(" ", ""), "customer@example.com"):
        assert personal not in published


async def test_pilot_mode_sends_no_email_fallback_to_an_address_not_listed(
    settings: Settings, sandbox: tuple[SandboxState, str]
) -> None:
    state, _ = sandbox
    s = settings.model_copy(update={"pilot_mode": True})
    store = await PostgresStore.connect(s.database_url)
    try:
        await store.set_pilot(blind(s).phone(e164(STAFF)), "phone", listed=True, source="operator:it")
    finally:
        await store.close()
    state.set_fault("twilio", Fault(undelivered_rate=1.0))
    service = Service(s)
    async with running(service):
        await produce(
            s.kafka_bootstrap_servers, s.input_topics[0], [event("IT-PL-FB", "READY_FOR_PICKUP", phone=STAFF)]
        )
        await wait_until(
            lambda: metric(service, "notifier_email_fallbacks_total", result="pilot") == 1,
            what="the fallback to be refused by pilot mode",
        )
        records = await read_topic(s.kafka_bootstrap_servers, s.receipts_topic, at_least=3, timeout_s=10)
    steps = [(d["outcome"], d["reason"]) for d in (json.loads(r.value) for r in records)]
    assert steps[0] == ("sent", None)
    assert steps[1][0] == "undelivered"
    assert steps[2] == ("suppressed_pilot", "pilot_not_allow_listed")
    assert [m.provider for m in state.messages] == ["twilio"]  # no email to the address not listed


async def test_a_failing_number_falls_back_to_email_on_the_next_milestone(
    settings: Settings, sandbox: tuple[SandboxState, str]
) -> None:
    state, _ = sandbox
    state.set_fault("twilio", Fault(error_rate=1.0, error_code=21211))  # invalid 'To' number
    service = Service(settings)
    async with running(service):
        topic = settings.input_topics[0]
        await produce(
            settings.kafka_bootstrap_servers, topic, [event("IT-BN", "ARRIVED_HK_WAREHOUSE", phone=CUSTOMER)]
        )
        first = await decided(settings, 1)
        assert [(r["outcome"], r["channel"]) for r in first] == [("sent", "email")]
        await wait_until(
            lambda: metric(service, "notifier_bad_numbers_marked_total", why="refused") == 1,
            what="the number to be marked",
        )
        state.set_fault("twilio", None)  # Twilio is fine: the number is not

        await produce(
            settings.kafka_bootstrap_servers, topic, [event("IT-BN", "CUSTOMS_CLEARED", phone=CUSTOMER)]
        )
        second = (await decided(settings, 2))[-1]
        assert (second["milestone"], second["outcome"], second["channel"], second["reason"]) == (
            "customs_cleared",
            "sent",
            "email",
            "number_marked_undeliverable",
        )
        assert [m.provider for m in state.messages] == ["sendgrid", "sendgrid"]  # no SMS was tried
        assert metric(service, "notifier_bad_number_skips_total", then="email") == 1

        # the customer's new number in a later event clears it: texted again
        await produce(
            settings.kafka_bootstrap_servers, topic, [event("IT-BN", "READY_FOR_PICKUP", phone=NEW)]
        )
        third = (await decided(settings, 3))[-1]
        assert (third["milestone"], third["outcome"], third["channel"]) == ("ready_for_pickup", "sent", "sms")
        assert [(m.provider, m.to) for m in state.messages if m.provider != "sendgrid"] == [
            ("twilio", e164(NEW))
        ]
        published = await receipts_text(settings)
    assert CUSTOMER.replace(" ", "") not in published
    # the support look-up shows the mark on the milestones sent to that number, not on the new one's
    store = await PostgresStore.connect(settings.database_url)
    try:
        rows = await StaffStore(store.pool).lookup("IT-BN")
    finally:
        await store.close()
    shown = {r["milestone"]: r["number_marked"] for r in timeline(rows)}
    assert shown["ready_for_pickup"] is None
    for milestone in ("arrived_hk_warehouse", "customs_cleared"):
        mark = shown[milestone]
        assert isinstance(mark, dict)
        assert (mark["reason"], mark["label"]) == ("twilio_21211", NUMBER_MARKED._asdict())


async def test_a_number_reported_undelivered_is_marked_and_the_next_milestone_goes_by_email(
    settings: Settings, sandbox: tuple[SandboxState, str]
) -> None:
    state, _ = sandbox
    s = settings.model_copy(update={"bad_number_undelivered_reports": 1})
    state.set_fault("twilio", Fault(undelivered_rate=1.0))  # 30003 or 30005, reported by callback
    service = Service(s)
    marked = ("permanent_report", "repeated_undelivered")
    async with running(service):
        topic = s.input_topics[0]
        await produce(
            s.kafka_bootstrap_servers, topic, [event("IT-UN", "ARRIVED_HK_WAREHOUSE", phone=CUSTOMER)]
        )
        await wait_until(
            lambda: sum(metric(service, "notifier_bad_numbers_marked_total", why=w) for w in marked) == 1,
            what="the undelivered report to mark the number",
        )
        state.set_fault("twilio", None)
        await produce(s.kafka_bootstrap_servers, topic, [event("IT-UN", "CUSTOMS_CLEARED", phone=CUSTOMER)])

        async def cleared() -> list[tuple[str, str, str | None]]:
            records = await read_topic(s.kafka_bootstrap_servers, s.receipts_topic, at_least=0, timeout_s=1)
            docs = [json.loads(r.value) for r in records]
            return [
                (d["outcome"], d["channel"], d["reason"])
                for d in docs
                if d["milestone"] == "customs_cleared" and d["outcome"] != "delivered"
            ]

        async def emailed() -> bool:
            return bool(await cleared())

        await wait_until(emailed, what="the next milestone's decision")
        assert await cleared() == [("sent", "email", "number_marked_undeliverable")]
    assert [m.provider for m in state.messages].count("twilio") == 1  # only the first milestone's SMS
