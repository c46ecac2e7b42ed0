"""The destructive commands through the real ``notifier`` entry point (a process) on a real PostgreSQL.

Every command runs as an operator would run it from a script: a separate process whose standard
input is not a terminal, so without ``--yes`` a destructive command must refuse.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import aiohttp
import asyncpg
import pytest

from service.app import Service
from service.domain.milestones import Milestone
from service.domain.model import notification_id
from service.domain.outcome import ClaimRequest, Outcome, SealedContact
from service.privacy.blind_index import BlindIndex
from service.privacy.crypto import Keyring
from service.sandbox.serve import SandboxState
from service.settings import Settings
from service.store.postgres import PostgresStore
from service.templates_check import sample_update
from tests.integration.helpers import event, produce, read_decisions, read_topic, running

pytestmark = pytest.mark.integration
M = Milestone.ARRIVED_HK_WAREHOUSE
BLIND_KEY = bytes(range(32))
BLIND = BlindIndex(BLIND_KEY)
KEYRING = Keyring({"k1": os.urandom(32)}, "k1")


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


async def notifier(
    database_url: str, *args: str, stdin: str = "", env_extra: dict[str, str] | None = None
) -> Run:
    """``python -m service ARGS`` with the test database; standard input is a pipe, never a TTY."""
    env = {
        **os.environ,
        "NOTIFIER_DATABASE_URL": database_url,
        "NOTIFIER_BLIND_INDEX_KEY": base64.b64encode(BLIND_KEY).decode(),
        **(env_extra or {}),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 60)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


async def seed(
    database_url: str, order: str, phone: str, *, idle_days: int = 0, state: str = "sent", waybill: str = ""
) -> None:
    """One notification with its sealed event and blind indexes, last touched ``idle_days`` ago."""
    store = await PostgresStore.connect(database_url)
    try:
        update = replace(sample_update(worst_case=False), order_id=order, waybill=waybill or f"WB-{order}")
        nid = notification_id(order, M)
        await store.claim(
            [
                ClaimRequest(
                    nid, update, M, "claimed", nid.bytes[:8], BLIND.phone(phone), BLIND.email("a@example.com")
                )
            ]
        )
        key_id, blob = KEYRING.encrypt(b'{"phone": "' + phone.encode() + b'"}', nid.bytes)
        if state == "claimed":  # a send unfinished (a crash mid-send): only its sealed event is written
            await store.pool.execute(
                "INSERT INTO notification_contacts (notification_id, key_id, ciphertext) VALUES ($1, $2, $3)",
                nid,
                key_id,
                blob,
            )
        else:
            outcome = Outcome(
                nid, update, M, state, "sms", datetime.now(UTC), provider="twilio", reference=f"{nid.hex}.1"
            )
            await store.finish([outcome], [], [SealedContact(nid, key_id, blob)])
        await store.pool.execute(
            "UPDATE notifications SET updated_at = now() - make_interval(days => $2),"
            " created_at = now() - make_interval(days => $2) WHERE order_id = $1",
            order,
            idle_days,
        )
    finally:
        await store.close()


async def sealed_orders(database_url: str) -> list[str]:
    """The orders that still have personal data (a sealed event or a blind index)."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT DISTINCT n.order_id FROM notifications n LEFT JOIN notification_contacts c"
            " ON c.notification_id = n.id WHERE c.notification_id IS NOT NULL OR n.phone_subject IS NOT NULL"
            " ORDER BY 1"
        )
        return [r["order_id"] for r in rows]
    finally:
        await conn.close()


@pytest.mark.parametrize("days", ["-1", "0", "3", "ninety"])
async def test_purge_with_a_days_value_under_the_floor_is_refused_and_destroys_nothing(
    database_url: str, days: str
) -> None:
    await seed(database_url, "OLD-1", "+85291234567", idle_days=100)
    await seed(database_url, "NEW-1", "+85291234568")
    for confirmed in ([], ["--yes"]):
        run = await notifier(database_url, "purge", "--days", days, *confirmed)
        assert run.code == 2
        assert "argument --days" in run.err
        assert "at least 7 days" in run.err or "not a whole number" in run.err
    assert await sealed_orders(database_url) == ["NEW-1", "OLD-1"]


async def test_purge_without_yes_and_without_a_terminal_refuses_naming_the_flag(database_url: str) -> None:
    await seed(database_url, "OLD-1", "+85291234567", idle_days=100)
    run = await notifier(database_url, "purge")
    assert run.code == 2
    assert "--yes" in run.err
    assert await sealed_orders(database_url) == ["OLD-1"]


