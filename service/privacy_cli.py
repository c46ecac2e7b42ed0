"""The operator's commands on personal data: purge, erase, opt-out / opt-in, key rotation, staff tokens."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable

from service.confirm import confirm, read_value
from service.domain.errors import CommandRefused, ConfigError
from service.domain.phone import normalize_hk_mobile
from service.privacy.blind_index import BlindIndex
from service.privacy.crypto import Keyring
from service.progress import progress_bar
from service.settings import Settings
from service.store.postgres import PostgresStore
from service.store.privacy import Destruction, PrivacyStore
from service.store.staff import StaffStore

_MAX_KEY = 128


def _blind(settings: Settings) -> BlindIndex:
    if settings.blind_index_key is None:
        raise ConfigError("NOTIFIER_BLIND_INDEX_KEY is required to find a phone or email")
    return BlindIndex.parse(settings.blind_index_key.get_secret_value())


def _phone_subject(blind: BlindIndex, raw: str) -> bytes:
    result = normalize_hk_mobile(raw, allow_foreign_mobiles=True)
    if result.e164 is None:
        raise ConfigError(f"not a mobile number we could have messaged ({result.reason})")
    return blind.phone(result.e164)


def _report(what: str, d: Destruction) -> None:
    span = f", notifications from {d.oldest:%Y-%m-%d} to {d.newest:%Y-%m-%d}" if d.oldest and d.newest else ""
    print(f"{what}: {d.contacts} sealed event(s) destroyed, {d.subjects} notification(s) unlinked{span}")


def _plan(d: Destruction, scope: str) -> str:
    span = (
        f" (notifications from {d.oldest:%Y-%m-%d} to {d.newest:%Y-%m-%d})" if d.oldest and d.newest else ""
    )
    return f"destroy {d.contacts} sealed event(s) and unlink {d.subjects} notification(s){span} of {scope}"


def _key(option: str, value: str) -> str:
    """An order number or waybill from the command line (not personal data), checked."""
    value = value.strip()
    if not value or len(value) > _MAX_KEY or any(not c.isprintable() for c in value):
        raise CommandRefused(
            f"{option}: give one order number or waybill (1 to {_MAX_KEY} printable characters)"
        )
    return value


def _email(raw: str) -> str:
    local, at, domain = raw.partition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in raw):
        raise CommandRefused("--email: not an email address")
    return raw


Destroy = Callable[[bool], Awaitable[Destruction]]


def _eraser(settings: Settings, privacy: PrivacyStore, args: argparse.Namespace) -> tuple[str, Destroy]:
    """What the erase command selects (described without the personal value) and how to destroy it."""
    if args.order is not None:
        order = _key("--order", args.order)
        return f"order or waybill {order}", lambda dry: privacy.erase_order(order, dry_run=dry)
    if args.waybill is not None:
        waybill = _key("--waybill", args.waybill)
        return f"waybill {waybill}", lambda dry: privacy.erase_waybill(waybill, dry_run=dry)
    blind = _blind(settings)
    if args.phone is not None:
        phone = _phone_subject(blind, read_value("--phone", args.phone, label="phone number"))
        return "that phone number", lambda dry: privacy.erase_subject(phone, "phone", dry_run=dry)
    email = blind.email(_email(read_value("--email", args.email, label="email address")))
    return "that email address", lambda dry: privacy.erase_subject(email, "email", dry_run=dry)


async def _guarded(
    command: str, scope: str, destroy: Destroy, args: argparse.Namespace, *, refuse_empty: bool = False
) -> None:
    """Preview (the real statement, rolled back), confirm (``service.confirm``), then destroy and report."""
    preview = await destroy(True)
    if refuse_empty and preview.matched == 0:
        raise CommandRefused(f"no notification found for {scope}: nothing erased")
    if preview.contacts == 0 and preview.subjects == 0:
        print(
            f"{command}: nothing to destroy for {scope} ({preview.matched} notification(s) without personal data)"
        )
        return
    if confirm(_plan(preview, scope), dry_run=args.dry_run, yes=args.yes):
        _report(command, await destroy(False))


async def _staff_command(staff: StaffStore, args: argparse.Namespace) -> int:
    if args.staff_command == "add":
        try:
            token = await staff.add(args.name, args.role)
        except ValueError as exc:  # StaffNameTaken, or a name we refuse
            raise ConfigError(str(exc)) from None
        print(f"token for {args.name} ({args.role}), shown once; give it to them over a safe channel:")
        print(token)
        return 0
    if not confirm(
        f"revoke the token of staff member {args.name!r} and end their sessions",
        dry_run=args.dry_run,
        yes=args.yes,
    ):
        return 0
    if not await staff.revoke(args.name):
        print(f"no staff member named {args.name!r} with a live token", file=sys.stderr)
        return 1
    print(f"revoked the token of {args.name!r}; their sessions have ended")
    return 0


async def run_privacy_command(settings: Settings, args: argparse.Namespace) -> int:  # one branch per command
    # Staff tokens are the owner role's: the service's role may not read or write them.
    url = (settings.migration_database_url or settings.database_url) if args.command == "staff" else None
    store = await PostgresStore.connect(url or settings.database_url, pool_size=2)
    privacy = PrivacyStore(store.pool)
    try:
        if args.command == "purge":
            days = args.days if args.days is not None else settings.retention_days
            await _guarded(
                "purge",
                f"orders idle for more than {days} days",
                lambda dry: privacy.purge(days, link_ttl_days=settings.link_ttl_days, dry_run=dry),
                args,
            )
        elif args.command == "erase":
            scope, destroy = _eraser(settings, privacy, args)
            await _guarded("erase", scope, destroy, args, refuse_empty=True)
        elif args.command == "optout":
            blind = _blind(settings)
            if args.phone is not None:
                subject = _phone_subject(blind, read_value("--phone", args.phone, label="phone number"))
            else:
                subject = blind.email(_email(read_value("--email", args.email, label="email address")))
            changed = await store.set_consent(
                [subject], opted_out=not args.opt_in, source=f"operator:{args.by}"
            )
            state = "opted in again" if args.opt_in else "opted out"
            print(f"{state}: {'recorded' if changed else 'already so, nothing changed'}")
        elif args.command == "staff":
            return await _staff_command(StaffStore(store.pool), args)
        elif args.command == "keys":  # rotate
            if settings.pii_keys is None:
                raise ConfigError("NOTIFIER_PII_KEYS is not set")
            keyring = Keyring.parse(settings.pii_keys.get_secret_value())
            if args.dry_run:
                n = await privacy.to_rotate(keyring.active)
                print(
                    f"dry run, nothing changed: would re-encrypt {n} sealed event(s) under key {keyring.active!r}"
                )
                return 0
            with progress_bar("re-encrypting") as progress:
                n = await privacy.rotate(keyring, progress)
            print(f"re-encrypted {n} sealed event(s) under key {keyring.active!r}")
    finally:
        await store.close()
    return 0
