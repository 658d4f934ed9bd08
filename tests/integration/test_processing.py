"""The gateway learns what became of each medium, says when a session is processed, and shows
it all in the catalog; corrections go on as command events."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from darkroom.common.events import (
    Event,
    Face,
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

from .backbone import eventually, read_topic
from .gateway import Gateway, jpeg
from .test_gateway import Project, _events_of, add, new_project, new_session, put

PERSON, FACE = uuid.uuid4(), uuid.uuid4()


async def send(gateway: Gateway, event: Event) -> None:
    await gateway.runtime.broker.publish(
        event.model_dump_json().encode(),
        event.topic,
        key=event.key().encode(),
        headers=cloudevent_headers(event, source="darkroom/test"),
    )


@dataclass
class Processed:
    project: Project
    session: str
    first: MediaRef  # processed: France, a duplicate group, Ada's face
    second: MediaRef  # its metadata failed
    group: uuid.UUID


async def upload_two(gateway: Gateway, settings: CommonSettings) -> Processed:
    project = await new_project(gateway, "capture", recipient_emails=["ops@example.org"])
    async with gateway.client(project.uploader) as client:
        session = await new_session(client, project, uploader_email="ana@example.org")
        photos = {f"Site/Cam/{n}.jpg": jpeg(n) for n in range(1, 3)}
        batch = await add(
            client, session, *({"path": p, "size": len(d)} for p, d in photos.items())
        )
        for entry in batch["files"]:
            done = await put(client, session, entry["id"], photos[entry["path"]])
            assert done.status_code == 200
        assert (await client.post(f"/v1/sessions/{session}/submit")).status_code == 200
    uploaded = await _events_of(settings, "darkroom.media.uploaded.v1", session, 2)
    refs = [MediaRef.model_validate(event["media"]) for event in uploaded]
    first, second = sorted(refs, key=lambda ref: ref.relative_path)
    return Processed(project, session, first, second, uuid.uuid4())


def results(done: Processed) -> list[Event]:
    first, second = done.first, done.second
    face = Face(face_id=FACE, person_id=PERSON, person_name="Ada", box=(0.1, 0.1, 0.3, 0.4))
    return [
        MediaMetadata(
            media=first,
            outcome=Outcome.OK,
            captured_at="2024-05-17T11:30:00+02:00",
            offset_source="exif",
            country_code="FR",
            gps=GeoPoint(latitude=48.8, longitude=2.3),
            thumbnail_key=f"{first.project_id}/{first.media_id}/thumbnail.webp",
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
            group_id=done.group,
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
            faces=[face],
        ),
    ]


async def steps_stored(gateway: Gateway, count: int) -> None:
    async def stored() -> int | None:
        found = await gateway.runtime.db.pool.fetchval("SELECT count(*) FROM media_steps")
        return found if found == count else None

    await eventually(stored)


async def test_a_session_is_processed_once_every_step_answered_for_every_medium(
    gateway: Gateway, settings: CommonSettings
) -> None:
    done = await upload_two(gateway, settings)
    for event in results(done):
        await send(gateway, event)
    # Another gateway's medium, or another project's, changes nothing here.
    stranger = done.first.model_copy(update={"project_id": uuid.uuid4()})
    await send(gateway, MediaTags(media=stranger, outcome=Outcome.OK))
    await steps_stored(gateway, 5)
    processed = await gateway.runtime.db.pool.fetchval(
        "SELECT processed_at FROM sessions WHERE id = $1", uuid.UUID(done.session)
    )
    assert processed is None  # one step has not answered for the second medium yet

    last = MediaTags(  # a second step failed on the second medium, for the same reason
        media=done.second,
        outcome=Outcome.FAILED,
        reason_code="unreadable_image",
        reason="The image data is truncated.",
    )
    await send(gateway, last)
    [report] = await _events_of(settings, "darkroom.session.processed.v1", done.session, 1)
    assert report["processed"] == 2
    assert report["duplicates"] == 1
    assert report["tags"] == ["Site"]
    assert report["persons"] == ["Ada"]
    assert report["countries"] == ["FR"]
    assert report["failed"] == [  # one entry a medium
        {"relative_path": done.second.relative_path, "reason": "The image data is truncated."}
    ]
    assert report["failed_count"] == 1
    assert report["uploader_email"] == "ana@example.org"
    assert report["recipients"] == ["ops@example.org"]

    # A later result updates the medium; the session is not announced again.
    await send(gateway, MediaTags(media=done.second, outcome=Outcome.OK))

    async def updated() -> bool | None:
        result = await gateway.runtime.db.pool.fetchval(
            "SELECT result FROM media_steps WHERE media_id = $1 AND step = 'tags'",
            done.second.media_id,
        )
        return True if json.loads(result)["tags"] == [] else None

    await eventually(updated)
    await _events_of(settings, "darkroom.session.processed.v1", done.session, 1)  # still one


async def test_a_session_that_sent_nothing_on_is_processed_when_submitted(
    gateway: Gateway, settings: CommonSettings
) -> None:
    """Every file failed at upload (no EXIF under ``capture``): no medium goes to processing,
    so none will answer; the session is processed at once rather than never."""
    project = await new_project(gateway, "capture")
    async with gateway.client(project.uploader) as client:
        session = await new_session(client, project)
        [entry] = (await add(client, session, {"path": "plain.png", "size": 1000}))["files"]
        assert entry["status"] == "refused"
        submitted = await client.post(f"/v1/sessions/{session}/submit")
        assert (submitted.json()["sent"], submitted.json()["failed"]) == (0, 1)
        [report] = await _events_of(settings, "darkroom.session.processed.v1", session, 1)
        assert (report["processed"], report["failed"]) == (0, [])  # its failure: at upload
        shown = (await client.get(f"/v1/sessions/{session}")).json()
        assert shown["processed_at"] is not None


async def test_the_catalog_shows_filters_and_forwards(
    gateway: Gateway, settings: CommonSettings
) -> None:
    done = await upload_two(gateway, settings)
    for event in results(done):
        await send(gateway, event)
    await steps_stored(gateway, 5)
    first, second = str(done.first.media_id), str(done.second.media_id)
    async with gateway.client(done.project.viewer) as viewer:

        async def ids(**query: Any) -> list[str]:
            answer = await viewer.get(f"/v1/projects/{done.project.id}/media", params=query)
            assert answer.status_code == 200, answer.text
            return [medium["id"] for medium in answer.json()]

        assert sorted(await ids()) == sorted([first, second])
        assert await ids(tag="Site") == [first]
        assert await ids(person="Ada") == [first]
        assert await ids(country="fr") == [first]
        assert await ids(duplicate_group=str(done.group)) == [first]
        assert await ids(captured_from="2024-05-17T09:00:00Z", captured_to="2024-05-18") == [first]
        async with gateway.client(done.project.admin) as admin:  # 09:30 UTC is 18:30 in Tokyo
            moved = await admin.patch(
                f"/v1/projects/{done.project.id}", json={"timezone": "Asia/Tokyo"}
            )
            assert moved.status_code == 200, moved.text
        assert await ids(captured_to="2024-05-17T18:00") == []  # a time without offset: Tokyo's
        assert await ids(captured_to="2024-05-17T19:00") == [first]
        assert await ids(status="processing_failed") == [second]
        assert await ids(status="processed") == [first]
        page = await ids(limit=1)
        assert len(page) == 1 and await ids(after=page[0]) == [
            m for m in [first, second] if m > page[0]
        ]

        shown = (await viewer.get(f"/v1/media/{first}")).json()
        assert shown["path"] == "Site/Cam/1.jpg" and shown["country_code"] == "FR"
        assert shown["captured_at"] == "2024-05-17T11:30:00+02:00"
        assert shown["offset_source"] == "exif" and shown["gps_lat"] == 48.8
        assert {"name": "person:Ada", "source": "ai.face"} in shown["tags"]
        assert shown["duplicate_group"] == str(done.group) and shown["similarity"] == 0.97
        assert f"{first}/thumbnail.webp" in shown["thumbnail_url"]
        assert shown["steps"]["metadata"]["outcome"] == "ok"
        assert shown["faces"][0]["person_id"] == str(PERSON)
        failed = (await viewer.get(f"/v1/media/{second}")).json()
        assert failed["steps"]["metadata"] == {
            "outcome": "failed",
            "reason_code": "unreadable_image",
            "reason": "The image data is truncated.",
        }

        people = (await viewer.get(f"/v1/projects/{done.project.id}/people")).json()
        assert people == [
            {"id": str(PERSON), "name": "Ada", "face_count": 1, "paths": ["Site/Cam/1.jpg"]}
        ]
        # A viewer may look, not change.
        refused = await viewer.post(
            f"/v1/projects/{done.project.id}/people/{PERSON}/name", json={"name": "Ada L."}
        )
        assert refused.status_code == 403

    other = await new_project(gateway, "capture")
    async with gateway.client(other.admin) as stranger:
        assert (await stranger.get(f"/v1/media/{first}")).status_code == 404
        assert (await stranger.post(f"/v1/media/{first}/reprocess")).status_code == 404

    async with gateway.client(done.project.uploader) as client:
        named = await client.post(
            f"/v1/projects/{done.project.id}/people/{PERSON}/name", json={"name": "Ada L."}
        )
        assert named.status_code == 202
        unknown = await client.post(
            f"/v1/projects/{done.project.id}/people/{uuid.uuid4()}/name", json={"name": "X"}
        )
        assert unknown.status_code == 404
        review = await client.post(
            f"/v1/media/{first}/not-duplicate", json={"other_media_id": second}
        )
        assert review.status_code == 202
        again = await client.post(
            f"/v1/projects/{done.project.id}/reprocess", json={"which": "failed"}
        )
        assert again.json() == {"queued": 1}

    project = str(done.project.id)
    commands = await _keyed(settings, "darkroom.tagging.commands.v1", project)
    assert commands[-1]["command"] == {
        "kind": "name_person",
        "person_id": str(PERSON),
        "name": "Ada L.",
    }
    reviews = await _keyed(settings, "darkroom.dedup.commands.v1", project)
    assert reviews[-1]["command"] == {
        "kind": "not_duplicate",
        "media_id": first,
        "other_media_id": second,
    }
    lane = await _keyed(settings, "darkroom.media.reprocess.v1", second)
    assert lane[-1]["media"]["relative_path"] == "Site/Cam/2.jpg"


async def _keyed(settings: CommonSettings, topic: str, key: str) -> list[dict[str, Any]]:
    async def found() -> list[dict[str, Any]] | None:
        records = await read_topic(settings, topic, 1, everything=True)
        mine = [json.loads(r.value) for r in records if r.key == key.encode()]
        return mine or None

    return list(await eventually(found))
