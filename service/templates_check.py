"""``notifier templates check|render``: every template, every locale, against worst-case data.

``check`` renders each SMS template with the longest realistic values we expect (long names,
long addresses, every document), in every locale with names and places written both ways: Latin
(a long English name, also in a Chinese message, where each letter costs a UCS-2 unit) and
Chinese (a Chinese name and a Chinese address, also in an English message). It fails when one is
over its segment budget (``templates/sms/budgets.toml``), when a budget is over the hard cap
(``NOTIFIER_SMS_MAX_SEGMENTS``), or when a template cannot be rendered (a missing variable, a
syntax error). Messages are measured in full, never shortened: the cap's shortening is for data
beyond the realistic worst case, not a way to meet a budget.
``render`` prints one message with its encoding and segment count, for people writing templates.
"""

from __future__ import annotations

import os
import tomllib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Final, Literal

from service.compose.render import LOCALES, Renderer
from service.domain.errors import RenderError
from service.domain.follow_ups import CONTEXT, FollowUp
from service.domain.milestones import Milestone
from service.domain.model import Pickup, Recipient, ShipmentUpdate
from service.domain.reminders import MAX_REMINDERS, MAX_SPAN_DAYS
from service.domain.survey import SurveySigner

_HK = timezone(timedelta(hours=8))

Script = Literal["latin", "cjk"]
#: The worst cases the check renders every template with: names and places in either script.
SCRIPTS: Final[tuple[Script, ...]] = ("latin", "cjk")
#: A survey link on a typical address, when NOTIFIER_SURVEY_BASE_URL sets none (a 30-character token).
TYPICAL_SURVEY_URL: Final = "https://survey.example.com.hk/specialized-hk?t=" + "A" * 30


def survey_url_like(base_url: str | None) -> str:
    """A survey link as long as the configured survey's (``NOTIFIER_SURVEY_BASE_URL``), else a typical one."""
    if base_url is None:
        return TYPICAL_SURVEY_URL
    return SurveySigner(os.urandom(32), base_url).url(uuid.uuid4(), "zh-HK", datetime.now(UTC))


def follow_up_extra(
    kind: FollowUp, *, survey_url: str = TYPICAL_SURVEY_URL, worst_case: bool = True
) -> dict[str, object]:
    """What a follow-up's templates add: at worst the last reminder after the most days."""
    values: dict[str, object] = {
        "reminder_number": MAX_REMINDERS if worst_case else 1,
        "days_waiting": MAX_SPAN_DAYS if worst_case else 3,
        "survey_url": survey_url,
    }
    return {name: values[name] for name in CONTEXT[kind]}


def sample_update(*, worst_case: bool, script: Script = "latin") -> ShipmentUpdate:
    """Sample data: typical, or the longest values we expect to meet, with Latin or Chinese names."""
    start = datetime(2026, 11, 24, 14, 0, tzinfo=_HK)
    model = "S-Works Turbo Levo SL Carbon Gen 3"
    documents: tuple[str, ...] = ("HKID", "ORDER_CONFIRMATION", "AUTHORISATION_LETTER", "PASSPORT")
    order = "SO-HK-2026-00123456"
    if worst_case and script == "latin":
        name = "Christopher Alexander Wong-Montgomery"
        place = "Specialized Kwun Tong Service Centre"
        address = "Unit 1203, 12/F, Kwun Tong Industrial Centre Phase 2, 448-458 Kwun Tong Road, Kowloon"
        location = "Kwai Chung Container Terminal 9 Logistics Centre"
    elif worst_case:
        # A compound surname and a character outside the BMP (HKSCS, 2 UCS-2 units) in the name.
        name, place = "歐陽𡃁嘉欣", "Specialized 觀塘服務中心"
        address = "九龍觀塘觀塘道448-458號觀塘工業中心第二期12樓1203室"
        location = "葵涌貨櫃碼頭九號碼頭物流中心"
    else:
        name, model, place = "陳大文", "Tarmac SL8 Expert", "Specialized 旺角門市"
        address, documents = "九龍旺角花園街 123 號地下", ("HKID", "ORDER_CONFIRMATION")
        order, location = "SO-HK-24001", "Kwai Chung Logistics Centre"
    return ShipmentUpdate(
        event_id="sample",
        order_id=order,
        waybill="SF1402837465",
        tms_status="READY_FOR_PICKUP",
        occurred_at=start - timedelta(days=2),
        bike_model=model,
        location=location,
        recipient=Recipient(name=name, phone="+85291234567", email="customer@example.com", locale=None),
        pickup=Pickup(place, address, start, start + timedelta(hours=4), documents),
    )


@dataclass(frozen=True, slots=True)
class CheckResult:
    template: str
    segments: int | None
    budget: int
    encoding: str | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.segments is not None and self.segments <= self.budget


def budgets(templates_dir: Path) -> dict[str, int]:
    path = templates_dir / "sms" / "budgets.toml"
    data = tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    return {str(k): int(v) for k, v in data.items()}


def check_templates(
    renderer: Renderer, templates_dir: Path, *, survey_url: str = TYPICAL_SURVEY_URL
) -> list[CheckResult]:
    limits = budgets(templates_dir)
    cap = renderer.max_sms_segments
    results = []
    # Every milestone's message, then every message that follows one (its kind names the template).
    kinds: list[tuple[Milestone, str | None, dict[str, object]]] = [(m, None, {}) for m in Milestone]
    kinds += [(k.milestone, k.value, follow_up_extra(k, survey_url=survey_url)) for k in FollowUp]
    for milestone, template, extra in kinds:
        for locale in LOCALES:
            key = f"{template or milestone.value}.{locale}"
            budget = limits.get(key, limits.get("default", 3))
            for script in SCRIPTS:
                label, worst = f"{key} [{script}]", sample_update(worst_case=True, script=script)
                if budget > cap:
                    error = f"budget {budget} is over the cap of {cap} segments (NOTIFIER_SMS_MAX_SEGMENTS)"
                    results.append(CheckResult(label, None, budget, None, error))
                    continue
                try:
                    msg = renderer.render_sms(
                        milestone, worst, locale, shorten=False, template=template, extra=extra
                    )
                    renderer.render_email(milestone, worst, locale, template=template, extra=extra)
                except RenderError as exc:
                    results.append(CheckResult(label, None, budget, None, str(exc)))
                    continue
                results.append(CheckResult(label, msg.segments, budget, msg.encoding))
    return results


def format_results(results: list[CheckResult]) -> str:
    lines = []
    for r in results:
        status = "ok  " if r.ok else "FAIL"
        detail = r.error or f"{r.segments} segment(s) {r.encoding}, budget {r.budget}"
        lines.append(f"{status} {r.template:<40} {detail}")
    return "\n".join(lines)
