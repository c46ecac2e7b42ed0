"""``notifier pilot`` through the real entry point (a process, standard input a pipe) on PostgreSQL:
validated, masked, dry-run first, refused without --yes from a script, kept by blind index only."""

from __future__ import annotations

import asyncpg
import pytest

from service.store.postgres import PostgresStore
from tests.integration.test_privacy_cli import BLIND, notifier

pytestmark = pytest.mark.integration

NUMBER = "+85291234567"


async def listed(database_url: str) -> list[bytes]:
    conn = await asyncpg.connect(database_url)
    try:
        return [bytes(r["subject"]) for r in await conn.fetch("SELECT subject FROM pilot_recipients")]
    finally:
        await conn.close()


async def test_adding_a_phone_is_validated_previewed_and_confirmed(database_url: str) -> None:
    await (await PostgresStore.connect(database_url)).close()  # migrated, as `notifier db migrate` does

    typo = await notifier(
        database_url, "pilot", "add", "--phone", "--by", "ops", "--yes", stdin="2345 6789\n"
    )
    assert typo.code == 2
    assert "not a mobile number" in typo.err
    on_the_line = await notifier(database_url, "pilot", "add", "--phone", NUMBER, "--by", "ops", "--yes")
    assert on_the_line.code == 2
    assert "does not take the value on the command line" in on_the_line.err

    dry = await notifier(
        database_url, "pilot", "add", "--phone", "--by", "ops", "--dry-run", stdin="9123 4567\n"
    )
    assert dry.code == 0
    assert "dry run, nothing changed: would add phone +852 ****4567" in dry.out
    unconfirmed = await notifier(database_url, "pilot", "add", "--phone", "--by", "ops", stdin="9123 4567\n")
    assert unconfirmed.code == 2
    assert "--yes" in unconfirmed.err
    assert await listed(database_url) == []

    done = await notifier(
        database_url, "pilot", "add", "--phone", "--by", "ops", "--yes", stdin="9123 4567\n"
    )
    assert done.code == 0
    assert await listed(database_url) == [BLIND.phone(NUMBER)]  # its blind index, never the number
    again = await notifier(
        database_url, "pilot", "add", "--phone", "--by", "ops", "--yes", stdin="91234567\n"
    )
    assert "already on the allow-list" in again.out

    shown = await notifier(database_url, "pilot", "list", env_extra={"NOTIFIER_PILOT_MODE": "true"})
    assert shown.code == 0
    assert "1 phone(s), 0 email(s); pilot mode on" in shown.out
    for run in (typo, dry, unconfirmed, done, again, shown):
        assert "91234567" not in run.out + run.err
        assert "9123 4567" not in run.out + run.err

    removed = await notifier(
        database_url, "pilot", "remove", "--phone", "--by", "ops", "--yes", stdin="9123 4567\n"
    )
    assert removed.code == 0
    assert await listed(database_url) == []
    conn = await asyncpg.connect(database_url)
    try:
        history = [
            (r["action"], r["source"]) for r in await conn.fetch("SELECT * FROM pilot_events ORDER BY id")
        ]
    finally:
        await conn.close()
    assert history == [("add", "operator:ops"), ("remove", "operator:ops")]


async def test_an_email_is_checked_and_listed_by_its_blind_index(database_url: str) -> None:
    await (await PostgresStore.connect(database_url)).close()
    bad = await notifier(
        database_url, "pilot", "add", "--email", "--by", "ops", "--yes", stdin="not-an-address\n"
    )
    assert bad.code == 2
    done = await notifier(
        database_url, "pilot", "add", "--email", "--by", "ops", "--yes", stdin="Staff@Example.com\n"
    )
    assert done.code == 0
    assert "s***@example.com" in done.out
    assert await listed(database_url) == [BLIND.email("staff@example.com")]


async def test_a_marked_number_is_checked_and_unmarked_by_an_operator(database_url: str) -> None:
    store = await PostgresStore.connect(database_url)
    try:
        await store.mark_number(BLIND.phone(NUMBER), "twilio_21211")
    finally:
        await store.close()
    check = await notifier(database_url, "numbers", "check", "--phone", stdin="9123 4567\n")
    assert check.code == 0
    assert "+852 ****4567 is marked undeliverable since" in check.out
    assert "(twilio_21211)" in check.out
    dry = await notifier(
        database_url, "numbers", "unmark", "--phone", "--by", "cs-17", "--dry-run", stdin="91234567\n"
    )
    assert dry.code == 0
    assert "dry run, nothing changed: would take the mark off +852 ****4567" in dry.out
    unconfirmed = await notifier(
        database_url, "numbers", "unmark", "--phone", "--by", "cs-17", stdin="91234567\n"
    )
    assert unconfirmed.code == 2
    done = await notifier(
        database_url, "numbers", "unmark", "--phone", "--by", "cs-17", "--yes", stdin="91234567\n"
    )
    assert done.code == 0
    after = await notifier(database_url, "numbers", "check", "--phone", stdin="91234567\n")
    assert "is not marked undeliverable" in after.out
    for run in (check, dry, unconfirmed, done, after):
        assert "91234567" not in run.out + run.err
