"""The gateway learns what became of each medium, and says when a session is processed."""

from __future__ import annotations

import uuid

from darkroom.common.events import (
    Event,
    GeoPoint,
    MediaDuplicates,
    MediaMetadata,
    MediaRef,
    MediaTags,
    Outcome,
    Tag,
    TagSource,
    cloudevent_headers,
)
from darkroom.common.settings import CommonSettings

from .backbone import eventually
from .gateway import Gateway, jpeg
from .test_gateway import _events_of, add, new_project, new_session, put


async def send(gateway: Gateway, event: Event) -> None:
    await gateway.runtime.broker.publish(
        event.model_dump_json().encode(),
        event.topic,
        key=event.key().encode(),
        headers=cloudevent_headers(event, source="darkroom/test"),
    )


async def test_a_session_is_processed_once_every_step_answered_for_every_medium(
    gateway: Gateway, settings: CommonSettings
) -> None:
    project = await new_project(gateway, "capture", recipient_emails=["ops@example.org"])
    async with gateway.client(project.uploader) as client:
        session = await new_session(client, project, uploader_email="ana@example.org")
        photos = {f"Site/Cam/{n}.jpg": jpeg(n) for n in range(1, 3)}
        batch = await add(
            client, session, *({"path": p, "size": len(d)} for p, d in photos.items())
        )
        for entry in batch["files"]:
            assert (
                await put(client, session, entry["id"], photos[entry["path"]])
            ).status_code == 200
        assert (await client.post(f"/v1/sessions/{session}/submit")).status_code == 200
    uploaded = await _events_of(settings, "darkroom.media.uploaded.v1", session, 2)
    refs = [MediaRef.model_validate(event["media"]) for event in uploaded]
    first, second = sorted(refs, key=lambda ref: ref.relative_path)
    group = uuid.uuid4()
    results: list[Event] = [
        MediaMetadata(
            media=first,
            outcome=Outcome.OK,
            country_code="FR",
            gps=GeoPoint(latitude=48.8, longitude=2.3),
        ),
        MediaMetadata(
            media=second,
            outcome=Outcome.FAILED,
            reason_code="unreadable_image",
            reason="The image data is truncated.",
        ),
        MediaDuplicates(
            media=first,
            outcome=Outcome.OK,
            group_id=group,
            closest_media_id=second.media_id,
            similarity=0.97,
        ),
        MediaDuplicates(media=second, outcome=Outcome.OK),
        MediaTags(
            media=first,
            outcome=Outcome.OK,
            tags=[
                Tag(name="Site", source=TagSource.FOLDER),
                Tag(name="person:Ada", source=TagSource.AI_FACE),
            ],
        ),
    ]
    for event in results:
        await send(gateway, event)
    # Another gateway's medium, or another project's, changes nothing here.
    stranger = first.model_copy(update={"project_id": uuid.uuid4()})
    await send(gateway, MediaTags(media=stranger, outcome=Outcome.OK))

    async def steps() -> int | None:
        count = await gateway.runtime.db.pool.fetchval("SELECT count(*) FROM media_steps")
        return count if count == 5 else None

    await eventually(steps)
    processed = await gateway.runtime.db.pool.fetchval(
        "SELECT processed_at FROM sessions WHERE id = $1", uuid.UUID(session)
    )
    assert processed is None  # one step has not answered for the second medium yet

    await send(
        gateway,
        MediaTags(
            media=second, outcome=Outcome.OK, tags=[Tag(name="Cam", source=TagSource.FOLDER)]
        ),
    )
    [report] = await _events_of(settings, "darkroom.session.processed.v1", session, 1)
    assert report["processed"] == 2
    assert report["duplicates"] == 1
    assert sorted(report["tags"]) == ["Cam", "Site"]
    assert report["persons"] == ["Ada"]
    assert report["countries"] == ["FR"]
    assert report["failed"] == [
        {"relative_path": second.relative_path, "reason": "The image data is truncated."}
    ]
    assert report["uploader_email"] == "ana@example.org" and report["recipients"] == [
        "ops@example.org"
    ]

    # A later result updates the medium; the session is not announced again.
    await send(gateway, MediaTags(media=second, outcome=Outcome.OK))

    async def updated() -> bool | None:
        result = await gateway.runtime.db.pool.fetchval(
            "SELECT result FROM media_steps WHERE media_id = $1 AND step = 'tags'", second.media_id
        )
        return True if '"tags":[]' in result.replace(" ", "") else None

    await eventually(updated)
    await _events_of(settings, "darkroom.session.processed.v1", session, 1)  # still one
