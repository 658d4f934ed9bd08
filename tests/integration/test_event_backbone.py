"""The event backbone on the real stack: outbox → Kafka → subscriber, inbox, dead letters."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from darkroom.common.broker import Write, subscribe_media
from darkroom.common.db import Transaction
from darkroom.common.events import (
    MediaRef,
    MediaReprocess,
    MediaUploaded,
    cloudevent_headers,
    dlq_topic,
)
from darkroom.common.pool import queued
from darkroom.common.relay import RELAY_LOCK
from darkroom.common.runtime import Runtime
from darkroom.common.settings import CommonSettings
from darkroom.common.topics import skip_backlog

from .backbone import at_least, eventually, read_topic, start_pair
from .conftest import create_topics


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

    assert await eventually(lambda: at_least(pair.effects, 2)) == [(media_id, 1), (media_id, 2)]
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


async def test_a_service_stays_ready_while_kafka_is_away_and_says_so(
    make_runtime: Any, settings: CommonSettings, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events wait in the outbox while Kafka is away: the gateway keeps taking uploads (it is
    not taken out of service), and its readiness answer says what is failing."""
    pair = await start_pair(make_runtime, settings, unique)

    async def away() -> None:
        raise ConnectionError("Kafka does not answer")

    monkeypatch.setattr(pair.producer, "_ping_kafka", away)
    pair.producer.relay.healthy = False  # as after a failed batch
    response = await pair.producer._readyz()
    status = json.loads(bytes(response.body))
    assert response.status_code == 200 and status["status"] == "ready"
    assert status["kafka"] == "failing: ConnectionError: Kafka does not answer"
    assert status["outbox"] == "publishing is failing"
    assert (status["postgres"], status["s3"]) == ("ok", "ok")


async def test_a_service_whose_outbox_relay_stopped_is_not_ready_and_says_why(
    make_runtime: Any, settings: CommonSettings, unique: str
) -> None:
    """A relay task that ended is a bug: nothing would ever leave the outbox. The answer is
    503, and says so under "outbox" (it said "ok" there, under a 503)."""
    pair = await start_pair(make_runtime, settings, unique)
    relay = pair.producer._relay
    assert relay is not None
    relay.cancel()
    await asyncio.gather(relay, return_exceptions=True)
    response = await pair.producer._readyz()
    status = json.loads(bytes(response.body))
    assert response.status_code == 503 and status["status"] == "not ready"
    assert status["outbox"] == "stopped"


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


async def _spans_of_kinds(
    spans: InMemorySpanExporter, trace_id: int, kinds: set[SpanKind]
) -> dict[SpanKind, Any] | None:
    """The first span of each kind in the trace (the producer's first is its message's)."""
    found: dict[SpanKind, Any] = {}
    for span in sorted(spans.get_finished_spans(), key=lambda s: s.start_time or 0):
        if span.context.trace_id == trace_id:
            found.setdefault(span.kind, span)
    return found if kinds <= found.keys() else None


async def test_one_replica_publishes_the_outbox_at_a_time(
    make_runtime: Any, settings: CommonSettings, unique: str
) -> None:
    """While another replica holds the relay's lock, this one publishes nothing; the events
    leave, in the order they were written, once it may."""
    pair = await start_pair(make_runtime, settings, unique)
    media_id = uuid.uuid4()
    async with pair.producer.db.transaction() as other_replica:
        await other_replica.execute("SELECT pg_advisory_xact_lock($1)", RELAY_LOCK)
        for seq in (1, 2, 3):
            await pair.send(media_id, seq)
        await asyncio.sleep(2)  # the relay woke (NOTIFY) and polled meanwhile
        waiting = await pair.producer.db.pool.fetchval(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        )
        assert waiting == 3
    records = await read_topic(settings, pair.ping.topic, 3)
    assert [json.loads(r.value)["seq"] for r in records] == [1, 2, 3]


async def test_an_event_kafka_refuses_for_its_size_is_set_aside_and_the_next_ones_leave(
    make_runtime: Any, settings: CommonSettings, unique: str
) -> None:
    pair = await start_pair(make_runtime, settings, unique)
    media_id = uuid.uuid4()
    async with pair.producer.db.transaction() as tx:  # written as publish() would, 3 MB
        await tx.execute(
            "INSERT INTO outbox (topic, key, headers, payload) VALUES ($1, $2, '{}', $3)",
            pair.ping.topic,
            str(media_id),
            json.dumps({"media_id": str(media_id), "seq": 0, "pad": "x" * 3_000_000}).encode(),
        )
    await pair.send(media_id, 1)
    assert await eventually(pair.effects) == [(media_id, 1)]
    row = await pair.producer.db.pool.fetchrow(
        "SELECT published_at, refused FROM outbox ORDER BY id LIMIT 1"
    )
    assert row["published_at"] is not None and "larger than the maximum" in row["refused"]


async def test_a_media_consumer_tells_the_pool_how_many_events_wait_behind_each(
    make_runtime: Any, settings: CommonSettings, unique: str
) -> None:
    """The worker pool serves first the file with the most events behind it, so a burst
    spread unevenly over partitions ends on every process: each read learns that number."""
    name = f"probe-media-{unique}"
    await create_topics(settings, dlq_topic(name))
    await skip_backlog(settings, name, (MediaUploaded.topic, MediaReprocess.topic))
    medium = uuid.uuid4()  # one key: one partition, read in order
    burst = [
        MediaUploaded(
            media=MediaRef(
                media_id=medium,
                project_id=uuid.uuid4(),
                session_id=uuid.uuid4(),
                object_key=f"{medium}/original",
                relative_path="a.jpg",
                ai_tagging=False,
                classification="UNCLASSIFIED",
            ),
            sha256="0" * 64,
            size=1,
            content_type="image/jpeg",
            session_capture_date=date(2024, 5, 17),
            project_timezone="UTC",
            source="test",
            view_name="burst",
            uploaded_at=datetime.now(UTC),
        )
        for _ in range(6)
    ]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for event in burst:  # all waiting before the consumer starts
            await producer.send_and_wait(
                event.topic,
                event.model_dump_json().encode(),
                key=event.key().encode(),
                headers=[(k, v.encode()) for k, v in cloudevent_headers(event, source="t").items()],
            )
    finally:
        await producer.stop()
    behind: list[int] = []

    async def read(event: MediaUploaded) -> Write:
        behind.append(queued.get())

        async def write(tx: Transaction) -> None:
            pass

        return write

    runtime = await make_runtime(name)
    subscribe_media(runtime.broker, service=name, db=runtime.db, workers=1, read=read)
    await runtime.start()

    async def seen() -> list[int]:
        return behind

    await eventually(lambda: at_least(seen, len(burst)))
    assert behind == [5, 4, 3, 2, 1, 0]
