"""Benchmark: Infobip sends one HTTP request each (the baseline) vs grouped by ``BatchingSmsSender``.

Both run in the same process against the same sandbox (a child process, so its CPU is counted
apart), alternating rounds so that machine noise hits both alike. Reported as ratios against
the baseline measured in this run, never as absolute targets:

    .venv/bin/python -m tests.bench.bench_infobip_batching [--sends 3000] [--concurrency 32] [--rounds 3]

Columns: sends per second of wall time, our process's CPU milliseconds per send, the sandbox's
CPU milliseconds per send (the provider's side of the cost), and HTTP requests made.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

import aiohttp

from service.domain.ports import SmsSender
from service.send.providers.batching import BatchingSmsSender
from service.send.providers.infobip import InfobipClient

KEY = "bench-infobip-key"
# The child logs to stderr, warnings only: structlog unconfigured would print every access-log line
# to stdout, a pipe nobody reads after "ready", and the sandbox would block once it is full.
CHILD = """
import asyncio, sys
from service.logs import configure
from service.sandbox.serve import SandboxState, run_sandbox
configure("WARNING")
async def main() -> None:
    await run_sandbox("127.0.0.1", int(sys.argv[1]), SandboxState("ACbench", "bench-token", infobip_api_key=sys.argv[2]))
    print("ready", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""
BODY = "SpeedyBikes: order HK-000123 has cleared customs. Details: https://n.example/s/abcdef"


@dataclass
class Round:
    mode: str
    sends: int
    wall_s: float
    cpu_s: float
    sandbox_cpu_s: float
    requests: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _child_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


async def _round(mode: str, base_url: str, pid: int, sends: int, args: argparse.Namespace) -> Round:
    async with aiohttp.ClientSession() as session:
        client = InfobipClient(session, base_url=base_url, api_key=KEY, sender="Bench")
        sender: SmsSender = (
            client
            if mode == "one each"
            else BatchingSmsSender(client, max_batch=args.batch, max_requests=args.requests)
        )
        slots = asyncio.Semaphore(args.concurrency)
        calls, tag = 0, uuid.uuid4().hex[:8]

        async def one(i: int) -> None:
            nonlocal calls
            async with slots:
                await sender.send_sms(f"+8529{i % 10_000_000:07d}", BODY, reference=f"bench-{tag}-{i}")
                calls += 1

        sandbox_before, cpu_before, wall_before = _child_cpu_s(pid), time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(sends)))
        wall, cpu = time.perf_counter() - wall_before, time.process_time() - cpu_before
        made = sender.requests if isinstance(sender, BatchingSmsSender) else calls
        return Round(mode, sends, wall, cpu, _child_cpu_s(pid) - sandbox_before, made)


async def _run(args: argparse.Namespace, base_url: str, pid: int) -> list[Round]:
    await _round("one each", base_url, pid, 200, args)  # warm up
    rounds = []
    for _ in range(args.rounds):
        for mode in ("one each", "batched"):
            rounds.append(await _round(mode, base_url, pid, args.sends, args))
    return rounds


def _median(rounds: list[Round], mode: str, f: str) -> float:
    return float(statistics.median(getattr(r, f) / r.sends for r in rounds if r.mode == mode))


def report(rounds: list[Round]) -> str:
    lines = [f"{'mode':<10} {'sends/s':>9} {'cpu ms/send':>12} {'sandbox cpu ms/send':>20} {'requests':>9}"]
    for mode in ("one each", "batched"):
        reqs = statistics.median(r.requests for r in rounds if r.mode == mode)
        lines.append(
            f"{mode:<10} {1 / _median(rounds, mode, 'wall_s'):>9.0f} {1000 * _median(rounds, mode, 'cpu_s'):>12.3f} "
            f"{1000 * _median(rounds, mode, 'sandbox_cpu_s'):>20.3f} {reqs:>9.0f}"
        )
    s = summary(rounds)
    lines.append(
        f"ratio batched/baseline: throughput x{s['throughput_ratio']:.2f}, our CPU per send x{s['cpu_ratio']:.2f}"
    )
    return "\n".join(lines)


def summary(rounds: list[Round]) -> dict[str, float]:
    """The medians as numbers (sends per second, CPU ms per send) and the two ratios."""
    out: dict[str, float] = {}
    for mode, name in (("one each", "one_each"), ("batched", "batched")):
        out[f"{name}_sends_per_s"] = round(1 / _median(rounds, mode, "wall_s"), 1)
        out[f"{name}_cpu_ms_per_send"] = round(1000 * _median(rounds, mode, "cpu_s"), 3)
    out["throughput_ratio"] = round(
        _median(rounds, "one each", "wall_s") / _median(rounds, "batched", "wall_s"), 2
    )
    out["cpu_ratio"] = round(_median(rounds, "batched", "cpu_s") / _median(rounds, "one each", "cpu_s"), 2)
    return out


def run(args: argparse.Namespace) -> list[Round]:
    """The rounds against a sandbox child process (started and stopped here)."""
    port = _free_port()
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(port), KEY], stdout=subprocess.PIPE, text=True)
    try:
        if child.stdout is None or child.stdout.readline().strip() != "ready":
            raise SystemExit("the sandbox did not start")
        return asyncio.run(_run(args, f"http://127.0.0.1:{port}", child.pid))
    finally:
        child.terminate()
        child.wait(10)


def measure(
    *, sends: int = 3000, concurrency: int = 32, batch: int = 50, requests: int = 2, rounds: int = 3
) -> dict[str, float]:
    """For the end-to-end benchmark: the summary of one run with these parameters."""
    args = argparse.Namespace(
        sends=sends, concurrency=concurrency, batch=batch, requests=requests, rounds=rounds
    )
    return summary(run(args))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sends", type=int, default=3000)
    p.add_argument(
        "--concurrency", type=int, default=32, help="sends in flight (the service's send_concurrency)"
    )
    p.add_argument("--batch", type=int, default=50, help="most messages per Infobip request")
    p.add_argument("--requests", type=int, default=2, help="most batched requests in flight")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    print(
        f"{args.sends} sends, {args.concurrency} in flight, up to {args.batch} per request and {args.requests} requests out, {args.rounds} rounds",
        flush=True,
    )
    print(report(run(args)))


if __name__ == "__main__":
    main()
