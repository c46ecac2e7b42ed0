"""End-to-end benchmark: the service as processes on the real local stack, measured from outside.

``make bench`` runs it (after ``make stack-up``). Every phase gets a fresh database, fresh topics
and a fresh consumer group; the service is ``python -m service run`` with production defaults
except the provider rate limits (lifted, so that the service is what is measured) and the
sandbox (``python -m service sandbox``, its own process: zero latency, no faults). Phases:

==============  ====================================================================================
twilio          the workload (``tests.bench.workload``: unique orders, TMS re-sends, stale, fixed-line
                numbers, malformed and invalid events) as a backlog, one HTTP request per SMS (Twilio
                first): decisions per second, from the receipts' timestamps on the receipts topic
replay          the same topic, all decided, read by a fresh consumer group: events per second, from the
                service's ``notifier_events_total`` polled on its operations port
infobip         the workload again, Infobip first (``NOTIFIER_SMS_PROVIDERS=infobip,twilio``): its
                multi-message requests (``NOTIFIER_INFOBIP_BATCH_MAX``)
load            1,000 events/s offered to a running service: latency from each event's Kafka timestamp
                to the sandbox's acceptance of its message (``received_at``), and to the receipt's
                ``decided_at``
callbacks       the same with delivery callbacks flowing (Twilio status callbacks, SendGrid events)
rate_limit      a backlog with ``NOTIFIER_TWILIO_RATE_PER_S`` set: segments per second the sandbox saw
                (first second left out: the burst), over the limit; 1 s windows over the limit
rate_limit_3_*  the same with 3 instances in one group and the whole backlog on partition 0 (one
                instance's): ``group`` books one schedule in PostgreSQL, ``instance`` paces each
                instance at its share by partitions (the comparison)
naive / raw     ``tests.bench.naive``: one message at a time, and aiokafka reading doing nothing
infobip_micro   ``tests.bench.bench_infobip_batching``: the Infobip client alone, one request per SMS
                vs grouped
==============  ====================================================================================

Sizes: ``BENCH_ORDERS`` (2000: ~5,800 events), ``BENCH_LOAD_S`` (8 s at 1,000 events/s),
``BENCH_RATE`` (100 segments/s) for ``BENCH_RATE_S`` (15 s), ``BENCH_MICRO_SENDS`` (3000, 0: skip);
``BENCH_OUT`` (``.local/bench``) gets the JSON and each process's log; ``BENCH_KEEP=1`` keeps the
databases and topics; ``BENCH_PHASES=twilio,replay`` measures only those phases (and the ones they
read from), printing their CPU table but not the summary; ``BENCH_SET_<NAME>=v`` sets
``NOTIFIER_<NAME>=v`` for every service process (an A/B of one setting). The last line printed is
the JSON file's path.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from service.kafka.admin import ensure_topics
from service.privacy.crypto import Keyring
from service.sandbox.core import count_segments
from tests.bench import bench_infobip_batching, stats
from tests.bench.naive import peak_rss_mib
from tests.bench.workload import Workload, event_id, generate

REPO = Path(__file__).resolve().parents[2]
ORDERS = int(os.environ.get("BENCH_ORDERS", "2000"))
LOAD_S = float(os.environ.get("BENCH_LOAD_S", "8"))
OFFERED = 1000.0  # events per second in the load phases
RATE = float(os.environ.get("BENCH_RATE", "100"))
RATE_S = float(os.environ.get("BENCH_RATE_S", "15"))
MICRO_SENDS = int(os.environ.get("BENCH_MICRO_SENDS", "3000"))
#: BENCH_PHASES=twilio,replay: only these phases (and those they read from: replay and naive/raw
#: read the twilio phase's topic, replay_2 the infobip phase's); the table then shows their CPU only.
PHASES = {p.strip() for p in os.environ.get("BENCH_PHASES", "").split(",") if p.strip()}
_NEEDS = {"replay": "twilio", "naive": "twilio", "raw": "twilio", "replay_2": "infobip"}
ALL_PHASES = (
    "twilio", "replay", "infobip", "replay_2", "load", "rate_limit", "rate_limit_3_group",
    "rate_limit_3_instance", "naive", "raw", "callbacks",
)  # fmt: skip


def wanted(phase: str) -> bool:
    """Whether this run measures ``phase`` (every phase when BENCH_PHASES is not set)."""
    return not PHASES or phase in PHASES or any(_NEEDS.get(p) == phase for p in PHASES)


KEEP = os.environ.get("BENCH_KEEP") == "1"
#: BENCH_PROFILE=1: py-spy (when installed: ``.venv/bin/pip install py-spy``) samples every service process.
PY_SPY = (
    (shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy"))
    if os.environ.get("BENCH_PROFILE") == "1"
    else None
)
UNLIMITED = "1000000"
REPORTS = {"delivered", "undelivered"}  # later receipts of a notification: not decisions
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s(pid: int | str, *, reaped: bool = False) -> float:
    """utime + stime of a process, in seconds (0 once it is gone); ``reaped``: with its children that
    ended and were waited for (PostgreSQL's postmaster: the backends that closed)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = sum(int(f) for f in fields[11 : 15 if reaped else 13])
    return ticks / CLOCK_TICK


def _process_tree(pid: int) -> list[int]:
    """The process and its descendants (a workers' supervisor and its workers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children", encoding="ascii") as f:
                todo.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return out


def _cpu_by_name(*names: str) -> dict[str, float]:
    """CPU seconds so far of every process named ``names`` (PostgreSQL's backends, Kafka's JVM), by pid,
    with their children that ended (a backend that closed is counted in its postmaster)."""
    out: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm = (entry / "comm").read_text(encoding="ascii").strip()
            except OSError:
                continue
            if comm in names:
                out[entry.name] = _cpu_s(entry.name, reaped=True)
    return out


@dataclass
class CpuMeter:
    """CPU seconds used by the broker and the database (every backend) while a phase runs."""

    started: float = field(default_factory=time.monotonic)
    pg: dict[str, float] = field(default_factory=lambda: _cpu_by_name("postgres"))
    kafka: dict[str, float] = field(default_factory=lambda: _cpu_by_name("java"))

    def used(self) -> dict[str, float]:
        pg, kafka = _cpu_by_name("postgres"), _cpu_by_name("java")
        return {
            "wall_s": round(time.monotonic() - self.started, 2),
            "postgres_cpu_s": round(sum(v - self.pg.get(p, 0.0) for p, v in pg.items()), 2),
            "kafka_cpu_s": round(sum(v - self.kafka.get(p, 0.0) for p, v in kafka.items()), 2),
        }


@dataclass
class Topics:
    input: str
    receipts: str
    dead_letters: str


class Receipts:
    """Reads a receipts topic from the start in the background, keeping each receipt with its timestamp."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.items: list[tuple[float, dict[str, Any]]] = []  # (Kafka timestamp in s, receipt)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Receipts:
        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        self._task = asyncio.create_task(self._read(consumer))
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        try:
            while True:
                for msgs in (await consumer.getmany(timeout_ms=200)).values():
                    self.items.extend((m.timestamp / 1000, json.loads(m.value)) for m in msgs)
        finally:
            await consumer.stop()

    def decisions(self) -> dict[str, tuple[float, dict[str, Any]]]:
        """The first decision receipt of each notification (delivery reports left out)."""
        out: dict[str, tuple[float, dict[str, Any]]] = {}
        for ts, r in self.items:
            if r["outcome"] not in REPORTS:
                out.setdefault(r["notification_id"], (ts, r))
        return out

    def reports(self) -> int:
        return sum(r["outcome"] in REPORTS for _, r in self.items)

    async def wait(self, check: Callable[[], bool], timeout_s: float, what: str) -> bool:
        deadline = time.monotonic() + timeout_s
        while not check():
            if time.monotonic() > deadline:
                print(f"  ! timed out after {timeout_s:.0f}s waiting for {what}", flush=True)
                return False
            await asyncio.sleep(0.1)
        return True


@dataclass
class Sandbox:
    """The sandbox providers as a child process."""

    proc: asyncio.subprocess.Process
    url: str

    @classmethod
    async def start(cls, env: dict[str, str], log: Path, events_url: str = "") -> Sandbox:
        port = _free_port()
        with _log_file(log) as out:  # the child keeps its own handle
            proc = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "service", "sandbox", "--port", str(port)),
                *("--sendgrid-events-url", events_url),
                env=env,
                cwd=REPO,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        box = cls(proc, f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        while await _status(f"{box.url}/sandbox/faults") != 200:
            if time.monotonic() > deadline or proc.returncode is not None:
                raise SystemExit(f"the sandbox did not start: see {log}")
            await asyncio.sleep(0.2)
        return box

    async def messages(self) -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as http, http.get(f"{self.url}/sandbox/messages") as r:
            return list(await r.json())

    async def clear(self) -> None:
        async with aiohttp.ClientSession() as http, http.delete(f"{self.url}/sandbox/messages"):
            pass

    async def public_key(self) -> str:
        async with aiohttp.ClientSession() as http, http.get(f"{self.url}/sandbox/sendgrid/public-key") as r:
            return str((await r.json())["public_key"])

    def cpu_s(self) -> float:
        return _cpu_s(self.proc.pid)

    async def stop(self) -> None:
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 15)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


