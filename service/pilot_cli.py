"""``notifier pilot``: the pilot's allow-list, kept by blind index only.

``add`` / ``remove`` take one phone (``--phone``) or email (``--email``), typed at a no-echo prompt
or piped on standard input, never on the command line (``service.confirm.read_value``). The value
is validated as the service would use it (a mobile it could text, normalised to E.164; an email
address), then the plan is shown with the contact masked and the list's size: ``--dry-run`` stops
there; on a terminal only ``yes`` goes ahead; a script needs ``--yes``. Every change is kept in
``pilot_events`` with who made it (``--by``). ``list`` prints the counts and whether pilot mode is
on; no contact is ever printed (the list holds none in clear).
"""

from __future__ import annotations

import argparse

from service.confirm import add_guard_flags, confirm, read_value
from service.domain.errors import CommandRefused, ConfigError
from service.domain.phone import mask_phone, normalize_hk_mobile
from service.privacy.blind_index import BlindIndex
from service.settings import Settings

_MAX_BY = 64


def add_pilot_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pl = sub.add_parser(
        "pilot", help="pilot mode's allow-list: who may be messaged while NOTIFIER_PILOT_MODE is on"
    )
    pl_sub = pl.add_subparsers(dest="pilot_command", required=True, metavar="ACTION")
    for name, what in (("add", "put a phone or email on the allow-list"), ("remove", "take one off it")):
        p = pl_sub.add_parser(name, help=what)
        target = p.add_mutually_exclusive_group(required=True)
        for flag, label in (("--phone", "phone number"), ("--email", "email address")):
            target.add_argument(
                flag,
                nargs="?",
                const="-",
                metavar="-",
                help=f"the {label}, typed at a prompt (not echoed) or read from standard input; never "
                "given on the command line (process list, shell history)",
            )
        p.add_argument("--by", required=True, help="who makes the change (operator name or ticket), kept")
        add_guard_flags(p, name)
    pl_sub.add_parser("list", help="how many phones and emails the allow-list holds (never which)")


def blind_index(settings: Settings) -> BlindIndex:
    if settings.blind_index_key is None:
        raise ConfigError("NOTIFIER_BLIND_INDEX_KEY is required: the allow-list holds blind indexes")
    return BlindIndex.parse(settings.blind_index_key.get_secret_value())


def operator(raw: str) -> str:
    """The ``--by`` of a change: who made it, kept in the history."""
    by = raw.strip()
    if not by or len(by) > _MAX_BY or not by.isprintable():
        raise CommandRefused(f"--by: who makes the change, 1 to {_MAX_BY} printable characters")
    return by


def _email(raw: str) -> str:
    local, at, domain = raw.partition("@")
    if not at or not local or "." not in domain.strip(".") or any(c.isspace() for c in raw) or "@" in domain:
        raise CommandRefused("--email: not an email address")
    return raw


def _mask_email(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"


def contact(settings: Settings, args: argparse.Namespace) -> tuple[bytes, str, str]:
    """The contact the command names: (its blind index, ``phone`` or ``email``, masked for the plan)."""
    blind = blind_index(settings)
    if args.phone is not None:
        raw = read_value("--phone", args.phone, label="phone number")
        number = normalize_hk_mobile(raw, allow_foreign_mobiles=settings.allow_foreign_mobiles)
        if number.e164 is None:
            raise CommandRefused(
                f"--phone: not a mobile number the service would text ({number.reason}); nothing changed"
            )
        return blind.phone(number.e164), "phone", mask_phone(number.e164)
    address = _email(read_value("--email", args.email, label="email address"))
    return blind.email(address), "email", _mask_email(address.strip().lower())


async def run_pilot_command(settings: Settings, args: argparse.Namespace) -> int:
    by = operator(args.by) if args.pilot_command != "list" else ""
    subject, kind, masked = contact(settings, args) if args.pilot_command != "list" else (b"", "", "")
    from service.store.postgres import PostgresStore  # noqa: PLC0415  # asyncpg only for this command

    store = await PostgresStore.connect(settings.database_url, pool_size=1)
    try:
        size = await store.pilot_size()
        mode = "on" if settings.pilot_mode else "off (NOTIFIER_PILOT_MODE): the list is not applied"
        if args.pilot_command == "list":
            print(f"allow-list: {size['phone']} phone(s), {size['email']} email(s); pilot mode {mode}")
            return 0
        adding = args.pilot_command == "add"
        listed = bool(await store.pilot_listed([subject]))
        if listed == adding:
            print(f"{kind} {masked} is {'already' if adding else 'not'} on the allow-list: nothing to change")
            return 0
        plan = (
            f"{'add' if adding else 'remove'} {kind} {masked} {'to' if adding else 'from'} the pilot's "
            f"allow-list ({size['phone']} phone(s), {size['email']} email(s) now; pilot mode {mode})"
        )
        if not confirm(plan, dry_run=args.dry_run, yes=args.yes):
            return 0
        await store.set_pilot(subject, kind, listed=adding, source=f"operator:{by}")
        print(f"{'added' if adding else 'removed'}: {kind} {masked}")
    finally:
        await store.close()
    return 0
