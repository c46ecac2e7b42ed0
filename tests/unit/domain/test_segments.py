from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.domain.segments import GSM7_BASIC, GSM7_EXTENSION, SegmentCount, count_segments, is_gsm7

CJK = "貨"  # any BMP character outside GSM-7
EMOJI = "🚲"  # outside the BMP: a surrogate pair in UTF-16


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", SegmentCount("GSM-7", 0, 1)),
        ("a" * 160, SegmentCount("GSM-7", 160, 1)),
        ("a" * 161, SegmentCount("GSM-7", 161, 2)),
        ("a" * 306, SegmentCount("GSM-7", 306, 2)),
        ("a" * 307, SegmentCount("GSM-7", 307, 3)),
        ("a" * 459, SegmentCount("GSM-7", 459, 3)),
        ("a" * 460, SegmentCount("GSM-7", 460, 4)),
        (CJK * 70, SegmentCount("UCS-2", 70, 1)),
        (CJK * 71, SegmentCount("UCS-2", 71, 2)),
        (CJK * 134, SegmentCount("UCS-2", 134, 2)),
        (CJK * 135, SegmentCount("UCS-2", 135, 3)),
        # Extension characters cost two septets.
        ("€" * 80, SegmentCount("GSM-7", 160, 1)),
        ("€" * 80 + "a", SegmentCount("GSM-7", 161, 2)),
        ("{}[]", SegmentCount("GSM-7", 8, 1)),
        # One character outside GSM-7 turns the whole text into UCS-2.
        ("a" * 159 + "ç", SegmentCount("UCS-2", 160, 3)),
        ("a" * 69 + EMOJI, SegmentCount("UCS-2", 71, 2)),
        ("a" * 68 + EMOJI, SegmentCount("UCS-2", 70, 1)),
        (EMOJI, SegmentCount("UCS-2", 2, 1)),
        ("\uffff", SegmentCount("UCS-2", 1, 1)),  # the last character of one UTF-16 unit
        ("\U00010000", SegmentCount("UCS-2", 2, 1)),  # the first of two
        # The Greek capitals of the basic set stay GSM-7; their lower case does not.
        ("ΔΦΓΛΩΠΨΣΘΞ", SegmentCount("GSM-7", 10, 1)),
        ("δ", SegmentCount("UCS-2", 1, 1)),
    ],
)
def test_count_segments(text: str, expected: SegmentCount) -> None:
    assert count_segments(text) == expected


def test_escape_pair_is_not_split_across_segments() -> None:
    # 306 septets fit two parts of 153 only if "€" (ESC + e) may straddle the boundary: it may not.
    assert count_segments("a" * 152 + "€" + "a" * 152) == SegmentCount("GSM-7", 306, 3)
    assert count_segments("a" * 151 + "€" + "a" * 153) == SegmentCount("GSM-7", 306, 2)


def test_surrogate_pair_is_not_split_across_segments() -> None:
    # 134 units fit two parts of 67 only if the emoji may straddle the boundary: it may not.
    assert count_segments(CJK * 66 + EMOJI + CJK * 66) == SegmentCount("UCS-2", 134, 3)
    assert count_segments(CJK * 65 + EMOJI + CJK * 67) == SegmentCount("UCS-2", 134, 2)


def test_basic_set_has_127_characters_and_the_extension_table_ten() -> None:
    assert len(GSM7_BASIC) == 127  # 128 codes less the escape
    assert "\x1b" not in GSM7_BASIC
    assert frozenset("\f^{}\\[~]|€") == GSM7_EXTENSION
    assert not GSM7_BASIC & GSM7_EXTENSION


def test_lookalike_punctuation_is_not_gsm7() -> None:
    for ch in "’“”–—…":
        assert not is_gsm7(ch)


gsm_text = st.text(alphabet=sorted(GSM7_BASIC | GSM7_EXTENSION), max_size=500)
any_text = st.text(max_size=300)


@given(text=gsm_text)
def test_gsm_only_text_is_gsm7(text: str) -> None:
    count = count_segments(text)
    assert count.encoding == "GSM-7"
    assert count.units == len(text) + sum(ch in GSM7_EXTENSION for ch in text)


@given(text=any_text, extra=st.characters())
def test_appending_never_reduces_segments(text: str, extra: str) -> None:
    assert count_segments(text + extra).segments >= count_segments(text).segments


@given(text=st.one_of(gsm_text, any_text))
def test_segments_hold_the_units(text: str) -> None:
    count = count_segments(text)
    single, part = (160, 153) if count.encoding == "GSM-7" else (70, 67)
    if count.units <= single:
        assert count.segments == 1
    else:
        assert count.segments * part >= count.units
        # Greedy packing wastes at most one unit at the end of each full part.
        assert (count.segments - 1) * (part - 1) < count.units


@given(text=any_text)
def test_ucs2_units_are_utf16_code_units(text: str) -> None:
    count = count_segments(text)
    if count.encoding == "UCS-2":
        assert count.units == len(text.encode("utf-16-le", "surrogatepass")) // 2
