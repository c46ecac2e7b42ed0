"""``notifier templates check|render``: every template, every locale, against worst-case data.

``check`` renders each SMS template with the longest realistic values we expect (long names,
long addresses, every document) and fails when one is over its segment budget
(``templates/sms/budgets.toml``) or cannot be rendered (a missing variable, a syntax error).
``render`` prints one message with its encoding and segment count, for people writing templates.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from service.domain.errors import RenderError
from service.domain.milestones import Milestone
from service.domain.model import Pickup, Recipient, ShipmentUpdate
from service.render import LOCALES, Renderer

_HK = timezone(timedelta(hours=8))


def sample_update(*, worst_case: bool) -> ShipmentUpdate:
    """Sample data: typical, or the longest values we expect to meet."""
    start = datetime(2026, 11, 24, 14, 0, tzinfo=_HK)
    if worst_case:
        name, model = "Christopher Alexander Wong-Montgomery", "S-Works Turbo Levo SL Carbon Gen 3"
        place = "Specialized Kwun Tong Service Centre"
        address = "Unit 1203, 12/F, Kwun Tong Industrial Centre Phase 2, 448-458 Kwun Tong Road, Kowloon"
        documents: tuple[str, ...] = ("HKID", "ORDER_CONFIRMATION", "AUTHORISATION_LETTER", "PASSPORT")
        order, location = "SO-HK-2026-00123456", "Kwai Chung Container Terminal 9 Logistics Centre"
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


def check_templates(renderer: Renderer, templates_dir: Path) -> list[CheckResult]:
    limits = budgets(templates_dir)
    worst = sample_update(worst_case=True)
    results = []
    for milestone in Milestone:
        for locale in LOCALES:
            key = f"{milestone.value}.{locale}"
            budget = limits.get(key, limits.get("default", 3))
            try:
                msg = renderer.render_sms(milestone, worst, locale)
                renderer.render_email(milestone, worst, locale)
            except RenderError as exc:
                results.append(CheckResult(key, None, budget, None, str(exc)))
                continue
            results.append(CheckResult(key, msg.segments, budget, msg.encoding))
    return results


def format_results(results: list[CheckResult]) -> str:
    lines = []
    for r in results:
        status = "ok  " if r.ok else "FAIL"
        detail = r.error or f"{r.segments} segment(s) {r.encoding}, budget {r.budget}"
        lines.append(f"{status} {r.template:<32} {detail}")
    return "\n".join(lines)
