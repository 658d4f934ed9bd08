"""Media uploaded in, their tags out; persons kept per project, and a user's word is final.

Every medium gets its folder and session tags. With AI tagging on, its faces join persons —
the nearest person of the project within ``face_distance`` of the face, else a new unnamed
one — and exposed content makes it ``sensitive``. A named person's media carry
``person:<name>``; naming, merging or removing a face republishes every medium it touches.
The periodic re-clustering moves only faces no user has placed (a merge places the faces of
both persons) and never a face of a named person, never into a person a user took them from,
and never renames or drops a named person; a medium processed again keeps, face by face, what
a user said of it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import unicodedata
import uuid
from dataclasses import dataclass

import numpy as np

from darkroom.common.broker import Write
from darkroom.common.db import Database, Transaction, publish
from darkroom.common.events import (
    Face,
    MediaRef,
    MediaTags,
    MediaUploaded,
    MergePersons,
    NamePerson,
    Outcome,
    RemoveFace,
    Tag,
    TaggingCommand,
    TagSource,
)
from darkroom.common.imaging import Failure, attempt
from darkroom.common.settings import TaggingSettings
from darkroom.tagging import store
from darkroom.tagging.analysis import Analysis, FoundFace
from darkroom.tagging.folders import folder_tags, session_tags
from darkroom.tagging.persons import assign, regrouped
from darkroom.tagging.worker import Analyser

SOURCE = "darkroom/tagging"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deps:
    analyser: Analyser
    settings: TaggingSettings


async def on_uploaded(event: MediaUploaded, deps: Deps) -> Write:
    """Read the medium's faces and exposed content (when AI tagging is on); then, in the
    transaction, place its faces with persons and publish its tags."""
    ref = event.media
    tags = folder_tags(ref.relative_path) + session_tags(event.source, event.view_name)
    analysis: Analysis | None = None
    failure: tuple[str, str] | None = None
    cut_short: str | None = None
    if ref.ai_tagging:
        read = await attempt(deps.analyser.analyse(event))
        if isinstance(read, Failure):
            failure = (read.code, read.message)
            cut_short = read.code if read.transient else None
        else:
            analysis = read
    if analysis is not None and analysis.sensitive:
        tags += [Tag(name="sensitive", source=TagSource.AI_SAFETY)] + [
            Tag(name=f"sensitive:{label.lower()}", source=TagSource.AI_SAFETY)
            for label in analysis.sensitive
        ]

    async def write(tx: Transaction) -> None:
        await store.lock_project(tx, ref.project_id)
        earlier = await store.medium(tx, ref.media_id) if cut_short else None
        if earlier is not None and earlier["outcome"] == Outcome.OK:
            # processed again, cut short: its tags and faces as read before stand
            log.warning(
                "reading the medium again failed (%s); its earlier result stands",
                cut_short,
                extra={"media_id": str(ref.media_id)},
            )
            await announce(tx, ref.media_id)
            return
        await store.save_medium(tx, ref, tags, failure)
        if analysis is not None:
            # A medium read again (reprocessed) has its faces found again; each one found where
            # it was before keeps its id and what a user said of it.
            before = await store.faces_of_medium(tx, ref.media_id)
            left = await store.drop_faces(tx, ref.media_id)
            pairs = [(found, _same_face(found.box, before)) for found in analysis.faces]
            placed = await _place(tx, ref.project_id, pairs, deps.settings.face_distance)
            for (found, earlier), person_id in zip(pairs, placed, strict=True):
                await store.add_face(tx, ref, found, person_id, earlier)
            for person_id in left:
                await store.refresh_person(tx, person_id)
            if analysis.faces or left:
                await store.changed(tx, ref.project_id)
        await announce(tx, ref.media_id)

    return write


async def _place(
    tx: Transaction,
    project_id: uuid.UUID,
    pairs: list[tuple[FoundFace, store.StoredFace | None]],
    distance: float,
) -> list[uuid.UUID | None]:
    """The person of each face of one picture (with the face found at its place before, if
    any): where a user placed or removed it, or named its person, it stays so; else as
    ``assign`` says, a new person where it says none."""
    placed: list[uuid.UUID | None] = [None] * len(pairs)
    taken: set[uuid.UUID] = set()
    waiting: list[int] = []
    for index, (_, earlier) in enumerate(pairs):
        if earlier is not None and (earlier.decided or earlier.person_name is not None):
            placed[index] = earlier.person_id
            taken |= {earlier.person_id} if earlier.person_id else set()
        else:
            waiting.append(index)
    faces = [
        (np.array(found.embedding), {e.rejected_person} if e and e.rejected_person else set())
        for found, e in (pairs[index] for index in waiting)
    ]
    persons = await store.persons(tx, project_id)
    for index, (embedding, _), person_id in zip(
        waiting, faces, assign(faces, persons, distance, taken), strict=True
    ):
        placed[index] = person_id or await store.new_person(tx, project_id, embedding)
    return placed


async def on_command(command: TaggingCommand, tx: Transaction, deps: Deps) -> None:
    """A user's correction; ids of another project are ignored as unknown."""
    project_id, what = command.project_id, command.command
    await store.lock_project(tx, project_id)
    affected: set[uuid.UUID] = set()
    if isinstance(what, NamePerson):
        name = unicodedata.normalize("NFC", what.name).strip()
        if not name or await store.person(tx, project_id, what.person_id) is None:
            log.warning("name_person: unknown person or empty name", extra={"id": what.person_id})
            return
        await store.name_person(tx, what.person_id, name)
        affected = await store.media_of_persons(tx, {what.person_id})
    elif isinstance(what, MergePersons):
        kept = await store.person(tx, project_id, what.person_id)
        gone = await store.person(tx, project_id, what.other_person_id)
        if kept is None or gone is None or kept["person_id"] == gone["person_id"]:
            log.warning("merge_persons: unknown persons", extra={"id": what.person_id})
            return
        both = [kept["person_id"], gone["person_id"]]
        affected = await store.media_of_persons(tx, set(both))
        # The user placed the faces of both: the kept person's own must not drift away either
        # when its mean moves between the two.
        faces = [f.face_id for p in both for f in await store.faces_of_person(tx, p)]
        await store.move_faces(tx, faces, kept["person_id"], decided=True)
        if kept["name"] is None and gone["name"] is not None:
            await store.name_person(tx, kept["person_id"], gone["name"])
        await store.delete_person(tx, gone["person_id"])
        await store.refresh_person(tx, kept["person_id"])
        await store.changed(tx, project_id)
    elif isinstance(what, RemoveFace):
        face = await store.face(tx, project_id, what.face_id)
        if face is None or face.person_id is None:
            log.warning("remove_face: unknown face", extra={"id": what.face_id})
            return
        await store.move_faces(
            tx, [face.face_id], None, decided=True, rejected_person=face.person_id
        )
        await store.refresh_person(tx, face.person_id)
        await store.changed(tx, project_id)
        affected = {face.media_id}
    for media_id in sorted(affected):
        await announce(tx, media_id)