def _log_file(path: Path) -> IO[bytes]:
    return path.open("ab")


async def _settled_group(runs: list[ServiceRun], quiet_s: float = 3.0) -> None:
    """Wait until every member has been ready for ``quiet_s`` in a row (the group's rebalances done)."""
    deadline, since = time.monotonic() + 60, time.monotonic()
    while time.monotonic() - since < quiet_s:
        if time.monotonic() > deadline:
            raise SystemExit("the consumer group did not settle in 60 s")
        statuses = [await _status(f"{ops}/readyz") for r in runs for ops in r.all_ops]
        if any(st != 200 for st in statuses):
            since = time.monotonic()
        await asyncio.sleep(0.2)


async def _status(url: str) -> int:
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r,
        ):
            return r.status
    except (aiohttp.ClientError, TimeoutError, OSError):
        return 0


async def _events_total(http: aiohttp.ClientSession, ops: str) -> float | None:
    """``notifier_events_total`` summed over its labels, or None when the service does not answer."""
    try:
        async with http.get(f"{ops}/metrics", timeout=aiohttp.ClientTimeout(total=2)) as r:
            text = await r.text()
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("notifier_events_total{")
    )


@dataclass
class ServiceRun:
    """One ``notifier run`` process and what it cost."""

    proc: asyncio.subprocess.Process
    env: dict[str, str]
    spawned: float  # wall clock
    profiler: asyncio.subprocess.Process | None = None

    @property
    def ops(self) -> str:
        return f"http://127.0.0.1:{self.env['NOTIFIER_METRICS_PORT']}"

    @property
    def all_ops(self) -> list[str]:
        """Every operations listener: one, or one per worker (``NOTIFIER_WORKERS``: ports upwards)."""
        base = int(self.env["NOTIFIER_METRICS_PORT"])
        return [f"http://127.0.0.1:{base + i}" for i in range(int(self.env.get("NOTIFIER_WORKERS", "1")))]

    async def ready(self, timeout_s: float = 60) -> float:
        """Wait for /readyz (partitions assigned, database up); the seconds since the spawn."""
        deadline = time.monotonic() + timeout_s
        while any([await _status(f"{ops}/readyz") != 200 for ops in self.all_ops]):
            if time.monotonic() > deadline or self.proc.returncode is not None:
                raise SystemExit(f"the service did not become ready: see {self.env['BENCH_LOG']}")
            await asyncio.sleep(0.1)
        return time.time() - self.spawned

    async def stop(self) -> dict[str, Any]:
        """SIGTERM it; its CPU seconds and peak RSS (read just before it exits; with workers, the
        CPU of the supervisor and its workers, and the largest RSS of them)."""
        tree = _process_tree(self.proc.pid)
        cpu = sum(_cpu_s(pid) for pid in tree)
        rss = max((peak_rss_mib(pid) or 0 for pid in tree), default=0)
        self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.proc.wait(), 60)
        out: dict[str, Any] = {
            "service_cpu_s": round(cpu, 2),
            "rss_peak_mib": round(rss or 0, 1),
            "exit": code,
        }
        if self.profiler is not None:  # it ends with the process it samples
            await asyncio.wait_for(self.profiler.wait(), 60)
            folded = Path(self.env["BENCH_LOG"]).with_suffix(f".{self.proc.pid}.folded")
            if folded.exists():
                out["profile"] = stats.profile_top(folded.read_text(encoding="utf-8", errors="replace"))
        return out


