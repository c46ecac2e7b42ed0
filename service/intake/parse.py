"""Intake: each consumed record is parsed and validated against the event contract
(``service.contracts.parse_event``); a record that is not a valid event is dead-lettered with its
reason, and the batch moves on without it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from service.contracts import parse_event
from service.domain.errors import EventRejected
from service.domain.model import InboundRecord, ShipmentUpdate
from service.domain.ports import DeadLetter
from service.intake.dead_letters import DeadLetters

Parsed = list[tuple[InboundRecord, ShipmentUpdate]]


class Intake:
    def __init__(self, dead_letters: DeadLetters, clock: Callable[[], datetime]) -> None:
        self._dead_letters = dead_letters
        self._clock = clock

    async def read(self, records: Sequence[InboundRecord]) -> Parsed:
        """The valid events of a batch, each with its record; the rest are on the dead-letter topic."""
        parsed: Parsed = []
        dead: list[DeadLetter] = []
        for rec in records:
            try:
                parsed.append((rec, parse_event(rec.value, now=self._clock())))
            except EventRejected as exc:
                dead.append(DeadLetter(rec, exc.reason, exc.detail, type(exc).__name__))
        await self._dead_letters.send(dead)
        return parsed
