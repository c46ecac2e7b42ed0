"""Dedup: a batch's events recorded, planned and claimed; each claim with its link and subjects."""

from __future__ import annotations

import dataclasses
import os

from service.dedup.claims import Dedup
from service.domain.links import LinkSigner
from service.domain.milestones import Milestone
from service.domain.model import InboundRecord, notification_id
from service.metrics import Metrics
from service.privacy.blind_index import BlindIndex
from service.privacy.subjects import RecipientSubjects
from service.testing import FakeStore
from tests.builders import EMAIL, update

BLIND = BlindIndex(os.urandom(32))
LINKS = LinkSigner(b"k" * 32, "https://n.example")


def rec(offset: int) -> InboundRecord:
    return InboundRecord("t", 0, offset, b"k", b"{}", 1)


def events(m: Metrics) -> dict[str, float]:
    results = ("not_a_milestone", "duplicate", "stale", "new_milestone")
    return {r: m.registry.get_sample_value("notifier_events_total", {"result": r}) or 0.0 for r in results}


async def test_each_event_is_counted_by_what_it_is() -> None:
    store, m = FakeStore(), Metrics()
    dedup = Dedup(store, RecipientSubjects(BLIND), m, LINKS)
    batch = [
        update("A", "READY_FOR_PICKUP", event_id="A-1"),
        update("A", "READY_FOR_PICKUP", event_id="A-2"),  # the same milestone again
        update("B", "IN_TRANSIT", event_id="B-1"),  # not a milestone
        update("C", "CUSTOMS_CLEARED", event_id="C-1"),
    ]
    claims = await dedup.claim([(rec(i), u) for i, u in enumerate(batch)])
    assert [r.state for r in claims.work] == ["claimed", "claimed"]
    assert events(m) == {"not_a_milestone": 1, "duplicate": 1, "stale": 0, "new_milestone": 2}
    claims = await dedup.claim([(rec(10), update("A", "ARRIVED_HK_WAREHOUSE", event_id="A-3"))])
    assert [r.state for r in claims.work] == ["suppressed_stale"]
    assert events(m) == {"not_a_milestone": 1, "duplicate": 1, "stale": 1, "new_milestone": 2}


async def test_a_claim_carries_its_link_id_and_the_recipients_blind_indexes() -> None:
    store = FakeStore()
    u = update("A")
    u = dataclasses.replace(u, recipient=dataclasses.replace(u.recipient, email=EMAIL))
    claims = await Dedup(store, RecipientSubjects(BLIND), Metrics(), LINKS).claim([(rec(0), u)])
    (req,) = claims.work
    nid = notification_id("A", Milestone.ARRIVED_HK_WAREHOUSE)
    assert (req.notification_id, req.link_id) == (nid, LINKS.link_id(nid))
    assert (req.phone_subject, req.email_subject) == (BLIND.phone("+85291234567"), BLIND.email(EMAIL))
    assert set(claims.granted) == {nid}


async def test_without_links_a_claim_has_no_link_id() -> None:
    claims = await Dedup(FakeStore(), RecipientSubjects(BLIND), Metrics()).claim([(rec(0), update("A"))])
    assert [r.link_id for r in claims.work] == [None]
