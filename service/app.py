"""The composition root: builds the adapters from settings, runs the consume loop (``service.pipeline.consume_loop``)
and the timed jobs, and closes everything it opened, in reverse, however it ends."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
from aiohttp import web

from service.compose.render import Renderer
from service.domain.breaker import BreakerState
from service.domain.consume_policy import ConsumePolicy
from service.domain.errors import ConfigError, NotifierError
from service.domain.links import LinkSigner
from service.domain.model import Partition
from service.domain.ports import EmailSender, SmsSender
from service.domain.references import MessageReferences
from service.domain.reminders import ReminderPolicy
from service.domain.status_check import StatusCheckPolicy
from service.domain.survey import SurveySigner
from service.http.callbacks import add_callback_routes
from service.http.pages import add_page_routes
from service.http.security_headers import add_stylesheet_route
from service.http.server import create_app, create_public_app, start_http
from service.http.support import StaffWebPolicy, SupportSite
from service.kafka.consumer import build_consumer
from service.kafka.producer import Publishers
from service.logs import get_logger
from service.metrics import Metrics
from service.pipeline.consume_loop import ConsumeLoop
from service.pipeline.follow_up_release import FollowUpRelease
from service.pipeline.release import Release
from service.pipeline.stages import build_stages
from service.privacy.blind_index import BlindIndex
from service.privacy.crypto import Keyring
from service.report.delivery_reports import DeliveryReports
from service.report.receipts import Receipts
from service.report.status_checks import StatusChecks
from service.send.engine import DeliveryEngine
from service.send.wiring import delivery_engine, provider_limits, sms_clients
from service.settings import Settings, refuse_sandbox_secrets
from service.store.postgres import PostgresStore
from service.store.privacy import PrivacyStore

log = get_logger(__name__)

#: How long a scrape waits for a probe that asks PostgreSQL (the outbox backlog) before saying NaN.
SCRAPE_PROBE_TIMEOUT_S = 2.0


@dataclass
class Service:
    """One service instance. ``run`` returns when ``stop`` is set, after committing what it finished."""

    settings: Settings
    sms: list[SmsSender] | None = None  # tests may inject clients; by default those from settings
    email: EmailSender | None = None
    metrics: Metrics = field(default_factory=Metrics)
    http_port: int | None = None  # the bound port once running
    metrics_port: int | None = None  # the bound port of /metrics, /healthz, /readyz once running
    clock: Callable[[], datetime] | None = (
        None  # tests may inject the time (quiet hours); else the wall clock
    )
    _loop: ConsumeLoop | None = None
    _store: PostgresStore | None = None
    _engine: DeliveryEngine | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """The composition root. Settings are checked before anything connects; every resource
        is closed on the way out (last opened, first closed), whatever failed at start-up."""
        s = self.settings
        check_secrets(s)  # before anything connects
        blind_index, keyring, links = keys(s)
        check_quiet_hours(s, keyring)
        async with contextlib.AsyncExitStack() as resources:
            store = self._store = await PostgresStore.connect(s.database_url, pool_size=s.database_pool_size)
            resources.push_async_callback(_stopped, store)
            runners: list[web.AppRunner] = []  # the listeners close after Kafka and the session
            resources.push_async_callback(_cleanup, runners)
            session = await resources.enter_async_context(aiohttp.ClientSession())
            publishers = Publishers(
                s.kafka_bootstrap_servers,
                receipts_topic=s.receipts_topic,
                dead_letter_topic=s.dead_letter_topic,
                metrics=self.metrics,
            )
            resources.push_async_callback(publishers.stop)
            if keyring is None:
                log.warning(
                    "no_pii_keys",
                    effect="an undelivered SMS cannot fall back to email, and no pickup reminder or"
                    " survey link can go (each needs the pickup notice's sealed event)",
                )
            if s.pilot_mode:  # said at every start: only the allow-list is messaged
                log.warning(
                    "pilot_mode", allow_listed=await store.pilot_size(), effect="others: suppressed_pilot"
                )
            await self._serve(
                stop,
                resources=resources,
                runners=runners,
                store=store,
                session=session,
                publishers=publishers,
                blind_index=blind_index,
                keyring=keyring,
                links=links,
            )

    async def _serve(
        self,
        stop: asyncio.Event,
        *,
        resources: contextlib.AsyncExitStack,
        runners: list[web.AppRunner],
        store: PostgresStore,
        session: aiohttp.ClientSession,
        publishers: Publishers,
        blind_index: BlindIndex,
        keyring: Keyring | None,
        links: LinkSigner | None,
    ) -> None:
        """Build the rest on what ``run`` opened, start listening and consuming, run until ``stop``."""
        s = self.settings
        sms = self.sms if self.sms is not None else sms_clients(s, session)
        engine = self._engine = delivery_engine(
            s,
            self.metrics,
            session,
            references=message_references(blind_index),
            sms=sms,
            email=self.email,
            schedule=store,
        )

        async def drain() -> None:  # the loop is built below, around this consumer
            if self._loop is not None:
                await self._loop.drain()

        # This instance's share of each provider's rate, for sends and status look-ups alike.
        consumer = build_consumer(
            s.kafka_bootstrap_servers,
            s.consumer_group,
            topics=s.input_topics,
            pattern=s.input_topic_pattern,
            max_records=s.batch_max_records,
            on_share=_each(
                engine.set_share,
                lambda f: checks.set_share(f),  # noqa: PLW0108  # checks: below
                lambda f: release.set_share(f),  # noqa: PLW0108  # release: below
                lambda f: follow_ups.set_share(f),  # noqa: PLW0108  # follow_ups: below
            ),
            on_revoke=drain,
        )
        resources.push_async_callback(consumer.stop)
        stages = build_stages(
            store=store,
            engine=engine,
            renderer=Renderer(
                s.templates_dir,
                brand=s.brand_name,
                contact_phone=s.contact_phone,
                contact_email=s.contact_email,
                default_locale=s.default_locale,
                links=links,
                max_sms_segments=s.sms_max_segments,
            ),
            receipts=publishers.receipts,
            dead_letters=publishers.dead_letters,
            metrics=self.metrics,
            send_concurrency=s.send_concurrency,
            keyring=keyring,
            blind_index=blind_index,
            links=links,
            allow_foreign_mobiles=s.allow_foreign_mobiles,
            outbox_lease_s=s.outbox_lease_s,
            pickups=store,
            fallback_retry_s=s.email_fallback_retry_s,
            fallback_attempts=s.email_fallback_attempts,
            clock=self._now,
            quiet=s.quiet_hours_policy(),
            coalesce_backlog_after_s=s.coalesce_backlog_after_s,
            pilot_mode=s.pilot_mode,
            bad_number_reports=s.bad_number_undelivered_reports,
            follow_ups=store,
            reminders=reminder_policy(s),
            survey_delay=timedelta(hours=s.survey_delay_hours) if survey_signer(s) else None,
        )
        reports = stages.reports
        release = Release(
            store=store,
            sender=stages.sender,
            reports=reports,
            keyring=keyring,
            metrics=self.metrics,
            clock=self._now,
            rate_per_s=s.quiet_release_rate_per_s,
            interval_s=s.quiet_release_interval_s,
            lease_s=s.quiet_release_lease_s,
            hold_s=s.quiet_release_hold_s,
            paused=lambda: engine.draining,
        )
        follow_ups = FollowUpRelease(
            store=store,
            sender=stages.sender,
            receipts=stages.receipts,
            keyring=keyring,
            metrics=self.metrics,
            clock=self._now,
            policy=reminder_policy(s),
            survey=survey_signer(s),
            survey_channel=s.survey_channel,
            quiet=s.quiet_hours_policy(),
            rate_per_s=s.quiet_release_rate_per_s,
            interval_s=s.quiet_release_interval_s,
            lease_s=s.quiet_release_lease_s,
            hold_s=s.quiet_release_hold_s,
            paused=lambda: engine.draining,
        )
        loop = self._loop = ConsumeLoop(
            consumer=consumer,
            batches=stages.driver,
            sends=engine,
            database_up=store.ping,
            metrics=self.metrics,
            policy=ConsumePolicy(poison_attempts=s.poison_attempts),
            batch_timeout_ms=s.batch_timeout_ms,
            batch_max_records=s.batch_max_records,
            rebalance_drain_s=s.rebalance_drain_s,
            batches_in_flight=s.batches_in_flight,
            watchdog_stall_s=s.watchdog_stall_s,
            commit_stall_s=s.commit_stall_s,
        )
        self._watch(engine, loop, store, sms=[c.name for c in sms])
        app = create_public_app(s.http_max_body_bytes)
        checks = status_checks(s, store=store, reports=reports, sms=sms, engine=engine, metrics=self.metrics)

        async def consent(phone: str, opted_out: bool, source: str) -> int:
            return await store.set_consent([blind_index.phone(phone)], opted_out=opted_out, source=source)

        add_callback_routes(app, s, reports, consent)
        page_globals = {
            "brand": s.brand_name,
            "contact_phone": s.contact_phone,
            "contact_email": s.contact_email,
        }
        await add_support_site(app, s, store, keyring, page_globals)
        if links is not None:
            add_page_routes(
                app,
                templates_dir=s.templates_dir,
                signer=links,
                store=store,
                page_globals=page_globals,
            )
        await self._listen(app, runners)
        tasks = await resources.enter_async_context(_Tasks())
        tasks.start(self._pause_on(stop, engine))
        await publishers.start()
        await consumer.start()
        await stages.receipts.relay()
        tasks.start(self._relay_forever(stages.receipts, reports, stop))
        tasks.start(self._purge_forever(PrivacyStore(store.pool), stop))
        tasks.start(self._status_checks_forever(checks, stop))
        tasks.start(self._release_forever(release, stop))
        tasks.start(self._release_forever(follow_ups, stop))  # pickup reminders, survey links
        tasks.start(loop.watch(stop))
        log.info(
            "service_started",
            topics=s.input_topics,
            pattern=s.input_topic_pattern,
            http_port=self.http_port,
            metrics_port=self.metrics_port,
        )
        await loop.run(stop)

    def _watch(
        self, engine: DeliveryEngine, loop: ConsumeLoop, store: PostgresStore, *, sms: list[str]
    ) -> None:
        """Every provider's series at 0 from the start, and the gauges computed when scraped:
        circuits, lag, readiness (the checks of /readyz), the receipt outbox."""
        m = self.metrics
        providers = list(engine.circuit_levels())
        m.expect_providers(sms, [p for p in providers if p not in sms])
        m.expect_pickup_places(self.settings.dwell_places)
        m.watch_circuits(engine.circuit_levels)
        m.watch_lag(loop.lag)

        async def readiness() -> None:
            m.ready.set(1 if all((await self._ready()).values()) else 0)

        async def outbox() -> None:
            waiting: float
            try:
                waiting, oldest = await asyncio.wait_for(store.outbox_backlog(), SCRAPE_PROBE_TIMEOUT_S)
            except (NotifierError, TimeoutError):
                waiting, oldest = math.nan, math.nan  # unknown, not zero: the database did not answer
            m.outbox_backlog.set(waiting)
            m.outbox_oldest_seconds.set(oldest)

        async def scheduled() -> None:
            waiting: float
            try:
                waiting, late = await asyncio.wait_for(
                    store.scheduled_backlog(now=self._now()), SCRAPE_PROBE_TIMEOUT_S
                )
            except (NotifierError, TimeoutError):
                waiting, late = math.nan, math.nan
            m.scheduled_backlog.set(waiting)
            m.scheduled_late_seconds.set(late)

        m.on_scrape(readiness)
        m.on_scrape(outbox)
        m.on_scrape(scheduled)

    async def _listen(self, app: web.Application, runners: list[web.AppRunner]) -> None:
        """The operations listener (/metrics, /healthz, /readyz), then the public one (callbacks, pages)."""
        s = self.settings
        ops, self.metrics_port = await start_http(
            create_app(self.metrics, self._ready, self._live), s.metrics_host, s.metrics_port
        )
        runners.append(ops)
        public, self.http_port = await start_http(app, s.http_host, s.http_port, reuse_port=s.http_reuse_port)
        runners.append(public)

    @staticmethod
    async def _pause_on(stop: asyncio.Event, engine: DeliveryEngine) -> None:
        """Shutdown: from SIGTERM on, only the sends already begun finish; the rest is held."""
        await stop.wait()
        engine.pause_sends()

    def assignment(self) -> set[Partition]:
        """The partitions this instance holds right now."""
        return self._loop.assignment() if self._loop is not None else set()

    async def _live(self) -> bool:
        return not (self._loop is not None and self._loop.stalled)

    async def _relay_forever(self, receipts: Receipts, reports: DeliveryReports, stop: asyncio.Event) -> None:
        """Every ``outbox_relay_interval_s``: publish receipts nobody holds (their writer died or could
        not publish them), retry owed email fallbacks."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.outbox_relay_interval_s)
            try:
                await receipts.relay()
            except NotifierError as exc:
                log.warning("outbox_relay_failed", error=type(exc).__name__)
            if stop.is_set() or (self._engine is not None and self._engine.draining):
                continue
            try:
                await reports.retry_fallbacks()
            except NotifierError as exc:
                log.warning("fallback_retry_failed", error=type(exc).__name__)

    async def _status_checks_forever(self, checks: StatusChecks, stop: asyncio.Event) -> None:
        """Every ``status_check_interval_s``: look up SMS sends left without a final status."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.status_check_interval_s)
            if stop.is_set():
                break
            try:
                await checks.run_once()
            except NotifierError as exc:
                log.warning("status_checks_failed", error=type(exc).__name__)

    def _now(self) -> datetime:
        return self.clock() if self.clock is not None else datetime.now(UTC)

    async def _release_forever(self, release: Release | FollowUpRelease, stop: asyncio.Event) -> None:
        """Every ``quiet_release_interval_s``: release the scheduled sends that are due (quiet hours;
        the follow-ups of the pickup notice)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.quiet_release_interval_s)
            if stop.is_set():
                break
            try:
                await release.run_once()
            except NotifierError as exc:
                log.warning("scheduled_release_failed", error=type(exc).__name__)

    async def _purge_forever(self, privacy: PrivacyStore, stop: asyncio.Event) -> None:
        """The retention job: destroys personal data past the retention period, on a timer."""
        while not stop.is_set():
            try:
                d = await privacy.purge(
                    self.settings.retention_days, link_ttl_days=self.settings.link_ttl_days
                )
                if d.contacts or d.subjects:
                    log.info("retention_purge", contacts=d.contacts, subjects=d.subjects)
            except NotifierError as exc:
                log.warning("retention_purge_failed", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.purge_interval_s)

    async def _ready(self) -> dict[str, bool]:
        return {
            "kafka_assigned": bool(self._loop is not None and self._loop.assignment()),
            "database": bool(self._store is not None and await self._store.ping()),
            # records wait and a partition's committed offset has not moved for NOTIFIER_COMMIT_STALL_S
            "commits_advancing": self._loop is None or not self._loop.commit_progress().stalled,
        }


