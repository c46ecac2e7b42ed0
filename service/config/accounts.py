"""Settings of the provider accounts and of their delivery callbacks."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class ProviderAccountSettings(BaseModel):
    """Provider accounts (the defaults are the sandbox's) and the delivery callbacks they make."""

    twilio_base_url: str = "http://127.0.0.1:18700"
    twilio_account_sid: str = "AC00000000000000000000000000000000"
    twilio_auth_token: SecretStr = SecretStr("sandbox-token")
    twilio_sender: str = "Specialized"
    infobip_base_url: str = "http://127.0.0.1:18700"
    infobip_api_key: SecretStr = SecretStr("sandbox-infobip-key")
    infobip_sender: str = "Specialized"
    sendgrid_base_url: str = "http://127.0.0.1:18700"
    sendgrid_api_key: SecretStr = SecretStr("sandbox-sendgrid-key")
    email_sender_address: str = "notifications@example.com"
    email_sender_name: str = "Specialized Hong Kong"
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
    infobip_webhook_user: str = "infobip"
    infobip_webhook_password: SecretStr = SecretStr("sandbox-infobip-webhook")
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
