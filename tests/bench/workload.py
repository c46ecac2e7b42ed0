"""The benchmark's workload: what a TMS sends, generated from a seed (pure, no I/O).

Each order gets one to three milestones, usually in order; some orders have a later milestone
before an earlier one (the earlier pair ends ``suppressed_stale``); about a fifth of the events
are sent again by the TMS (a new event id for the same milestone: a duplicate); a few customers
have a fixed-line number and an address (email instead of SMS); about one event in a hundred is
malformed JSON and one in a hundred fails the contract (both dead-lettered). Events are keyed by
order id, as the TMS publishes them, in both languages.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from tests.builders import keyed_event

STATUSES = ("ARRIVED_HK_WAREHOUSE", "CUSTOMS_CLEARED", "READY_FOR_PICKUP")


@dataclass
class Workload:
    """Records (key, value) in topic order, and what they should give."""

    records: list[tuple[bytes, bytes]] = field(default_factory=list)
    pairs: int = 0  # distinct (order, milestone) of valid events: each gets one decision
    to_send: int = 0  # pairs that are not stale: each gets one message
    stale: int = 0
    emails: int = 0  # pairs whose customer has a fixed-line number: email instead of SMS
    resends: int = 0  # TMS re-sends: duplicate events
    invalid: int = 0  # malformed JSON or not the contract: dead letters

    @property
    def events(self) -> int:
        return len(self.records)


def generate(
    orders: int, *, prefix: str = "BN", seed: int = 2026, stale_rate: float = 0.1, resend_rate: float = 0.2
) -> Workload:
    """``orders`` orders' events, order ids ``<prefix>-000000`` on; the same seed gives the same records."""
    rng = random.Random(seed)
    w = Workload()
    for i in range(orders):
        order = f"{prefix}-{i:06d}"
        statuses = list(STATUSES[: rng.choice((1, 2, 2, 3, 3))])
        if len(statuses) > 1 and rng.random() < stale_rate:
            statuses[0], statuses[-1] = statuses[-1], statuses[0]  # a later milestone first
        fixed_line = rng.random() < 0.03
        phone = f"{23 if fixed_line else 96}{i % 1_000_000:06d}"  # every 96… a mobile, every 23… a fixed line
        locale = rng.choice(("en", "zh-HK"))
        highest = -1
        for status in statuses:
            rank = STATUSES.index(status)
            w.pairs += 1
            if rank < highest:
                w.stale += 1
            else:
                w.to_send += 1
                w.emails += fixed_line
            highest = max(highest, rank)
            w.records.append(keyed_event(order, status, n=1, phone=phone, locale=locale))
            if rng.random() < resend_rate:
                w.records.append(keyed_event(order, status, n=2, phone=phone, locale=locale))
                w.resends += 1
    for j in range(w.events // 100):
        w.records.insert(rng.randrange(w.events), (f"{prefix}-BAD{j}".encode(), b'{"event_id": "broken'))
        key, value = keyed_event(f"{prefix}-INV{j}", "CUSTOMS_CLEARED")
        doc = json.loads(value)
        doc["occurred_at"] = "2026-11-20 09:00"  # no offset: refused by the contract
        w.records.insert(rng.randrange(w.events), (key, json.dumps(doc).encode()))
        w.invalid += 2
    return w


def event_id(value: bytes) -> str | None:
    """The event id of a record's value, when it is JSON with one."""
    try:
        doc = json.loads(value)
    except ValueError:
        return None
    return doc.get("event_id") if isinstance(doc, dict) else None
