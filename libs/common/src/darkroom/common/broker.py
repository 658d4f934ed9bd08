"""Kafka for every service: the broker factory and the consumer policy.

The policy is the one place that decides what happens to a message whose handler fails:
- a transient fault (Kafka, S3, PostgreSQL unavailable) is retried with capped backoff;
- a message that still fails, or fails validation, goes to ``darkroom.dlq.<service>`` with
  its origin, and the partition moves on;
- when dead letters pass a share of the recent messages (a bad deploy, not bad input), the
  consumer stops instead, without committing, so nothing more is dead-lettered quietly.
Offsets are committed after the handler returns, that is after its transaction committed
(at-least-once delivery; the inbox makes the effects once).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from faststream import AckPolicy, BaseMiddleware
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.message import StreamMessage
from opentelemetry import metrics
from opentelemetry.trace import TracerProvider

from darkroom.common.db import Database, Transaction, first_delivery, handled
from darkroom.common.events import Event, MediaReprocess, MediaUploaded, dlq_topic
from darkroom.common.pool import queued
from darkroom.common.retry import TRANSIENT_ERRORS, backoff
from darkroom.common.settings import CommonSettings

log = logging.getLogger(__name__)
_meter = metrics.get_meter("darkroom")
_dead_lettered = _meter.create_counter(
    "darkroom_dlq_messages_total", description="Messages sent to a dead-letter topic."
)
_handled = _meter.create_histogram(
    "darkroom_message_duration_seconds",
    unit="s",
    description="Time to handle one consumed message, retries included, by outcome.",
)

E = TypeVar("E", bound=Event)


class ConsumerHalted(Exception):
    """The consumer stopped: too large a share of recent messages was dead-lettered."""


class ConsumerPolicy:
    """Retry, dead-letter and halt rules shared by all subscribers of one service."""

    def __init__(self, service: str, settings: CommonSettings) -> None:
        self.service = service
        self.retry_for = settings.transient_retry_seconds
        self.max_backoff = settings.retry_max_backoff_seconds
        self.max_share = settings.dlq_max_share
        self._window = settings.dlq_window
        self._recent: deque[bool] = deque(maxlen=self._window)
        self.halted: str | None = None
        self.broker: KafkaBroker | None = None

    def middleware(self, msg: Any, /, *, context: Any) -> BaseMiddleware:
        return _PolicyMiddleware(msg, context=context, policy=self)

    def would_exceed(self) -> bool:
        """Whether one more dead letter would pass the allowed share of the window."""
        window = [*self._recent, True][-self._window :]
        return len(window) >= min(self._window, 10) and sum(window) / len(window) > self.max_share

    def record(self, *, dead: bool) -> None:
        self._recent.append(dead)

    async def halt(self, reason: str) -> None:
        self.halted = reason
        log.error("consumer halted: %s", reason)
        if self.broker is not None:
            broker = self.broker
            # Stopping the subscribers from a task: this one is running inside one of them.
            asyncio.get_running_loop().create_task(_stop_subscribers(broker))

    async def dead_letter(self, msg: StreamMessage[Any], error: BaseException) -> None:
        assert self.broker is not None
        record = msg.raw_message
        if record.topic.startswith(dlq_topic("")):
            raise RuntimeError(f"a dead letter failed again; not re-sent: {error}") from error
        headers = {k: v for k, v in msg.headers.items() if isinstance(v, str)}
        headers |= {
            "dlq_original_topic": record.topic,
            "dlq_original_partition": str(record.partition),
            "dlq_original_offset": str(record.offset),
            "dlq_error_type": type(error).__name__,
            "dlq_error": str(error)[:2000],
            "dlq_service": self.service,
        }
        await self.broker.publish(
            msg.body, dlq_topic(self.service), key=record.key, headers=headers
        )
        _dead_lettered.add(1, {"service": self.service, "topic": record.topic})
        log.warning(
            "dead-lettered %s[%s]@%s: %s",
            record.topic,
            record.partition,
            record.offset,
            "".join(traceback.format_exception_only(error)).strip(),
        )


async def _stop_subscribers(broker: KafkaBroker) -> None:
    for subscriber in broker.subscribers:
        await subscriber.stop()


class _PolicyMiddleware(BaseMiddleware):
    def __init__(self, msg: Any, /, *, context: Any, policy: ConsumerPolicy) -> None:
        super().__init__(msg, context=context)
        self.policy = policy

    async def consume_scope(
        self, call_next: Callable[[StreamMessage[Any]], Awaitable[Any]], msg: StreamMessage[Any]
    ) -> Any:
        policy = self.policy
        if policy.halted:
            raise ConsumerHalted(policy.halted)
        attempt = 0
        started = time.perf_counter()
        give_up = time.monotonic() + policy.retry_for
        attributes = {"service": policy.service, "topic": msg.raw_message.topic}
        while True:
            try:
                result = await call_next(msg)
            except TRANSIENT_ERRORS as exc:
                # An outage (a database failing over, S3 restarting) holds the message rather
                # than dead-lettering it; one that outlasts the window is taken for a fault of
                # the message itself.
                attempt += 1
                if (left := give_up - time.monotonic()) > 0:
                    await asyncio.sleep(min(backoff(attempt, cap=policy.max_backoff), left))
                    continue
                error: BaseException = exc
            except Exception as exc:
                error = exc
            else:
                policy.record(dead=False)
                _handled.record(time.perf_counter() - started, attributes | {"outcome": "ok"})
                return result
            break
        if policy.would_exceed():
            reason = (
                f"more than {policy.max_share:.0%} of the last messages failed;"
                f" last error: {type(error).__name__}: {error}"
            )
            await policy.halt(reason)
            raise ConsumerHalted(reason) from error
        await policy.dead_letter(msg, error)
        policy.record(dead=True)
        _handled.record(time.perf_counter() - started, attributes | {"outcome": "dead_letter"})
        return None


def create_broker(
    settings: CommonSettings, policy: ConsumerPolicy, tracer_provider: TracerProvider | None
) -> KafkaBroker:
    """A broker whose consumers follow ``policy`` and whose spans join the callers' traces."""
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=f"darkroom-{policy.service}",
        enable_idempotence=True,
        graceful_timeout=settings.shutdown_grace_seconds,
        middlewares=[
            KafkaTelemetryMiddleware(tracer_provider=tracer_provider),
            policy.middleware,
        ],
    )
    policy.broker = broker
    return broker


