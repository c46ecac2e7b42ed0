from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.compose.render import Renderer
from service.domain.links import LinkInvalid, LinkSigner
from service.domain.milestones import Milestone
from service.domain.model import notification_id
from service.templates_check import sample_update

KEY = bytes(range(32))
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def signer() -> LinkSigner:
    return LinkSigner(KEY, "https://n.example.hk/", ttl_days=30)


def test_a_token_names_its_notification_and_is_short(signer: LinkSigner) -> None:
    nid = notification_id("SO-HK-24001", Milestone.READY_FOR_PICKUP)
    token = signer.token(nid, NOW)
    assert len(token) == 22
    assert signer.verify(token, NOW) == signer.link_id(nid)
    assert "24001" not in token
    assert signer.status_url(nid, NOW) == f"https://n.example.hk/s/{token}"
    assert signer.unsubscribe_url(nid, NOW) == f"https://n.example.hk/u/{token}"


def test_expired_token_is_refused(signer: LinkSigner) -> None:
    token = signer.token(uuid.uuid4(), NOW)
    assert signer.verify(token, NOW + timedelta(days=30))
    with pytest.raises(LinkInvalid) as info:
        signer.verify(token, NOW + timedelta(days=31))
    assert info.value.reason == "expired"


@given(st.integers(min_value=0, max_value=21), st.sampled_from("AbZ09-_"))
def test_any_changed_character_is_refused(position: int, char: str) -> None:
    signer = LinkSigner(KEY, "https://n.example.hk")
    token = signer.token(uuid.UUID(int=7), NOW)
    forged = token[:position] + char + token[position + 1 :]
    if forged == token:
        return
    with pytest.raises(LinkInvalid):
        signer.verify(forged, NOW)


@pytest.mark.parametrize("token", ["", "short", "!!!!!!!!!!!!!!!!!!!!!!", "A" * 40])
def test_malformed_tokens_are_refused(signer: LinkSigner, token: str) -> None:
    with pytest.raises(LinkInvalid) as info:
        signer.verify(token, NOW)
    assert (info.value.reason, str(info.value)) == ("malformed", "malformed")


def test_a_short_signing_key_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^link signing key must be at least 32 bytes$"):
        LinkSigner(bytes(31), "https://n.example.hk")


def test_another_key_cannot_forge_tokens(signer: LinkSigner) -> None:
    other = LinkSigner(bytes(32), "https://n.example.hk")
    with pytest.raises(LinkInvalid) as info:
        signer.verify(other.token(uuid.uuid4(), NOW), NOW)
    assert info.value.reason == "tampered"


def test_sms_carries_the_signed_status_link(signer: LinkSigner) -> None:
    r = Renderer(
        REPO / "templates",
        brand="Specialized",
        contact_phone="+852 3001 2345",
        contact_email="hk@example.com",
        links=signer,
        clock=lambda: NOW,
    )
    update = sample_update(worst_case=False)
    for locale in ("zh-HK", "en"):
        body = r.render_sms(Milestone.READY_FOR_PICKUP, update, locale).body
        url = body.splitlines()[-1].split("：" if locale == "zh-HK" else ": ")[-1]
        token = url.rsplit("/", 1)[1]
        nid = notification_id(update.order_id, Milestone.READY_FOR_PICKUP)
        assert url == signer.status_url(nid, NOW)
        assert signer.verify(token, NOW) == signer.link_id(nid)


def test_a_token_sent_yesterday_still_verifies_after_an_upgrade(signer: LinkSigner) -> None:
    """Tokens live in SMS already sent: the link id, expiry encoding and MAC never change."""
    assert signer.link_id(uuid.UUID(int=7)).hex() == "99fb84525d23149c"
    assert signer.token(uuid.UUID(int=7), NOW) == "mfuEUl0jFJwJ8xmi8CRAzg"
    assert signer.verify("mfuEUl0jFJwJ8xmi8CRAzg", NOW) == signer.link_id(uuid.UUID(int=7))


def test_each_notification_has_its_own_link_id(signer: LinkSigner) -> None:
    assert len({signer.link_id(uuid.UUID(int=n)) for n in range(50)}) == 50


def test_a_link_lives_90_days_unless_told() -> None:
    signer = LinkSigner(KEY, "https://n.example.hk")
    token = signer.token(uuid.uuid4(), NOW)
    assert signer.verify(token, NOW + timedelta(days=90))
    with pytest.raises(LinkInvalid):
        signer.verify(token, NOW + timedelta(days=91))


@pytest.mark.parametrize(
    ("base_url", "kept"),
    [
        ("https://n.example.hk/", "https://n.example.hk"),
        ("https://n.example.hk/X//", "https://n.example.hk/X"),
    ],
)
def test_the_base_url_loses_only_its_trailing_slashes(base_url: str, kept: str) -> None:
    assert LinkSigner(KEY, base_url).base_url == kept


def test_the_expiry_day_is_the_utc_day_whatever_the_hosts_zone(
    signer: LinkSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    late = datetime(2026, 11, 22, 20, 0, tzinfo=UTC)  # already the 23rd in Hong Kong
    token = signer.token(uuid.UUID(int=7), late)
    monkeypatch.setenv("TZ", "Asia/Hong_Kong")
    time.tzset()
    try:
        assert signer.token(uuid.UUID(int=7), late) == token
        assert signer.verify(token, late + timedelta(days=30))  # the 22nd + 30 in UTC: still valid
        with pytest.raises(LinkInvalid):
            signer.verify(token, late + timedelta(days=30, hours=4))  # the 23rd + 30 in UTC
    finally:
        monkeypatch.undo()
        time.tzset()