class Bench:
    def __init__(self, bootstrap: str, server_url: str, out: Path) -> None:
        self.bootstrap, self.server_url, self.out = bootstrap, server_url, out
        self.run = uuid.uuid4().hex[:8]
        self.http_port, self.metrics_port = _free_port(), _free_port()
        self.databases: list[str] = []
        self.live: list[ServiceRun] = []  # every service process started, stopped at the end if need be
        self.topics: list[str] = []
        self.base_env = {
            # Not PYTHONDONTWRITEBYTECODE: a service in production starts from compiled bytecode.
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("NOTIFIER_", "BENCH_")) and k != "PYTHONDONTWRITEBYTECODE"
            },
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "NOTIFIER_HTTP_PORT": str(self.http_port),
            "NOTIFIER_METRICS_PORT": str(self.metrics_port),
            "NOTIFIER_PUBLIC_BASE_URL": f"http://127.0.0.1:{self.http_port}",
            "NOTIFIER_PII_KEYS": Keyring.generate_spec("bench1"),
            "NOTIFIER_BLIND_INDEX_KEY": base64.b64encode(os.urandom(32)).decode(),
            "NOTIFIER_LINK_SIGNING_KEY": base64.b64encode(os.urandom(32)).decode(),
            "NOTIFIER_LOG_LEVEL": "WARNING",
            **{
                f"NOTIFIER_{p}_{k}": UNLIMITED
                for p in ("TWILIO", "INFOBIP", "SENDGRID")
                for k in ("RATE_PER_S", "BURST")
            },
            # BENCH_SET_BATCHES_IN_FLIGHT=1: NOTIFIER_BATCHES_IN_FLIGHT=1 for every service (an A/B).
            **{
                f"NOTIFIER_{k[10:]}": v
                for k, v in os.environ.items()
                if k.startswith("BENCH_SET_") and k[10:]
            },
        }

    # -- resources ---------------------------------------------------------------------------

    async def database(self) -> str:
        name = f"bench_{self.run}_{len(self.databases)}"
        admin = await asyncpg.connect(self.server_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        self.databases.append(name)
        return urlunsplit(urlsplit(self.server_url)._replace(path=f"/{name}"))

    async def new_topics(self, phase: str) -> Topics:
        t = Topics(
            f"bench.{self.run}.{phase}.shipment.status.v1",
            f"bench.{self.run}.{phase}.receipts",
            f"bench.{self.run}.{phase}.dlq",
        )
        await ensure_topics(self.bootstrap, {t.input: 4, t.receipts: 4, t.dead_letters: 1})
        self.topics += [t.input, t.receipts, t.dead_letters]
        return t

    async def cleanup(self) -> None:
        for run in self.live:
            if run.proc.returncode is None:  # a phase failed half-way
                run.proc.kill()
                await run.proc.wait()
        if KEEP:
            return
        admin = await asyncpg.connect(self.server_url)
        try:
            for name in self.databases:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
        kafka = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await kafka.start()
        try:
            await kafka.delete_topics(self.topics)
        except Exception as exc:  # leftover topics are harmless: say so, do not fail the run
            print(f"  (topics not deleted: {type(exc).__name__})", flush=True)
        finally:
            await kafka.close()

    def env(
        self, phase: str, db: str, topics: Topics, sandbox: Sandbox, group: str | None = None, **extra: str
    ) -> dict[str, str]:
        return {
            **self.base_env,
            "DATABASE_URL": db,
            "NOTIFIER_INPUT_TOPICS": topics.input,
            "NOTIFIER_RECEIPTS_TOPIC": topics.receipts,
            "NOTIFIER_DEAD_LETTER_TOPIC": topics.dead_letters,
            "NOTIFIER_CONSUMER_GROUP": group or f"bench-{self.run}-{phase}",
            "NOTIFIER_TWILIO_BASE_URL": sandbox.url,
            "NOTIFIER_INFOBIP_BASE_URL": sandbox.url,
            "NOTIFIER_SENDGRID_BASE_URL": sandbox.url,
            "BENCH_LOG": str(self.out / f"{phase}.log"),
            **extra,
        }

    async def spawn(self, env: dict[str, str]) -> ServiceRun:
        with _log_file(Path(env["BENCH_LOG"])) as log:  # the child keeps its own handle
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "service",
                "run",
                env=env,
                cwd=REPO,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
            )
        run = ServiceRun(proc, env, time.time())
        if PY_SPY:
            folded = Path(env["BENCH_LOG"]).with_suffix(f".{proc.pid}.folded")
            run.profiler = await asyncio.create_subprocess_exec(
                *(PY_SPY, "record", "--pid", str(proc.pid), "--format", "raw", "--rate", "200"),
                *("--nonblocking", "--full-filenames", "--output", str(folded)),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        self.live.append(run)
        return run

    async def produce(
        self, topic: str, records: list[tuple[bytes, bytes]], *, partition: int | None = None
    ) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5)
        await producer.start()
        try:
            for key, value in records:
                await producer.send(topic, value=value, key=key, partition=partition)
            await producer.flush()
        finally:
            await producer.stop()

    async def offer(self, topic: str, records: list[tuple[bytes, bytes]], per_s: float) -> dict[str, float]:
        """Produce at ``per_s`` records a second, each stamped with its send time; event id -> stamp (s)."""
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=1)
        await producer.start()
        stamps: dict[str, float] = {}
        futures = []
        try:
            started, i = time.monotonic(), 0
            while i < len(records):
                due = min(len(records), int((time.monotonic() - started) * per_s) + 1)
                for key, value in records[i:due]:
                    now = time.time()
                    futures.append(
                        await producer.send(topic, value=value, key=key, timestamp_ms=int(now * 1000))
                    )
                    if eid := event_id(value):
                        stamps.setdefault(eid, int(now * 1000) / 1000)
                i = due
                await asyncio.sleep(0.005)
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        return stamps

    # -- phases ------------------------------------------------------------------------------

    async def backlog(
        self, phase: str, w: Workload, sandbox: Sandbox, **extra: str
    ) -> tuple[dict[str, Any], str, Topics]:
        """The workload on a fresh topic first, then the service: decisions per second end to end."""
        db, topics = await self.database(), await self.new_topics(phase)
        await self.produce(topics.input, w.records)
        await sandbox.clear()
        async with Receipts(self.bootstrap, topics.receipts) as receipts:
            meter, box_cpu = CpuMeter(), sandbox.cpu_s()
            run = await self.spawn(self.env(phase, db, topics, sandbox, **extra))
            ready = await run.ready()
            done = await receipts.wait(
                lambda: len(receipts.decisions()) >= w.pairs, 120 + w.pairs / 20, f"{w.pairs} decisions"
            )
            used = meter.used()
            cost = await run.stop()
        decided = receipts.decisions()
        times = [ts for ts, _ in decided.values()]
        sent = [r for _, r in decided.values() if r["outcome"] == "sent"]
        messages = await sandbox.messages()
        result = {
            "decisions": len(decided),
            "expected_decisions": w.pairs,
            "complete": done,
            "sent": len(sent),
            "expected_sent": w.to_send,
            "by_provider": _count(r.get("provider") or r["outcome"] for _, r in decided.values()),
            "messages_at_providers": len(messages),
            "states_in_database": await _states(db),
            "decisions_per_s": _round(stats.rate(times)),
            "sent_per_s": _round(stats.rate([ts for ts, r in decided.values() if r["outcome"] == "sent"])),
            "ready_after_s": round(ready, 2),
            "wall_from_spawn_s": round(max(times) - run.spawned, 2) if times else None,
            "sandbox_cpu_s": round(sandbox.cpu_s() - box_cpu, 2),
            **used,
            **cost,
        }
        return result, db, topics

    async def replay(self, db: str, topics: Topics, w: Workload, sandbox: Sandbox) -> dict[str, Any]:
        """A fresh consumer group reads a topic whose every pair is decided: duplicate events per second."""
        env = self.env("replay", db, topics, sandbox, group=f"bench-{self.run}-replay-{uuid.uuid4().hex[:4]}")
        meter = CpuMeter()
        run = await self.spawn(env)
        samples: list[tuple[float, float]] = []  # (monotonic, events so far), from the first nonzero
        deadline = time.monotonic() + 120
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                counts = [await _events_total(http, ops) for ops in run.all_ops]
                total = None if None in counts else sum(c or 0 for c in counts)
                now = time.monotonic()
                if total:
                    samples.append((now, total))
                    stalled = now - stats.last_change(samples)[0] > 3
                    if total >= w.events or stalled:
                        break
                await asyncio.sleep(0.05)
        used = meter.used()
        cost = await run.stop()
        return {
            "events": w.events,
            "events_counted": samples[-1][1] if samples else 0,
            "polls": len(samples),
            "duplicate_events_per_s": _round(stats.counter_rate(samples)),
            "measured_s": round(stats.last_change(samples)[0] - samples[0][0], 3) if samples else None,
            **used,
            **cost,
        }

    async def load(self, phase: str, w: Workload, sandbox: Sandbox, **extra: str) -> dict[str, Any]:
        """A running service offered ``OFFERED`` events a second: latency to the provider and to the decision."""
        db, topics = await self.database(), await self.new_topics(phase)
        await sandbox.clear()
        async with Receipts(self.bootstrap, topics.receipts) as receipts:
            run = await self.spawn(self.env(phase, db, topics, sandbox, **extra))
            await run.ready()
            meter, box_cpu = CpuMeter(), sandbox.cpu_s()
            stamps = await self.offer(topics.input, w.records, OFFERED)
            offered_s = time.monotonic() - meter.started
            done = await receipts.wait(
                lambda: len(receipts.decisions()) >= w.pairs, 120 + w.pairs / 20, f"{w.pairs} decisions"
            )
            if "NOTIFIER_CALLBACK_BASE_URL" in extra:
                await receipts.wait(
                    lambda: receipts.reports() >= w.to_send, 60, f"{w.to_send} delivery reports"
                )
            used = meter.used()
            cost = await run.stop()
        decided = receipts.decisions()
        accepted = {
            m["sid"]: datetime.fromisoformat(m["received_at"]).timestamp() for m in await sandbox.messages()
        }
        to_provider = [
            1000 * (accepted[r["provider_message_id"]] - stamps[r["event_id"]])
            for _, r in decided.values()
            if r["outcome"] == "sent" and r["provider_message_id"] in accepted and r["event_id"] in stamps
        ]
        to_decision = [
            1000 * (datetime.fromisoformat(r["decided_at"]).timestamp() - stamps[r["event_id"]])
            for _, r in decided.values()
            if r["event_id"] in stamps
        ]
        times = [ts for ts, _ in decided.values()]
        return {
            "events": w.events,
            "offered_per_s": round(w.events / offered_s, 1),
            "decisions": len(decided),
            "expected_decisions": w.pairs,
            "complete": done,
            "delivery_reports": receipts.reports(),
            "decisions_per_s": _round(stats.rate(times)),
            "to_provider_ms": _percentiles(to_provider),
            "to_decision_ms": _percentiles(to_decision),
            "sandbox_cpu_s": round(sandbox.cpu_s() - box_cpu, 2),
            **used,
            **cost,
        }

    async def rate_limit(
        self, w: Workload, sandbox: Sandbox, *, phase: str = "rate", instances: int = 1, scope: str = "group"
    ) -> dict[str, Any]:
        """A backlog under a Twilio limit of ``RATE`` segments a second: the rate the sandbox saw.

        With several ``instances`` (one consumer group) the whole backlog is on partition 0, so one
        instance holds it: ``scope`` ``group`` (one schedule in PostgreSQL) should still use the
        whole limit, ``instance`` (each its share by partitions) only that instance's share."""
        db, topics = await self.database(), await self.new_topics(phase)
        await sandbox.clear()
        limits = {
            "NOTIFIER_TWILIO_RATE_PER_S": str(RATE),
            "NOTIFIER_TWILIO_BURST": "10",
            "NOTIFIER_RATE_LIMIT_SCOPE": scope,
        }
        async with Receipts(self.bootstrap, topics.receipts) as receipts:
            meter = CpuMeter()
            runs = []
            for i in range(instances):
                ports = (
                    {}
                    if i == 0
                    else {"NOTIFIER_HTTP_PORT": str(_free_port()), "NOTIFIER_METRICS_PORT": str(_free_port())}
                )
                env = self.env(phase, db, topics, sandbox, **limits, **ports)
                env["BENCH_LOG"] = str(self.out / f"{phase}.{i}.log") if instances > 1 else env["BENCH_LOG"]
                runs.append(await self.spawn(env))
            if instances > 1:  # every member in the group before the backlog lands on partition 0
                await asyncio.gather(*(r.ready() for r in runs))
                await _settled_group(runs)
            await self.produce(topics.input, w.records, partition=0 if instances > 1 else None)
            await receipts.wait(
                lambda: len(receipts.decisions()) >= w.pairs, 60 + 3 * RATE_S * 4, f"{w.pairs} decisions"
            )
            used = meter.used()
            costs = [await r.stop() for r in runs]
        cost = {
            "service_cpu_s": round(sum(c["service_cpu_s"] for c in costs), 2),
            "rss_peak_mib": max(c["rss_peak_mib"] for c in costs),
            "exit": max(c["exit"] for c in costs),
            "instances": instances,
            "scope": scope,
        }
        messages = await sandbox.messages()
        sms = [m for m in messages if m["provider"] == "twilio"]
        times = [float(m["received_mono"]) for m in sms]
        segments = [float(count_segments(m["body"])) for m in sms]
        result: dict[str, Any] = {
            "by_provider": _count(m["provider"] for m in messages),
            "limit_segments_per_s": RATE,
            "messages": len(sms),
            "segments": sum(segments),
            **used,
            **cost,
        }
        if len(times) > 2:
            start = min(times) + 1.0  # the bucket's burst goes out in the first second
            steady = [(t, s) for t, s in zip(times, segments, strict=True) if t >= start]
            span = max(times) - start
            achieved = sum(s for _, s in steady) / span if span > 0 else None
            result |= {
                "achieved_segments_per_s": _round(achieved),
                "utilisation": _round(achieved / RATE if achieved else None, 3),
                "busiest_1s_window": stats.busiest_window(times, segments),
                "windows_over_limit": stats.windows_over(times, segments, RATE),
                "measured_s": round(span, 2),
            }
        return result

    async def yardstick(self, *args: str) -> dict[str, Any]:
        env = {**self.base_env, "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.bench.naive",
            *args,
            env=env,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), 180)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise SystemExit(f"tests.bench.naive {args[0]} did not finish in 180s") from None
        if proc.returncode != 0:
            raise SystemExit(f"tests.bench.naive {args[0]} failed ({proc.returncode})")
        return dict(json.loads(out.decode().strip().splitlines()[-1]))


