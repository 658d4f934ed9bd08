"""The tagging service's SQL: media and their tags, faces, and each project's persons."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from darkroom.common.db import Transaction
from darkroom.common.events import MediaRef, Tag
from darkroom.tagging.analysis import FoundFace

PROJECT_LOCK = 0x74616767  # "tagg": the first key of this service's advisory locks


@dataclass(frozen=True)
class Person:
    person_id: uuid.UUID
    name: str | None
    centroid: np.ndarray  # the mean embedding of its faces


@dataclass(frozen=True)
class StoredFace:
    face_id: uuid.UUID
    media_id: uuid.UUID
    box: tuple[float, float, float, float]
    embedding: np.ndarray
    person_id: uuid.UUID | None
    person_name: str | None
    decided: bool
    rejected_person: uuid.UUID | None


async def lock_project(tx: Transaction, project_id: uuid.UUID) -> None:
    """Serialise person clustering within a project until the transaction ends."""
    await tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))", PROJECT_LOCK, str(project_id)
    )


async def save_medium(
    tx: Transaction, ref: MediaRef, tags: list[Tag], failure: tuple[str, str] | None
) -> None:
    await tx.execute(
        "INSERT INTO media (media_id, project_id, ref, tags, outcome, reason_code, reason)"
        " VALUES ($1, $2, $3::jsonb, $4::jsonb, $5, $6, $7)"
        " ON CONFLICT (media_id) DO UPDATE SET ref = EXCLUDED.ref, tags = EXCLUDED.tags,"
        " outcome = EXCLUDED.outcome, reason_code = EXCLUDED.reason_code,"
        " reason = EXCLUDED.reason, updated_at = now()",
        ref.media_id,
        ref.project_id,
        ref.model_dump_json(),
        json.dumps([tag.model_dump(mode="json") for tag in tags]),
        "failed" if failure else "ok",
        failure[0] if failure else None,
        failure[1] if failure else None,
    )


async def medium(tx: Transaction, media_id: uuid.UUID) -> Any:
    return await tx.fetchrow("SELECT * FROM media WHERE media_id = $1", media_id)


async def persons(tx: Transaction, project_id: uuid.UUID) -> list[Person]:
    """The persons a face may join: those with faces (a named one left without any has no
    mean to be near)."""
    rows = await tx.fetch(
        "SELECT person_id, name, centroid FROM persons WHERE project_id = $1 AND face_count > 0"
        " ORDER BY created_at, person_id",
        project_id,
    )
    return [Person(row["person_id"], row["name"], np.array(row["centroid"])) for row in rows]


async def person(tx: Transaction, project_id: uuid.UUID, person_id: uuid.UUID) -> Any:
    return await tx.fetchrow(
        "SELECT * FROM persons WHERE project_id = $1 AND person_id = $2", project_id, person_id
    )


async def new_person(tx: Transaction, project_id: uuid.UUID, embedding: np.ndarray) -> uuid.UUID:
    person_id = uuid.uuid4()
    await tx.execute(
        "INSERT INTO persons (person_id, project_id, centroid) VALUES ($1, $2, $3)",
        person_id,
        project_id,
        embedding.tolist(),
    )
    return person_id


async def add_face(
    tx: Transaction,
    ref: MediaRef,
    face: FoundFace,
    person_id: uuid.UUID | None,
    earlier: StoredFace | None = None,
) -> None:
    """The face (the one found ``earlier`` at its place keeps its id and a user's say), and its
    person's mean moved towards it (the count and mean, not every face)."""
    await tx.execute(
        "INSERT INTO faces (face_id, media_id, project_id, box, embedding, person_id, decided,"
        " rejected_person) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        earlier.face_id if earlier else uuid.uuid4(),
        ref.media_id,
        ref.project_id,
        list(face.box),
        list(face.embedding),
        person_id,
        earlier.decided if earlier else False,
        earlier.rejected_person if earlier else None,
    )
    if person_id is None:
        return
    await tx.execute(
        "UPDATE persons SET face_count = face_count + 1, centroid = ARRAY("
        " SELECT (c * face_count + e) / (face_count + 1)"
        " FROM unnest(centroid, $2::float8[]) WITH ORDINALITY AS u(c, e, i) ORDER BY i)"
        " WHERE person_id = $1",
        person_id,
        list(face.embedding),
    )


async def faces_of_medium(tx: Transaction, media_id: uuid.UUID) -> list[StoredFace]:
    return _faces(await tx.fetch(_FACES + " WHERE f.media_id = $1 ORDER BY f.box[1]", media_id))


async def faces_of_project(tx: Transaction, project_id: uuid.UUID) -> list[StoredFace]:
    return _faces(await tx.fetch(_FACES + " WHERE f.project_id = $1", project_id))


async def faces_of_person(tx: Transaction, person_id: uuid.UUID) -> list[StoredFace]:
    return _faces(await tx.fetch(_FACES + " WHERE f.person_id = $1", person_id))


async def face(tx: Transaction, project_id: uuid.UUID, face_id: uuid.UUID) -> StoredFace | None:
    rows = await tx.fetch(
        _FACES + " WHERE f.project_id = $1 AND f.face_id = $2", project_id, face_id
    )
    return _faces(rows)[0] if rows else None


async def drop_faces(tx: Transaction, media_id: uuid.UUID) -> set[uuid.UUID]:
    """Forget a medium's faces; returns the persons they belonged to."""
    rows = await tx.fetch("DELETE FROM faces WHERE media_id = $1 RETURNING person_id", media_id)
    return {row["person_id"] for row in rows if row["person_id"]}


async def move_faces(
    tx: Transaction,
    face_ids: list[uuid.UUID],
    person_id: uuid.UUID | None,
    *,
    decided: bool,
    rejected_person: uuid.UUID | None = None,
) -> None:
    await tx.execute(
        "UPDATE faces SET person_id = $2, decided = decided OR $3,"
        " rejected_person = coalesce($4, rejected_person) WHERE face_id = ANY($1)",
        face_ids,
        person_id,
        decided,
        rejected_person,
    )


async def refresh_person(tx: Transaction, person_id: uuid.UUID) -> None:
    """Its mean and count from its faces now, after faces left it or were moved (a face
    added moves them itself); an unnamed person left without faces is dropped, a named one
    kept with none (it joins no face until a user merges one into it)."""
    rows = await tx.fetch("SELECT embedding FROM faces WHERE person_id = $1", person_id)
    if rows:
        centroid = np.mean([np.array(row["embedding"]) for row in rows], axis=0)
        await tx.execute(
            "UPDATE persons SET centroid = $2, face_count = $3 WHERE person_id = $1",
            person_id,
            centroid.tolist(),
            len(rows),
        )
    else:
        await tx.execute("DELETE FROM persons WHERE person_id = $1 AND name IS NULL", person_id)
        await tx.execute("UPDATE persons SET face_count = 0 WHERE person_id = $1", person_id)


async def name_person(tx: Transaction, person_id: uuid.UUID, name: str) -> None:
    await tx.execute("UPDATE persons SET name = $2 WHERE person_id = $1", person_id, name)


async def delete_person(tx: Transaction, person_id: uuid.UUID) -> None:
    await tx.execute("DELETE FROM persons WHERE person_id = $1", person_id)


async def media_of_persons(tx: Transaction, person_ids: set[uuid.UUID]) -> set[uuid.UUID]:
    rows = await tx.fetch(
        "SELECT DISTINCT media_id FROM faces WHERE person_id = ANY($1)", list(person_ids)
    )
    return {row["media_id"] for row in rows}


async def changed(tx: Transaction, project_id: uuid.UUID) -> None:
    """The project's faces changed (under its lock): the next re-clustering pass reads them."""
    await tx.execute(
        "INSERT INTO cluster_changes (project_id, changes) VALUES ($1, 1) ON CONFLICT (project_id)"
        " DO UPDATE SET changes = cluster_changes.changes + 1",
        project_id,
    )


async def projects_changed(tx: Transaction) -> list[uuid.UUID]:
    """Projects whose faces changed since they were last re-clustered."""
    rows = await tx.fetch("SELECT project_id FROM cluster_changes WHERE changes > clustered")
    return [row["project_id"] for row in rows]


async def still_changed(tx: Transaction, project_id: uuid.UUID) -> bool:
    """Whether the project's faces changed since its last pass (asked under its lock: another
    replica may have just re-clustered it)."""
    return bool(
        await tx.fetchval(
            "SELECT changes > clustered FROM cluster_changes WHERE project_id = $1", project_id
        )
    )


async def clustered(tx: Transaction, project_id: uuid.UUID) -> None:
    """The project was re-clustered as its faces stand (under its lock)."""
    await tx.execute(
        "UPDATE cluster_changes SET clustered = changes WHERE project_id = $1", project_id
    )


_FACES = (
    "SELECT f.face_id, f.media_id, f.box, f.embedding, f.person_id, p.name AS person_name,"
    " f.decided, f.rejected_person FROM faces f LEFT JOIN persons p USING (person_id)"
)


def _faces(rows: list[Any]) -> list[StoredFace]:
    return [
        StoredFace(
            face_id=row["face_id"],
            media_id=row["media_id"],
            box=(row["box"][0], row["box"][1], row["box"][2], row["box"][3]),
            embedding=np.array(row["embedding"]),
            person_id=row["person_id"],
            person_name=row["person_name"],
            decided=row["decided"],
            rejected_person=row["rejected_person"],
        )
        for row in rows
    ]