def check_secrets(s: Settings) -> None:
    """Refuse the sandbox's public secrets where they would guard anything reachable."""
    refuse_sandbox_secrets(s)
    if s.sandbox_mode:
        log.warning("sandbox_mode", effect="the sandbox's public default secrets are accepted")


def check_quiet_hours(s: Settings, keyring: Keyring | None) -> None:
    """Quiet hours keep each scheduled event sealed until its release: they need the PII keys."""
    if s.quiet_hours and keyring is None:
        raise ConfigError(
            "NOTIFIER_QUIET_HOURS needs NOTIFIER_PII_KEYS (a scheduled event is sealed until its release): "
            "`notifier keys generate --kind pii`, or unset NOTIFIER_QUIET_HOURS"
        )


def message_references(blind_index: BlindIndex) -> MessageReferences:
    """References carry a tag under a key of their own, derived from the (required) blind-index key:
    stable across restarts and re-claims, and unknown to anyone without the key."""
    return MessageReferences(blind_index.derive_key("message-reference"))


def status_checks(
    s: Settings,
    *,
    store: PostgresStore,
    reports: DeliveryReports,
    sms: list[SmsSender],
    engine: DeliveryEngine,
    metrics: Metrics,
) -> StatusChecks:
    """The status look-up job: a share of each SMS provider's rate, paused with the sends."""
    limits = provider_limits(s)
    return StatusChecks(
        store=store,
        reports=reports,
        senders=sms,
        metrics=metrics,
        policy=StatusCheckPolicy(after_s=s.status_check_after_s, max_age_s=s.status_check_max_age_s),
        rates={
            sender.name: limits[sender.name].rate_per_s * s.status_check_share
            for sender in sms
            if sender.name in limits
        },
        batch=s.status_check_batch,
        paused=lambda: engine.draining,
        circuit_open=lambda provider: engine.circuit(provider) is BreakerState.OPEN,
    )


