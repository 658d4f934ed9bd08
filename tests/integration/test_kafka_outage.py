"""Kafka stopped while services write events: nothing is lost, and each arrives once."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from darkroom.common.settings import CommonSettings

from .backbone import at_least, eventually, start_pair

ROOT = Path(__file__).resolve().parents[2]


def stack(*args: str) -> None:
    subprocess.run([str(ROOT / "deploy" / "local" / "stack"), *args], check=True, cwd=ROOT)


@contextlib.contextmanager
def kafka_stopped() -> Iterator[None]:
    """Stops the real Kafka broker for the block; it is started again whatever happens."""
    stack("stop", "kafka")
    try:
        yield
    finally:
        stack("start", "kafka")


async def test_events_written_while_kafka_is_down_all_arrive_once(
    make_runtime: Any, settings: CommonSettings, unique: str
) -> None:
    pair = await start_pair(make_runtime, settings, unique)
    media_id = uuid.uuid4()
    await pair.send(media_id, 0)
    await eventually(pair.effects)

    with kafka_stopped():
        for seq in range(1, 21):
            await pair.send(media_id, seq)  # the service's own transaction still commits
        pending = await pair.producer.db.pool.fetchval(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        )
        assert pending == 20

    await eventually(lambda: at_least(pair.effects, 21), timeout=180)
    await asyncio.sleep(3)  # a duplicate delivery would have landed by now
    assert await pair.effects() == [(media_id, seq) for seq in range(21)]
    assert (
        await pair.producer.db.pool.fetchval(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        )
        == 0
    )
