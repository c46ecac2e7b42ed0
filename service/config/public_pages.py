"""Settings of the pages this service serves: links in messages, the customer-service page."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from service.config.parsing import split_commas


class PublicPageSettings(BaseModel):
    """The pages served by this service: order status and unsubscribe pages linked from messages,
    and the customer-service page."""

    # Links in messages: order status and unsubscribe pages served by this service
    public_base_url: str | None = Field(
        default=None,
        description="Public URL of this service's pages, e.g. https://n.example.hk; None: no links.",
    )
    link_signing_key: SecretStr | None = Field(
        default=None,
        description="Base64 key (32+ bytes) signing the links (`notifier keys generate --kind blind-index`).",
    )
    link_ttl_days: int = Field(
        default=90,
        ge=1,
        le=3650,
        description="How long a link in a message (order status, unsubscribe) stays valid.",
    )

    # Customer-service page: staff sessions, sign-in throttling, proxies
    staff_session_idle_s: int = Field(
        default=1800, ge=60, le=86400, description="A staff session unused this long has ended."
    )
    staff_session_max_s: int = Field(
        default=8 * 3600, ge=60, le=86400, description="A staff session ends this long after sign-in."
    )
    signin_failures_per_client: int = Field(
        default=5, ge=1, le=1000, description="Failed sign-ins from one address per window before 429."
    )
    signin_failures_total: int = Field(
        default=100, ge=1, le=100_000, description="Failed sign-ins from all addresses per window before 429."
    )
    signin_window_s: int = Field(
        default=300,
        ge=1,
        le=86400,
        description="Window of the sign-in throttling of the customer-service page.",
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default=[],
        description="Addresses or CIDRs of reverse proxies (comma-separated): only from them are "
        "X-Forwarded-For and X-Forwarded-Proto believed.",
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, v: object) -> object:
        return split_commas(v)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for net in v:
            ipaddress.ip_network(net, strict=False)  # ValueError names the bad entry
        return v
