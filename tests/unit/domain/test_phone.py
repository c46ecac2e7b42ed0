from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from service.domain.phone import REASONS, PhoneResult, mask_phone, normalize_hk_mobile


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        # The mobile blocks of the fact sheet, old (5, 6, 9) and released since 2017 (4, 7, 8).
        ("5123 4567", "+85251234567"),
        ("9123 4567", "+85291234567"),
        ("4600 1234", "+85246001234"),
        ("7071 1234", "+85270711234"),
        ("8481 2345", "+85284812345"),
        # Formattings people type.
        ("91234567", "+85291234567"),
        ("9123-4567", "+85291234567"),
        ("9123.4567", "+85291234567"),
        ("(852) 9123 4567", "+85291234567"),
        ("+852 9123 4567", "+85291234567"),
        ("852 9123 4567", "+85291234567"),
        ("85291234567", "+85291234567"),
        ("  +852-9123-4567  ", "+85291234567"),
        ("00852 9123 4567", "+85291234567"),  # phonenumbers alone reads this as Mexico
        ("0085291234567", "+85291234567"),
        ("＋８５２－９１２３－４５６７", "+85291234567"),  # full-width plus, digits and dash
        ("９１２３\u3000４５６７", "+85291234567"),  # ideographic space
        ("+852\u00a09123\u00a04567", "+85291234567"),  # no-break spaces
        ("+852 9123–4567", "+85291234567"),  # en dash
    ],
)
def test_hk_mobile_normalises_to_e164(raw: str, e164: str) -> None:
    assert normalize_hk_mobile(raw) == PhoneResult(e164=e164)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("7123 4567", "invalid"),  # 7x block not allocated
        ("8112 3456", "personal_number"),
        ("5801 2345", "fixed_line"),
        ("2123 4567", "fixed_line"),
        ("3123 4567", "fixed_line"),
        ("3001 2345", "not_mobile"),  # UAN
        ("800 123 456", "not_mobile"),  # toll free
        ("13800138000", "invalid"),  # mainland mobile without +86 is not an HK number
        ("+86 138 0013 8000", "not_hong_kong"),
        ("0086 138 0013 8000", "not_hong_kong"),
        ("+853 6612 3456", "not_hong_kong"),  # Macau
        ("9123 456", "invalid"),  # too short
        ("9123 45678", "invalid"),  # too long
        ("9123 ABCD", "unparseable"),  # not read as a vanity number
        ("+852 9123 4567 ext 12", "unparseable"),  # not read as an extension
        ("tel:+85291234567", "unparseable"),
        ("9123+4567", "unparseable"),
        ("--", "unparseable"),
        ("9" * 100, "unparseable"),
    ],
)
def test_number_that_cannot_get_an_sms_is_rejected_with_a_reason(raw: str, reason: str) -> None:
    assert normalize_hk_mobile(raw) == PhoneResult(reason=reason)


@pytest.mark.parametrize(
    ("raw", "result"),
    [
        ("+86 138 0013 8000", PhoneResult(e164="+8613800138000")),  # MOBILE
        ("+1 201 555 0123", PhoneResult(e164="+12015550123")),  # FIXED_LINE_OR_MOBILE
        ("+44 20 7946 0958", PhoneResult(reason="fixed_line")),
        ("9123 4567", PhoneResult(e164="+85291234567")),
        ("2123 4567", PhoneResult(reason="fixed_line")),
    ],
)
def test_foreign_mobiles_pass_only_when_allowed(raw: str, result: PhoneResult) -> None:
    assert normalize_hk_mobile(raw, allow_foreign_mobiles=True) == result


def test_result_needs_exactly_one_of_number_and_reason() -> None:
    message = r"^PhoneResult needs exactly one of e164 and reason$"
    with pytest.raises(ValueError, match=message):
        PhoneResult()
    with pytest.raises(ValueError, match=message):
        PhoneResult(e164="+85291234567", reason="invalid")


def test_result_repr_masks_the_number() -> None:
    assert "91234567" not in repr(normalize_hk_mobile("9123 4567"))
    assert repr(normalize_hk_mobile("9123 4567")) == "PhoneResult(e164='+852 ****4567')"
    assert repr(normalize_hk_mobile("2123 4567")) == "PhoneResult(reason='fixed_line')"


@pytest.mark.parametrize(
    ("padding", "result"), [(56, PhoneResult(e164="+85291234567")), (57, PhoneResult(reason="unparseable"))]
)
def test_input_longer_than_64_characters_is_not_read(padding: int, result: PhoneResult) -> None:
    assert normalize_hk_mobile(" " * padding + "91234567") == result


@pytest.mark.parametrize(
    ("e164", "masked"),
    [
        ("+85291234567", "+852 ****4567"),
        ("+8613800138000", "+86 ****8000"),
        ("+85212", "+852 ****"),
        ("+85212345", "+852 ****"),  # five digits: the last four would be nearly all of it
        ("+852123456", "+852 ****3456"),
        ("not a number", "****"),
    ],
)
def test_mask_phone_keeps_country_and_last_four_digits(e164: str, masked: str) -> None:
    assert mask_phone(e164) == masked


# --- properties -----------------------------------------------------------------------------

FULL_WIDTH = str.maketrans("0123456789+-", "０１２３４５６７８９＋－")


def _is_hk_mobile(local: str) -> bool:
    number = phonenumbers.parse(local, "HK")
    return phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE


hk_mobiles = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from("4569"),
    st.text(alphabet="0123456789", min_size=7, max_size=7),
).filter(_is_hk_mobile)

formattings = st.sampled_from(
    [
        "{a}{b}",
        "{a} {b}",
        "{a}-{b}",
        "{a}.{b}",
        "+852{a}{b}",
        "+852 {a} {b}",
        "+852-{a}-{b}",
        "(+852) {a} {b}",
        "(852) {a}-{b}",
        "852{a}{b}",
        "852 {a} {b}",
        "00852{a}{b}",
        "00852 {a} {b}",
        " {a} {b}\n",
    ]
)


@given(local=hk_mobiles, template=formattings, full_width=st.booleans())
def test_any_formatting_of_a_hk_mobile_gives_the_same_e164(
    local: str, template: str, full_width: bool
) -> None:
    raw = template.format(a=local[:4], b=local[4:])
    if full_width:
        raw = raw.translate(FULL_WIDTH)
    assert normalize_hk_mobile(raw) == PhoneResult(e164=f"+852{local}")


@given(raw=st.text(max_size=40), allow_foreign=st.booleans())
def test_result_has_a_number_or_a_known_reason_without_digits(raw: str, allow_foreign: bool) -> None:
    result = normalize_hk_mobile(raw, allow_foreign_mobiles=allow_foreign)
    assert (result.e164 is None) != (result.reason is None)
    if result.reason is not None:
        assert result.reason in REASONS
        assert not any(ch.isdigit() for ch in result.reason)
    else:
        assert result.e164 is not None
        assert result.e164.startswith("+")
        assert result.e164[1:].isdigit()


@given(digits=st.text(alphabet="0123456789", min_size=1, max_size=15))
def test_reason_never_contains_the_digits_given(digits: str) -> None:
    result = normalize_hk_mobile(digits)
    assume(result.reason is not None)
    assert result.reason is not None
    assert digits not in result.reason
    assert not any(ch.isdigit() for ch in result.reason)
