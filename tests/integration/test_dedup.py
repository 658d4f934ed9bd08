"""The dedup service on the real stack: uploads in, duplicate groups out, reviews kept."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
from PIL import Image

from darkroom.common.events import (
    DedupCommand,
    Event,
    MediaDuplicates,
    MediaRef,
    MediaUploaded,
    NotDuplicate,
    cloudevent_headers,
    dlq_topic,
)
from darkroom.common.runtime import Runtime
from darkroom.common.settings import CommonSettings, DedupSettings
from darkroom.common.topics import skip_backlog
from darkroom.dedup.app import create_runtime

from .backbone import eventually, read_topic
from .conftest import create_topics

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
JPEGS = CORPUS / "cameras" / "jpg"
# Two different photos that are each other's nearest in the corpus by pHash (distance 8).
FUJI, KODAK = JPEGS / "FujiFilm FinePixS5500.jpg", JPEGS / "Kodak PIXPRO FZ201.jpg"


def reencoded(path: Path, *, scale: float = 0.5, quality: int = 60) -> bytes:
    """The photo as a user's other copy: smaller, recompressed, without its EXIF."""
    with Image.open(path) as file:
        image = file.convert("RGB")
    smaller = image.resize((int(image.width * scale), int(image.height * scale)))
    out = io.BytesIO()
    smaller.save(out, "JPEG", quality=quality)
    return out.getvalue()


def together(results: dict[uuid.UUID, Any], one: MediaRef, two: MediaRef) -> bool:
    """Whether the two media are in the same group."""
    group = results[one.media_id]["group_id"]
    return group is not None and results[two.media_id]["group_id"] == group


class Dedup:
    """Dedup replicas in this process, sharing a consumer group and a database."""

    def __init__(self, settings: CommonSettings, name: str, database_url: str) -> None:
        self.settings = settings
        probe = type(
            "ProbeDedupSettings",
            (DedupSettings,),
            {"service": name, "__annotations__": {"service": ClassVar[str]}},
        )
        self.make = lambda: create_runtime(
            probe(**settings.model_dump(), database_url=database_url, http_port=0, workers=2)
        )
        self.replicas: list[Runtime] = []

    async def start(self, replicas: int) -> None:
        for _ in range(replicas):
            runtime = self.make()
            await runtime.start()
            self.replicas.append(runtime)

    async def upload(self, project_id: uuid.UUID, data: bytes, path: str = "a/b.jpg") -> MediaRef:
        """Store an original and announce it, as the gateway does."""
        runtime = self.replicas[0]
        media_id = uuid.uuid4()
        ref = MediaRef(
            media_id=media_id,
            project_id=project_id,
            session_id=uuid.uuid4(),
            object_key=f"{project_id}/{media_id}/original",
            relative_path=path,
            ai_tagging=False,
            classification="UNCLASSIFIED",
        )
        await runtime.blobs.put_bytes("originals", ref.object_key, data)
        await self.send(
            MediaUploaded(
                media=ref,
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
                content_type="image/jpeg",
                session_capture_date=date(2024, 5, 17),
                project_timezone="Europe/Paris",
                source="drone",
                view_name="Castle",
                uploaded_at=datetime.now(UTC),
            )
        )
        return ref

    async def send(self, event: Event) -> None:
        await self.replicas[0].broker.publish(
            event.model_dump_json().encode(),
            event.topic,
            key=event.key().encode(),
            headers=cloudevent_headers(event, source="darkroom/test"),
        )

    async def latest(self, *refs: MediaRef, results: int | None = None) -> dict[uuid.UUID, Any]:
        """The latest result of each medium, once each has one (and ``results`` in all)."""
        wanted = {str(ref.media_id): ref.media_id for ref in refs}

        async def found() -> dict[uuid.UUID, Any] | None:
            records = await read_topic(self.settings, MediaDuplicates.topic, 1, everything=True)
            mine = [r for r in records if r.key.decode() in wanted]
            latest = {wanted[r.key.decode()]: json.loads(r.value) for r in mine}
            if len(latest) < len(wanted) or (results is not None and len(mine) < results):
                return None
            return latest

        return dict(await eventually(found, timeout=90))


@pytest.fixture
async def dedup(
    settings: CommonSettings, new_database: Callable[[], Awaitable[str]], unique: str
) -> AsyncIterator[Dedup]:
    name = f"dedup-test-{unique}"
    await create_topics(settings, dlq_topic(name))
    await skip_backlog(settings, name, (MediaUploaded.topic, DedupCommand.topic))
    service = Dedup(settings, name, await new_database())
    yield service
    for runtime in service.replicas:
        await runtime.stop()


