"""Message references: stable for a notification and step, unguessable without the key."""

from __future__ import annotations

import os
import uuid

import pytest

from service.domain.references import MessageReferences

KEY = os.urandom(32)
N = uuid.UUID("0f8b6c7e-1a2b-5c3d-8e4f-5a6b7c8d9e0f")


def test_the_same_notification_and_step_always_give_the_same_reference() -> None:
    # A re-claim after a crash (another process, same key) must find the earlier send by it.
    assert MessageReferences(KEY).make(N, 1) == MessageReferences(KEY).make(N, 1)
    assert MessageReferences(KEY).parse(MessageReferences(KEY).make(N, 3)) == (N, 3)


def test_the_tag_depends_on_the_key_step_and_notification() -> None:
    refs = MessageReferences(KEY)
    made = {
        refs.make(N, 1),
        refs.make(N, 2),
        refs.make(uuid.uuid4(), 1),
        MessageReferences(os.urandom(32)).make(N, 1),
    }
    assert len(made) == 4
    assert all(r.startswith(N.hex) for r in (refs.make(N, 1), refs.make(N, 2)))


@pytest.mark.parametrize(
    "forged",
    [
        f"{N.hex}.1",  # the old form: derivable from order id + milestone
        f"{N.hex}.1.{'0' * 24}",
        f"{N.hex}.2.",
        "",
        "x" * 5000,
    ],
)
def test_a_reference_we_did_not_make_does_not_parse(forged: str) -> None:
    assert MessageReferences(KEY).parse(forged) is None


def test_another_steps_tag_or_another_keys_reference_does_not_parse() -> None:
    refs = MessageReferences(KEY)
    tag = refs.make(N, 1).rpartition(".")[2]
    assert refs.parse(f"{N.hex}.2.{tag}") is None
    assert refs.parse(MessageReferences(os.urandom(32)).make(N, 1)) is None


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^a message-reference key must be at least 32 bytes$"):
        MessageReferences(b"short")


def test_the_repr_hides_the_key() -> None:
    assert repr(MessageReferences(b"k" * 32)) == "MessageReferences(<key hidden>)"
