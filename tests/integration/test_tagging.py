"""The tagging service on the real stack: folder and session tags, persons, corrections."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from darkroom.common.db import Database
from darkroom.common.events import (
    MediaRef,
    MediaTags,
    MediaUploaded,
    MergePersons,
    NamePerson,
    RemoveFace,
    TaggingCommand,
)
from darkroom.common.pool import WorkFailed
from darkroom.common.settings import CommonSettings, TaggingSettings
from darkroom.tagging import store as tagging_store
from darkroom.tagging.analysis import Analysis
from darkroom.tagging.app import create_runtime
from darkroom.tagging.handlers import recluster
from darkroom.tagging.worker import Analyser
from tests.unit.corpus_truth import CORPUS, FACES_PEOPLE

from .backbone import eventually, read_topic
from .consumers import Consumer, consumer

FACES = CORPUS / "faces"
PEOPLE = FACES / "people"
# Who is in each photo of the faces folder outside people/.
ROOT_TRUTH = {
    Path(path).name: people
    for path, people in FACES_PEOPLE.items()
    if not path.startswith("faces/people/")
}


def person_tags(result: dict[str, Any]) -> set[str]:
    return {
        tag["name"].removeprefix("person:")
        for tag in result["tags"]
        if tag["name"].startswith("person:")
    }


@asynccontextmanager
async def tagging_service(
    settings: CommonSettings,
    new_database: Callable[[], Awaitable[str]],
    unique: str,
    **overrides: Any,
) -> AsyncIterator[Consumer]:
    """One tagging replica (2 model workers) in a group and database of its own, started."""
    async with consumer(
        settings,
        new_database,
        unique,
        TaggingSettings,
        create_runtime,
        MediaTags,
        (MediaUploaded, TaggingCommand),
        workers=2,
        **overrides,
    ) as service:
        await service.start()
        yield service


@pytest.fixture
async def tagging(
    settings: CommonSettings, new_database: Callable[[], Awaitable[str]], unique: str
) -> AsyncIterator[Consumer]:
    async with tagging_service(settings, new_database, unique) as service:
        yield service


async def test_folders_and_the_session_give_tags_and_nothing_else_without_ai(
    tagging: Consumer,
) -> None:
    ref = await tagging.upload(
        uuid.uuid4(), (FACES / "obama.jpg").read_bytes(), "Project A/Camera B/2024/image.jpg"
    )
    [result] = (await tagging.latest(ref)).values()
    assert result["outcome"] == "ok"
    assert result["tags"] == [
        {"name": "Project A", "source": "folder"},
        {"name": "Camera B", "source": "folder"},
        {"name": "2024", "source": "folder"},
        {"name": "drone", "source": "session"},
        {"name": "Castle", "source": "session"},
    ]
    assert result["faces"] == []  # AI tagging was off: no face looked for


async def test_naming_one_photo_of_each_person_tags_all_their_photos(tagging: Consumer) -> None:
    project = uuid.uuid4()
    truth: dict[uuid.UUID, set[str]] = {}
    refs: list[MediaRef] = []
    first: dict[str, MediaRef] = {}
    for folder in sorted(PEOPLE.iterdir()):
        for photo in sorted(folder.iterdir()):
            ref = await tagging.upload(project, photo.read_bytes(), photo.name, ai_tagging=True)
            truth[ref.media_id] = {folder.name}
            refs.append(ref)
            first.setdefault(folder.name, ref)
    for name, people in ROOT_TRUTH.items():
        ref = await tagging.upload(project, (FACES / name).read_bytes(), name, ai_tagging=True)
        truth[ref.media_id] = people
        refs.append(ref)
    analysed = await tagging.latest(*refs, timeout=180)
    for name, ref in first.items():  # the user names one photo of each person
        [face] = analysed[ref.media_id]["faces"]
        person = uuid.UUID(face["person_id"])
        await tagging.send(
            TaggingCommand(project_id=project, command=NamePerson(person_id=person, name=name))
        )

    async def named() -> dict[uuid.UUID, Any] | None:
        now = await tagging.latest(*refs)
        return now if all(truth[m] <= person_tags(r) for m, r in now.items()) else None

    results = await eventually(named, timeout=120)
    for media_id, result in results.items():  # the right persons, and no wrong one
        assert person_tags(result) == truth[media_id], result["media"]["relative_path"]
        assert all(t["source"] == "ai.face" for t in result["tags"] if "person:" in t["name"])
    # Each person's mean, moved face by face as they arrived, is the mean of its faces now.
    pool = tagging.replicas[0].db.pool
    for person in await pool.fetch("SELECT * FROM persons WHERE project_id = $1", project):
        faces = await pool.fetch(
            "SELECT embedding FROM faces WHERE person_id = $1", person["person_id"]
        )
        assert person["face_count"] == len(faces)
        mean = np.mean([np.array(face["embedding"]) for face in faces], axis=0)
        assert np.allclose(person["centroid"], mean, atol=1e-9)


async def test_a_removed_face_stays_removed_through_re_clustering_and_reprocessing(
    tagging: Consumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = uuid.uuid4()
    one = await tagging.upload(
        project, (PEOPLE / "obama" / "obama.jpg").read_bytes(), "a.jpg", ai_tagging=True
    )
    await tagging.latest(one, timeout=120)
    two = await tagging.upload(
        project, (PEOPLE / "obama" / "obama2.jpg").read_bytes(), "b.jpg", ai_tagging=True
    )
    found = await tagging.latest(one, two, timeout=120)
    [face_one], [face_two] = found[one.media_id]["faces"], found[two.media_id]["faces"]
    assert face_one["person_id"] == face_two["person_id"]  # one person, found alone
    person = uuid.UUID(face_one["person_id"])
    await tagging.send(
        TaggingCommand(project_id=project, command=NamePerson(person_id=person, name="Barack"))
    )
    await tagging.send(
        TaggingCommand(
            project_id=project, command=RemoveFace(face_id=uuid.UUID(face_two["face_id"]))
        )
    )

    async def removed() -> dict[uuid.UUID, Any] | None:
        now = await tagging.latest(one, two)
        return now if now[two.media_id]["faces"][0]["person_id"] is None else None

    await eventually(removed, timeout=60)
    runtime = tagging.replicas[0]
    settings = TaggingSettings(face_distance=0.6)
    assert project in await _changed_projects(runtime.db)  # faces came and one was removed
    passes = 0
    faces_of_project = tagging_store.faces_of_project

    async def counted(tx: Any, project_id: uuid.UUID) -> Any:
        nonlocal passes
        passes += project_id == project  # (other tests' projects may be waiting too)
        return await faces_of_project(tx, project_id)

    monkeypatch.setattr(tagging_store, "faces_of_project", counted)
    # What the periodic pass does, by two replicas at once: the project is read once.
    await asyncio.gather(recluster(runtime.db, settings), recluster(runtime.db, settings))
    assert passes == 1
    assert project not in await _changed_projects(runtime.db)  # the next pass skips it
    final = await tagging.latest(one, two)
    assert person_tags(final[one.media_id]) == {"Barack"}
    assert person_tags(final[two.media_id]) == set()  # the user's word holds
    assert final[two.media_id]["faces"][0]["person_id"] is None

    # Processed again (a backfill): its face is found again, keeps its id, and stays removed.
    earlier = await _results(tagging, two)
    await tagging.reprocess(two)
    again = await eventually(lambda: _newer(tagging, two, earlier), timeout=120)
    assert [f["face_id"] for f in again["faces"]] == [face_two["face_id"]]
    assert again["faces"][0]["person_id"] is None and person_tags(again) == set()


async def test_a_medium_read_well_keeps_its_tags_when_a_read_again_is_cut_short(
    tagging: Consumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Processed again (a backfill) on a busy machine, its analysis passes the time limit: its
    faces, persons and tags as read before stand, and are said again."""
    one, face, named = await _joe(tagging)

    async def cut_short(self: Analyser, event: MediaUploaded) -> Analysis:
        raise WorkFailed("analysis_timeout", "Reading the file took longer than 60 s.")

    monkeypatch.setattr(Analyser, "analyse", cut_short)
    earlier = await _results(tagging, one)
    await tagging.reprocess(one)
    again = await eventually(lambda: _newer(tagging, one, earlier), timeout=120)
    assert again == named
    assert again["outcome"] == "ok" and [f["face_id"] for f in again["faces"]] == [face["face_id"]]


