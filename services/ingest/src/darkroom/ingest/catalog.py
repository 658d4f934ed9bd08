"""The catalog: what became of every medium, and a user's corrections, forwarded.

Everything here reads the step results the gateway keeps (``media_steps``, see
``processing.py``) — never another service's tables — and forwards corrections as command
events through the outbox. Every id in a path or a body is checked against the caller's
project; an id of another project is answered as one that does not exist.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import asyncpg
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from darkroom.common.db import publish
from darkroom.common.events import (
    DedupCommand,
    MediaReprocess,
    MergePersons,
    NamePerson,
    NotDuplicate,
    RemoveFace,
    TaggingCommand,
)
from darkroom.ingest import processing, store
from darkroom.ingest.api import CallerDep, RuntimeDep, require_visible, uploaded_event
from darkroom.ingest.errors import Refused, not_found
from darkroom.ingest.keys import Caller, Role
from darkroom.ingest.schemas import FileStatus, Text

SOURCE = "darkroom/ingest"
PRESIGNED_FOR = timedelta(hours=1)
router = APIRouter(prefix="/v1", tags=["catalog"])
Status = FileStatus | Literal["processing", "processed", "processing_failed"]
"""A medium's status: its file's until the session is submitted, then its processing's."""


class TagOut(BaseModel):
    name: str
    source: str


class MediaSummary(BaseModel):
    id: uuid.UUID
    session_id: uuid.UUID
    path: str = Field(description="The relative path as uploaded, top folder included.")
    status: Status = Field(
        description="queued, uploading, failed or skipped_duplicate (upload), "
        "processing, processed or processing_failed (after submit)."
    )
    captured_at: str | None
    offset_source: str | None
    make: str | None
    model: str | None
    width: int | None
    height: int | None
    gps_lat: float | None
    gps_lon: float | None
    country_code: str | None
    region: str | None
    tags: list[TagOut]
    duplicate_group: uuid.UUID | None
    similarity: float | None
    reason_code: str | None = Field(
        description="Why the file failed, or the first step that failed (else null)."
    )
    reason: str | None = Field(description="The same, in a sentence.")


class StepOut(BaseModel):
    outcome: str
    reason_code: str | None
    reason: str | None


class MediaFull(MediaSummary):
    steps: dict[str, StepOut] = Field(description="metadata, duplicates, tags: what each said.")
    metadata: dict[str, Any] | None
    duplicates: dict[str, Any] | None
    faces: list[dict[str, Any]]
    thumbnail_url: str | None = Field(description="Presigned, valid for an hour.")
    preview_url: str | None = Field(description="Presigned, valid for an hour.")


class Person(BaseModel):
    id: uuid.UUID
    name: str | None
    face_count: int
    paths: list[str]


class Naming(BaseModel):
    name: Text = Field(min_length=1, max_length=200)


class Merging(BaseModel):
    other_person_id: uuid.UUID


class Review(BaseModel):
    other_media_id: uuid.UUID


class Reprocessing(BaseModel):
    which: str = Field(
        "failed_or_missing",
        pattern="^(failed_or_missing|failed|missing)$",
        description="Media a step failed on, media a step never answered for, or both.",
    )


class Queued(BaseModel):
    queued: int


STATUS = """CASE WHEN f.status <> 'uploaded' THEN f.status
     WHEN s.submitted_at IS NULL THEN 'uploaded'
     WHEN 'failed' IN (m.outcome, d.outcome, t.outcome) THEN 'processing_failed'
     WHEN m.outcome IS NULL OR d.outcome IS NULL OR t.outcome IS NULL THEN 'processing'
     ELSE 'processed' END"""
_MEDIA = f"""
SELECT f.id, f.session_id, f.project_id, f.relative_path, f.status AS file_status,
       f.reason_code AS f_code, f.reason AS f_reason,
       s.submitted_at, {STATUS} AS status,
       m.result AS metadata, m.outcome AS m_outcome, m.reason_code AS m_code,
       m.reason AS m_reason,
       d.result AS duplicates, d.outcome AS d_outcome, d.reason_code AS d_code,
       d.reason AS d_reason,
       t.result AS tags, t.outcome AS t_outcome, t.reason_code AS t_code,
       t.reason AS t_reason
FROM files f
JOIN sessions s ON s.id = f.session_id
LEFT JOIN media_steps m ON m.media_id = f.id AND m.step = 'metadata'
LEFT JOIN media_steps d ON d.media_id = f.id AND d.step = 'duplicates'
LEFT JOIN media_steps t ON t.media_id = f.id AND t.step = 'tags'
"""