async def _states(db: str) -> dict[str, int]:
    """The notifications' states in a phase's database: the rows decided, as a cross-check of the receipts."""
    conn = await asyncpg.connect(db)
    try:
        rows = await conn.fetch("SELECT state, count(*) AS n FROM notifications GROUP BY state")
    finally:
        await conn.close()
    return {r["state"]: r["n"] for r in rows}


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _percentiles(values: list[float]) -> dict[str, float | None]:
    return {
        "n": len(values),
        "p50": _round(stats.percentile(values, 50)),
        "p99": _round(stats.percentile(values, 99)),
        "max": _round(max(values) if values else None),
    }


def _say(text: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {text}", flush=True)


async def _check_stack(bootstrap: str, server_url: str) -> None:
    host, _, port = bootstrap.partition(",")[0].rpartition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 5)
        writer.close()
        conn = await asyncpg.connect(server_url, timeout=5)
        await conn.close()
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise SystemExit(
            f"no local stack ({type(exc).__name__}: Kafka {bootstrap}, PostgreSQL {server_url}): run `make stack-up` first"
        ) from None


@contextlib.asynccontextmanager
async def _sandbox(bench: Bench, name: str, events_url: str = "") -> AsyncIterator[Sandbox]:
    box = await Sandbox.start(bench.base_env, bench.out / f"{name}.log", events_url)
    try:
        yield box
    finally:
        await box.stop()


