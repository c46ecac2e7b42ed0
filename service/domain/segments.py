"""How many SMS segments a text costs (3GPP TS 23.038 / GSM 03.38).

- GSM-7 when every character is in the basic set or the extension table; an extension
  character is sent as ESC + char and costs 2 septets. Otherwise the whole text is UCS-2 and
  costs one unit per UTF-16 code unit (2 for a character outside the BMP, such as an emoji).
- One segment holds 160 septets or 70 UCS-2 units. A longer text is split into parts of 153
  septets or 67 units (the rest of each part is the concatenation header).
- A part never ends in the middle of an escape pair or a surrogate pair, so parts are packed
  greedily character by character and may hold one unit less than the maximum.
- The empty text is counted as GSM-7, 0 units and 1 segment: sending it would still be one
  message on the wire, and a segment count is a cost that must not read as free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Encoding = Literal["GSM-7", "UCS-2"]

#: GSM 03.38 default alphabet, in code order 0x00-0x7F; 0x1B (escape) is not a character.
GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"  # 0x10-0x1F without 0x1B
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
#: The extension table: each costs two septets (ESC + code).
GSM7_EXTENSION: Final = frozenset("\f^{}\\[~]|€")

SINGLE_GSM7: Final = 160
PART_GSM7: Final = 153
SINGLE_UCS2: Final = 70
PART_UCS2: Final = 67


@dataclass(frozen=True, slots=True)
class SegmentCount:
    encoding: Encoding
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int


def is_gsm7(text: str) -> bool:
    """Whether the text can be sent in the GSM-7 alphabet (basic set plus extension table)."""
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def _gsm7_cost(ch: str) -> int:
    return 2 if ch in GSM7_EXTENSION else 1


def _ucs2_cost(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def count_segments(text: str) -> SegmentCount:
    """The encoding, total units and number of segments of ``text`` as one SMS."""
    if is_gsm7(text):
        encoding: Encoding = "GSM-7"
        costs = [_gsm7_cost(ch) for ch in text]
        single, part = SINGLE_GSM7, PART_GSM7
    else:
        encoding = "UCS-2"
        costs = [_ucs2_cost(ch) for ch in text]
        single, part = SINGLE_UCS2, PART_UCS2

    units = sum(costs)
    if units <= single:
        return SegmentCount(encoding, units, 1)

    segments, used = 1, 0
    for cost in costs:
        if used + cost > part:
            segments += 1
            used = 0
        used += cost
    return SegmentCount(encoding, units, segments)
