"""The operator's commands on personal data: purge, erase, opt-out / opt-in, key rotation, staff tokens."""

from __future__ import annotations

import argparse
import sys

from service.domain.errors import ConfigError
from service.domain.phone import normalize_hk_mobile
from service.privacy.blind_index import BlindIndex
from service.privacy.crypto import Keyring
from service.settings import Settings
from service.store.postgres import PostgresStore
from service.store.privacy import Destruction, PrivacyStore
from service.store.staff import StaffStore


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


def _progress(done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    sys.stderr.flush()


async def _staff_command(staff: StaffStore, args: argparse.Namespace) -> int:
    if args.staff_command == "add":
        try:
            token = await staff.add(args.name, args.role)
        except ValueError as exc:  # StaffNameTaken, or a name we refuse
            raise ConfigError(str(exc)) from None
        print(f"token for {args.name} ({args.role}), shown once; give it to them over a safe channel:")
        print(token)
        return 0
    if not await staff.revoke(args.name):
        print(f"no staff member named {args.name!r} with a live token", file=sys.stderr)
        return 1
    print(f"revoked the token of {args.name!r}; their sessions have ended")
    return 0


async def run_privacy_command(settings: Settings, args: argparse.Namespace) -> int:
    # Staff tokens are the owner role's: the service's role may not read or write them.
    url = (settings.migration_database_url or settings.database_url) if args.command == "staff" else None
    store = await PostgresStore.connect(url or settings.database_url, pool_size=2)
    privacy = PrivacyStore(store.pool)
    try:
        if args.command == "purge":
            _report("purge", await privacy.purge(args.days or settings.retention_days))
        elif args.command == "erase":
            if args.order:
                d = await privacy.erase_order(args.order)
            elif args.phone:
                d = await privacy.erase_subject(_phone_subject(_blind(settings), args.phone), "phone")
            else:
                d = await privacy.erase_subject(_blind(settings).email(args.email), "email")
            _report("erase", d)
        elif args.command == "optout":
            blind = _blind(settings)
            subject = _phone_subject(blind, args.phone) if args.phone else blind.email(args.email)
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
            n = await privacy.rotate(keyring, _progress)
            sys.stderr.write("\n")
            print(f"re-encrypted {n} sealed event(s) under key {keyring.active!r}")
    finally:
        await store.close()
    return 0
