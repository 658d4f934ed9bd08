"""The shared database pool on a real PostgreSQL: what a connection carries back to the pool."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from darkroom.common.db import Database


@pytest.fixture
async def db(new_database: Callable[[], Awaitable[str]]) -> AsyncIterator[Database]:
    database = Database(await new_database(), min_size=1, max_size=1)
    await database.connect()
    await database.pool.execute("CREATE TABLE notes (body text)")
    try:
        yield database
    finally:
        await database.close()


async def test_a_connection_goes_back_to_the_pool_without_a_statement_of_its_own(
    db: Database,
) -> None:
    queries: list[str] = []
    async with db.pool.acquire() as conn:
        conn.add_query_logger(lambda record: queries.append(record.query))
        await conn.execute("INSERT INTO notes VALUES ('one')")
    async with db.pool.acquire() as again:  # the pool's one connection, again
        await again.fetchval("SELECT count(*) FROM notes")

    # The insert and the count, and nothing between them (asyncpg's default reset would be a
    # third statement each time the connection is released).
    assert queries == ["INSERT INTO notes VALUES ('one')", "SELECT count(*) FROM notes"]


async def test_a_transaction_left_open_is_rolled_back_when_its_connection_returns(
    db: Database,
) -> None:
    async with db.pool.acquire() as conn:
        await conn.execute("BEGIN")
        await conn.execute("INSERT INTO notes VALUES ('never committed')")
        assert conn.is_in_transaction()

    async with db.pool.acquire() as again:
        assert not again.is_in_transaction()
        assert await again.fetchval("SELECT count(*) FROM notes") == 0
