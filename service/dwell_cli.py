"""``notifier report dwell``: dwell-time percentiles from ``pickup_dwell``, overall, by pickup place
and by the pickup's weekday and hour in Hong Kong time (``service.domain.dwell_report``)."""

from __future__ import annotations

import argparse
from datetime import date, datetime

from service.domain.dwell_report import DEFAULT_MIN_COUNT, HK_TZ, MAX_DAYS, Grouping, day_range, format_report
from service.domain.errors import CommandRefused
from service.settings import Settings

MAX_MIN_COUNT = 1000


def add_report_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rp = sub.add_parser("report", help="reports for the operator, free of personal data")
    rp_sub = rp.add_subparsers(dest="report_command", required=True, metavar="REPORT")
    dw = rp_sub.add_parser(
        "dwell",
        help="dwell time (ready for pickup to picked up): percentiles by pickup place and by weekday/hour (HKT)",
    )
    dw.add_argument(
        "--from", dest="first", metavar="YYYY-MM-DD", help="first pickup day (default: 27 days before --to)"
    )
    dw.add_argument(
        "--to", dest="last", metavar="YYYY-MM-DD", help="last pickup day, included (default: today, HKT)"
    )
    dw.add_argument(
        "--by",
        choices=[g.value for g in Grouping],
        action="append",
        help="which table (repeatable); default: all, place and weekday-hour",
    )
    dw.add_argument(
        "--min-count",
        type=int,
        default=DEFAULT_MIN_COUNT,
        help=f"leave out groups of fewer pickups, so no one pickup can be read (default {DEFAULT_MIN_COUNT})",
    )


async def run_report(settings: Settings, args: argparse.Namespace, *, today: date | None = None) -> int:
    """The report the arguments ask for, printed; a bad range or option is refused (exit 2)."""
    try:
        days = day_range(args.first, args.last, today=today or datetime.now(HK_TZ).date(), max_days=MAX_DAYS)
    except ValueError as exc:
        raise CommandRefused(str(exc)) from None
    if not 1 <= args.min_count <= MAX_MIN_COUNT:
        raise CommandRefused(f"--min-count must be 1 to {MAX_MIN_COUNT}")
    from service.store.postgres import PostgresStore  # noqa: PLC0415  # --help needs no database driver

    groupings = [Grouping(g) for g in dict.fromkeys(args.by or [g.value for g in Grouping])]
    store = await PostgresStore.connect(settings.database_url, pool_size=1, run_migrations=False)
    try:
        if not await store.dwell_recorded():
            raise CommandRefused(
                "this database has no dwell times yet: apply the migrations (notifier db migrate)"
            )
        sections = [
            format_report(
                await store.dwell_summary(days.start, days.end, g), g, days, min_count=args.min_count
            )
            for g in groupings
        ]
    finally:
        await store.close()
    print("\n\n".join(sections))
    return 0
