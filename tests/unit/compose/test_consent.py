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
