"""The outbox relay keeps publishing whatever the database does to its listening connection
(a stand-in database here; the relay on the real stack is in tests/integration)."""

from __future__ import annotations

import asyncio
from typing import Any

from darkroom.common.relay import OutboxRelay


class Connection:
    def __init__(self) -> None:
        self.closed = False
        self.listening = False

    def is_closed(self) -> bool:
        return self.closed

    async def add_listener(self, channel: str, callback: Any) -> None:
        self.listening = True

    async def remove_listener(self, channel: str, callback: Any) -> None:
        if self.closed:
            raise ConnectionError("the connection is closed")
        self.listening = False


class Pool:
    """Refuses its first connection (the database restarting as the service starts)."""

    def __init__(self) -> None:
        self.given: list[Connection] = []
        self.released: list[Connection] = []
        self.refusals = 1

    async def acquire(self) -> Connection:
        if self.refusals:
            self.refusals -= 1
            raise ConnectionRefusedError("the database is starting up")
        self.given.append(Connection())
        return self.given[-1]

    async def release(self, connection: Connection) -> None:
        self.released.append(connection)


class Database:
    def __init__(self) -> None:
        self.pool = Pool()


async def test_the_relay_outlives_a_database_away_at_start_and_a_lost_listener() -> None:
    db = Database()
    relay = OutboxRelay(
        db,  # type: ignore[arg-type]
        broker=None,  # type: ignore[arg-type]
        service="probe",
        batch_size=10,
        poll_seconds=0.01,
        max_backoff_seconds=0.01,
    )
    batches = 0

    async def publish_batch() -> int:
        nonlocal batches
        batches += 1
        if batches == 2:  # the database restarted: the listening connection is gone
            db.pool.given[0].closed = True
        return 0

    relay.publish_batch = publish_batch  # type: ignore[method-assign]
    running = asyncio.create_task(relay.run())
    while batches < 5:
        assert not running.done(), running.exception()  # the relay died
        await asyncio.sleep(0.01)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    assert len(db.pool.given) == 2  # heard again on a new connection
    assert db.pool.released == db.pool.given  # the lost one and the last, none leaked
    assert not db.pool.given[1].listening  # its listener removed before it went back
    assert relay.healthy
