"""Several service processes on one host: with ``NOTIFIER_WORKERS`` above 1, ``notifier run``
supervises that many workers, each a whole service process and a member of the one consumer group
(Python runs one core per process; the group spreads the partitions over the workers).

- Worker i (0, 1, ...) serves /metrics, /healthz and /readyz on ``NOTIFIER_METRICS_PORT + i``: each
  is a scrape target of its own. All share the public port (SO_REUSEPORT: the kernel spreads the
  callbacks and page requests over them).
- SIGTERM or SIGINT to the supervisor goes to every worker once; each drains as a lone service does
  and the supervisor exits when all have, with the worst exit code.
- A worker that exits on its own (a crash, a fatal error) stops the others, and the supervisor
  exits with that worker's code (1 if it was 0): the orchestrator (systemd, Kubernetes) restarts the whole, as it would a lone
  service. Its partitions go to the other members meanwhile.
- The workers run in a session of their own, so a terminal's Ctrl-C reaches the supervisor alone
  (and so each worker exactly once, through it).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Mapping, Sequence

from service.logs import get_logger
from service.settings import Settings

log = get_logger(__name__)


def worker_environment(env: Mapping[str, str], settings: Settings, index: int) -> dict[str, str]:
    """The environment of worker ``index``: a lone service (``NOTIFIER_WORKERS=1``) on its own
    metrics port, sharing the public port."""
    if not 0 <= index < settings.workers:
        raise ValueError(f"worker {index} of {settings.workers}")
    return {
        **env,
        "NOTIFIER_WORKERS": "1",
        "NOTIFIER_HTTP_REUSE_PORT": "true",
        "NOTIFIER_METRICS_PORT": str(settings.metrics_port + index),
    }


def worst(codes: Sequence[int]) -> int:
    """The supervisor's exit code: 0 when every worker exited 0, else the first other code (a worker
    killed by a signal reports it as 128 + the signal, as a shell does)."""
    for code in codes:
        if code != 0:
            return 128 - code if code < 0 else code
    return 0


async def supervise(
    settings: Settings, env: Mapping[str, str], stop: asyncio.Event, *, command: Sequence[str] | None = None
) -> int:
    """Start ``settings.workers`` workers and wait for ``stop`` (then stop them) or for one to exit
    (then stop the others). Returns the exit code."""
    argv = list(command) if command is not None else [sys.executable, "-m", "service", "run"]
    procs = [
        await asyncio.create_subprocess_exec(
            *argv, env=worker_environment(env, settings, i), start_new_session=True
        )
        for i in range(settings.workers)
    ]
    log.info("workers_started", workers=len(procs), pids=[p.pid for p in procs])
    exits = {asyncio.ensure_future(p.wait()): i for i, p in enumerate(procs)}
    stopping = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait([*exits, stopping], return_when=asyncio.FIRST_COMPLETED)
    unasked: int | None = None
    if stopping not in done:
        first = next(i for fut, i in exits.items() if fut in done)
        unasked = procs[first].returncode
        log.error("worker_exited", worker=first, code=unasked)
    stopping.cancel()
    for p in procs:
        if p.returncode is None:
            p.send_signal(signal.SIGTERM)
    codes = [await p.wait() for p in procs]
    log.info("workers_stopped", codes=codes)
    if unasked is not None:  # a worker stopped unasked: its code, and never a clean exit
        return worst([unasked]) or 1
    return worst(codes)