async def test_purge_dry_run_shows_the_counts_and_changes_nothing(database_url: str) -> None:
    await seed(database_url, "OLD-1", "+85291234567", idle_days=100)
    await seed(database_url, "OLD-2", "+85291234568", idle_days=100)
    await seed(database_url, "NEW-1", "+85291234569")
    run = await notifier(database_url, "purge", "--dry-run")
    assert run.code == 0, run.err
    assert "would destroy 2 sealed event(s) and unlink 2 notification(s)" in run.out
    assert await sealed_orders(database_url) == ["NEW-1", "OLD-1", "OLD-2"]
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM destruction_log") == 0  # not even a log row
    finally:
        await conn.close()

    run = await notifier(database_url, "purge", "--yes")
    assert run.code == 0, run.err
    assert "purge: 2 sealed event(s) destroyed, 2 notification(s) unlinked" in run.out
    assert await sealed_orders(database_url) == ["NEW-1"]


async def test_purge_never_destroys_an_order_in_flight_whatever_its_age(database_url: str) -> None:
    await seed(database_url, "DONE-1", "+85291234567", idle_days=100)
    await seed(database_url, "CLAIMED-1", "+85291234568", idle_days=100, state="claimed")
    await seed(database_url, "OWED-1", "+85291234569", idle_days=100, state="undelivered")
    conn = await asyncpg.connect(database_url)
    try:  # an email fallback is owed for this one (its SMS was reported undelivered)
        await conn.execute("UPDATE notifications SET fallback_due_at = now() WHERE order_id = 'OWED-1'")
    finally:
        await conn.close()
    run = await notifier(database_url, "purge", "--days", "7", "--yes")
    assert run.code == 0, run.err
    assert await sealed_orders(database_url) == ["CLAIMED-1", "OWED-1"]


async def test_erase_by_waybill_finds_the_order_and_an_unknown_one_is_refused(database_url: str) -> None:
    await seed(database_url, "SO-1", "+85291234567", waybill="SF1402837465")
    await seed(database_url, "SO-2", "+85291234568", waybill="SF1402837466")
    await seed(database_url, "SO-3", "+85291234569", waybill="SF1402837467")

    run = await notifier(database_url, "erase", "--waybill", "SF1402837465", "--yes")
    assert run.code == 0, run.err
    assert "erase: 1 sealed event(s) destroyed" in run.out
    run = await notifier(database_url, "erase", "--order", "SF1402837466", "--yes")  # as in the look-up
    assert run.code == 0, run.err
    assert await sealed_orders(database_url) == ["SO-3"]

    run = await notifier(database_url, "erase", "--waybill", "SF0000000000", "--yes")
    assert run.code == 2
    assert "no notification found for waybill SF0000000000: nothing erased" in run.err
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM destruction_log") == 2
    finally:
        await conn.close()


async def test_erase_needs_yes_and_dry_run_shows_what_it_would_erase(database_url: str) -> None:
    await seed(database_url, "SO-1", "+85291234567")
    run = await notifier(database_url, "erase", "--order", "SO-1")
    assert (run.code, "--yes" in run.err) == (2, True)
    run = await notifier(database_url, "erase", "--order", "SO-1", "--dry-run")
    assert run.code == 0, run.err
    assert "would destroy 1 sealed event(s) and unlink 1 notification(s)" in run.out
    assert await sealed_orders(database_url) == ["SO-1"]


async def test_erase_needs_exactly_one_valid_selector(database_url: str) -> None:
    await seed(database_url, "SO-1", "+85291234567")
    for args in (
        ["erase", "--yes"],
        ["erase", "--order", "SO-1", "--waybill", "WB-SO-1", "--yes"],
        ["erase", "--order", "   ", "--yes"],
        ["erase", "--order", "SO-\x1b[2J1", "--yes"],
        ["erase", "--order", "S" * 129, "--yes"],
    ):
        run = await notifier(database_url, *args)
        assert run.code == 2, args
    run = await notifier(database_url, "erase", "--phone", "--yes", stdin="12\n")
    assert run.code == 2
    assert await sealed_orders(database_url) == ["SO-1"]


