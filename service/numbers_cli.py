"""``notifier numbers``: the numbers marked undeliverable (bad-number hygiene), by blind index.

``check --phone`` says whether a number is marked, since when and why (for a customer who asks why
the texts stopped); ``unmark --phone --by WHO`` takes the mark off once the customer confirms the
number works (the next milestone is texted again), guarded like ``notifier pilot``: validated, the
plan shown masked, ``--dry-run`` / the question / ``--yes``. The number is typed at a no-echo
prompt or piped, never on the command line, and never printed in full.
"""

from __future__ import annotations

import argparse
from zoneinfo import ZoneInfo

from service.confirm import add_guard_flags, confirm, read_value
from service.domain.errors import CommandRefused
from service.domain.phone import mask_phone, normalize_hk_mobile
from service.logs import get_logger
from service.pilot_cli import blind_index, operator
from service.settings import Settings

log = get_logger(__name__)
_HK = ZoneInfo("Asia/Hong_Kong")
_PHONE_HELP = (
    "the phone number, typed at a prompt (not echoed) or read from standard input; never given on the "
    "command line (process list, shell history)"
)


def add_numbers_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    nb = sub.add_parser("numbers", help="numbers marked undeliverable: check one, or take its mark off")
    nb_sub = nb.add_subparsers(dest="numbers_command", required=True, metavar="ACTION")
    ck = nb_sub.add_parser("check", help="whether a number is marked undeliverable, since when and why")
    ck.add_argument("--phone", nargs="?", const="-", metavar="-", required=True, help=_PHONE_HELP)
    um = nb_sub.add_parser("unmark", help="take a number's mark off: it is texted again")
    um.add_argument("--phone", nargs="?", const="-", metavar="-", required=True, help=_PHONE_HELP)
    um.add_argument("--by", required=True, help="who makes the change (operator name or ticket), logged")
    add_guard_flags(um, "unmark")


async def run_numbers_command(settings: Settings, args: argparse.Namespace) -> int:
    by = operator(args.by) if args.numbers_command == "unmark" else ""
    blind = blind_index(settings)
    number = normalize_hk_mobile(
        read_value("--phone", args.phone, label="phone number"),
        allow_foreign_mobiles=settings.allow_foreign_mobiles,
    )
    if number.e164 is None:
        raise CommandRefused(f"--phone: not a mobile number the service would text ({number.reason})")
    subject, masked = blind.phone(number.e164), mask_phone(number.e164)
    from service.store.postgres import PostgresStore  # noqa: PLC0415  # asyncpg only for this command

    store = await PostgresStore.connect(settings.database_url, pool_size=1)
    try:
        mark = (await store.number_marks([subject])).get(subject)
        if mark is None:
            print(f"{masked} is not marked undeliverable: it is texted")
            return 0
        since = (
            f"{mark.marked_at.astimezone(_HK):%Y-%m-%d %H:%M} Hong Kong time ({mark.reason or 'no reason'})"
        )
        if args.numbers_command == "check":
            print(f"{masked} is marked undeliverable since {since}: milestones go by email")
            return 0
        if not confirm(
            f"take the mark off {masked} (marked since {since}): later milestones text it again",
            dry_run=args.dry_run,
            yes=args.yes,
        ):
            return 0
        await store.unmark_number(subject)
        log.info("number_unmarked", by=by)
        print(f"unmarked: {masked}")
    finally:
        await store.close()
    return 0
