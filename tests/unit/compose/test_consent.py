"""Consent: opted out by blind index, for a batch at once or one notification; a provider's STOP."""

from __future__ import annotations

import dataclasses
import os

from service.compose.consent import Consent
from service.privacy.blind_index import BlindIndex
from service.privacy.subjects import RecipientSubjects
from service.testing import FakeStore
from tests.builders import claim, update

BLIND = BlindIndex(os.urandom(32))


async def test_one_notification_is_opted_out_only_if_its_recipient_is() -> None:
    store = FakeStore()
    consent = Consent(store, RecipientSubjects(BLIND))
    assert await consent.opted_out(update("A")) is False
    await store.set_consent([BLIND.phone("+85291234567")], opted_out=True, source="operator:test")
    assert await consent.opted_out(update("A")) is True


async def test_a_providers_opt_out_blocks_the_number_for_every_later_batch() -> None:
    store = FakeStore()
    consent = Consent(store, RecipientSubjects(BLIND))
    c = dataclasses.replace(claim("A"), phone_subject=BLIND.phone("+85291234567"))
    work = [c]
    assert await consent.opted_out_of(work) == set()
    await consent.provider_opt_out("+85291234567", "sms-a")
    assert await consent.opted_out_of(work) == {c.notification_id}
    assert await consent.opted_out(update("A")) is True


async def test_a_batch_gets_each_notifications_snapshot_from_one_look_up() -> None:
    store = FakeStore()
    calls: list[int] = []
    records = store.consent_records

    async def counted(subjects: list[bytes]) -> object:
        calls.append(len(subjects))
        return await records(subjects)

    store.consent_records = counted  # type: ignore[assignment,method-assign]
    consent = Consent(store, RecipientSubjects(BLIND))
    out, back, none = (BLIND.phone(f"+8529123456{i}") for i in range(3))
    email = BLIND.email("tai.man@example.com")
    await store.set_consent([out], opted_out=True, source="sms_reply:twilio")
    await store.set_consent([back], opted_out=True, source="unsubscribe_link")
    await store.set_consent([back], opted_out=False, source="sms_reply:infobip")
    work = [
        dataclasses.replace(claim("A"), phone_subject=out, email_subject=email),
        dataclasses.replace(claim("B"), phone_subject=back),
        dataclasses.replace(claim("C"), phone_subject=none, email_subject=email),
        dataclasses.replace(claim("D", state="suppressed_stale"), phone_subject=out),  # stale: recorded too
    ]
    found = await consent.snapshots(work)
    assert calls == [4]  # one look-up for the batch, each subject once
    assert {w.notification_id: found[w.notification_id].state for w in work} == {
        work[0].notification_id: "opted_out",
        work[1].notification_id: "opted_in",
        work[2].notification_id: "no_record",
        work[3].notification_id: "opted_out",
    }
    assert (found[work[0].notification_id].source, found[work[0].notification_id].set_at) == (
        "sms_reply:twilio",
        store.now,
    )
    assert found[work[1].notification_id].source == "sms_reply:infobip"
    assert await consent.opted_out_of(work) == {work[0].notification_id}  # stale ones are not "blocked"


async def test_a_providers_opt_out_names_the_order_it_came_from() -> None:
    store = FakeStore()
    await Consent(store, RecipientSubjects(BLIND)).provider_opt_out("+85291234567", "twilio", order_id="SO-1")
    assert store.consent_events == [(BLIND.phone("+85291234567"), "opt_out", "provider:twilio")]
    assert store.consent_orders == ["SO-1"]
