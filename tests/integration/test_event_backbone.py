"""The event backbone on the real stack: outbox → Kafka → subscriber, inbox, dead letters."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

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


async def read_topic(settings: CommonSettings, topic: str, count: int) -> list[Any]:
    """The first ``count`` records of ``topic``, straight from Kafka."""
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


async def test_outbox_event_reaches_another_service_with_cloudevents_and_trace(
    make_runtime: Any,
    settings: CommonSettings,
    unique: str,
    spans: InMemorySpanExporter,
) -> None:
    pair = await start_pair(make_runtime, settings, unique)
    media_id = uuid.uuid4()

    tracer = pair.producer.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("upload") as upload:
        ce_id = await pair.send(media_id, 1)

    assert await eventually(pair.effects) == [(media_id, 1)]
    [record] = await read_topic(settings, pair.ping.topic, 1)
    headers = {k: v.decode() for k, v in record.headers}
    assert record.key == str(media_id).encode()
    assert headers["ce_id"] == ce_id
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_type"] == "darkroom.test.ping"
    assert headers["ce_source"] == "darkroom/a"
    assert headers["ce_subject"] == str(media_id)
    assert headers["ce_time"]
    assert json.loads(record.value) == {"media_id": str(media_id), "seq": 1}

    trace_id = upload.get_span_context().trace_id
    assert headers["traceparent"].split("-")[1] == format(trace_id, "032x")
    finished = await eventually(
        lambda: _spans_of_kinds(spans, trace_id, {SpanKind.PRODUCER, SpanKind.CONSUMER})
    )
    producer_span = finished[SpanKind.PRODUCER]
    consumer_span = finished[SpanKind.CONSUMER]
    assert producer_span.parent.span_id == upload.get_span_context().span_id
    assert consumer_span.parent.span_id == producer_span.context.span_id
    assert consumer_span.context.trace_id == trace_id


async def test_the_same_event_delivered_twice_has_one_effect(
    make_runtime: Any, settings: CommonSettings, unique: str
) -> None:
    pair = await start_pair(make_runtime, settings, unique)
    media_id = uuid.uuid4()
    await pair.send(media_id, 1)
    await eventually(pair.effects)

    # Deliver the very same record again, as Kafka does after a consumer crash.
    [record] = await read_topic(settings, pair.ping.topic, 1)
    await pair.producer.broker.publish(
        record.value,
        pair.ping.topic,
        key=record.key,
        headers={k: v.decode() for k, v in record.headers},
    )
    await pair.send(media_id, 2)  # same key, same partition: handled after the redelivery

    assert await eventually(lambda: _at_least(pair.effects, 2)) == [(media_id, 1), (media_id, 2)]
    handled = await pair.consumer.db.pool.fetchval("SELECT count(*) FROM inbox")
    assert handled == 2


async def test_a_record_that_fails_validation_is_dead_lettered_and_the_next_is_handled(
    make_runtime: Any, settings: CommonSettings, unique: str
) -> None:
    pair = await start_pair(make_runtime, settings, unique)
    media_id = uuid.uuid4()
    await pair.producer.broker.publish(
        b'{"media_id": "not-a-uuid", "seq": 1}',
        pair.ping.topic,
        key=str(media_id).encode(),
        headers={"ce_id": "bad-1", "content-type": "application/json"},
    )
    await pair.send(media_id, 2)

    assert await eventually(pair.effects) == [(media_id, 2)]
    [dead] = await read_topic(settings, dlq_topic(pair.consumer.service), 1)
    headers = {k: v.decode() for k, v in dead.headers}
    assert dead.value == b'{"media_id": "not-a-uuid", "seq": 1}'
    assert headers["dlq_original_topic"] == pair.ping.topic
    assert headers["dlq_original_offset"] == "0"
    assert headers["dlq_original_partition"].isdigit()
    assert headers["dlq_error_type"] == "ValidationError"
    assert "media_id" in headers["dlq_error"]
    assert headers["ce_id"] == "bad-1"
    assert pair.consumer.policy.halted is None


async def test_consumer_stops_when_too_many_records_are_dead_lettered(
    make_runtime: Any, settings: CommonSettings, unique: str
) -> None:
    pair = await start_pair(make_runtime, settings, unique)
    key = str(uuid.uuid4()).encode()
    for n in range(12):  # one key: one partition, in order
        await pair.producer.broker.publish(
            b"{}", pair.ping.topic, key=key, headers={"ce_id": f"bad-{n}"}
        )

    # With a window of 100 and a share of 50 %, the 10th failure in a row halts the consumer.
    await eventually(lambda: _halted(pair.consumer))
    dead = await read_topic(settings, dlq_topic(pair.consumer.service), 9)
    assert [d.offset for d in dead] == list(range(9))
    status = await _readyz(pair.consumer)
    assert status["status"] == "not ready"
    assert status["consumer"].startswith("halted:")
    # The record that tripped the limit is not committed: a fixed consumer will see it again.
    committed = await _committed_offsets(settings, pair.consumer.service, pair.ping.topic)
    assert sum(committed.values()) == 9


async def _halted(runtime: Runtime) -> bool:
    return runtime.policy.halted is not None


async def _readyz(runtime: Runtime) -> dict[str, Any]:
    response = await runtime._readyz()
    return json.loads(bytes(response.body))


async def _committed_offsets(
    settings: CommonSettings, group: str, topic: str
) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


async def _at_least(probe: Callable[[], Awaitable[list[Any]]], n: int) -> list[Any] | None:
    rows = await probe()
    return rows if len(rows) >= n else None


async def _spans_of_kinds(
    spans: InMemorySpanExporter, trace_id: int, kinds: set[SpanKind]
) -> dict[SpanKind, Any] | None:
    """The first span of each kind in the trace (the producer's first is its message's)."""
    found: dict[SpanKind, Any] = {}
    for span in sorted(spans.get_finished_spans(), key=lambda s: s.start_time or 0):
        if span.context.trace_id == trace_id:
            found.setdefault(span.kind, span)
    return found if kinds <= found.keys() else None
