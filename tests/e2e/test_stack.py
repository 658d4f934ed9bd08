"""`make up`'s supervisor on the real infrastructure: all five services ready, restarts, stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
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
def stack() -> Iterator[subprocess.Popen[bytes]]:
    """`make up`, in a process group of its own, as a developer runs it in a terminal."""
    output = (ROOT / "var" / "log").joinpath("make-up.log")
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("wb") as sink:
        make = subprocess.Popen(
            ["make", "up"], cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until(all_ready, 180, "all five services ready")
        wait_until(
            lambda: "Darkroom is up: gateway http://127.0.0.1:8000" in output.read_text(),
            10,
            "make up saying where the gateway listens",
        )
        yield make
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGTERM)
            make.wait(timeout=60)


def service_process(make: subprocess.Popen[bytes], service: str) -> psutil.Process:
    for child in psutil.Process(make.pid).children(recursive=True):
        if child.cmdline()[-2:] == ["-m", f"darkroom.{service}"]:
            return child
    raise AssertionError(f"no process runs darkroom.{service}")


def test_make_up_brings_all_five_services_to_ready(stack: subprocess.Popen[bytes]) -> None:
    for service, port in PORTS.items():
        status, body = readiness(port)
        assert status == 200, body
        assert body["service"] == service
        assert body["postgres"] == body["kafka"] == body["s3"] == "ok"


def test_a_service_that_dies_is_restarted(stack: subprocess.Popen[bytes]) -> None:
    victim = service_process(stack, "dedup")
    victim.kill()
    victim.wait(timeout=10)
    wait_until(lambda: readiness(PORTS["dedup"])[0] != 200, 10, "dedup going away")
    wait_until(lambda: readiness(PORTS["dedup"])[0] == 200, 90, "dedup ready again")
    assert service_process(stack, "dedup").pid != victim.pid
    log = (ROOT / "var" / "log" / "supervise.log").read_text(encoding="utf-8")
    assert "dedup exited" in log and "restarting" in log


def test_sigterm_stops_every_service_cleanly(stack: subprocess.Popen[bytes]) -> None:
    children = psutil.Process(stack.pid).children(recursive=True)
    os.killpg(stack.pid, signal.SIGTERM)  # what Ctrl-C in the terminal does, with SIGTERM
    stack.wait(timeout=60)
    _gone, alive = psutil.wait_procs(children, timeout=40)
    assert alive == []
    supervisor_log = (ROOT / "var" / "log" / "supervise.log").read_text(encoding="utf-8")
    assert supervisor_log.splitlines()[-1].endswith("services stopped")
    for service in PORTS:
        log = (ROOT / "var" / "log" / f"{service}.log").read_text(encoding="utf-8")
        last_lines = "\n".join(log.splitlines()[-5:])  # the log holds earlier runs too
        assert f'"message": "{service} stopped"' in last_lines
