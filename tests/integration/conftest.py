"""Fixtures for tests against the real local stack (Kafka, PostgreSQL, S3): `make infra`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import ClassVar

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from darkroom.common.runtime import Runtime
from darkroom.common.settings import LOCAL_DATABASE, CommonSettings, ServiceSettings

from .gateway import Gateway, serve


@pytest.fixture(scope="session")
def settings() -> CommonSettings:
    return CommonSettings(
        transient_retry_seconds=1, retry_max_backoff_seconds=0.5, outbox_poll_seconds=0.2
    )


async def create_topics(settings: CommonSettings, *topics: str, partitions: int = 3) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, partitions, 1) for t in topics])
    finally:
        await admin.close()


@pytest.fixture
async def new_database() -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Makes new, empty databases of this test's own; drops them afterwards."""
    admin_url = LOCAL_DATABASE.format(service="ingest").rsplit("/", 1)[0] + "/postgres"
    conn = await asyncpg.connect(admin_url)
    names: list[str] = []

    async def create() -> str:
        name = f"darkroom_test_{uuid.uuid4().hex[:12]}"
        await conn.execute(f'CREATE DATABASE "{name}"')
        names.append(name)
        return admin_url.rsplit("/", 1)[0] + f"/{name}"

    try:
        yield create
    finally:
        for name in names:
            await _drop(conn, name)
        await conn.close()


async def _drop(conn: asyncpg.Connection, name: str) -> None:
    """Drop a test database; an autovacuum worker on it (not ours to stop) is waited out."""
    for attempt in range(20):
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except asyncpg.InsufficientPrivilegeError:
            if attempt == 19:
                raise
            await asyncio.sleep(0.5)


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def make_runtime(
    settings: CommonSettings,
    spans: InMemorySpanExporter,
    new_database: Callable[[], Awaitable[str]],
) -> AsyncIterator[Callable[[str], Awaitable[Runtime]]]:
    """Builds runtimes of throw-away services, each with a new database; stops them after."""
    made: list[Runtime] = []

    async def make(service: str) -> Runtime:
        probe = type(
            f"Probe{len(made)}Settings",
            (ServiceSettings,),
            {"service": service, "__annotations__": {"service": ClassVar[str]}},
        )
        runtime = Runtime(
            probe(**settings.model_dump(), database_url=await new_database(), http_port=0),
            span_processors=(SimpleSpanProcessor(spans),),
        )
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        if runtime.started:
            await runtime.stop()


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
async def gateway(
    settings: CommonSettings, new_database: Callable[[], Awaitable[str]]
) -> AsyncIterator[Gateway]:
    """The ingest gateway on a free port, with its own database and a platform-admin key."""
    async with serve(settings, await new_database()) as running:
        yield running