async def measure(bench: Bench) -> dict[str, Any]:
    phases: dict[str, Any] = {}
    w = generate(ORDERS)
    load_orders = max(10, int(LOAD_S * OFFERED / (w.events / ORDERS)))
    wl = generate(load_orders, prefix="LD", seed=7)
    wr = generate(max(10, int(RATE * RATE_S / 5)), prefix="RT", seed=11)  # ~5 segments an order
    _say(
        f"workload: {w.events} events, {w.pairs} pairs ({w.to_send} to send, {w.stale} stale, {w.emails} by email), "
        f"{w.resends} TMS re-sends, {w.invalid} invalid; load phases {wl.events} events at {OFFERED:.0f}/s"
    )
    async with _sandbox(bench, "sandbox") as box:
        if wanted("twilio"):
            _say("twilio: the workload as a backlog, one HTTP request per SMS")
            phases["twilio"], db, topics = await bench.backlog("twilio", w, box)
            _say(f"  {phases['twilio']}")
        if wanted("replay"):
            _say("replay: a fresh consumer group on the all-decided topic")
            phases["replay"] = await bench.replay(db, topics, w, box)
            _say(f"  {phases['replay']}")
        if wanted("infobip"):
            _say("infobip: the workload again, Infobip first (multi-message requests)")
            phases["infobip"], db2, topics2 = await bench.backlog(
                "infobip", w, box, NOTIFIER_SMS_PROVIDERS="infobip,twilio"
            )
            _say(f"  {phases['infobip']}")
        if wanted("replay_2"):
            _say("replay_2: a fresh consumer group on the infobip phase's topic (a second sample)")
            phases["replay_2"] = await bench.replay(db2, topics2, w, box)
            _say(f"  {phases['replay_2']}")
        if wanted("load"):
            _say(f"load: {OFFERED:.0f} events/s offered for {wl.events / OFFERED:.0f}s, no callbacks")
            phases["load"] = await bench.load("load", wl, box)
            _say(f"  {phases['load']}")
        if wanted("rate_limit"):
            _say(f"rate_limit: Twilio limited to {RATE:.0f} segments/s, a backlog of {wr.to_send} SMS")
            phases["rate_limit"] = await bench.rate_limit(wr, box)
            _say(f"  {phases['rate_limit']}")
        for scope in ("group", "instance"):
            name = f"rate_limit_3_{scope}"
            if not wanted(name):
                continue
            _say(f"{name}: the same under 3 instances of one group, the backlog on one instance's partition")
            phases[name] = await bench.rate_limit(wr, box, phase=f"rate3{scope[0]}", instances=3, scope=scope)
            _say(f"  {phases[name]}")
        if wanted("naive"):
            naive_db = await bench.database()
            naive_topics = await bench.new_topics("naive")
            _say("naive: one message at a time on the twilio phase's topic")
            phases["naive"] = await bench.yardstick(
                "naive", "--topic", topics.input, "--database", naive_db, "--sandbox", box.url,
                "--receipts-topic", naive_topics.receipts, "--seconds", "20",
            )  # fmt: skip
            _say(f"  {phases['naive']}")
        if wanted("raw"):
            _say("raw: aiokafka reading the same topic, doing nothing")
            phases["raw"] = await bench.yardstick("raw", "--topic", topics.input, "--seconds", "3")
            _say(f"  {phases['raw']}")
    if not wanted("callbacks"):
        return phases
    events_url = f"http://127.0.0.1:{bench.http_port}/callbacks/sendgrid/events"
    async with _sandbox(bench, "sandbox-callbacks", events_url) as box:
        _say("callbacks: the load again, with delivery callbacks")
        callbacks = {
            "NOTIFIER_CALLBACK_BASE_URL": f"http://127.0.0.1:{bench.http_port}",
            "NOTIFIER_SENDGRID_WEBHOOK_PUBLIC_KEY": await box.public_key(),
        }
        phases["callbacks"] = await bench.load("callbacks", wl, box, **callbacks)
        _say(f"  {phases['callbacks']}")
    return phases