def _each(*calls: Callable[[float], None]) -> Callable[[float], None]:
    def call(value: float) -> None:
        for c in calls:
            c(value)

    return call


async def add_support_site(
    app: web.Application,
    s: Settings,
    store: PostgresStore,
    keyring: Keyring | None,
    page_globals: dict[str, str],
) -> None:
    """The support page and API, the pages' stylesheet, and a warning when one role does all."""
    support = SupportSite(
        templates_dir=s.templates_dir,
        store=store,
        keyring=keyring,
        page_globals=page_globals,
        policy=StaffWebPolicy.from_settings(s),
        renderer=Renderer(  # no links: the text customers received, shown to staff without their tokens
            s.templates_dir,
            brand=s.brand_name,
            contact_phone=s.contact_phone,
            contact_email=s.contact_email,
            default_locale=s.default_locale,
            max_sms_segments=s.sms_max_segments,
        ),
        release_rate_per_s=s.quiet_release_rate_per_s,
    )
    support.routes(app)
    add_stylesheet_route(app, s.templates_dir)
    if await support.staff_store.can_alter_audit_log():
        log.warning(
            "single_database_role",
            effect="the service's database role can alter the audit log: give it its own role "
            "and migrate with NOTIFIER_MIGRATION_DATABASE_URL (README)",
        )