Handle = Callable[[E, Transaction], Awaitable[None]]
Write = Callable[[Transaction], Awaitable[None]]
Read = Callable[[E], Awaitable[Write]]
"""A handler in two steps: it reads the medium (in the worker pool, for as long as that
takes) with no database connection held, and returns what to write in the transaction."""


def subscribe(
    broker: KafkaBroker, event: type[E], *, service: str, db: Database, max_workers: int = 1
) -> Callable[[Handle[E]], Handle[E]]:
    """Register ``handle(event, tx)`` for ``event``'s topic in ``service``'s consumer group.

    ``handle`` runs inside a transaction that also records the event in the inbox, so a
    redelivered event is skipped; the offset is committed only after that transaction.
    With ``max_workers`` > 1 a replica runs that many consumers of the group, each on
    partitions of its own: order within a partition and commit-after-handler are kept, and
    the topic's partitions then serve ``partitions / max_workers`` replicas.
    """

    def register(handle: Handle[E]) -> Handle[E]:
        async def at_once(body: E) -> Write:
            return functools.partial(handle, body)

        _register(broker, event, at_once, handle, service=service, db=db, max_workers=max_workers)
        return handle

    return register


def media_consumers(workers: int) -> int:
    """A replica's consumers of new uploads for a pool of ``workers`` processes: two a process.

    Each consumer handles its partitions' events one at a time. With one a process, a process
    waited while its consumer wrote the last result and fetched the next file, and a burst
    spread unevenly over the partitions ended with one consumer, so one process, working
    alone. With two, a file is fetched and waiting for each process; and as each read tells
    the pool how many events wait behind it (``pool.queued``), the pool serves the longest
    backlog first and the consumers' partitions run dry together (bench/RESULTS.md, faces per
    second). The topic's partitions then serve ``partitions / (2 * workers)`` replicas;
    consumers past that sit idle.
    """
    return 2 * workers


def subscribe_media(
    broker: KafkaBroker,
    *,
    service: str,
    db: Database,
    workers: int,
    read: Read[MediaUploaded],
) -> None:
    """Register ``read`` for new uploads and for the reprocessing lane.

    ``read(event)`` works on the medium before any transaction (a redelivered event already
    in the inbox is not read again) and returns what to write; the write runs as ``subscribe``
    runs a handler. New uploads get ``media_consumers(workers)`` consumers; the low-priority
    lane gets one, and its files tell the pool of no events behind them: during a burst of
    uploads a backfill's file waits for a process until the burst's backlogs run dry, or for
    the pool's patience (``pool.PATIENCE_SECONDS``).
    """
    lanes = ((MediaUploaded, media_consumers(workers), True), (MediaReprocess, 1, False))
    for topic, consumers, tells_backlog in lanes:
        _register(
            broker,
            topic,
            read,
            read,
            service=service,
            db=db,
            max_workers=consumers,
            reads=True,
            tells_backlog=tells_backlog,
        )


async def _behind(message: KafkaMessage) -> int:
    """How many records wait in the partitions of the consumer that delivered ``message``, as
    far as its last fetch knows. Only an order of turns hangs on it: it never fails a message."""
    consumer = message.consumer
    if not isinstance(consumer, AIOKafkaConsumer):
        return 0
    waiting = 0
    try:
        async with asyncio.timeout(1):  # a position being reset is not waited for
            for partition in consumer.assignment():
                end = consumer.highwater(partition)
                if end is not None:  # fetched from
                    waiting += max(0, end - await consumer.position(partition))
    except (TimeoutError, AssertionError, KafkaError):  # or a rebalance took a partition
        pass
    return waiting


def _register(
    broker: KafkaBroker,
    event: type[E],
    read: Read[E],
    named: Callable[..., Any],
    *,
    service: str,
    db: Database,
    max_workers: int,
    reads: bool = False,
    tells_backlog: bool = False,
) -> None:
    async def on_event(body: Event, message: KafkaMessage) -> None:
        event_id = message.headers.get("ce_id")
        if not event_id:
            raise ValueError("record has no ce_id header: not a CloudEvent")
        if reads and await handled(db, consumer=service, event_id=event_id):
            return  # a redelivery: not read again
        if tells_backlog:
            queued.set(await _behind(message))
        write = await read(body)  # type: ignore[arg-type]
        async with db.transaction() as tx:
            if await first_delivery(tx, consumer=service, event_id=event_id):
                await write(tx)

    # FastStream validates the body against this annotation, and documents it.
    on_event.__annotations__ = {"body": event, "message": KafkaMessage, "return": None}
    on_event.__name__ = f"{service}_{named.__name__}"
    on_event.__doc__ = named.__doc__
    broker.subscriber(
        event.topic,
        group_id=service,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        max_workers=max_workers if max_workers > 1 else None,
        title=f"{service}/{event.topic}",
        description=event.__doc__,
    )(on_event)