def _mean_rate(*replays: dict[str, Any]) -> float | None:
    """Events per second over the replays together (each weighted by its measured time)."""
    done = [r for r in replays if r.get("duplicate_events_per_s") and r.get("measured_s")]
    seconds = sum(r["measured_s"] for r in done)
    return sum(r["duplicate_events_per_s"] * r["measured_s"] for r in done) / seconds if seconds else None


def cpu_rows(phases: dict[str, Any]) -> str:
    """Where the CPU went in each phase of the service: seconds of wall time and of each process's CPU."""
    lines = [
        f"{'phase':<22} {'wall s':>7} {'service':>8} {'postgres':>9} {'kafka':>6} {'sandbox':>8}  (CPU seconds)"
    ]
    for name, p in phases.items():
        if "service_cpu_s" in p:
            cells = [
                p.get(k)
                for k in ("wall_s", "service_cpu_s", "postgres_cpu_s", "kafka_cpu_s", "sandbox_cpu_s")
            ]
            wall, svc, pg, kafka, box = ("–" if c is None else f"{c:.1f}" for c in cells)
            lines.append(f"{name:<22} {wall:>7} {svc:>8} {pg:>9} {kafka:>6} {box:>8}")
    return "\n".join(lines)


def summarise(phases: dict[str, Any], micro: dict[str, Any] | None) -> dict[str, Any]:
    """The top-level numbers from the phases."""
    tw, ib, rp, ld, cb = (phases[k] for k in ("twilio", "infobip", "replay", "load", "callbacks"))
    naive = phases["naive"]
    naive_rate = naive["sent"] / naive["seconds"] if naive.get("seconds") else None
    raw_rate = phases["raw"]["events"] / phases["raw"]["seconds"] if phases["raw"].get("seconds") else None
    rss = {
        k: v["rss_peak_mib"] for k, v in phases.items() if "rss_peak_mib" in v and k not in ("naive", "raw")
    }
    return {
        "unique_notifications_per_s": tw["decisions_per_s"],
        "infobip_notifications_per_s": ib["decisions_per_s"],
        "duplicate_events_per_s": _round(_mean_rate(rp, phases["replay_2"])),
        "p50_ms_at_1000": ld["to_provider_ms"]["p50"],
        "p99_ms_at_1000": ld["to_provider_ms"]["p99"],
        "p50_ms_at_1000_callbacks": cb["to_provider_ms"]["p50"],
        "p99_ms_at_1000_callbacks": cb["to_provider_ms"]["p99"],
        "load_notifications_per_s": ld["decisions_per_s"],
        "callbacks_notifications_per_s": cb["decisions_per_s"],
        "rss_peak_mib": max(rss.values()) if rss else None,
        "rss_peak_mib_by_phase": rss,
        "naive_notifications_per_s": _round(naive_rate),
        "naive_ratio": _round(stats.ratio(tw["decisions_per_s"], naive_rate), 2),
        "raw_events_per_s": _round(raw_rate),
        "raw_ratio": _round(stats.ratio(rp["duplicate_events_per_s"], raw_rate), 3),
        "unique_raw_ratio": _round(stats.ratio(tw["decisions_per_s"], raw_rate), 4),
        "rate_limit_utilisation": phases["rate_limit"].get("utilisation"),
        "rate_limit_windows_over": phases["rate_limit"].get("windows_over_limit"),
        "rate_limit_utilisation_3_instances": phases["rate_limit_3_group"].get("utilisation"),
        "rate_limit_windows_over_3_instances": phases["rate_limit_3_group"].get("windows_over_limit"),
        "rate_limit_utilisation_3_instances_by_share": phases["rate_limit_3_instance"].get("utilisation"),
        "infobip_micro": micro,
    }


