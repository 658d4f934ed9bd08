"""A consuming service under test: replicas in this process, uploads announced as the gateway
does, and each medium's latest result read back from Kafka."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from darkroom.common.events import (
    Event,
    MediaRef,
    MediaReprocess,
    MediaUploaded,
    cloudevent_headers,
    dlq_topic,
)
from darkroom.common.runtime import Runtime
from darkroom.common.settings import CommonSettings, ServiceSettings
from darkroom.common.topics import skip_backlog

from .backbone import eventually, read_topic
from .conftest import create_topics


class Consumer:
    """Replicas of one service, sharing a consumer group of their own and a database."""

    def __init__(self, settings: CommonSettings, make: Callable[[], Runtime], results: str) -> None:
        self.settings = settings
        self.make = make
        self.results = results
        self.replicas: list[Runtime] = []
        self.uploaded: dict[uuid.UUID, MediaUploaded] = {}

    async def start(self, replicas: int = 1) -> None:
        for _ in range(replicas):
            runtime = self.make()
            await runtime.start()
            self.replicas.append(runtime)

    async def upload(
        self,
        project_id: uuid.UUID,
        data: bytes,
        path: str = "a/b.jpg",
        *,
        ai_tagging: bool = False,
        content_type: str = "image/jpeg",
    ) -> MediaRef:
        """Store an original and announce it, as the gateway does."""
        media_id = uuid.uuid4()
        ref = MediaRef(
            media_id=media_id,
            project_id=project_id,
            session_id=uuid.uuid4(),
            object_key=f"{project_id}/{media_id}/original",
            relative_path=path,
            ai_tagging=ai_tagging,
            classification="UNCLASSIFIED",
        )
        await self.replicas[0].blobs.put_bytes("originals", ref.object_key, data)
        self.uploaded[media_id] = MediaUploaded(
            media=ref,
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            content_type=content_type,
            session_capture_date=date(2024, 5, 17),
            project_timezone="Europe/Paris",
            source="drone",
            view_name="Castle",
            uploaded_at=datetime.now(UTC),
        )
        await self.send(self.uploaded[media_id])
        return ref

    async def reprocess(self, ref: MediaRef) -> None:
        """Announce an upload again on the reprocessing lane, as a backfill does."""
        await self.send(MediaReprocess(**self.uploaded[ref.media_id].model_dump()))

    async def send(self, event: Event) -> None:
        await self.replicas[0].broker.publish(
            event.model_dump_json().encode(),
            event.topic,
            key=event.key().encode(),
            headers=cloudevent_headers(event, source="darkroom/test"),
        )

    async def latest(
        self, *refs: MediaRef, results: int | None = None, timeout: float = 90
    ) -> dict[uuid.UUID, Any]:
        """The latest result of each medium, once each has one (and ``results`` in all)."""
        wanted = {str(ref.media_id): ref.media_id for ref in refs}

        async def found() -> dict[uuid.UUID, Any] | None:
            records = await read_topic(self.settings, self.results, 1, everything=True)
            mine = [r for r in records if r.key.decode() in wanted]
            latest = {wanted[r.key.decode()]: json.loads(r.value) for r in mine}
            if len(latest) < len(wanted) or (results is not None and len(mine) < results):
                return None
            return latest

        return dict(await eventually(found, timeout=timeout))


@asynccontextmanager
async def consumer(
    settings: CommonSettings,
    new_database: Callable[[], Awaitable[str]],
    unique: str,
    service: type[ServiceSettings],
    create_runtime: Callable[[Any], Runtime],
    results: type[Event] | None,
    consumes: tuple[type[Event], ...],
    **overrides: Any,
) -> AsyncIterator[Consumer]:
    """``service`` in a consumer group and database of its own, past others' events."""
    name = f"{service.service}-test-{unique}"
    await create_topics(settings, dlq_topic(name))
    await skip_backlog(settings, name, tuple(event.topic for event in consumes))
    probe = type(
        f"Probe{service.__name__}",
        (service,),
        {"service": name, "__annotations__": {"service": ClassVar[str]}},
    )
    url = await new_database()
    made = Consumer(
        settings,
        lambda: create_runtime(
            probe(**settings.model_dump(), database_url=url, http_port=0, **overrides)
        ),
        results.topic if results else "",
    )
    try:
        yield made
    finally:
        for runtime in made.replicas:
            await runtime.stop()
