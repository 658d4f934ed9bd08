"""`make up`'s supervisor on the real infrastructure: all five services ready, restarts, stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
PORTS = {"ingest": 8000, "metadata": 8001, "dedup": 8002, "tagging": 8003, "notify": 8004}


def readiness(port: int) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)
    except OSError:
        return 0, {}


def wait_until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s")


def all_ready() -> bool:
    return all(readiness(port)[0] == 200 for port in PORTS.values())


@pytest.fixture(scope="module")
def stack() -> Iterator[subprocess.Popen[str]]:
    """The supervisor `make up` runs, with every service as its own process."""
    supervisor = subprocess.Popen(
        [sys.executable, "deploy/local/supervise.py"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_until(all_ready, 180, "all five services ready")
        yield supervisor
    finally:
        if supervisor.poll() is None:
            supervisor.send_signal(signal.SIGTERM)
            supervisor.wait(timeout=60)


def service_process(supervisor: subprocess.Popen[str], service: str) -> psutil.Process:
    for child in psutil.Process(supervisor.pid).children(recursive=True):
        if f"darkroom.{service}" in " ".join(child.cmdline()):
            return child
    raise AssertionError(f"no process runs darkroom.{service}")


def test_make_up_brings_all_five_services_to_ready(stack: subprocess.Popen[str]) -> None:
    for service, port in PORTS.items():
        status, body = readiness(port)
        assert status == 200, body
        assert body["service"] == service
        assert body["postgres"] == body["kafka"] == body["s3"] == "ok"


def test_a_service_that_dies_is_restarted(stack: subprocess.Popen[str]) -> None:
    victim = service_process(stack, "dedup")
    victim.kill()
    victim.wait(timeout=10)
    wait_until(lambda: readiness(PORTS["dedup"])[0] != 200, 10, "dedup going away")
    wait_until(lambda: readiness(PORTS["dedup"])[0] == 200, 90, "dedup ready again")
    assert service_process(stack, "dedup").pid != victim.pid
    log = (ROOT / "var" / "log" / "supervise.log").read_text(encoding="utf-8")
    assert "dedup exited" in log and "restarting" in log


def test_sigterm_stops_every_service_cleanly(stack: subprocess.Popen[str]) -> None:
    children = psutil.Process(stack.pid).children(recursive=True)
    stack.send_signal(signal.SIGTERM)
    assert stack.wait(timeout=60) == 0
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []
    for service in PORTS:
        log = (ROOT / "var" / "log" / f"{service}.log").read_text(encoding="utf-8")
        assert f"{service} stopped" in log.splitlines()[-1] or f"{service} stopped" in log
