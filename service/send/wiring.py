"""Builds the delivery engine and its provider clients from settings (part of the composition root)."""

from __future__ import annotations

import aiohttp

from service.domain.backoff import RetryPolicy
from service.domain.breaker import BreakerPolicy
from service.domain.ports import EmailSender, RateSchedule, SmsSender
from service.domain.references import MessageReferences
from service.metrics import Metrics
from service.send.engine import DeliveryEngine, ProviderLimits
from service.send.providers.batching import BatchingSmsSender
from service.send.providers.infobip import InfobipClient
from service.send.providers.sendgrid import SendGridClient
from service.send.providers.twilio import TwilioClient
from service.settings import Settings


def sms_clients(s: Settings, session: aiohttp.ClientSession) -> list[SmsSender]:
    callbacks = s.callback_base_url.rstrip("/") if s.callback_base_url else None
    built: dict[str, SmsSender] = {
        "twilio": TwilioClient(
            session,
            base_url=s.twilio_base_url,
            account_sid=s.twilio_account_sid,
            auth_token=s.twilio_auth_token.get_secret_value(),
            sender=s.twilio_sender,
            status_callback=f"{callbacks}/callbacks/twilio/status" if callbacks else None,
            timeout_s=s.provider_timeout_s,
        ),
        "infobip": _batched(
            InfobipClient(
                session,
                base_url=s.infobip_base_url,
                api_key=s.infobip_api_key.get_secret_value(),
                sender=s.infobip_sender,
                notify_url=f"{callbacks}/callbacks/infobip/reports" if callbacks else None,
                timeout_s=s.provider_timeout_s,
            ),
            s,
        ),
    }
    return [built[name] for name in s.sms_providers]


def _batched(client: InfobipClient, s: Settings) -> SmsSender:
    """Infobip takes many messages per request: group the sends in flight together."""
    if s.infobip_batch_max <= 1:
        return client
    return BatchingSmsSender(client, max_batch=s.infobip_batch_max, max_requests=s.infobip_batch_requests)


def email_client(s: Settings, session: aiohttp.ClientSession) -> EmailSender | None:
    if s.email_provider == "none":
        return None
    return SendGridClient(
        session,
        base_url=s.sendgrid_base_url,
        api_key=s.sendgrid_api_key.get_secret_value(),
        sender_email=s.email_sender_address,
        sender_name=s.email_sender_name,
        timeout_s=s.provider_timeout_s,
    )


def provider_limits(s: Settings) -> dict[str, ProviderLimits]:
    """Each provider's group-wide limit, less the headroom: the sends' budget, and the status
    look-ups' (a share of it)."""
    h, window = s.rate_headroom, 1 / s.rate_headroom  # rate * window: the provider's own limit
    return {
        "twilio": ProviderLimits(s.twilio_rate_per_s * h, s.twilio_burst, window),
        "infobip": ProviderLimits(s.infobip_rate_per_s * h, s.infobip_burst, window),
        "sendgrid": ProviderLimits(s.sendgrid_rate_per_s * h, s.sendgrid_burst, window),
    }


def delivery_engine(
    s: Settings,
    metrics: Metrics,
    session: aiohttp.ClientSession,
    *,
    references: MessageReferences,
    sms: list[SmsSender] | None = None,
    email: EmailSender | None = None,
    schedule: RateSchedule | None = None,
) -> DeliveryEngine:
    """The engine; tests may pass their own clients in place of the configured ones. ``schedule``:
    the group's rate schedule, used when ``rate_limit_scope`` is ``group``."""
    return DeliveryEngine(
        sms=sms if sms is not None else sms_clients(s, session),
        email=email if email is not None else email_client(s, session),
        limits=provider_limits(s),
        metrics=metrics,
        references=references,
        breaker=BreakerPolicy(
            window=s.breaker_window,
            min_calls=s.breaker_min_calls,
            failure_ratio=s.breaker_failure_ratio,
            open_for_s=s.breaker_open_s,
            max_open_for_s=s.breaker_max_open_s,
        ),
        retry=RetryPolicy(
            max_attempts_per_provider=s.send_attempts_per_provider, message_deadline_s=s.send_deadline_s
        ),
        schedule=schedule if s.rate_limit_scope == "group" else None,
    )
