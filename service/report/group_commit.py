"""Group commit: records asked for while another is being written are written together, next.

Sends accepted close together (the dispatch records each as soon as its provider accepts it) would
otherwise cost a transaction, an outbox take, a produce and an outbox update each. Here the first
caller starts a write; whoever calls while it runs joins the next group, which is written as soon as
the current one is durable — no timer, so a lone record waits for nothing. Every caller returns
only when its own outcomes are durable (or raises the group's failure): a group is one transaction,
so the guarantees of one record hold for each caller, and a failure of the database fails every
caller of that group (each then handles it as a failure of its own record).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from service.domain.outcome import Outcome, SealedContact

T = TypeVar("T")


@dataclass(slots=True)
class Pending(Generic[T]):
    """One caller's record, waiting to be written with its group."""

    outcomes: Sequence[Outcome]
    contacts: Sequence[SealedContact]
    done: asyncio.Future[T] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class GroupCommit(Generic[T]):
    """Coalesce concurrent ``record`` calls into one write of at most ``max_outcomes`` outcomes
    (a caller with more is written in a group of its own). ``write`` writes one group and returns
    what each of its callers gets back, in their order."""

    def __init__(
        self, write: Callable[[list[Pending[T]]], Awaitable[list[T]]], *, max_outcomes: int = 500
    ) -> None:
        self._write = write
        self._max = max_outcomes
        self._waiting: list[Pending[T]] = []
        self._writer: asyncio.Task[None] | None = None
        self.groups = 0  # how many writes so far

    async def record(self, outcomes: Sequence[Outcome], contacts: Sequence[SealedContact] = ()) -> T:
        req: Pending[T] = Pending(outcomes, contacts)
        req.done.add_done_callback(_retrieved)  # a caller cancelled meanwhile leaves no warning behind
        self._waiting.append(req)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_groups())
        # A caller cancelled while waiting does not cancel the write (others share it): shielded.
        return await asyncio.shield(req.done)

    async def _write_groups(self) -> None:
        try:
            while self._waiting:
                group: list[Pending[T]] = []
                n = 0
                while self._waiting and (not group or n + len(self._waiting[0].outcomes) <= self._max):
                    req = self._waiting.pop(0)
                    group.append(req)
                    n += len(req.outcomes)
                self.groups += 1
                try:
                    results = await self._write(group)
                except BaseException as exc:  # every caller of the group gets the failure
                    for req in group:
                        if not req.done.done():
                            req.done.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise  # cancelled (shutdown): the callers waiting after this group too
                    continue
                for req, result in zip(group, results, strict=True):
                    if not req.done.done():
                        req.done.set_result(result)
        except BaseException as exc:
            for req in self._waiting:
                if not req.done.done():
                    req.done.set_exception(exc)
            self._waiting.clear()
            raise
        finally:
            self._writer = None


def _retrieved(done: asyncio.Future[Any]) -> None:
    if not done.cancelled():
        done.exception()
