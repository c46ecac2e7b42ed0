"""``notifier dlq``: dead letters counted and replayed once per source record, repeats shown."""

from __future__ import annotations

from aiokafka import ConsumerRecord

from service import dlq


def _record(
    offset: int, headers: dict[str, bytes], key: bytes | None = None, value: bytes = b"{bad"
) -> ConsumerRecord:  # type: ignore[type-arg]
    return ConsumerRecord("dlq", 0, offset, 0, 0, key, value, None, 1, len(value), tuple(headers.items()))


def _new(
    offset: int, source_offset: int, reason: bytes = b"malformed_json", **extra: bytes
) -> ConsumerRecord:  # type: ignore[type-arg]
    ident = b"in:1:%d" % source_offset
    headers = {"dlq.id": ident, "dlq.reason": reason, "dlq.source_topic": b"in", "dlq.source_key": b"ORD-1"}
    return _record(offset, headers | extra, key=ident)


def _old(offset: int, source_offset: int) -> ConsumerRecord:  # type: ignore[type-arg]
    # Written before letters had ids: the source key was the letter's key; the id comes from headers.
    headers = {
        "dlq.reason": b"malformed_json",
        "dlq.source_topic": b"in",
        "dlq.source_partition": b"1",
        "dlq.source_offset": str(source_offset).encode(),
    }
    return _record(offset, headers, key=b"ORD-OLD")


def test_repeats_of_a_source_record_count_once_and_are_shown() -> None:
    letters = [dlq._letter(r) for r in (_new(0, 7), _new(1, 8), _new(2, 7), _new(3, 7))]
    report = dlq.summary(letters)
    assert (
        report.splitlines()[0] == "2 dead letter(s) (4 on the topic: 2 repeat(s) of the same source records)"
    )
    assert "     2  malformed_json" in report
    assert "(+2 repeat(s))" in report


def test_letters_written_before_ids_are_told_apart_by_their_source_coordinates() -> None:
    letters = [dlq._letter(r) for r in (_old(0, 3), _old(1, 3), _old(2, 4))]
    assert [x.id for x in dlq.distinct(letters)] == ["in:1:3", "in:1:4"]
    assert {x.key for x in letters} == {b"ORD-OLD"}  # replayed with the key they had


def test_replay_selects_each_source_record_once_its_latest_letter_and_skips_bounded_copies() -> None:
    letters = [
        dlq._letter(r)
        for r in (
            _new(0, 7),
            _new(1, 7, b"processing_failed"),  # the same record, failing later for another reason
            _new(2, 9, b"oversized", **{"dlq.value_omitted": b"true"}),
        )
    ]
    chosen = dlq.select(letters, reason=None, from_offset=None, to_offset=None)
    assert [(x.id, x.offset, x.reason, x.key) for x in chosen] == [
        ("in:1:7", 1, "processing_failed", b"ORD-1")
    ]
    assert dlq.omitted(letters) == 1
    assert dlq.select(letters, reason="malformed_json", from_offset=None, to_offset=None)[0].offset == 0


def test_filters_by_reason_partition_and_offsets_narrow_what_is_counted_and_replayed() -> None:
    letters = [dlq._letter(r) for r in (_new(0, 7), _new(1, 8, b"invalid_event"), _new(2, 9))]
    letters.append(dlq.Letter(1, 3, b"ORD-2", b"{bad", "malformed_json", "in", "in:2:1"))
    assert [x.offset for x in dlq.matching(letters, reason="malformed_json")] == [0, 2, 3]
    assert [x.offset for x in dlq.matching(letters, partition=1)] == [3]
    assert [x.offset for x in dlq.matching(letters, partition=0, from_offset=1, to_offset=2)] == [1, 2]
    assert dlq.matching(letters) == letters
    assert dlq.summary(dlq.matching(letters, reason="invalid_event")).splitlines()[0] == "1 dead letter(s)"
    assert [x.offset for x in dlq.select(letters, reason="malformed_json", partition=0)] == [0, 2]
