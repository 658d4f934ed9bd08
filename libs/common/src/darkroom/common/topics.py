"""Creates every topic of the catalog, with the partition count from settings.

Run by each service at start (idempotent) and by the local stack:
``uv run python -m darkroom.common.topics``.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from darkroom.common.events import all_topics
from darkroom.common.settings import CommonSettings

log = logging.getLogger(__name__)


async def ensure_topics(settings: CommonSettings) -> list[str]:
    """Create the catalog's missing topics; returns those created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in all_topics() if t not in existing]
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(
                        t,
                        num_partitions=settings.topic_partitions,
                        replication_factor=settings.topic_replication_factor,
                    )
                    for t in missing
                ]
            )
            for topic, code, *_ in response.topic_errors:
                if code not in (0, 36):  # 36: created meanwhile by another replica
                    raise RuntimeError(f"could not create topic {topic}: error code {code}")
            log.info("topics created: %s", ", ".join(missing))
        return missing
    finally:
        await admin.close()


async def partitions_of(
    consumer: AIOKafkaConsumer, topics: tuple[str, ...]
) -> list[TopicPartition]:
    """Every partition of ``topics``, from fresh metadata (for a consumer that assigns itself)."""
    await consumer._client.force_metadata_update()
    return [
        TopicPartition(topic, p)
        for topic in topics
        for p in consumer.partitions_for_topic(topic) or []
    ]


async def skip_backlog(settings: CommonSettings, group: str, topics: tuple[str, ...]) -> None:
    """Commit ``group``'s offsets at the end of ``topics``: what they hold now is not replayed.

    For an operator who must skip a backlog, and for tests and benchmarks that share topics.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = await partitions_of(consumer, topics)
        consumer.assign(partitions)
        await consumer.commit(dict(await consumer.end_offsets(partitions)))
    finally:
        await consumer.stop()


if __name__ == "__main__":
    created = asyncio.run(ensure_topics(CommonSettings()))
    print(f"topics created: {len(created)}; all {len(all_topics())} present")
