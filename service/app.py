"""The composition root: builds the adapters from settings, runs the consume loop, shuts down cleanly."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from service.callbacks import DeliveryReports
from service.delivery import DeliveryEngine
from service.domain.breaker import BreakerState
from service.domain.errors import ConfigError, NotifierError
from service.domain.links import LinkSigner
from service.domain.model import InboundRecord
from service.domain.ports import EmailSender, SmsSender
from service.domain.references import MessageReferences
from service.domain.status_check import StatusCheckPolicy
from service.domain.watchdog import CommitStall, CommitWatch, StallWatch
from service.http.callbacks import add_callback_routes
from service.http.pages import add_page_routes
from service.http.security_headers import add_stylesheet_route
from service.http.server import create_app, create_public_app, start_http
from service.http.support import StaffWebPolicy, SupportSite
from service.kafka.consumer import ShareOnAssignment, build_consumer, consumer_lag, next_offsets, to_records
from service.kafka.producer import DeadLetterPublisher, ReceiptPublisher, build_producer
from service.logs import get_logger
from service.metrics import Metrics
from service.pipeline import Pipeline, Unfinished
from service.privacy.blind_index import BlindIndex
from service.privacy.crypto import Keyring
from service.render import Renderer
from service.settings import Settings, refuse_sandbox_secrets
from service.status_checks import StatusChecks
from service.store.postgres import PostgresStore
from service.store.privacy import PrivacyStore
from service.wiring import delivery_engine, sms_clients

log = get_logger(__name__)

_RETRY_BACKOFF_S = (0.5, 1, 2, 5, 10)
_HOLD_BACKOFF_S = (1, 2, 5, 10, 30)  # every provider down: read the held records again after this
_WATCHDOG_EVERY_S = 5.0


@dataclass
class Service:
    """One service instance. ``run`` returns when ``stop`` is set, after committing what it finished."""

    settings: Settings
    sms: list[SmsSender] | None = None  # tests may inject clients; by default those from settings
    email: EmailSender | None = None
    metrics: Metrics = field(default_factory=Metrics)
    http_port: int | None = None  # the bound port once running
    metrics_port: int | None = None  # the bound port of /metrics, /healthz, /readyz once running
    _consumer: AIOKafkaConsumer | None = None
    _store: PostgresStore | None = None
    _engine: DeliveryEngine | None = None
    _batch_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # held while a batch is in flight
    _watch: StallWatch = field(default_factory=lambda: StallWatch(120.0, time.monotonic()))
    _positions: dict[TopicPartition, int] = field(default_factory=dict)  # next offset to consume
    _stalled: bool = False
    _commits: CommitWatch = field(default_factory=lambda: CommitWatch(300.0))
    _committed: dict[TopicPartition, int] = field(default_factory=dict)  # by us, or where reading began
    _commit_stalled: int = 0

    async def run(self, stop: asyncio.Event) -> None:  # noqa: PLR0915  # the composition root (split in issue 12)
        s = self.settings
        check_secrets(s)  # before anything connects
        self._commits.limit_s = s.commit_stall_s
        store = self._store = await PostgresStore.connect(s.database_url, pool_size=s.database_pool_size)
        session = aiohttp.ClientSession()
        producer = build_producer(s.kafka_bootstrap_servers)
        if s.blind_index_key is None:
            raise ConfigError(
                "NOTIFIER_BLIND_INDEX_KEY is required to honour opt-outs: `notifier keys generate --kind blind-index`"
            )
        blind_index = BlindIndex.parse(s.blind_index_key.get_secret_value())
        keyring = Keyring.parse(s.pii_keys.get_secret_value()) if s.pii_keys else None
        links = link_signer(s)
        if keyring is None:
            log.warning("no_pii_keys", effect="an undelivered SMS cannot fall back to email")
        sms = self.sms if self.sms is not None else sms_clients(s, session)
        engine = self._engine = delivery_engine(
            s,
            self.metrics,
            session,
            references=message_references(blind_index),
            sms=sms,
            email=self.email,
        )
        # This instance's share of each provider's rate, for sends and status look-ups alike.
        share = ShareOnAssignment(
            _each(engine.set_share, lambda f: checks.set_share(f)),  # noqa: PLW0108  # checks: built below
            self._drain,
        )
        consumer = self._consumer = build_consumer(
            s.kafka_bootstrap_servers,
            s.consumer_group,
            topics=s.input_topics,
            pattern=s.input_topic_pattern,
            max_records=s.batch_max_records,
            listener=share,
        )
        share.consumer = consumer
        pipeline = Pipeline(
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
            receipts=ReceiptPublisher(producer, s.receipts_topic),
            dead_letters=DeadLetterPublisher(producer, s.dead_letter_topic, self.metrics),
            metrics=self.metrics,
            send_concurrency=s.send_concurrency,
            keyring=keyring,
            blind_index=blind_index,
            links=links,
            allow_foreign_mobiles=s.allow_foreign_mobiles,
            outbox_lease_s=s.outbox_lease_s,
        )
        app = create_public_app(s.http_max_body_bytes)
        reports = DeliveryReports(
            store=store,
            pipeline=pipeline,
            keyring=keyring,
            metrics=self.metrics,
            references=engine.references,
            fallback_retry_s=s.email_fallback_retry_s,
            fallback_attempts=s.email_fallback_attempts,
        )
        pipeline.after_record = reports.apply_held
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
        runner, ops_runner = await self._listen(app)
        tasks = [asyncio.create_task(self._pause_on(stop, engine))]
        try:
            await producer.start()
            await consumer.start()
            await pipeline.outbox.relay()
            tasks += [
                asyncio.create_task(self._relay_forever(pipeline, reports, stop)),
                asyncio.create_task(self._purge_forever(PrivacyStore(store.pool), stop)),
                asyncio.create_task(self._status_checks_forever(checks, stop)),
                asyncio.create_task(self._watchdog(consumer, stop)),
            ]
            log.info(
                "service_started",
                topics=s.input_topics,
                pattern=s.input_topic_pattern,
                http_port=self.http_port,
                metrics_port=self.metrics_port,
            )
            await self._consume(consumer, pipeline, stop)
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            with contextlib.suppress(KafkaError):
                await consumer.stop()
            with contextlib.suppress(KafkaError):
                await producer.stop()
            await session.close()
            await runner.cleanup()
            await ops_runner.cleanup()
            await store.close()
            log.info("service_stopped")

    async def _listen(self, app: web.Application) -> tuple[web.AppRunner, web.AppRunner]:
        """The public listener (callbacks, pages) and the operations one (/metrics, /healthz, /readyz)."""
        s = self.settings
        ops, self.metrics_port = await start_http(
            create_app(self.metrics, self._ready, self._live), s.metrics_host, s.metrics_port
        )
        public, self.http_port = await start_http(app, s.http_host, s.http_port)
        return public, ops

    async def _consume(self, consumer: AIOKafkaConsumer, pipeline: Pipeline, stop: asyncio.Event) -> None:
        s = self.settings
        failures = holds = 0
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=s.batch_timeout_ms, max_records=s.batch_max_records)
            self._fetched(batch)
            if not batch:
                continue
            pause = 0.0
            async with self._batch_lock:
                records = to_records(batch)
                unfinished: Unfinished | None
                try:
                    unfinished = await pipeline.process_batch(records)
                except Exception as exc:  # any failure: retry, and after enough find the poison
                    failures += 1
                    unfinished = await self._after_failure(pipeline, records, exc, failures)
                if unfinished is None:
                    # Nothing of this batch is committed: rewind and try it again after a pause.
                    pause = _RETRY_BACKOFF_S[min(failures - 1, len(_RETRY_BACKOFF_S) - 1)]
                    self.metrics.ready.set(0)
                    self._rewind(consumer, {tp: msgs[0].offset for tp, msgs in batch.items() if msgs})
                else:
                    failures = 0
                    offsets = next_offsets(batch, unfinished)
                    if await self._commit(consumer, offsets):
                        self._committed_to(offsets)
                    if unfinished:
                        # Held (no provider would take them): read again from the first held record.
                        self._rewind(
                            consumer,
                            {
                                tp: unfinished[(tp.topic, tp.partition)]
                                for tp in batch
                                if (tp.topic, tp.partition) in unfinished
                            },
                        )
                        if not stop.is_set() and not (self._engine and self._engine.draining):
                            pause = _HOLD_BACKOFF_S[min(holds, len(_HOLD_BACKOFF_S) - 1)]
                            holds += 1
                    else:
                        holds = 0
            if pause:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)

    async def _after_failure(
        self, pipeline: Pipeline, records: list[InboundRecord], exc: Exception, failures: int
    ) -> Unfinished | None:
        """A batch failed. None: retry it later. After ``poison_attempts`` failures with the database
        up, its records are processed one by one and those that still fail are dead-lettered."""
        detail = str(exc) if isinstance(exc, NotifierError) else ""  # others may quote the event
        log.error("batch_failed", error=type(exc).__name__, detail=detail, failures=failures)
        if failures < self.settings.poison_attempts or self._store is None or not await self._store.ping():
            return None
        try:
            return await pipeline.process_one_by_one(records, attempts=failures)
        except Exception as again:  # still failing: keep retrying the batch
            log.error("poison_search_failed", error=type(again).__name__)
            return None

    def _rewind(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        """Seek back to records to process again (partitions a rebalance took away are skipped)."""
        assigned = consumer.assignment()
        for tp, offset in offsets.items():
            if tp in assigned:
                consumer.seek(tp, offset)
                self._positions[tp] = offset

    def _fetched(self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        now = time.monotonic()
        self._watch.fetched(now)
        for tp, msgs in batch.items():
            if msgs:
                self._positions[tp] = msgs[-1].offset + 1
                if tp not in self._committed:  # the first read of a partition starts at its committed offset
                    self._committed[tp] = msgs[0].offset
                    self._commits.committed((tp.topic, tp.partition), msgs[0].offset, now)

    def _committed_to(self, offsets: dict[TopicPartition, int]) -> None:
        now = time.monotonic()
        for tp, offset in offsets.items():
            self._committed[tp] = offset
            self._commits.committed((tp.topic, tp.partition), offset, now)

    async def _drain(self) -> None:
        """Rebalance: start no new sends, let the batch in flight finish and commit, then go on."""
        engine = self._engine
        if engine is None:
            return
        engine.pause_sends()
        started = time.monotonic()
        try:
            await asyncio.wait_for(self._batch_lock.acquire(), self.settings.rebalance_drain_s)
        except TimeoutError:
            log.warning("rebalance_drain_timeout", waited_s=self.settings.rebalance_drain_s)
        else:
            self._batch_lock.release()
            log.info("rebalance_drained", seconds=round(time.monotonic() - started, 3))
        finally:
            engine.resume_sends()
            self._positions.clear()
            self._committed.clear()  # partitions may move: each is measured again from its next read

    @staticmethod
    async def _pause_on(stop: asyncio.Event, engine: DeliveryEngine) -> None:
        """Shutdown: from SIGTERM on, only the sends already begun finish; the rest is held."""
        await stop.wait()
        engine.pause_sends()

    @staticmethod
    async def _commit(consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> bool:
        """Commit explicit offsets; False when the broker did not take them (logged, survived)."""
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError):
            # A rebalance took the partitions away; the new owner re-reads and the dedup absorbs it.
            log.warning("commit_failed_after_rebalance", partitions=len(offsets))
        except KafkaError as exc:
            # The batch is durable in PostgreSQL: the next commit covers these offsets, and if this
            # instance stops first the records are read again and the dedup absorbs them.
            log.warning("commit_failed", error=type(exc).__name__, partitions=len(offsets))
        else:
            return True
        return False

    async def _watchdog(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        """Notice a consumer that stopped fetching while records wait: liveness fails, the pod restarts."""
        self._watch.limit_s = self.settings.watchdog_stall_s
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _WATCHDOG_EVERY_S)
            lag = consumer_lag(consumer, self._positions)
            self.metrics.consumer_lag.set(lag)
            now = time.monotonic()
            stalled = self._watch.stalled(now, lag)
            if stalled and not self._stalled:
                log.error("consumer_stalled", seconds_since_fetch=round(self._watch.idle_s(now)), lag=lag)
            self._stalled = stalled
            self.metrics.fetch_stalled.set(1 if stalled else 0)
            commits = self._commit_progress(consumer)
            if commits.stalled and not self._commit_stalled:
                log.error(
                    "partition_commits_stalled",
                    partitions=commits.stalled,
                    seconds_since_commit=round(commits.longest_s),
                )
            elif self._commit_stalled and not commits.stalled:
                log.info("partition_commits_resumed")
            self._commit_stalled = commits.stalled

    def _commit_progress(self, consumer: AIOKafkaConsumer) -> CommitStall:
        """Per assigned partition, the records waiting past its committed offset, through the watch."""
        waiting: dict[tuple[str, int], int] = {}
        for tp in consumer.assignment():
            high, committed = consumer.highwater(tp), self._committed.get(tp)
            if high is not None and committed is not None:
                waiting[(tp.topic, tp.partition)] = max(0, high - committed)
        progress = self._commits.check(time.monotonic(), waiting)
        self.metrics.commit_stalled_partitions.set(progress.stalled)
        self.metrics.commit_stall_seconds.set(progress.longest_s)
        return progress

    def assignment(self) -> set[TopicPartition]:
        """The partitions this instance holds right now."""
        return set(self._consumer.assignment()) if self._consumer is not None else set()

    async def _live(self) -> bool:
        return not self._stalled

    async def _relay_forever(self, pipeline: Pipeline, reports: DeliveryReports, stop: asyncio.Event) -> None:
        """Every ``outbox_relay_interval_s``: publish receipts nobody holds (their writer died or could
        not publish them), retry owed email fallbacks."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.outbox_relay_interval_s)
            try:
                await pipeline.outbox.relay()
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
            "kafka_assigned": bool(self._consumer is not None and self._consumer.assignment()),
            "database": bool(self._store is not None and await self._store.ping()),
            # records wait and a partition's committed offset has not moved for NOTIFIER_COMMIT_STALL_S
            "commits_advancing": self._consumer is None or not self._commit_progress(self._consumer).stalled,
        }


def check_secrets(s: Settings) -> None:
    """Refuse the sandbox's public secrets where they would guard anything reachable."""
    refuse_sandbox_secrets(s)
    if s.sandbox_mode:
        log.warning("sandbox_mode", effect="the sandbox's public default secrets are accepted")


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
    return StatusChecks(
        store=store,
        reports=reports,
        senders=sms,
        metrics=metrics,
        policy=StatusCheckPolicy(after_s=s.status_check_after_s, max_age_s=s.status_check_max_age_s),
        rates={
            "twilio": s.twilio_rate_per_s * s.rate_headroom * s.status_check_share,
            "infobip": s.infobip_rate_per_s * s.rate_headroom * s.status_check_share,
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
    )
    support.routes(app)
    add_stylesheet_route(app, s.templates_dir)
    if await support.staff_store.can_alter_audit_log():
        log.warning(
            "single_database_role",
            effect="the service's database role can alter the audit log: give it its own role "
            "and migrate with NOTIFIER_MIGRATION_DATABASE_URL (README)",
        )


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
