"""What the benchmarks share to run against the local stack: throw-away databases, service
processes, their consumer groups, and the results they publish."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from darkroom.common.settings import LOCAL_DATABASE, CommonSettings
from darkroom.common.topics import partitions_of

ROOT = Path(__file__).resolve().parents[1]
SERVICE_ENV = {"MALLOC_ARENA_MAX": "2"}
"""As deploy/local/supervise.py and the Dockerfiles run the services (the caller's wins)."""


@asynccontextmanager
async def fresh_database(label: str) -> AsyncIterator[str]:
    """A new database for one run (its name starts with ``label``), dropped afterwards."""
    admin_url = LOCAL_DATABASE.rsplit("/", 1)[0] + "/postgres"
    name = f"darkroom_bench_{label}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Service:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    stages: Path | None = None


@contextmanager
def service_processes(
    module: str, replicas: int, env: dict[str, str], *, name: str, own: str | None = None
) -> Iterator[list[Service]]:
    """``replicas`` processes of ``python -m module`` on free ports, ready; stopped with
    SIGINT, as Ctrl-C would. ``env`` holds the service's settings; its HTTP port variable is
    ``DARKROOM_<NAME>_HTTP_PORT``; ``own``, if given, names a variable set to a file per
    replica (``<name>-<n>.json`` in a temporary folder) the process writes to.
    """
    started: list[Service] = []
    try:
        for number in range(replicas):
            port = free_port()
            variables = {
                **SERVICE_ENV,
                **os.environ,
                **env,
                f"DARKROOM_{name.upper()}_HTTP_PORT": str(port),
            }
            stages = None
            if own:
                stages = Path(tempfile.mkdtemp(prefix=f"darkroom-bench-{name}-")) / f"{number}.json"
                variables[own] = str(stages)
            log = Path(tempfile.gettempdir()) / f"darkroom-bench-{name}-{number}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [sys.executable, "-m", module],
                    env=variables,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=ROOT,
                )
            started.append(Service(f"http://127.0.0.1:{port}", process, log, stages))
        for service in started:
            _wait_ready(service)
        yield started
    finally:
        for service in started:
            service.process.send_signal(signal.SIGINT)
        for service in started:
            try:
                service.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                service.process.kill()
                service.process.wait()


def _wait_ready(service: Service) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise SystemExit(
                f"the service exited ({service.process.returncode}); see {service.log}"
            )
        try:
            if httpx.get(f"{service.url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the service was not ready within 90 s; see {service.log}")


async def wait_group(
    settings: CommonSettings, group: str, members: int, within: float = 90
) -> None:
    """Until ``group`` is stable with ``members`` members: no rebalance during the run."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        deadline = time.monotonic() + within
        state, seen = "", 0
        while time.monotonic() < deadline:
            [response] = await admin.describe_consumer_groups([group])
            described = response.to_object()["groups"][0]
            state, seen = described["state"], len(described["members"])
            if state == "Stable" and seen == members:
                return
            await asyncio.sleep(0.5)
        raise SystemExit(
            f"group {group}: {state} with {seen} members, not {members}, after {within:g} s"
        )
    finally:
        await admin.close()


class Results:
    """A results topic from now on: each key's latest value, and when its first arrived."""

    def __init__(self, settings: CommonSettings, topic: str) -> None:
        self._topic = topic
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False
        )
        self.arrived: dict[str, tuple[float, dict[str, Any]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Results:
        await self._consumer.start()
        partitions = await partitions_of(self._consumer, (self._topic,))
        self._consumer.assign(partitions)
        await self._consumer.seek_to_end(*partitions)
        for partition in partitions:  # resolve the positions now, before anything is published
            await self._consumer.position(partition)
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()

    async def _read(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            now = time.monotonic()
            for records in batches.values():
                for record in records:
                    if record.key is not None and record.value is not None:
                        key = record.key.decode()
                        first = self.arrived.get(key)
                        self.arrived[key] = (first[0] if first else now, json.loads(record.value))

    async def wait(self, keys: list[str], within: float) -> float:
        """Until every key's result arrived; returns when the last one did."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if all(key in self.arrived for key in keys):
                return max(self.arrived[key][0] for key in keys)
            await asyncio.sleep(0.02)
        missing = sum(key not in self.arrived for key in keys)
        raise SystemExit(f"{missing} of {len(keys)} results did not arrive within {within:g} s")