def rows(s: dict[str, Any], phases: dict[str, Any]) -> list[tuple[str, Any, str]]:
    tw, ld, cb, rl = phases["twilio"], phases["load"], phases["callbacks"], phases["rate_limit"]
    micro = s.get("infobip_micro") or {}
    return [
        (
            "unique_notifications_per_s",
            s["unique_notifications_per_s"],
            f"receipts/s of {tw['decisions']} decisions (sent + stale); Twilio first, 1 request per SMS",
        ),
        (
            "infobip_notifications_per_s",
            s["infobip_notifications_per_s"],
            "Infobip first, multi-message requests",
        ),
        ("load_notifications_per_s", s["load_notifications_per_s"], "while 1,000 events/s are offered"),
        (
            "callbacks_notifications_per_s",
            s["callbacks_notifications_per_s"],
            "at 1,000 events/s offered, callbacks flowing",
        ),
        (
            "duplicate_events_per_s",
            s["duplicate_events_per_s"],
            "fresh group replaying the all-decided topic",
        ),
        ("p50_ms_at_1000", s["p50_ms_at_1000"], "event timestamp -> sandbox accepted"),
        (
            "p99_ms_at_1000",
            s["p99_ms_at_1000"],
            f"decided_at: p50 {ld['to_decision_ms']['p50']}, p99 {ld['to_decision_ms']['p99']}",
        ),
        ("p50_ms_at_1000_callbacks", s["p50_ms_at_1000_callbacks"], "the same, callbacks flowing"),
        (
            "p99_ms_at_1000_callbacks",
            s["p99_ms_at_1000_callbacks"],
            f"{cb['delivery_reports']} delivery reports",
        ),
        ("rss_peak_mib", s["rss_peak_mib"], "largest VmHWM of the service processes"),
        (
            "naive_notifications_per_s",
            s["naive_notifications_per_s"],
            "one at a time: parse, INSERT, HTTP, awaited produce",
        ),
        ("naive_ratio", s["naive_ratio"], "unique_notifications_per_s / naive"),
        ("raw_events_per_s", s["raw_events_per_s"], "aiokafka reading, doing nothing"),
        ("raw_ratio", s["raw_ratio"], "duplicate_events_per_s / raw"),
        (
            "rate_limit_utilisation",
            s["rate_limit_utilisation"],
            f"{rl.get('achieved_segments_per_s')} of {RATE:.0f} segments/s",
        ),
        (
            "rate_limit_windows_over",
            s["rate_limit_windows_over"],
            f"1 s windows over the limit (busiest {rl.get('busiest_1s_window')})",
        ),
        (
            "rate_limit_utilisation_3_instances",
            s["rate_limit_utilisation_3_instances"],
            f"3 instances, backlog on one's partition: one schedule in PostgreSQL "
            f"(each by its share: {s['rate_limit_utilisation_3_instances_by_share']})",
        ),
        (
            "rate_limit_windows_over_3_instances",
            s["rate_limit_windows_over_3_instances"],
            f"1 s windows over the limit (busiest {phases['rate_limit_3_group'].get('busiest_1s_window')})",
        ),
        (
            "infobip_micro_throughput_x",
            micro.get("throughput_ratio"),
            "client alone: grouped / one request per SMS",
        ),
        ("infobip_micro_cpu_x", micro.get("cpu_ratio"), "client alone: our CPU per send, grouped / one each"),
    ]


