"""The consumer's contract (``tests.contracts.consumer``) on ``FakeConsumer``, the members of a
``FakeGroup``: the fake the consume loop's unit tests use."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import pytest

from service.domain.ports import Consumer
from service.testing import FakeConsumer, FakeGroup
from tests.contracts.consumer import ConsumerContract, Group


class InMemory:
    def __init__(self) -> None:
        self.topic = "t"
        self.group = FakeGroup([(self.topic, 0), (self.topic, 1)])

    async def produce(self, partition: int, values: Sequence[bytes], key: bytes | None = None) -> None:
        for value in values:
            self.group.append((self.topic, partition), value, key)

    async def join(
        self,
        *,
        on_revoke: Callable[[], Awaitable[None]] | None = None,
        on_share: Callable[[float], None] | None = None,
    ) -> Consumer:
        return await self.group.join(on_revoke=on_revoke, on_share=on_share)

    async def leave(self, member: Consumer) -> None:
        assert isinstance(member, FakeConsumer)
        await self.group.leave(member)


class TestConsumerContractOnTheFake(ConsumerContract):
    @pytest.fixture
    def group(self) -> Group:
        return InMemory()


def test_a_consumer_built_alone_is_its_group_s_only_member_holding_every_partition() -> None:
    consumer = FakeConsumer([("t", 0), ("t", 1)])
    assert consumer.assignment() == {("t", 0), ("t", 1)}
    assert consumer.group.members == [consumer]