async def test_a_phone_is_read_from_standard_input_never_from_the_command_line(database_url: str) -> None:
    await seed(database_url, "SO-1", "+85291234567")
    await seed(database_url, "SO-2", "+85291234568")
    run = await notifier(database_url, "erase", "--phone", "+85291234567", "--yes")
    assert run.code == 2
    assert "command line" in run.err
    assert "91234567" not in run.err + run.out
    assert await sealed_orders(database_url) == ["SO-1", "SO-2"]

    run = await notifier(database_url, "erase", "--phone", "-", "--yes", stdin="+852 9123 4567\n")
    assert run.code == 0, run.err
    assert await sealed_orders(database_url) == ["SO-2"]

    run = await notifier(database_url, "optout", "--phone", "--by", "agent-7", stdin="9123 4568\n")
    assert run.code == 0, run.err
    assert "opted out: recorded" in run.out
    conn = await asyncpg.connect(database_url)
    try:
        subject = await conn.fetchval("SELECT subject FROM opt_outs")
    finally:
        await conn.close()
    assert bytes(subject) == BLIND.phone("+85291234568")


async def test_staff_revoke_needs_yes_without_a_terminal(database_url: str) -> None:
    run = await notifier(database_url, "staff", "add", "--name", "bob", "--role", "cs_agent")
    assert run.code == 0, run.err
    run = await notifier(database_url, "staff", "revoke", "--name", "bob")
    assert (run.code, "--yes" in run.err) == (2, True)
    run = await notifier(database_url, "staff", "revoke", "--name", "bob", "--yes")
    assert (run.code, run.out.strip()) == (0, "revoked the token of 'bob'; their sessions have ended")


async def test_unsubscribe_after_an_erasure_suppresses_the_next_milestone_to_that_number(
    settings: Settings, sandbox: tuple[SandboxState, str]
) -> None:
    state, _ = sandbox
    topic, bootstrap = settings.input_topics[0], settings.kafka_bootstrap_servers
    async with running(Service(settings)):
        await produce(bootstrap, topic, [event("IT-ERA", "ARRIVED_HK_WAREHOUSE", phone="9123 4567")])
        assert len(await read_decisions(bootstrap, settings.receipts_topic, 1)) == 1
        sms = next(m for m in state.listed("twilio") if m.to == "+85291234567")
        unsubscribe_url = sms.body.rsplit(": ", 1)[-1].replace("/s/", "/u/")

        run = await notifier(settings.database_url, "erase", "--order", "IT-ERA", "--yes")
        assert run.code == 0, run.err
        assert "erase: 1 sealed event(s) destroyed, 1 notification(s) unlinked" in run.out

        async with aiohttp.ClientSession() as http, http.post(unsubscribe_url) as page:
            assert page.status == 200
            assert "You are unsubscribed" in await page.text()

        await produce(
            bootstrap,
            topic,
            [
                event("IT-ERA", "CUSTOMS_CLEARED", phone="9123 4567"),
                event("IT-ERB", "ARRIVED_HK_WAREHOUSE", phone="+852 9123 4567"),
            ],
        )
        receipts = await read_decisions(bootstrap, settings.receipts_topic, 3)
    later = {(r["order_id"], r["milestone"]): r["outcome"] for r in receipts}
    assert later[("IT-ERA", "customs_cleared")] == "suppressed_opted_out"
    assert later[("IT-ERB", "arrived_hk_warehouse")] == "suppressed_opted_out"
    assert len(state.listed("twilio")) == 1


async def test_dlq_replay_needs_yes_without_a_terminal_and_dry_run_replays_nothing(
    settings: Settings,
) -> None:
    bootstrap, topic = settings.kafka_bootstrap_servers, settings.input_topics[0]
    async with running(Service(settings)):
        await produce(bootstrap, topic, [(b"IT-BAD", b"{not json")])
        await read_topic(bootstrap, settings.dead_letter_topic, at_least=1)
    env = {
        "NOTIFIER_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "NOTIFIER_DEAD_LETTER_TOPIC": settings.dead_letter_topic,
    }

    run = await notifier(settings.database_url, "dlq", "replay", env_extra=env)
    assert (run.code, "--yes" in run.err) == (2, True)
    run = await notifier(settings.database_url, "dlq", "replay", "--dry-run", env_extra=env)
    assert run.code == 0, run.err
    assert "would replay 1 dead letter(s)" in run.out
    assert len(await read_topic(bootstrap, topic, at_least=1, timeout_s=3)) == 1  # nothing re-sent

    run = await notifier(settings.database_url, "dlq", "replay", "--yes", env_extra=env)
    assert run.code == 0, run.err
    assert len(await read_topic(bootstrap, topic, at_least=2)) == 2
