"""The dead-letter stage: what cannot be processed goes to the dead-letter topic with its reason,
counted and logged (coordinates and reason only: a letter's detail never quotes personal data)."""

from __future__ import annotations

from collections.abc import Sequence

from service.domain.ports import DeadLetter, DeadLetterSink
from service.logs import get_logger
from service.metrics import Metrics

log = get_logger(__name__)


class DeadLetters:
    def __init__(self, sink: DeadLetterSink, metrics: Metrics) -> None:
        self._sink = sink
        self._metrics = metrics

    async def send(self, letters: Sequence[DeadLetter], *, poison: bool = False) -> None:
        """Publish (durably: a failure propagates, so the batch is read again), then count and log.
        ``poison``: records that failed alone, again and again (logged as errors)."""
        if not letters:
            return
        await self._sink.publish(letters)
        emit = log.error if poison else log.warning
        for d in letters:
            self._metrics.dead_letters.labels(d.reason).inc()
            self._metrics.events.labels("dead_lettered").inc()
            emit(
                "event_dead_lettered",
                reason=d.reason,
                detail=d.detail,
                topic=d.record.topic,
                partition=d.record.partition,
                offset=d.record.offset,
            )
