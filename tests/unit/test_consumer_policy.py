"""The consumer policy's rules, on FastStream's in-memory test broker (no Kafka here)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError
from faststream.kafka import KafkaMessage, TestKafkaBroker

from darkroom.common.broker import ConsumerPolicy, _behind, create_broker
from darkroom.common.retry import TransientError, backoff
from darkroom.common.settings import CommonSettings

SETTINGS = CommonSettings(
    transient_retry_seconds=0.2, retry_max_backoff_seconds=0.01, dlq_window=10
)


def policy_and_broker(settings: CommonSettings = SETTINGS) -> tuple[ConsumerPolicy, Any]:
    policy = ConsumerPolicy("probe", settings)
    return policy, create_broker(settings, policy, tracer_provider=None)


async def test_a_transient_fault_is_retried_until_it_passes() -> None:
    """The database fails over for longer than a few quick retries would cover (the rule
    before: five attempts, ~3 s): the message waits it out within the retry window, and is
    handled; none dead-lettered."""
    _policy, broker = policy_and_broker(
        CommonSettings(transient_retry_seconds=30, retry_max_backoff_seconds=0.01)
    )
    calls: list[dict[str, Any]] = []

    @broker.subscriber("in", group_id="probe")
    async def handle(body: dict[str, Any]) -> None:
        calls.append(body)
        if len(calls) < 40:
            raise asyncpg.exceptions.AdminShutdownError("terminating connection")

    dead: list[bytes] = []

    @broker.subscriber("darkroom.dlq.probe")
    async def dlq(body: bytes) -> None:
        dead.append(body)

    async with TestKafkaBroker(broker):
        await broker.publish({"n": 1}, "in")

    assert calls == [{"n": 1}] * 40
    assert dead == []


async def test_a_fault_that_persists_is_dead_lettered_with_its_origin() -> None:
    policy, broker = policy_and_broker()
    attempts = 0

    @broker.subscriber("in", group_id="probe")
    async def handle(body: dict[str, Any]) -> None:
        nonlocal attempts
        attempts += 1
        raise TransientError("S3 is down")

    dead: list[tuple[dict[str, Any], dict[str, Any]]] = []

    @broker.subscriber("darkroom.dlq.probe")
    async def dlq(body: dict[str, Any], message: KafkaMessage) -> None:
        dead.append((body, message.headers))

    async with TestKafkaBroker(broker):
        await broker.publish({"n": 1}, "in")

    assert attempts > 2  # retried through the window, then set aside
    [(body, headers)] = dead
    assert body == {"n": 1}
    assert headers["dlq_original_topic"] == "in"
    assert headers["dlq_error_type"] == "TransientError"
    assert headers["dlq_error"] == "S3 is down"
    assert policy.halted is None


async def test_a_bug_is_not_retried() -> None:
    _policy, broker = policy_and_broker()
    attempts = 0

    @broker.subscriber("in", group_id="probe")
    async def handle(body: dict[str, Any]) -> None:
        nonlocal attempts
        attempts += 1
        raise KeyError("width")

    async with TestKafkaBroker(broker):
        await broker.publish({"n": 1}, "in")

    assert attempts == 1


@pytest.mark.parametrize(
    ("history", "halts"),
    [
        ([], False),  # too few messages to judge
        ([True] * 8, False),  # the 9th dead letter: still fewer than 10 messages
        ([True] * 9, True),  # 10 of 10 would be dead
        ([False] * 5 + [True] * 4, False),  # 5 of 10 is not more than half
        ([False] * 4 + [True] * 5, True),  # 6 of 10 is
        ([True] * 5 + [False] * 10, False),  # old failures have left the window
    ],
)
def test_dead_letters_halt_the_consumer_past_their_share(history: list[bool], halts: bool) -> None:
    policy = ConsumerPolicy("probe", SETTINGS)
    for dead in history:
        policy.record(dead=dead)
    assert policy.would_exceed() is halts


def test_backoff_grows_and_is_capped() -> None:
    assert backoff(5000, cap=10.0) <= 10.0  # hours of outage: still a wait, not an overflow
    assert all(0.1 <= backoff(1) <= 0.2 for _ in range(50))
    assert all(backoff(30, cap=5.0) <= 5.0 for _ in range(50))
    assert all(backoff(4) >= 0.8 for _ in range(50))


async def test_a_partition_taken_while_the_backlog_is_counted_fails_no_message() -> None:
    """How many events wait behind a media read only orders the pool's turns: a rebalance
    that takes one of the consumer's partitions meanwhile leaves the count at what is known."""
    kept, taken = TopicPartition("t", 0), TopicPartition("t", 1)
    consumer = AIOKafkaConsumer(bootstrap_servers="localhost:1")  # never started

    async def position(partition: TopicPartition) -> int:
        if partition == taken:
            raise IllegalStateError(f"Partition {partition} is not assigned")
        return 4

    consumer.assignment = lambda: [kept, taken]
    consumer.highwater = lambda partition: 10
    consumer.position = position
    message = cast(KafkaMessage, SimpleNamespace(consumer=consumer))
    try:
        assert await _behind(message) == 6
    finally:
        await consumer.stop()
