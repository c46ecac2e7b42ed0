"""Several workers on one host: their environments, the supervisor's stop and exit code, and the
settings that must hold for them (fixed ports that do not collide)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from service.domain.errors import ConfigError
from service.settings import load_settings
from service.workers import supervise, worker_environment, worst


def test_each_worker_is_a_lone_service_on_its_own_metrics_port_sharing_the_public_one() -> None:
    s = load_settings(workers=3, http_port=9000, metrics_port=9100)
    envs = [worker_environment({"PATH": "/bin", "NOTIFIER_WORKERS": "3"}, s, i) for i in range(3)]
    assert [e["NOTIFIER_METRICS_PORT"] for e in envs] == ["9100", "9101", "9102"]
    assert {e["NOTIFIER_WORKERS"] for e in envs} == {"1"}  # a worker never supervises in turn
    assert {e["NOTIFIER_HTTP_REUSE_PORT"] for e in envs} == {"true"}
    assert {e["PATH"] for e in envs} == {"/bin"}
    with pytest.raises(ValueError, match="worker 3 of 3"):
        worker_environment({}, s, 3)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"workers": 2, "http_port": 0, "metrics_port": 9100}, "needs fixed ports"),
        ({"workers": 2, "http_port": 9000, "metrics_port": 0}, "needs fixed ports"),
        ({"workers": 4, "http_port": 9102, "metrics_port": 9100}, "NOTIFIER_HTTP_PORT 9102 is one of"),
        ({"workers": 16, "http_port": 9000, "metrics_port": 65530}, "above 65535"),
        ({"workers": 17}, "NOTIFIER_WORKERS"),
        ({"workers": 0}, "NOTIFIER_WORKERS"),
    ],
)
def test_worker_settings_that_cannot_work_stop_start_up_saying_what_to_fix(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(**overrides)


def test_one_worker_may_use_any_free_port() -> None:
    s = load_settings(workers=1, http_port=0, metrics_port=0)
    assert (s.workers, s.http_reuse_port) == (1, False)


@pytest.mark.parametrize(
    ("codes", "code"), [([0, 0], 0), ([0, 3, 4], 3), ([-15, 0], 143), ([], 0), ([0, -9], 137)]
)
def test_the_exit_code_is_the_first_bad_one(codes: list[int], code: int) -> None:
    assert worst(codes) == code


#: A worker: writes its metrics port to a file, then exits 0 on SIGTERM, or ``EXIT_NOW`` at once.
WORKER = """
import os, signal, sys, time, pathlib
port = os.environ["NOTIFIER_METRICS_PORT"]
pathlib.Path(sys.argv[1], port).write_text(str(os.getpgrp() == os.getpid()))
if port == os.environ.get("EXIT_NOW"):
    sys.exit(3)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(0.05)
"""


def _files(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in folder.iterdir()}


async def _until_files(folder: Path, n: int) -> None:
    for _ in range(400):
        if len(_files(folder)) >= n:
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"only {len(_files(folder))} of {n} workers started")


async def test_stop_stops_every_worker_and_a_clean_stop_exits_0(tmp_path: Path) -> None:
    s = load_settings(workers=3, http_port=9000, metrics_port=9100)
    stop = asyncio.Event()
    running = asyncio.create_task(
        supervise(s, {"PATH": "/usr/bin:/bin"}, stop, command=[sys.executable, "-c", WORKER, str(tmp_path)])
    )
    await _until_files(tmp_path, 3)
    assert not running.done()
    stop.set()
    assert await asyncio.wait_for(running, 10) == 0
    # Each worker ran in a session of its own (a terminal's Ctrl-C reaches only the supervisor).
    assert {name: json.loads(text.lower()) for name, text in _files(tmp_path).items()} == {
        "9100": True,
        "9101": True,
        "9102": True,
    }


async def test_a_worker_that_exits_on_its_own_stops_the_others_and_the_supervisor_fails(
    tmp_path: Path,
) -> None:
    s = load_settings(workers=2, http_port=9000, metrics_port=9100)
    env = {"PATH": "/usr/bin:/bin", "EXIT_NOW": "9101"}
    code = await asyncio.wait_for(
        supervise(s, env, asyncio.Event(), command=[sys.executable, "-c", WORKER, str(tmp_path)]), 10
    )
    assert code == 3  # the crashed worker's code, whatever the SIGTERM did to the other
    assert "9101" in _files(tmp_path)


async def test_a_worker_that_exits_0_unasked_is_still_a_failure(tmp_path: Path) -> None:
    s = load_settings(workers=2, http_port=9000, metrics_port=9100)
    code = await asyncio.wait_for(
        supervise(s, {}, asyncio.Event(), command=[sys.executable, "-c", "pass"]), 10
    )
    assert code == 1