async def test_exact_and_near_copies_share_a_group_and_other_photos_do_not(
    dedup: Dedup,
) -> None:
    await dedup.start(1)
    project, elsewhere = uuid.uuid4(), uuid.uuid4()
    original = await dedup.upload(project, FUJI.read_bytes(), "Survey/one.jpg")
    [first] = (await dedup.latest(original)).values()
    assert (first["outcome"], first["group_id"]) == ("ok", None)  # alone so far

    same = await dedup.upload(project, FUJI.read_bytes(), "Backup/one.jpg")
    await dedup.latest(original, same, results=3)  # the same bytes: the two start a group
    smaller = await dedup.upload(project, reencoded(FUJI), "Phone/one-small.jpg")
    neighbour = await dedup.upload(project, KODAK.read_bytes())  # another photo, pHash 8 away
    other_project = await dedup.upload(elsewhere, FUJI.read_bytes())
    # The original's second result: it learnt it has a duplicate.
    found = await dedup.latest(original, same, smaller, neighbour, other_project, results=6)

    group = found[original.media_id]["group_id"]
    assert group is not None
    assert found[same.media_id] | {"media": None} == {
        "media": None,
        "outcome": "ok",
        "reason_code": None,
        "reason": None,
        "group_id": group,
        "closest_media_id": str(original.media_id),
        "similarity": 1.0,
        "exact": True,
    }
    assert found[original.media_id]["closest_media_id"] == str(same.media_id)
    near = found[smaller.media_id]
    assert near["group_id"] == group and not near["exact"]
    assert near["closest_media_id"] in {str(original.media_id), str(same.media_id)}
    assert 0.8 < near["similarity"] <= 1.0  # 1.0 when even the hashes agree
    assert found[neighbour.media_id]["group_id"] is None
    assert found[other_project.media_id]["group_id"] is None  # groups never cross projects


async def test_a_broken_file_fails_alone_and_the_service_goes_on(dedup: Dedup) -> None:
    await dedup.start(1)
    project = uuid.uuid4()
    broken = await dedup.upload(project, KODAK.read_bytes()[:4096])  # cut off in its pixels
    good = await dedup.upload(project, KODAK.read_bytes())
    found = await dedup.latest(broken, good)
    assert found[broken.media_id]["outcome"] == "failed"
    assert found[broken.media_id]["reason"].endswith(".")
    assert found[good.media_id]["outcome"] == "ok"
    assert all(replica.policy.halted is None for replica in dedup.replicas)


async def test_two_replicas_given_copies_at_once_make_one_group(dedup: Dedup) -> None:
    """Each pair of copies is handled by the two replicas at the same moment."""
    await dedup.start(2)
    await asyncio.sleep(3)  # both members of the group before the uploads
    project = uuid.uuid4()
    photos = sorted(JPEGS.glob("*.jpg"))[:8]
    pairs = []
    for photo in photos:
        data = photo.read_bytes()
        pairs.append(await asyncio.gather(dedup.upload(project, data), dedup.upload(project, data)))
    found = await dedup.latest(*(ref for pair in pairs for ref in pair))
    groups = set()
    for one, two in pairs:
        assert together(found, one, two), (found[one.media_id], found[two.media_id])
        groups.add(found[one.media_id]["group_id"])
    assert len(groups) == len(pairs)


async def test_a_review_keeps_two_media_apart_whatever_comes_later(dedup: Dedup) -> None:
    await dedup.start(1)
    project = uuid.uuid4()
    first = await dedup.upload(project, FUJI.read_bytes())
    await dedup.latest(first)
    second = await dedup.upload(project, reencoded(FUJI))
    grouped = await dedup.latest(first, second, results=3)
    assert together(grouped, first, second)

    await dedup.send(
        DedupCommand(
            project_id=project,
            command=NotDuplicate(media_id=second.media_id, other_media_id=first.media_id),
        )
    )
    apart = await dedup.latest(first, second, results=5)
    assert apart[first.media_id]["group_id"] is None  # a group of one is no group
    assert apart[second.media_id]["group_id"] is None

    # Later copies of each: each joins its own copy, never the two together.
    third = await dedup.upload(project, FUJI.read_bytes())
    fourth = await dedup.upload(project, reencoded(FUJI))
    final = await dedup.latest(first, second, third, fourth, results=9)
    assert together(final, third, first)
    assert together(final, fourth, second)
    assert final[first.media_id]["group_id"] != final[second.media_id]["group_id"]
