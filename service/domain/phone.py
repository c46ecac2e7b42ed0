"""Hong Kong mobile numbers: normalise what customers type into E.164, or say why not.

Pure: no I/O. Uses ``phonenumbers`` (keep it updated: old metadata rejects the 4x/7x/8x mobile
blocks released since 2017). Facts behind the rules are in the shared HK SMS fact sheet:

- HK numbers are 8 digits after +852; only libphonenumber's MOBILE type can receive our SMS.
  Fixed lines (2x, 3x, 58xx), pagers (parts of 7x), personal numbers (81-83) are rejected.
- ``00852 9123 4567`` parsed with region HK comes out as Mexico (+52): the HK international
  prefix pattern swallows "008". A leading ``00`` is therefore rewritten to ``+`` first.
- Letters are refused instead of being read as a vanity number ("9123 ABCD") or an extension
  ("ext 12"), so the number we text is exactly the number the customer gave.

A rejection carries a short reason code from a fixed set; it never contains the number, so it
may be logged and put in a receipt.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Final

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

HK_COUNTRY_CODE: Final = 852

#: Every reason ``normalize_hk_mobile`` may give.
REASONS: Final = frozenset(
    {
        "empty",  # nothing but whitespace
        "unparseable",  # characters other than digits, one leading "+" and separators
        "invalid",  # no such number (wrong length, unallocated block)
        "not_hong_kong",  # a valid number of another country (foreign mobiles not allowed)
        "fixed_line",
        "pager",
        "personal_number",
        "not_mobile",  # toll-free, premium rate, UAN, VoIP and other non-mobile types
    }
)

#: Characters people put between digits; NFKC already turned full-width forms into ASCII.
_SEPARATORS: Final = re.compile(r"[\s\-\u2010-\u2015\u2212.()/]+")
_COMPACT: Final = re.compile(r"\+?[0-9]+")
_MAX_INPUT: Final = 64

_TYPE_REASONS: Final = {
    PhoneNumberType.FIXED_LINE: "fixed_line",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.PERSONAL_NUMBER: "personal_number",
}
_FOREIGN_MOBILE_TYPES: Final = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})


@dataclass(frozen=True, slots=True)
class PhoneResult:
    """Exactly one of ``e164`` (the number to text) and ``reason`` (a code from ``REASONS``) is set."""

    e164: str | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if (self.e164 is None) == (self.reason is None):
            raise ValueError("PhoneResult needs exactly one of e164 and reason")

    def __repr__(self) -> str:
        # The number is personal data: keep it out of logs that repr() values.
        shown = f"e164={mask_phone(self.e164)!r}" if self.e164 else f"reason={self.reason!r}"
        return f"PhoneResult({shown})"


def _compact(raw: str) -> str | None:
    """Digits with an optional leading "+", or None when anything else is in the way."""
    text = unicodedata.normalize("NFKC", raw)
    compact = _SEPARATORS.sub("", text)
    if not _COMPACT.fullmatch(compact):
        return None
    if compact.startswith("00"):
        # International dialling prefix: "00852..." must not be read as Mexico.
        compact = "+" + compact[2:]
    return compact


def _parse(raw: str) -> phonenumbers.PhoneNumber | str:
    """The parsed number, or the reason it could not be parsed."""
    if not raw.strip():
        return "empty"
    compact = _compact(raw) if len(raw) <= _MAX_INPUT else None
    if compact is None:
        return "unparseable"
    try:
        return phonenumbers.parse(compact, "HK")
    except NumberParseException:
        return "unparseable"


def _rejection(number: phonenumbers.PhoneNumber, allow_foreign_mobiles: bool) -> str | None:
    """Why this number cannot receive our SMS, or None when it can."""
    is_hk = number.country_code == HK_COUNTRY_CODE
    if not is_hk and not allow_foreign_mobiles:
        return "not_hong_kong"
    if not phonenumbers.is_valid_number(number):
        return "invalid"
    kind = phonenumbers.number_type(number)
    accepted = {PhoneNumberType.MOBILE} if is_hk else _FOREIGN_MOBILE_TYPES
    return None if kind in accepted else _TYPE_REASONS.get(kind, "not_mobile")


def normalize_hk_mobile(raw: str, *, allow_foreign_mobiles: bool = False) -> PhoneResult:
    """Normalise a customer's phone number to E.164 if it can receive an SMS.

    Accepts 8-digit local numbers, ``852``/``+852``/``00852`` prefixes, spaces, dashes, dots,
    brackets and full-width forms. Only HK MOBILE numbers pass, unless ``allow_foreign_mobiles``
    also lets through other countries' MOBILE and FIXED_LINE_OR_MOBILE numbers.
    """
    parsed = _parse(raw)
    if isinstance(parsed, str):
        return PhoneResult(reason=parsed)
    reason = _rejection(parsed, allow_foreign_mobiles)
    if reason is not None:
        return PhoneResult(reason=reason)
    return PhoneResult(e164=phonenumbers.format_number(parsed, PhoneNumberFormat.E164))


def mask_phone(e164: str) -> str:
    """A number fit for logs and support screens: ``+85291234567`` -> ``+852 ****4567``.

    Anything that is not a parseable E.164 number is masked completely.
    """
    try:
        number = phonenumbers.parse(e164, None)
    except NumberParseException:
        return "****"
    national = str(number.national_number)
    if len(national) < 6:
        return f"+{number.country_code} ****"
    return f"+{number.country_code} ****{national[-4:]}"