async def recluster(db: Database, settings: TaggingSettings) -> None:
    """Move faces no user placed, of unnamed persons, to a clearly nearer person; republish
    what changed. Only projects whose faces changed since their last pass are read."""
    async with db.transaction() as tx:
        projects = await store.projects_changed(tx)
    for project_id in projects:
        async with db.transaction() as tx:
            await store.lock_project(tx, project_id)
            if not await store.still_changed(tx, project_id):
                continue
            persons = await store.persons(tx, project_id)
            everyone = await store.faces_of_project(tx, project_id)
            moved: dict[uuid.UUID, list[uuid.UUID]] = {}
            touched: set[uuid.UUID] = set()
            affected: set[uuid.UUID] = set()
            moves = await asyncio.to_thread(regrouped, everyone, persons, settings.face_distance)
            for face, person_id in moves:
                moved.setdefault(person_id, []).append(face.face_id)
                touched |= {person_id, face.person_id} if face.person_id else {person_id}
                affected.add(face.media_id)
            for person_id, faces in moved.items():
                await store.move_faces(tx, faces, person_id, decided=False)
            for person_id in touched:
                await store.refresh_person(tx, person_id)
            for media_id in sorted(affected):
                await announce(tx, media_id)
            await store.clustered(tx, project_id)
            if affected:
                log.info("re-clustered", extra={"project_id": project_id, "media": len(affected)})


SAME_FACE = 0.5
"""Boxes overlapping this much (intersection over union) are one face found again."""


def _same_face(
    box: tuple[float, float, float, float], earlier: list[store.StoredFace]
) -> store.StoredFace | None:
    """The face found before at this place in the picture, taken from ``earlier``."""
    best, overlap = None, SAME_FACE
    for face in earlier:
        if (share := _overlap(box, face.box)) >= overlap:
            best, overlap = face, share
    if best is not None:
        earlier.remove(best)
    return best


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    both = width * height
    return both / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - both)


async def announce(tx: Transaction, media_id: uuid.UUID) -> None:
    """Publish a medium's complete tags and faces as they stand now."""
    row = await store.medium(tx, media_id)
    faces = await store.faces_of_medium(tx, media_id)
    tags = [Tag.model_validate(tag) for tag in json.loads(row["tags"])]
    names = sorted({f.person_name for f in faces if f.person_name})
    tags += [Tag(name=f"person:{name}", source=TagSource.AI_FACE) for name in names]
    result = MediaTags(
        media=MediaRef.model_validate_json(row["ref"]),
        outcome=Outcome(row["outcome"]),
        reason_code=row["reason_code"],
        reason=row["reason"],
        tags=tags,
        faces=[
            Face(face_id=f.face_id, person_id=f.person_id, person_name=f.person_name, box=f.box)
            for f in faces
        ],
    )
    await publish(tx, result, source=SOURCE)
