"""The outbox relay: publishes committed outbox rows to Kafka and marks them sent.

One replica of a service publishes at a time (``RELAY_LOCK``, taken per batch): events leave
in the order they were written, so a later event for a key never overtakes an earlier one,
as it could if replicas published batches side by side; the others stand by and take over
when it stops. A NOTIFY on insert wakes the relay at once and a poll is the fallback. While
Kafka is down the batch's transaction rolls back, so nothing is marked sent that Kafka did not
acknowledge; the relay retries with capped backoff. An event Kafka will never take (larger
than its limit) is set aside with the reason (``outbox.refused``, an error in the log, the
``darkroom_outbox_refused_total`` counter) so the events after it still leave.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError
from faststream.kafka import KafkaBroker
from opentelemetry import metrics
from opentelemetry.instrumentation.utils import suppress_instrumentation

from darkroom.common.db import Database
from darkroom.common.retry import backoff
from darkroom.common.telemetry import attach_trace, detach_trace

log = logging.getLogger(__name__)
RELAY_LOCK = 0x0DA2C701
"""The advisory lock (per database: per service) of the replica publishing its outbox now."""
_published = metrics.get_meter("darkroom").create_counter(
    "darkroom_outbox_published_total", description="Outbox rows published to Kafka."
)
_refused = metrics.get_meter("darkroom").create_counter(
    "darkroom_outbox_refused_total", description="Outbox rows Kafka refused, set aside."
)


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        broker: KafkaBroker,
        *,
        service: str,
        batch_size: int,
        poll_seconds: float,
        max_backoff_seconds: float,
    ) -> None:
        self._db = db
        self._broker = broker
        self._service = service
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._max_backoff = max_backoff_seconds
        self._wake = asyncio.Event()
        self.healthy = True

    async def run(self) -> None:
        """Publish until cancelled, whatever the database or Kafka do meanwhile."""
        listener: Any = None
        failures = 0
        try:
            while True:
                try:
                    listener = await self._listening(listener)
                    published = await self.publish_batch()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    failures += 1
                    self.healthy = False
                    delay = backoff(failures, cap=self._max_backoff)
                    log.warning("outbox relay: %s; retrying in %.1fs", exc, delay)
                    await asyncio.sleep(delay)
                    continue
                failures = 0
                self.healthy = True
                if published < self._batch_size:
                    await self._sleep()
        finally:
            if listener is not None:
                await self._unlisten(listener)

    async def _listening(self, listener: Any) -> Any:
        """A connection that hears the outbox's NOTIFY: ``listener``, or a new one when it is
        none yet or was lost (the database restarted); the poll covers the gap meanwhile."""
        if listener is not None and not listener.is_closed():
            return listener
        if listener is not None:
            await self._unlisten(listener)
        connection = await self._db.pool.acquire()
        try:
            await connection.add_listener("darkroom_outbox", self._on_notify)
        except BaseException:
            await self._db.pool.release(connection)
            raise
        return connection

    async def _unlisten(self, listener: Any) -> None:
        with contextlib.suppress(Exception):  # a lost connection has nothing left to remove
            await listener.remove_listener("darkroom_outbox", self._on_notify)
        await self._db.pool.release(listener)

    async def publish_batch(self) -> int:
        """Publish one batch of pending rows; returns how many were published."""
        # The relay's own queries are not traced (they would make a trace of every poll);
        # each message's producer span joins the trace of the transaction that wrote it.
        with suppress_instrumentation():
            async with self._db.transaction() as tx:
                if not await tx.fetchval("SELECT pg_try_advisory_xact_lock($1)", RELAY_LOCK):
                    return 0  # another replica is publishing
                rows = await tx.fetch(
                    "SELECT id, topic, key, headers, payload FROM outbox"
                    " WHERE published_at IS NULL ORDER BY id LIMIT $1",
                    self._batch_size,
                )
                if not rows:
                    return 0
                acks = [await self._send(row) for row in rows]
                refused: dict[int, str] = {}
                settled = await asyncio.gather(*acks, return_exceptions=True)
                for row, ack in zip(rows, settled, strict=True):
                    if isinstance(ack, MessageSizeTooLargeError):
                        refused[row["id"]] = str(ack)
                    elif isinstance(ack, BaseException):
                        raise ack  # Kafka away, or the like: the batch goes again
                await tx.execute(
                    "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])",
                    [row["id"] for row in rows],
                )
                for row_id, reason in refused.items():
                    await tx.execute("UPDATE outbox SET refused = $2 WHERE id = $1", row_id, reason)
                    log.error("outbox row %d set aside: Kafka refuses it: %s", row_id, reason)
        _published.add(len(rows) - len(refused), {"service": self._service})
        if refused:
            _refused.add(len(refused), {"service": self._service})
        return len(rows)

    async def _send(self, row: Any) -> asyncio.Future[Any]:
        """The row sent on (its acknowledgement to come), or a refusal already known."""
        headers: dict[str, str] = json.loads(row["headers"])
        token = attach_trace(headers)  # the producer span continues the writer's trace
        try:
            return await self._broker.publish(
                bytes(row["payload"]),
                row["topic"],
                key=row["key"].encode(),
                headers=headers,
                no_confirm=True,
            )
        except MessageSizeTooLargeError as error:  # over the producer's limit: never sent
            refused: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            refused.set_exception(error)
            return refused
        finally:
            detach_trace(token)

    async def _sleep(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=self._poll_seconds)
        self._wake.clear()

    def _on_notify(self, *_: object) -> None:
        self._wake.set()
