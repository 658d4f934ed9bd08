"""The stack as a developer runs it (`make up`), and what the end-to-end tests read from it."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from darkroom.common.events import CATALOG, SERVICES
from darkroom.common.settings import CommonSettings
from darkroom.common.topics import skip_backlog

ROOT = Path(__file__).resolve().parents[2]
PORTS = {"ingest": 8000, "metadata": 8001, "dedup": 8002, "tagging": 8003, "notify": 8004}
REPLICA_PORT_STEP = 10  # replica k of a service listens on its port + 10 * (k - 1)


def readiness(port: int) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)
    except OSError:
        return 0, {}


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s")


def all_ready(replicas: int = 1) -> bool:
    return all(
        readiness(port + REPLICA_PORT_STEP * k)[0] == 200
        for port in PORTS.values()
        for k in range(replicas)
    )


def skip_backlogs() -> None:
    """Every service's group past what the topics hold now: earlier tests' events are not
    this stack's to process (a fresh deployment has none)."""
    settings = CommonSettings()
    for service in SERVICES:
        topics = tuple(event.topic for event in CATALOG if service in event.consumers)
        asyncio.run(skip_backlog(settings, service, topics))


@contextlib.contextmanager
def make_up(
    replicas: int = 1, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`make up`, in a process group of its own, as a developer runs it in a terminal; ``env``
    adds settings for the services."""
    subprocess.run(["make", "infra"], cwd=ROOT, check=True, capture_output=True)
    skip_backlogs()
    output = (ROOT / "var" / "log").joinpath("make-up.log")
    output.parent.mkdir(parents=True, exist_ok=True)
    command = ["make", "up"] + ([f"REPLICAS={replicas}"] if replicas > 1 else [])
    with output.open("wb") as sink:
        make = subprocess.Popen(
            command,
            cwd=ROOT,
            # The stack's own sealing key (var/sealing.key), not the one the tests made.
            env={k: v for k, v in os.environ.items() if k != "DARKROOM_SEALING_KEYS"} | (env or {}),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: all_ready(replicas), 240, f"{replicas} of each service ready")
        wait_until(
            lambda: "Darkroom is up: gateway http://127.0.0.1:8000" in output.read_text(),
            10,
            "make up saying where the gateway listens",
        )
        # On a fresh clone the dev project and key are made next, then var/dev.env written.
        wait_until(
            lambda: "for the CLI: set -a; . var/dev.env" in output.read_text(),
            60,
            "make up writing var/dev.env",
        )
        yield make
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGTERM)
            make.wait(timeout=90)


def dev_env() -> dict[str, str]:
    """What `make up` wrote to var/dev.env for the CLI."""
    lines = (ROOT / "var" / "dev.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def darkroom(env: dict[str, str], *args: str, codes: tuple[int, ...] = (0,)) -> Any:
    """The `darkroom` CLI as its own process; its JSON answer (None when it printed none)."""
    done = subprocess.run(
        [sys.executable, "-m", "darkroom.cli.main", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode in codes, f"darkroom {' '.join(args)}: {done.stderr[-2000:]}"
    return json.loads(done.stdout) if done.stdout.strip() else None


@dataclass(frozen=True)
class Mail:
    kind: str  # the subject before its colon: "Upload received", "Processing complete", …
    to: str
    message_id: str
    body: str


def mails(view: str) -> list[Mail]:
    """The e-mails in var/mail (the SMTP sink) about uploads with this view name."""
    found = []
    for path in (ROOT / "var" / "mail").glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        subject = str(message["Subject"])
        if subject.endswith(f": {view}"):
            text = message.get_body(("plain",))
            found.append(
                Mail(
                    subject.split(":")[0],
                    str(message["To"]),
                    str(message["Message-ID"]),
                    text.get_content() if text is not None else "",
                )
            )
    return found
