"""The stages wired together, in the order they depend on each other (no back-edges):

    Receipts -> Sender -> DeliveryReports(Receipts, Sender) -> Dispatcher(Sender, DeliveryReports)
             -> BatchDriver(Intake, Dedup, Consent, Dispatcher)

Built once by the composition root (``service.app``); tests build the same with fakes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from service.compose.consent import Consent
from service.compose.message import Composer
from service.compose.recipient_checks import RecipientChecks
from service.compose.render import Renderer
from service.dedup.claims import Dedup
from service.dedup.follow_up_schedule import FollowUpSchedule
from service.dedup.pickup_times import PickupTimes
from service.domain.links import LinkSigner
from service.domain.ports import DeadLetterSink, FollowUpStore, NotificationStore, PickupStore, ReceiptSink
from service.domain.quiet_hours import QuietHours
from service.domain.reminders import ReminderPolicy
from service.domain.screening import NumberPolicy
from service.intake.dead_letters import DeadLetters
from service.intake.parse import Intake
from service.metrics import Metrics
from service.pipeline.dispatch import Dispatcher
from service.pipeline.driver import BatchDriver
from service.privacy.blind_index import BlindIndex
from service.privacy.crypto import Keyring
from service.privacy.subjects import RecipientSubjects
from service.report.delivery_reports import DeliveryReports
from service.report.receipts import Receipts
from service.send.engine import DeliveryEngine
from service.send.providers.codes import permanent_code
from service.send.sender import Sender


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Stages:
    driver: BatchDriver  # what the consume loop hands each batch to
    reports: DeliveryReports  # what the webhooks and the status look-ups hand a provider's report to
    receipts: Receipts  # its outbox's relay runs periodically
    sender: Sender


def build_stages(  # the composition of the stages: every dependency is named
    *,
    store: NotificationStore,
    engine: DeliveryEngine,
    renderer: Renderer,
    receipts: ReceiptSink,
    dead_letters: DeadLetterSink,
    metrics: Metrics,
    blind_index: BlindIndex,
    keyring: Keyring | None = None,
    links: LinkSigner | None = None,
    allow_foreign_mobiles: bool = False,
    send_concurrency: int = 32,
    outbox_lease_s: float = 60.0,
    fallback_retry_s: float = 30.0,
    fallback_attempts: int = 12,
    clock: Callable[[], datetime] = _now,
    rng: random.Random | None = None,
    pickups: PickupStore | None = None,  # dwell times recorded there; None: not recorded
    quiet: QuietHours | None = None,
    coalesce_backlog_after_s: float | None = None,
    pilot_mode: bool = False,
    bad_number_reports: int = 3,
    follow_ups: FollowUpStore | None = None,  # pickup reminders and survey links scheduled there
    reminders: ReminderPolicy | None = None,  # None: no reminders
    survey_delay: timedelta | None = None,  # None: no survey
) -> Stages:
    subjects = RecipientSubjects(blind_index, allow_foreign_mobiles=allow_foreign_mobiles)
    consent = Consent(store, subjects)
    checks = RecipientChecks(
        store,
        subjects,
        metrics,
        pilot_mode=pilot_mode,
        policy=NumberPolicy(bad_number_reports),
        permanent=permanent_code,
    )
    recorded = Receipts(store, receipts, metrics, lease_s=outbox_lease_s)
    sender = Sender(
        engine=engine,
        composer=Composer(renderer, metrics, allow_foreign_mobiles=allow_foreign_mobiles),
        consent=consent,
        store=store,
        metrics=metrics,
        clock=clock,
        send_concurrency=send_concurrency,
        checks=checks,
    )
    reports = DeliveryReports(
        store=store,
        receipts=recorded,
        sender=sender,
        keyring=keyring,
        metrics=metrics,
        references=engine.references,
        clock=clock,
        fallback_retry_s=fallback_retry_s,
        fallback_attempts=fallback_attempts,
        rng=rng,
        checks=checks,
    )
    dispatcher = Dispatcher(
        sender=sender, reports=reports, metrics=metrics, clock=clock, keyring=keyring, quiet=quiet
    )
    letters = DeadLetters(dead_letters, metrics)
    driver = BatchDriver(
        intake=Intake(letters, clock),
        dedup=Dedup(store, subjects, metrics, links),
        consent=consent,
        dispatcher=dispatcher,
        dead_letters=letters,
        store=store,
        metrics=metrics,
        pickups=None
        if pickups is None
        else PickupTimes(
            pickups,
            metrics,
            None
            if follow_ups is None
            else FollowUpSchedule(follow_ups, reminders=reminders, survey_delay=survey_delay),
        ),
        coalesce_backlog_after_s=coalesce_backlog_after_s,
        clock=clock,
        checks=checks,
    )
    return Stages(driver, reports, recorded, sender)
