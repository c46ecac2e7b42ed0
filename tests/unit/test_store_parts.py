"""Both stores are composed of parts, one per concern (``service/store/*.py`` over one pool,
``service/fake_store.py`` over shared tables): each port method is written once, in one part, so no
part silently shadows another's through the method resolution order."""

from __future__ import annotations

import pytest

from service.domain.ports import NotificationStore
from service.fake_store import FakeStore
from service.store.postgres import PostgresStore

PORT = sorted(n for n, v in vars(NotificationStore).items() if callable(v) and not n.startswith("_"))


@pytest.mark.parametrize("store", [FakeStore, PostgresStore])
def test_every_port_method_is_written_once_in_one_part_of_the_store(store: type) -> None:
    parts = [c for c in store.__mro__ if c is not object]
    written = {n: [c.__name__ for c in parts if n in vars(c)] for n in PORT}
    assert {n: cs for n, cs in written.items() if len(cs) != 1} == {}
    assert len({written[n][0] for n in PORT}) > 3  # split by concern, not one class


@pytest.mark.parametrize("store", [FakeStore, PostgresStore])
def test_no_part_of_the_store_shadows_another(store: type) -> None:
    parts = [c for c in store.__mro__ if c is not object]
    names = [n for c in parts for n in vars(c) if not n.startswith("__")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
