"""Two throw-away services on the real stack, one publishing through its outbox to the other."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer

from darkroom.common.broker import subscribe
from darkroom.common.db import Transaction, publish
from darkroom.common.events import Event, dlq_topic
from darkroom.common.runtime import Runtime
from darkroom.common.settings import CommonSettings

from .conftest import create_topics
from .events import ping_event

EFFECTS = "CREATE TABLE effects (media_id uuid NOT NULL, seq int NOT NULL)"


async def eventually(probe: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await probe()
        if result:
            return result
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def at_least(probe: Callable[[], Awaitable[list[Any]]], n: int) -> list[Any] | None:
    """``probe``'s rows once there are ``n`` of them (for ``eventually``)."""
    rows = await probe()
    return rows if len(rows) >= n else None


async def read_topic(
    settings: CommonSettings, topic: str, count: int, *, everything: bool = False
) -> list[Any]:
    """The first ``count`` records of ``topic`` (or all it holds now), straight from Kafka."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(30):
            while len(records) < count:
                batch = await consumer.getmany(timeout_ms=500)
                for part in batch.values():
                    records.extend(part)
            while everything and (batch := await consumer.getmany(timeout_ms=500)):
                for part in batch.values():
                    records.extend(part)
    finally:
        await consumer.stop()
    return records


class Pair:
    """A producing and a consuming service, each with its own database."""

    def __init__(self, producer: Runtime, consumer: Runtime, ping: type[Event]) -> None:
        self.producer = producer
        self.consumer = consumer
        self.ping = ping

    async def effects(self) -> list[tuple[uuid.UUID, int]]:
        rows = await self.consumer.db.pool.fetch("SELECT media_id, seq FROM effects ORDER BY seq")
        return [(r["media_id"], r["seq"]) for r in rows]

    async def send(self, media_id: uuid.UUID, seq: int) -> str:
        async with self.producer.db.transaction() as tx:
            ping = self.ping.model_validate({"media_id": media_id, "seq": seq})
            return await publish(tx, ping, source="darkroom/a")


async def start_pair(
    make_runtime: Callable[[str], Awaitable[Runtime]], settings: CommonSettings, unique: str
) -> Pair:
    ping = ping_event(unique)
    a_name, b_name = f"probe-a-{unique}", f"probe-b-{unique}"
    await create_topics(settings, ping.topic, dlq_topic(a_name), dlq_topic(b_name))
    producer = await make_runtime(a_name)
    consumer = await make_runtime(b_name)

    @subscribe(consumer.broker, ping, service=b_name, db=consumer.db)
    async def record(event: Any, tx: Transaction) -> None:
        await tx.execute("INSERT INTO effects VALUES ($1, $2)", event.media_id, event.seq)

    await producer.start()
    await consumer.start()
    await consumer.db.pool.execute(EFFECTS)
    return Pair(producer, consumer, ping)
