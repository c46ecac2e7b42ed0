from __future__ import annotations

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