def main() -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    server_url = os.environ.get("DATABASE_URL", "postgresql://notifier@127.0.0.1:15432/notifier")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = Path(os.environ.get("BENCH_OUT", REPO / ".local" / "bench")) / stamp
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    bench = Bench(bootstrap, server_url, out)

    async def run() -> dict[str, Any]:
        await _check_stack(bootstrap, server_url)
        try:
            return await measure(bench)
        finally:
            await bench.cleanup()

    unknown = PHASES - set(ALL_PHASES) - {"infobip_micro"}
    if unknown:
        raise SystemExit(
            f"BENCH_PHASES: no phase {', '.join(sorted(unknown))}; phases: {', '.join(ALL_PHASES)}"
        )
    phases = asyncio.run(run())
    micro = None
    if MICRO_SENDS > 0 and (not PHASES or "infobip_micro" in PHASES):
        _say(f"infobip_micro: the Infobip client alone, {MICRO_SENDS} sends a round")
        micro = bench_infobip_batching.measure(sends=MICRO_SENDS)
        _say(f"  {micro}")
    complete = all(p in phases for p in ALL_PHASES)
    summary = summarise(phases, micro) if complete else {"infobip_micro": micro}  # a partial run: phases only
    result = {
        **summary,
        "phases": phases,
        "config": {
            "orders": ORDERS,
            "load_s": LOAD_S,
            "offered_per_s": OFFERED,
            "rate": RATE,
            "rate_s": RATE_S,
        },
        "machine": {"cpus": os.cpu_count(), "loadavg_at_end": os.getloadavg()},
        "started_at": stamp,
        "runtime_s": round(time.monotonic() - started, 1),
    }
    path = out / "bench.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print()
    if complete:
        print(stats.table(rows(summary, phases)))
        print()
    print(cpu_rows(phases))
    print(
        f"runtime {result['runtime_s']:.0f}s; load average at the end {os.getloadavg()[0]:.1f}; logs in {out}"
    )
    print(path)


if __name__ == "__main__":
    main()
