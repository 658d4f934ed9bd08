"""PostgreSQL for every service: the pool, migrations, the inbox and the outbox.

A handler's effect, its inbox entry and the events it publishes are written in one
transaction; the relay (``darkroom.common.relay``) publishes committed outbox rows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from importlib import resources
from importlib.resources.abc import Traversable
from typing import TypeAlias

import asyncpg

from darkroom.common.events import Event, cloudevent_headers
from darkroom.common.telemetry import current_trace_headers

log = logging.getLogger(__name__)

Transaction: TypeAlias = asyncpg.Connection
"""A connection inside an open transaction: what handlers and stores write through."""

_MIGRATION_LOCK = 0x0DA2C700


def migrations_of(package: str) -> list[tuple[str, Traversable]]:
    """The ``*.sql`` files of ``<package>.migrations``, in name order, named ``package/file``."""
    folder = resources.files(package).joinpath("migrations")
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f"{package}/{f.name}", f) for f in files]


class _Connection(asyncpg.Connection):
    """A pooled connection that goes back to its pool without a reset statement.

    asyncpg's default reset (unlock advisory locks, close cursors, unlisten, reset settings)
    is one more round trip after every use of the pool: for a short statement, half the
    database traffic. No Darkroom code leaves session state on a pooled connection: advisory
    locks are taken per transaction (``pg_advisory_xact_lock``), no setting is changed, no
    cursor outlives its transaction, and the outbox relay undoes its own ``LISTEN``. asyncpg
    still rolls back a transaction left open.
    """

    def get_reset_query(self) -> str:
        return ""


class Database:
    """One service's database: a pool, its migrations, transactions."""

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.dsn = dsn
        self._min_size = min_size
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("Database.connect() has not been awaited")
        return self._pool

    async def connect(self) -> None:
        self._pool = await asyncpg.create_pool(
            self.dsn,
            min_size=self._min_size,
            max_size=self._max_size,
            connection_class=_Connection,
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def migrate(self, packages: Iterable[str]) -> list[str]:
        """Apply every migration not yet applied, replicas taking turns; returns those applied."""
        applied: list[str] = []
        async with self.transaction() as tx:
            await tx.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["name"] for r in await tx.fetch("SELECT name FROM schema_migrations")}
            for package in packages:
                for name, file in migrations_of(package):
                    if name in done:
                        continue
                    await tx.execute(file.read_text(encoding="utf-8"))
                    await tx.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
                    applied.append(name)
        if applied:
            log.info("migrations applied", extra={"migrations": applied})
        return applied

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn

    async def ping(self) -> None:
        await self.pool.fetchval("SELECT 1")


async def handled(db: Database, *, consumer: str, event_id: str) -> bool:
    """Whether ``consumer`` handled ``event_id`` already (a look before costly work; the
    inbox's insert in the handler's transaction still decides)."""
    return bool(
        await db.pool.fetchval(
            "SELECT true FROM inbox WHERE consumer = $1 AND event_id = $2", consumer, event_id
        )
    )


async def first_delivery(tx: Transaction, *, consumer: str, event_id: str) -> bool:
    """Record that ``consumer`` handles ``event_id``; False if it already did (a redelivery)."""
    inserted = await tx.fetchval(
        "INSERT INTO inbox (consumer, event_id) VALUES ($1, $2)"
        " ON CONFLICT DO NOTHING RETURNING true",
        consumer,
        event_id,
    )
    return bool(inserted)


async def publish(tx: Transaction, event: Event, *, source: str) -> str:
    """Queue ``event`` in the outbox, inside the caller's transaction; returns its ``ce_id``.

    The current trace context is stored with it, so the consumer's span continues this trace.
    """
    headers = cloudevent_headers(event, source=source) | current_trace_headers()
    await tx.execute(
        "INSERT INTO outbox (topic, key, headers, payload) VALUES ($1, $2, $3::jsonb, $4)",
        event.topic,
        event.key(),
        json.dumps(headers),
        event.model_dump_json().encode(),
    )
    return headers["ce_id"]


async def purge(db: Database, *, keep_days: int) -> None:
    """Forget published outbox rows and inbox entries older than Kafka could redeliver; a row
    Kafka refused is kept for an operator to see."""
    async with db.transaction() as tx:
        await tx.execute(
            "DELETE FROM outbox WHERE published_at < now() - make_interval(days => $1)"
            " AND refused IS NULL",
            keep_days,
        )
        await tx.execute(
            "DELETE FROM inbox WHERE handled_at < now() - make_interval(days => $1)", keep_days
        )
