"""The consent a decision applied, from a recipient's records (tables of fixed times; no I/O)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.contracts import ReceiptV1
from service.domain.consent_snapshot import (
    NO_RECORD,
    SOURCE_KIND_MAX,
    SOURCE_KIND_PATTERN,
    ConsentRecord,
    ConsentSnapshot,
    ConsentState,
    snapshot,
    source_kind,
)

T1, T2, T3 = (datetime(2026, 11, d, 10, 0, tzinfo=UTC) for d in (1, 2, 3))


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([], NO_RECORD),
        (
            [ConsentRecord(True, "sms_reply:twilio", T2)],
            ConsentSnapshot(ConsentState.OPTED_OUT, "sms_reply:twilio", T2),
        ),
        # either subject's opt-out blocks: the opt-out wins over the other subject's opt-in
        (
            [ConsentRecord(False, "sms_reply:twilio", T3), ConsentRecord(True, "unsubscribe_link", T1)],
            ConsentSnapshot(ConsentState.OPTED_OUT, "unsubscribe_link", T1),
        ),
        # both opted out: the earliest (opted out since then)
        (
            [ConsentRecord(True, "operator:amy", T3), ConsentRecord(True, "unsubscribe_link", T2)],
            ConsentSnapshot(ConsentState.OPTED_OUT, "unsubscribe_link", T2),
        ),
        # no opt-out: the latest opt-in
        (
            [ConsentRecord(False, "operator:amy", T1), ConsentRecord(False, "sms_reply:infobip", T2)],
            ConsentSnapshot(ConsentState.OPTED_IN, "sms_reply:infobip", T2),
        ),
    ],
)
def test_the_snapshot_of_a_recipients_records(
    records: list[ConsentRecord], expected: ConsentSnapshot
) -> None:
    assert snapshot(records) == expected
    assert snapshot(records).opted_out == (expected.state == ConsentState.OPTED_OUT)


def test_a_stored_source_is_bounded() -> None:
    s = snapshot([ConsentRecord(True, "operator:" + "x" * 500, T1)])
    assert s.source is not None
    assert len(s.source) == 100


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("unsubscribe_link", "unsubscribe_link"),
        ("sms_reply:twilio", "sms_reply:twilio"),
        ("provider:infobip", "provider:infobip"),
        ("provider:sms-a", "provider:sms-a"),
        ("operator:admin-bob", "operator"),  # a person's name never leaves in a receipt
        ("operator:陳大文", "operator"),
        ("provider:+85291234567", "provider"),  # not a provider's name: dropped
        ("provider:None", "provider"),
        ("sms_reply:tai.man@example.com", "sms_reply"),
        ("Someone Else", "other"),
        ("", "other"),
    ],
)
def test_a_receipt_carries_the_kind_of_source_without_a_name(source: str, kind: str) -> None:
    assert source_kind(source) == kind
    assert ConsentSnapshot(ConsentState.OPTED_OUT, source, T1).source_kind == kind
    assert NO_RECORD.source_kind is None


@given(st.text(max_size=300))
def test_any_source_gives_a_kind_the_receipt_schema_accepts(source: str) -> None:
    kind = source_kind(source)
    assert re.fullmatch(SOURCE_KIND_PATTERN, kind)
    assert len(kind) <= SOURCE_KIND_MAX
    assert "@" not in kind
    assert not re.search(r"\d{8}", kind)


def test_the_receipts_consent_states_are_the_domains() -> None:
    field = ReceiptV1.model_json_schema()["properties"]["consent_state"]["anyOf"][0]
    assert field["enum"] == [s.value for s in ConsentState]