def keys(s: Settings) -> tuple[BlindIndex, Keyring | None, LinkSigner | None]:
    """The keys from settings, checked before anything connects: a bad one stops start-up here."""
    if s.blind_index_key is None:
        raise ConfigError(
            "NOTIFIER_BLIND_INDEX_KEY is required to honour opt-outs: `notifier keys generate --kind blind-index`"
        )
    blind_index = BlindIndex.parse(s.blind_index_key.get_secret_value())
    keyring = Keyring.parse(s.pii_keys.get_secret_value()) if s.pii_keys else None
    return blind_index, keyring, link_signer(s)


class _Tasks(contextlib.AbstractAsyncContextManager["_Tasks"]):
    """Background tasks, cancelled on the way out (first, before any resource closes)."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, job: Coroutine[object, object, None]) -> None:
        self._tasks.append(asyncio.create_task(job))

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _cleanup(runners: list[web.AppRunner]) -> None:
    for runner in reversed(runners):
        await runner.cleanup()


async def _stopped(store: PostgresStore) -> None:
    await store.close()
    log.info("service_stopped")


def link_signer(s: Settings) -> LinkSigner | None:
    if s.public_base_url is None:
        return None
    if s.link_signing_key is None:
        raise ConfigError("NOTIFIER_LINK_SIGNING_KEY is required with NOTIFIER_PUBLIC_BASE_URL")
    try:
        key = base64.b64decode(s.link_signing_key.get_secret_value(), validate=True)
        return LinkSigner(key, s.public_base_url, s.link_ttl_days)
    except (binascii.Error, ValueError):
        raise ConfigError("NOTIFIER_LINK_SIGNING_KEY must be base64 of at least 32 bytes") from None


# Issue 15, pickups: what the follow-ups of a pickup notice need, for the schedule that sends them.
def survey_signer(s: Settings) -> SurveySigner | None:
    """The survey links' signer; None when no survey is configured (the settings checked the key)."""
    if s.survey_base_url is None or s.survey_link_key is None:
        return None
    key = base64.b64decode(s.survey_link_key.get_secret_value(), validate=True)
    return SurveySigner(key, s.survey_base_url, s.survey_link_ttl_days)


def reminder_policy(s: Settings) -> ReminderPolicy:
    return ReminderPolicy(s.pickup_reminder_after_days, s.pickup_reminder_max)
