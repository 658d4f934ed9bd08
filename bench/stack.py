"""What the benchmarks share to run against the local stack: throw-away databases, free ports."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from darkroom.common.settings import LOCAL_DATABASE


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
