"""Settings of the provider accounts and of their delivery callbacks."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class ProviderAccountSettings(BaseModel):
    """Provider accounts (the defaults are the sandbox's) and the delivery callbacks they make."""

    twilio_base_url: str = Field(
        default="http://127.0.0.1:18700",
        description="Twilio's API (default: the sandbox); https://api.twilio.com for a real account.",
    )
    twilio_account_sid: str = Field(
        default="AC00000000000000000000000000000000", description="Twilio account SID (AC…)."
    )
    twilio_auth_token: SecretStr = Field(
        default=SecretStr("sandbox-token"),
        description="Twilio auth token: authenticates our requests and verifies Twilio's signed status callbacks (X-Twilio-Signature).",
    )
    twilio_sender: str = Field(
        default="Specialized",
        description="Sender of Twilio SMS: an alphanumeric sender id or a number registered for Hong Kong.",
    )
    infobip_base_url: str = Field(
        default="http://127.0.0.1:18700",
        description="Infobip's API (default: the sandbox); your account's https://<id>.api.infobip.com.",
    )
    infobip_api_key: SecretStr = Field(
        default=SecretStr("sandbox-infobip-key"), description="Infobip API key (Authorization: App <key>)."
    )
    infobip_sender: str = Field(default="Specialized", description="Sender of Infobip SMS.")
    sendgrid_base_url: str = Field(
        default="http://127.0.0.1:18700",
        description="SendGrid's API (default: the sandbox); https://api.sendgrid.com for a real account.",
    )
    sendgrid_api_key: SecretStr = Field(
        default=SecretStr("sandbox-sendgrid-key"), description="SendGrid API key with Mail Send permission."
    )
    email_sender_address: str = Field(
        default="notifications@example.com",
        description="From address of the emails (a sender verified at SendGrid).",
    )
    email_sender_name: str = Field(default="Specialized Hong Kong", description="From name of the emails.")
    sandbox_mode: bool = Field(
        default=False,
        description="Allow the sandbox's public default secrets although a provider, callback or public "
        "URL (or the HTTP listener) is not on loopback, e.g. the sandbox in another container. Never in "
        "production: anyone can sign callbacks with those secrets.",
    )
    # Delivery callbacks: the public base URL providers call back on, and their secrets
    callback_base_url: str | None = Field(
        default=None, description="e.g. https://notifier.example.com; None: no delivery callbacks requested."
    )
    infobip_webhook_user: str = Field(
        default="infobip",
        description="User of the HTTP Basic authentication Infobip's delivery reports must carry.",
    )
    infobip_webhook_password: SecretStr = Field(
        default=SecretStr("sandbox-infobip-webhook"),
        description="Password of the HTTP Basic authentication Infobip's delivery reports must carry.",
    )
    sendgrid_webhook_public_key: str | None = Field(
        default=None, description="Base64 DER public key of SendGrid's Signed Event Webhook."
    )
    sendgrid_signature_max_skew_s: float = Field(
        default=300.0,
        gt=0,
        le=3600,
        description="A SendGrid Event Webhook request whose signed timestamp is further than this from "
        "our clock is refused (a replay).",
    )
    sendgrid_event_max_age_s: float = Field(
        default=259_200.0,
        gt=0,
        le=30 * 86_400,
        description="A SendGrid event older than this (SendGrid retries a webhook for 24 hours), or "
        "dated more than the signature skew ahead, is ignored and counted.",
    )
