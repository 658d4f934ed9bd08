"""The metadata service on the real stack: an upload event in, a metadata result out."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

from darkroom.common.events import (
    MediaMetadata,
    MediaRef,
    MediaUploaded,
    cloudevent_headers,
    dlq_topic,
)
from darkroom.common.pool import WorkFailed
from darkroom.common.runtime import Runtime
from darkroom.common.settings import CommonSettings, MetadataSettings
from darkroom.common.topics import skip_backlog
from darkroom.metadata.app import create_runtime
from darkroom.metadata.worker import Extractor

from .backbone import eventually, read_topic
from .conftest import create_topics

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
CARDIFF = CORPUS / "cameras" / "jpg" / "Apple iPhone 6 plus.jpg"
BROKEN = sorted(p for p in (CORPUS / "broken").rglob("*") if p.is_file())


@pytest.fixture
async def metadata(
    settings: CommonSettings, new_database: Callable[[], Awaitable[str]], unique: str
) -> AsyncIterator[Runtime]:
    """The metadata service in this process, in a consumer group of its own."""
    name = f"metadata-test-{unique}"
    probe = type(
        "ProbeMetadataSettings",
        (MetadataSettings,),
        {"service": name, "__annotations__": {"service": ClassVar[str]}},
    )
    await create_topics(settings, dlq_topic(name))
    await skip_backlog(settings, name, (MediaUploaded.topic,))  # others' events
    runtime = create_runtime(
        probe(
            **settings.model_dump(),
            database_url=await new_database(),
            http_port=0,
            workers=2,  # four consumers of the group, as deployed
            extraction_timeout_seconds=30,
        )
    )
    await runtime.start()
    yield runtime
    await runtime.stop()


async def upload(
    runtime: Runtime, data: bytes | None, *, content_type: str = "image/jpeg"
) -> MediaRef:
    """Store an original (unless ``data`` is None) and announce it, as the gateway does."""
    ref = MediaRef(
        media_id=uuid.uuid4(),
        project_id=uuid.uuid4(),
        session_id=uuid.uuid4(),
        object_key="",
        relative_path="Survey/Cardiff/photo.jpg",
        ai_tagging=False,
        classification="UNCLASSIFIED",
    )
    ref = ref.model_copy(update={"object_key": f"{ref.project_id}/{ref.media_id}/original"})
    if data is not None:
        await runtime.blobs.put_bytes("originals", ref.object_key, data)
    await announce(runtime, ref, len(data or b""), content_type)
    return ref


async def announce(runtime: Runtime, ref: MediaRef, size: int, content_type: str) -> None:
    """Announce a stored original (again: as an event of its own, processed again)."""
    event = MediaUploaded(
        media=ref,
        sha256="0" * 64,
        size=size,
        content_type=content_type,
        session_capture_date=date(2024, 5, 17),
        project_timezone="Europe/Paris",
        source="drone",
        view_name="Castle",
        uploaded_at=datetime.now(UTC),
    )
    await runtime.broker.publish(
        event.model_dump_json().encode(),
        MediaUploaded.topic,
        key=event.key().encode(),
        headers=cloudevent_headers(event, source="darkroom/test"),
    )


async def result_for(
    settings: CommonSettings, media_id: uuid.UUID, results: int = 1
) -> list[dict[str, Any]]:
    async def found() -> list[dict[str, Any]] | None:
        records = await read_topic(settings, MediaMetadata.topic, 1, everything=True)
        mine = [json.loads(r.value) for r in records if r.key == str(media_id).encode()]
        return mine if len(mine) >= results else None

    return list(await eventually(found, timeout=60))


async def test_a_photo_gets_its_time_place_camera_and_thumbnails(
    metadata: Runtime, settings: CommonSettings
) -> None:
    ref = await upload(metadata, CARDIFF.read_bytes())
    [result] = await result_for(settings, ref.media_id)
    assert result["outcome"] == "ok", result
    # No offset in the file: the zone at its GPS position (Cardiff, after BST ended) gives it.
    captured = datetime.fromisoformat(result["captured_at"])
    assert captured == datetime(2014, 10, 31, 13, 32, 37, 539000, tzinfo=UTC)  # SubSecTime too
    assert captured.utcoffset() == timedelta(0)
    assert result["offset_source"] == "gps_timezone"
    assert (result["make"], result["model"]) == ("Apple", "iPhone 6 Plus")
    assert result["gps"]["latitude"] == pytest.approx(51.482995, abs=1e-5)
    assert result["gps"]["longitude"] == pytest.approx(-3.185337, abs=1e-5)
    assert result["country_code"] == "GB"
    thumbnail = await metadata.blobs.get("derived", result["thumbnail_key"])
    assert thumbnail[:4] == b"RIFF" and thumbnail[8:12] == b"WEBP"
    stored = await metadata.db.pool.fetchrow(
        "SELECT country_code, offset_source FROM media_metadata WHERE media_id = $1", ref.media_id
    )
    assert dict(stored) == {"country_code": "GB", "offset_source": "gps_timezone"}


async def test_broken_files_fail_alone_and_the_consumer_goes_on(
    metadata: Runtime, settings: CommonSettings
) -> None:
    broken = [
        await upload(
            metadata,
            path.read_bytes(),
            content_type="image/heif" if path.suffix == ".heif" else "image/jpeg",
        )
        for path in BROKEN
    ]
    assert len(broken) == 102  # every damaged file of the corpus
    good = await upload(metadata, CARDIFF.read_bytes())
    [after] = await result_for(settings, good.media_id)
    assert after["outcome"] == "ok"

    async def every_result() -> dict[str, Any] | None:
        records = await read_topic(settings, MediaMetadata.topic, 1, everything=True)
        found = {r.key.decode(): json.loads(r.value) for r in records}
        return found if all(str(ref.media_id) in found for ref in broken) else None

    results = await eventually(every_result, timeout=120)
    for ref in broken:  # a result for each: the consumer never stopped
        result = results[str(ref.media_id)]
        if result["outcome"] == "failed":
            assert result["reason_code"] and result["reason"].endswith("."), result
    assert metadata.policy.halted is None


async def test_a_missing_original_is_a_failed_result_not_a_dead_letter(
    metadata: Runtime, settings: CommonSettings
) -> None:
    ref = await upload(metadata, None)  # announced, never stored
    [result] = await result_for(settings, ref.media_id)
    assert (result["outcome"], result["reason_code"]) == ("failed", "missing_original")
    empty = await upload(metadata, b"")
    [result] = await result_for(settings, empty.media_id)
    assert (result["outcome"], result["reason_code"]) == ("failed", "unsupported_format")


async def test_a_video_gets_its_duration_size_and_a_poster_thumbnail(
    metadata: Runtime, settings: CommonSettings
) -> None:
    clip = CORPUS / "faces" / "short_hamilton_clip.mp4"
    ref = await upload(metadata, clip.read_bytes(), content_type="video/mp4")
    [result] = await result_for(settings, ref.media_id)
    assert result["outcome"] == "ok", result
    assert result["duration_seconds"] == pytest.approx(10.008, abs=0.05)
    assert (result["width"], result["height"]) == (640, 360)
    # No date in the file: the session's capture date, in the project's zone.
    assert result["offset_source"] == "session_date"
    assert result["captured_at"].startswith("2024-05-17T00:00:00")
    poster = await metadata.blobs.get("derived", result["thumbnail_key"])
    assert poster[8:12] == b"WEBP"


async def test_no_transaction_is_open_while_a_medium_is_read(
    metadata: Runtime, settings: CommonSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    reading, release = asyncio.Event(), asyncio.Event()
    extract = Extractor.extract

    async def slow(self: Extractor, event: MediaUploaded) -> Any:
        reading.set()
        await release.wait()  # a long read, as a large file's in the worker pool
        return await extract(self, event)

    monkeypatch.setattr(Extractor, "extract", slow)
    ref = await upload(metadata, CARDIFF.read_bytes())
    await asyncio.wait_for(reading.wait(), timeout=60)
    held = await metadata.db.pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND state LIKE 'idle in transaction%'"
        # the outbox relay's poll (between its lock and its read) is not the medium's read
        " AND query NOT LIKE '%pg_try_advisory_xact_lock%' AND query NOT LIKE '%FROM outbox%'"
    )
    release.set()
    [result] = await result_for(settings, ref.media_id)
    assert held == 0  # no connection, no snapshot held for as long as the read takes
    assert result["outcome"] == "ok"


async def test_a_medium_read_well_keeps_its_result_when_a_read_again_is_cut_short(
    metadata: Runtime, settings: CommonSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Processed again (a backfill) on a busy machine, its read passes the time limit: the
    result read before stands and is said again. A medium never read well fails as before."""
    data = CARDIFF.read_bytes()
    ref = await upload(metadata, data)
    [first] = await result_for(settings, ref.media_id)
    assert first["outcome"] == "ok" and first["model"] == "iPhone 6 Plus"

    async def cut_short(self: Extractor, event: MediaUploaded) -> Any:
        raise WorkFailed("extraction_timeout", "Reading the file took longer than 30 s.")

    monkeypatch.setattr(Extractor, "extract", cut_short)
    await announce(metadata, ref, len(data), "image/jpeg")
    _, again = await result_for(settings, ref.media_id, results=2)
    assert again == first
    stored = await metadata.db.pool.fetchrow(
        "SELECT outcome, model, captured_at FROM media_metadata WHERE media_id = $1", ref.media_id
    )
    assert (stored["outcome"], stored["model"]) == ("ok", "iPhone 6 Plus")

    never = await upload(metadata, data)
    [failed] = await result_for(settings, never.media_id)
    assert (failed["outcome"], failed["reason_code"]) == ("failed", "extraction_timeout")