async def test_a_named_persons_face_stays_theirs_when_its_medium_is_read_again(
    tagging: Consumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Processed again (a backfill, a newer model): the face found at its place keeps the
    person a user named, even where the new reading lies far from them."""
    one, face, _ = await _joe(tagging)
    read = Analyser.analyse

    async def drifted(self: Analyser, event: MediaUploaded) -> Analysis:
        found = await read(self, event)
        return replace(
            found,
            faces=[replace(f, embedding=tuple(x + 0.5 for x in f.embedding)) for f in found.faces],
        )

    monkeypatch.setattr(Analyser, "analyse", drifted)
    earlier = await _results(tagging, one)
    await tagging.reprocess(one)
    again = await eventually(lambda: _newer(tagging, one, earlier), timeout=120)
    assert [(f["face_id"], f["person_name"]) for f in again["faces"]] == [(face["face_id"], "Joe")]
    assert person_tags(again) == {"Joe"}


async def _joe(tagging: Consumer) -> tuple[MediaRef, dict[str, Any], dict[str, Any]]:
    """A photo of Biden in a project of its own, his person named Joe: the medium, its face,
    and its result once tagged ``person:Joe``."""
    project = uuid.uuid4()
    one = await tagging.upload(
        project, (PEOPLE / "biden" / "biden.jpg").read_bytes(), "Trip/a.jpg", ai_tagging=True
    )
    [face] = (await tagging.latest(one, timeout=120))[one.media_id]["faces"]
    await tagging.send(
        TaggingCommand(
            project_id=project,
            command=NamePerson(person_id=uuid.UUID(face["person_id"]), name="Joe"),
        )
    )
    named = await eventually(
        lambda: _newer_where(tagging, one, lambda r: person_tags(r) == {"Joe"}), timeout=60
    )
    return one, face, named


async def _newer_where(tagging: Consumer, ref: MediaRef, wanted: Callable[[Any], bool]) -> Any:
    latest = (await tagging.latest(ref))[ref.media_id]
    return latest if wanted(latest) else None


async def test_a_named_person_whose_faces_were_all_removed_takes_no_new_face(
    tagging: Consumer,
) -> None:
    project = uuid.uuid4()
    one = await tagging.upload(
        project, (PEOPLE / "biden" / "biden.jpg").read_bytes(), "a.jpg", ai_tagging=True
    )
    [face] = (await tagging.latest(one, timeout=120))[one.media_id]["faces"]
    person = uuid.UUID(face["person_id"])
    await tagging.send(
        TaggingCommand(project_id=project, command=NamePerson(person_id=person, name="Joe"))
    )
    await tagging.send(
        TaggingCommand(project_id=project, command=RemoveFace(face_id=uuid.UUID(face["face_id"])))
    )

    async def removed() -> dict[uuid.UUID, Any] | None:
        now = await tagging.latest(one)
        return now if now[one.media_id]["faces"][0]["person_id"] is None else None

    await eventually(removed, timeout=60)
    # The same man's other photo: the face the user took from Joe must not make it Joe's.
    two = await tagging.upload(
        project, (PEOPLE / "biden" / "biden2.jpg").read_bytes(), "b.jpg", ai_tagging=True
    )
    [result] = (await tagging.latest(two, timeout=120)).values()
    assert person_tags(result) == set()
    assert result["faces"][0]["person_id"] != str(person)


async def _results(tagging: Consumer, ref: MediaRef) -> int:
    records = await read_topic(tagging.settings, tagging.results, 1, everything=True)
    return sum(record.key.decode() == str(ref.media_id) for record in records)


async def _newer(tagging: Consumer, ref: MediaRef, seen: int) -> Any:
    if await _results(tagging, ref) <= seen:
        return None
    return (await tagging.latest(ref))[ref.media_id]


async def test_two_faces_of_one_photo_are_never_one_person(
    settings: CommonSettings, new_database: Callable[[], Awaitable[str]], unique: str
) -> None:
    """So loose a distance that every face is near every person: the two faces of one photo
    still go to two persons, one of them to the person already known."""
    async with tagging_service(settings, new_database, unique, face_distance=2.0) as tagging:
        project = uuid.uuid4()
        one = await tagging.upload(
            project, (PEOPLE / "obama" / "obama.jpg").read_bytes(), "a.jpg", ai_tagging=True
        )
        [alone] = (await tagging.latest(one, timeout=120))[one.media_id]["faces"]
        two = await tagging.upload(
            project, (FACES / "two_people.jpg").read_bytes(), "b.jpg", ai_tagging=True
        )
        faces = (await tagging.latest(two, timeout=120))[two.media_id]["faces"]
    assert len(faces) == 2
    persons = [face["person_id"] for face in faces]
    assert len(set(persons)) == 2 and alone["person_id"] in persons


async def test_merging_two_persons_tags_the_photos_of_both(
    settings: CommonSettings, new_database: Callable[[], Awaitable[str]], unique: str
) -> None:
    # So strict a distance that every face starts a person of its own.
    async with tagging_service(settings, new_database, unique, face_distance=0.01) as tagging:
        project = uuid.uuid4()
        one = await tagging.upload(
            project, (PEOPLE / "biden" / "biden.jpg").read_bytes(), "a.jpg", ai_tagging=True
        )
        two = await tagging.upload(
            project, (PEOPLE / "biden" / "biden2.jpg").read_bytes(), "b.jpg", ai_tagging=True
        )
        found = await tagging.latest(one, two, timeout=120)
        first = uuid.UUID(found[one.media_id]["faces"][0]["person_id"])
        second = uuid.UUID(found[two.media_id]["faces"][0]["person_id"])
        assert first != second
        await tagging.send(
            TaggingCommand(project_id=project, command=NamePerson(person_id=first, name="Joe"))
        )
        await tagging.send(
            TaggingCommand(
                project_id=project, command=MergePersons(person_id=first, other_person_id=second)
            )
        )

        async def merged() -> dict[uuid.UUID, Any] | None:
            now = await tagging.latest(one, two)
            return now if person_tags(now[two.media_id]) == {"Joe"} else None

        final = await eventually(merged, timeout=60)
        assert person_tags(final[one.media_id]) == {"Joe"}
        assert final[two.media_id]["faces"][0]["person_id"] == str(first)


async def test_a_merge_holds_through_re_clustering(
    settings: CommonSettings, new_database: Callable[[], Awaitable[str]], unique: str
) -> None:
    """Three photos of one man, each a person of its own; the user merges the first two. The
    kept person's mean is now between both, and its own face clearly nearer the third photo's
    person: re-clustering leaves it where the user put it, so naming the person names both."""
    async with tagging_service(settings, new_database, unique, face_distance=0.01) as tagging:
        project = uuid.uuid4()
        refs = [
            await tagging.upload(project, (FACES / name).read_bytes(), name, ai_tagging=True)
            for name in ("obama.jpg", "obama2.jpg", "obama-480p.jpg")
        ]
        found = await tagging.latest(*refs, timeout=120)
        kept, gone, third = (uuid.UUID(found[r.media_id]["faces"][0]["person_id"]) for r in refs)
        assert len({kept, gone, third}) == 3
        await tagging.send(
            TaggingCommand(
                project_id=project, command=MergePersons(person_id=kept, other_person_id=gone)
            )
        )

        async def merged() -> dict[uuid.UUID, Any] | None:
            now = await tagging.latest(refs[1])
            return now if now[refs[1].media_id]["faces"][0]["person_id"] == str(kept) else None

        await eventually(merged, timeout=60)
        await recluster(tagging.replicas[0].db, TaggingSettings(face_distance=0.55))
        await tagging.send(
            TaggingCommand(project_id=project, command=NamePerson(person_id=kept, name="Barack"))
        )

        async def named() -> dict[uuid.UUID, Any] | None:
            now = await tagging.latest(*refs)
            return now if all(person_tags(now[r.media_id]) for r in refs[:2]) else None

        final = await eventually(named, timeout=60)
    assert [person_tags(final[r.media_id]) for r in refs] == [{"Barack"}, {"Barack"}, set()]
    assert final[refs[2].media_id]["faces"][0]["person_id"] == str(third)


async def _changed_projects(db: Database) -> list[uuid.UUID]:
    async with db.transaction() as tx:
        return await tagging_store.projects_changed(tx)
