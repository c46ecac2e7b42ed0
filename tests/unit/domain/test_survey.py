"""Signed survey links: what a token names, and every way a token can be refused."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from service.domain.survey import TOKEN_LENGTH, SurveyLinkInvalid, SurveySigner

KEY = bytes(range(32))
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
NID = uuid.UUID("2c4e6a80-1b3d-5f70-8a9c-0e2f4a6c8e01")
SIGNER = SurveySigner(KEY, "https://survey.example.com.hk/hk", ttl_days=30)


def test_a_token_names_the_survey_its_language_and_its_expiry() -> None:
    token = SIGNER.token(NID, "en", NOW)
    assert len(token) == TOKEN_LENGTH
    ref = SIGNER.verify(token, NOW + timedelta(days=29))
    assert ref.survey_id == SIGNER.survey_id(NID)
    assert ref.locale == "en"
    assert ref.expires_at == NOW + timedelta(days=30)
    assert SIGNER.verify(SIGNER.token(NID, "zh-HK", NOW), NOW).locale == "zh-HK"


def test_the_survey_id_is_pseudonymous_stable_and_keyed() -> None:
    assert SIGNER.survey_id(NID) == SIGNER.survey_id(NID)
    assert SIGNER.survey_id(NID) != SIGNER.survey_id(uuid.uuid4())
    assert SurveySigner(bytes(32), "https://s.example").survey_id(NID) != SIGNER.survey_id(NID)
    assert NID.bytes[:8] != SIGNER.survey_id(NID)
    token = SIGNER.token(NID, "en", NOW)
    assert NID.hex not in token
    assert str(NID) not in SIGNER.url(NID, "en", NOW)


def test_the_link_adds_the_token_to_the_surveys_own_query() -> None:
    url = SIGNER.url(NID, "en", NOW)
    assert url.startswith("https://survey.example.com.hk/hk?t=")
    with_query = SurveySigner(KEY, "https://survey.example.com.hk/hk?src=sms").url(NID, "en", NOW)
    query = parse_qs(urlsplit(with_query).query)
    assert query["src"] == ["sms"]
    assert SIGNER.verify(query["t"][0], NOW).survey_id == SIGNER.survey_id(NID)


def test_an_expired_token_is_refused_from_its_expiry_on() -> None:
    token = SIGNER.token(NID, "en", NOW)
    with pytest.raises(SurveyLinkInvalid) as caught:
        SIGNER.verify(token, NOW + timedelta(days=30))
    assert caught.value.reason == "expired"
    SIGNER.verify(token, NOW + timedelta(days=30) - timedelta(seconds=1))


def _flip(token: str, i: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return token[:i] + alphabet[(alphabet.index(token[i]) + 1) % 64] + token[i + 1 :]


@pytest.mark.parametrize("i", range(TOKEN_LENGTH - 1))
def test_any_changed_character_is_refused(i: int) -> None:
    token = SIGNER.token(NID, "en", NOW)
    with pytest.raises(SurveyLinkInvalid) as caught:
        SIGNER.verify(_flip(token, i), NOW)
    assert caught.value.reason == "tampered"


def test_a_changed_last_character_is_refused_too() -> None:
    # The last character carries 4 bits of the MAC and 2 unused bits: a spelling of the same bytes
    # with other unused bits is malformed, and one with other bytes fails the MAC.
    token = SIGNER.token(NID, "en", NOW)
    for c in "AQgw":
        if c != token[-1]:
            with pytest.raises(SurveyLinkInvalid):
                SIGNER.verify(token[:-1] + c, NOW)


def test_a_token_signed_with_another_key_or_extended_is_refused() -> None:
    other = SurveySigner(bytes(reversed(KEY)), "https://survey.example.com.hk/hk").token(NID, "en", NOW)
    with pytest.raises(SurveyLinkInvalid, match="tampered"):
        SIGNER.verify(other, NOW)
    raw = base64.urlsafe_b64decode(SIGNER.token(NID, "en", NOW) + "==")
    later = raw[:9] + (int.from_bytes(raw[9:13], "big") + 86400 * 365).to_bytes(4, "big") + raw[13:]
    forged = base64.urlsafe_b64encode(later).decode().rstrip("=")
    with pytest.raises(SurveyLinkInvalid, match="tampered"):
        SIGNER.verify(forged, NOW)


@pytest.mark.parametrize(
    "token",
    ["", "short", "A" * (TOKEN_LENGTH - 1), "A" * (TOKEN_LENGTH + 1), "!" * TOKEN_LENGTH, "é" * TOKEN_LENGTH],
)
def test_a_malformed_token_is_refused(token: str) -> None:
    with pytest.raises(SurveyLinkInvalid) as caught:
        SIGNER.verify(token, NOW)
    assert caught.value.reason == "malformed"
    assert token[:5] not in str(caught.value) or not token


def test_a_token_from_a_link_signer_is_not_a_survey_token() -> None:
    from service.domain.links import LinkSigner

    link = LinkSigner(KEY, "https://n.example").token(NID, NOW)
    with pytest.raises(SurveyLinkInvalid, match="malformed"):
        SIGNER.verify(link, NOW)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"key": bytes(31)}, "at least 32 bytes"),
        ({"ttl_days": 0}, "1 to 365 days"),
        ({"ttl_days": 366}, "1 to 365 days"),
        ({"base_url": "survey.example.com.hk/hk"}, "http"),
        ({"base_url": "https://survey.example.com.hk/hk#top"}, "fragment"),
    ],
)
def test_a_signer_out_of_bounds_is_refused(kwargs: dict[str, object], message: str) -> None:
    values: dict[str, object] = {"key": KEY, "base_url": "https://survey.example.com.hk/hk", "ttl_days": 30}
    with pytest.raises(ValueError, match=message):
        SurveySigner(**{**values, **kwargs})  # type: ignore[arg-type]


def test_the_signer_never_shows_its_key_and_refuses_an_unknown_locale() -> None:
    assert KEY.hex() not in repr(SIGNER)
    assert "survey.example.com.hk" in repr(SIGNER)
    with pytest.raises(ValueError, match="zh-HK, en"):
        SIGNER.token(NID, "fr", NOW)