@router.get("/projects/{project_id}/media", response_model=list[MediaSummary])
async def list_media(
    project_id: uuid.UUID,
    caller: CallerDep,
    runtime: RuntimeDep,
    tag: Text | None = None,
    person: Text | None = None,
    country: Annotated[str | None, Query(min_length=2, max_length=2)] = None,
    captured_from: datetime | None = None,
    captured_to: datetime | None = None,
    duplicate_group: uuid.UUID | None = None,
    status: Status | None = None,
    after: Annotated[
        uuid.UUID | None, Query(description="The last id of the previous page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[MediaSummary]:
    """A project's media, filtered, in pages of ``limit`` (the next page: ``after`` = last id)."""
    caller.require(project_id, Role.viewer)
    where, args = ["f.project_id = $1"], [project_id]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if tag is not None:
        where.append(
            f"EXISTS (SELECT 1 FROM jsonb_array_elements(t.result -> 'tags') e"
            f" WHERE e ->> 'name' = {arg(tag)})"
        )
    if person is not None:
        where.append(
            f"EXISTS (SELECT 1 FROM jsonb_array_elements(t.result -> 'tags') e"
            f" WHERE e ->> 'name' = {arg('person:' + person)})"
        )
    if country is not None:
        where.append(f"m.result ->> 'country_code' = {arg(country.upper())}")
    if captured_from is not None or captured_to is not None:
        project = await store.project(runtime.db.pool, project_id)
        zone = ZoneInfo(project["timezone"]) if project else UTC
        if captured_from is not None:
            since = _instant("captured_from", captured_from, zone)
            where.append(f"(m.result ->> 'captured_at')::timestamptz >= {arg(since)}")
        if captured_to is not None:
            until = _instant("captured_to", captured_to, zone)
            where.append(f"(m.result ->> 'captured_at')::timestamptz < {arg(until)}")
    if duplicate_group is not None:
        where.append(f"d.result ->> 'group_id' = {arg(str(duplicate_group))}")
    if status is not None:
        where.append(f"({STATUS}) = {arg(status)}")
    if after is not None:
        where.append(f"f.id > {arg(after)}")
    rows = await runtime.db.pool.fetch(
        _MEDIA + " WHERE " + " AND ".join(where) + f" ORDER BY f.id LIMIT {arg(limit)}", *args
    )
    return [_summary(row) for row in rows]


def _instant(name: str, moment: datetime, zone: ZoneInfo | timezone) -> datetime:
    """A filter's bound in UTC: a date or a time without its offset is the project's."""
    try:
        return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).astimezone(UTC)
    except OverflowError as error:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise Refused("invalid_request", f"{name} is out of range in UTC.", 422) from error


@router.get("/media/{media_id}", response_model=MediaFull)
async def show_media(media_id: uuid.UUID, caller: CallerDep, runtime: RuntimeDep) -> MediaFull:
    row = await _visible_medium(runtime.db.pool, caller, media_id, Role.viewer)
    summary = _summary(row)
    metadata = _json(row["metadata"])
    urls: dict[str, str | None] = {"thumbnail_key": None, "preview_key": None}
    for key in urls:
        if metadata and metadata.get(key):
            urls[key] = await runtime.blobs.presigned_get(
                runtime.settings.bucket_derived, metadata[key], expires=PRESIGNED_FOR
            )
    steps = {
        step: StepOut(
            outcome=row[f"{p}_outcome"], reason_code=row[f"{p}_code"], reason=row[f"{p}_reason"]
        )
        for step, p in (("metadata", "m"), ("duplicates", "d"), ("tags", "t"))
        if row[f"{p}_outcome"]
    }
    tags = _json(row["tags"]) or {}
    return MediaFull(
        **summary.model_dump(),
        steps=steps,
        metadata=_strip(metadata),
        duplicates=_strip(_json(row["duplicates"])),
        faces=tags.get("faces", []),
        thumbnail_url=urls["thumbnail_key"],
        preview_url=urls["preview_key"],
    )


@router.get("/projects/{project_id}/people", response_model=list[Person])
async def people(project_id: uuid.UUID, caller: CallerDep, runtime: RuntimeDep) -> list[Person]:
    caller.require(project_id, Role.viewer)
    rows = await runtime.db.pool.fetch(
        "SELECT face ->> 'person_id' AS person, max(face ->> 'person_name') AS name,"
        " count(*) AS faces, array_agg(DISTINCT f.relative_path ORDER BY f.relative_path) AS paths"
        " FROM files f JOIN media_steps t ON t.media_id = f.id AND t.step = 'tags',"
        " jsonb_array_elements(t.result -> 'faces') AS face"
        " WHERE f.project_id = $1 AND face ->> 'person_id' IS NOT NULL"
        " GROUP BY face ->> 'person_id' ORDER BY count(*) DESC, 1",
        project_id,
    )
    return [
        Person(id=uuid.UUID(r["person"]), name=r["name"], face_count=r["faces"], paths=r["paths"])
        for r in rows
    ]


@router.post("/projects/{project_id}/people/{person_id}/name", status_code=202)
async def name_person(
    project_id: uuid.UUID,
    person_id: uuid.UUID,
    body: Naming,
    caller: CallerDep,
    runtime: RuntimeDep,
) -> dict[str, str]:
    await _known_person(runtime.db.pool, caller, project_id, person_id)
    await _command(
        runtime,
        TaggingCommand(
            project_id=project_id, command=NamePerson(person_id=person_id, name=body.name)
        ),
    )
    return {"status": "forwarded"}


@router.post("/projects/{project_id}/people/{person_id}/merge", status_code=202)
async def merge_people(
    project_id: uuid.UUID,
    person_id: uuid.UUID,
    body: Merging,
    caller: CallerDep,
    runtime: RuntimeDep,
) -> dict[str, str]:
    await _known_person(runtime.db.pool, caller, project_id, person_id)
    await _known_person(runtime.db.pool, caller, project_id, body.other_person_id)
    command = MergePersons(person_id=person_id, other_person_id=body.other_person_id)
    await _command(runtime, TaggingCommand(project_id=project_id, command=command))
    return {"status": "forwarded"}


@router.post("/projects/{project_id}/faces/{face_id}/remove", status_code=202)
async def remove_face(
    project_id: uuid.UUID, face_id: uuid.UUID, caller: CallerDep, runtime: RuntimeDep
) -> dict[str, str]:
    caller.require(project_id, Role.uploader)
    known = await runtime.db.pool.fetchval(
        "SELECT 1 FROM files f JOIN media_steps t ON t.media_id = f.id AND t.step = 'tags',"
        " jsonb_array_elements(t.result -> 'faces') AS face"
        " WHERE f.project_id = $1 AND face ->> 'face_id' = $2 LIMIT 1",
        project_id,
        str(face_id),
    )
    if not known:
        raise not_found("face")
    await _command(
        runtime, TaggingCommand(project_id=project_id, command=RemoveFace(face_id=face_id))
    )
    return {"status": "forwarded"}


@router.post("/media/{media_id}/not-duplicate", status_code=202)
async def not_duplicate(
    media_id: uuid.UUID, body: Review, caller: CallerDep, runtime: RuntimeDep
) -> dict[str, str]:
    """Keep two media apart for good: they will never be in one duplicate group again."""
    one = await _visible_medium(runtime.db.pool, caller, media_id, Role.uploader)
    other = await _visible_medium(runtime.db.pool, caller, body.other_media_id, Role.uploader)
    if one["project_id"] != other["project_id"]:
        raise not_found("media")
    if media_id == body.other_media_id:
        raise Refused("same_media", "A medium cannot be reviewed against itself.", 422)
    command = NotDuplicate(media_id=media_id, other_media_id=body.other_media_id)
    await _command(runtime, DedupCommand(project_id=one["project_id"], command=command))
    return {"status": "forwarded"}


@router.post("/media/{media_id}/reprocess", status_code=202, response_model=Queued)
async def reprocess_one(media_id: uuid.UUID, caller: CallerDep, runtime: RuntimeDep) -> Queued:
    row = await _visible_medium(runtime.db.pool, caller, media_id, Role.uploader)
    if row["file_status"] != "uploaded" or row["submitted_at"] is None:
        raise Refused(
            "not_submitted", "Only an uploaded, submitted medium can be processed again.", 409
        )
    return Queued(queued=await _reprocess(runtime, [media_id]))


@router.post("/projects/{project_id}/reprocess", status_code=202, response_model=Queued)
async def reprocess_project(
    project_id: uuid.UUID, body: Reprocessing, caller: CallerDep, runtime: RuntimeDep
) -> Queued:
    """Every medium of the project a step failed on and/or never answered for, again."""
    caller.require(project_id, Role.uploader)
    failed = "EXISTS (SELECT 1 FROM media_steps s WHERE s.media_id = f.id AND s.outcome = 'failed')"
    missing = (
        f"(SELECT count(*) FROM media_steps s WHERE s.media_id = f.id) < {len(processing.STEPS)}"
    )
    which = {"failed": failed, "missing": missing, "failed_or_missing": f"({failed} OR {missing})"}
    rows = await runtime.db.pool.fetch(
        "SELECT f.id FROM files f JOIN sessions s ON s.id = f.session_id WHERE f.project_id = $1"
        " AND f.status = 'uploaded' AND s.submitted_at IS NOT NULL AND " + which[body.which],
        project_id,
    )
    return Queued(queued=await _reprocess(runtime, [row["id"] for row in rows]))


async def _reprocess(runtime: Any, media_ids: list[uuid.UUID]) -> int:
    async with runtime.db.transaction() as tx:
        for media_id in media_ids:
            row = await tx.fetchrow("SELECT * FROM files WHERE id = $1", media_id)
            session = await tx.fetchrow(
                "SELECT s.*, p.timezone FROM sessions s JOIN projects p ON p.id = s.project_id"
                " WHERE s.id = $1",
                row["session_id"],
            )
            again = MediaReprocess(**uploaded_event(session, row).model_dump())
            await publish(tx, again, source=SOURCE)
    return len(media_ids)


async def _command(runtime: Any, command: TaggingCommand | DedupCommand) -> None:
    async with runtime.db.transaction() as tx:
        await publish(tx, command, source=SOURCE)


async def _visible_medium(
    pool: asyncpg.Pool, caller: Caller, media_id: uuid.UUID, role: Role
) -> asyncpg.Record:
    row = await pool.fetchrow(_MEDIA + " WHERE f.id = $1", media_id)
    if row is None:
        raise not_found("media")
    require_visible(caller, row["project_id"], role, "media")
    return row


async def _known_person(
    pool: asyncpg.Pool, caller: Caller, project_id: uuid.UUID, person_id: uuid.UUID
) -> None:
    caller.require(project_id, Role.uploader)
    known = await pool.fetchval(
        "SELECT 1 FROM files f JOIN media_steps t ON t.media_id = f.id AND t.step = 'tags',"
        " jsonb_array_elements(t.result -> 'faces') AS face"
        " WHERE f.project_id = $1 AND face ->> 'person_id' = $2 LIMIT 1",
        project_id,
        str(person_id),
    )
    if not known:
        raise not_found("person")


def _summary(row: asyncpg.Record) -> MediaSummary:
    metadata = _json(row["metadata"]) or {}
    duplicates = _json(row["duplicates"]) or {}
    tags = _json(row["tags"]) or {}
    gps = metadata.get("gps") or {}
    failed = next(
        (p for p in ("f", "m", "d", "t") if row[f"{p}_code"] is not None),
        None,
    )
    return MediaSummary(
        id=row["id"],
        session_id=row["session_id"],
        path=row["relative_path"],
        status=row["status"],
        captured_at=metadata.get("captured_at"),
        offset_source=metadata.get("offset_source"),
        make=metadata.get("make"),
        model=metadata.get("model"),
        width=metadata.get("width"),
        height=metadata.get("height"),
        gps_lat=gps.get("latitude"),
        gps_lon=gps.get("longitude"),
        country_code=metadata.get("country_code"),
        region=metadata.get("region"),
        tags=[TagOut(**tag) for tag in tags.get("tags", [])],
        duplicate_group=duplicates.get("group_id"),
        similarity=duplicates.get("similarity"),
        reason_code=row[f"{failed}_code"] if failed else None,
        reason=row[f"{failed}_reason"] if failed else None,
    )


def _json(value: str | None) -> dict[str, Any] | None:
    return json.loads(value) if value else None


def _strip(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """A step's result without what the summary says already (the media reference)."""
    if result is None:
        return None
    return {k: v for k, v in result.items() if k not in ("media",)}
