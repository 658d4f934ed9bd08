"""The gateway's HTTP API, under /v1. Every route checks the caller's project and role."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from darkroom.common.blobs import Incomplete, LimitExceeded
from darkroom.common.db import publish
from darkroom.common.events import (
    Classification,
    FileOutcome,
    MediaRef,
    MediaUploaded,
    SessionSubmitted,
)
from darkroom.common.runtime import MAX_BODY_BYTES, Runtime
from darkroom.common.sealing import Sealer
from darkroom.ingest import processing, schemas, store
from darkroom.ingest.content import Family, content_type
from darkroom.ingest.errors import Refused, not_found
from darkroom.ingest.keys import Caller, Role, digest, new_secret
from darkroom.ingest.paths import UnsafePath, extension, normalise
from darkroom.ingest.policy import (
    LARGEST_UPLOAD,
    POLICIES,
    Limits,
    Policy,
    check_classification,
    check_planned,
    checked_limits,
)
from darkroom.ingest.upload import judged, reported

MAX_BATCH = 100
MAX_SET_ASIDE = 2 * max(policy.max_files for policy in POLICIES.values())
"""Files a session keeps as refused or skipped (3,000, twice the largest session: a camera's
folder of JPEGs with a RAW file beside each fits); past it they are answered, not kept."""
SOURCE = "darkroom/ingest"

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1")


def install(app: FastAPI, runtime: Runtime, sealer: Sealer) -> None:
    app.state.runtime = runtime
    app.state.sealer = sealer
    app.include_router(router)
    app.add_exception_handler(Refused, refusal)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]


async def refusal(_: Request, error: Refused) -> JSONResponse:
    """Every refusal's answer: its status, code and sentence."""
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return JSONResponse(
        {"error": {"code": error.code, "message": error.message}}, error.status, headers=headers
    )


async def _http_error(request: Request, error: HTTPException) -> JSONResponse:
    """The router's own refusals (no such address, a method it does not take) in our shape."""
    if error.status_code == 404:
        code, message = "not_found", "There is nothing at this address."
    elif error.status_code == 405:
        code, message = "method_not_allowed", f"{request.method} is not taken here."
    elif error.status_code == 413:
        code, message = (
            "body_too_large",
            f"The request body is too large: the API's requests take at most"
            f" {MAX_BODY_BYTES:,} bytes (a file's bytes go to its own upload address).",
        )
    else:
        code, message = "http_error", str(error.detail)
    return JSONResponse(
        {"error": {"code": code, "message": message}}, error.status_code, headers=error.headers
    )


async def _invalid(_: Request, error: RequestValidationError) -> JSONResponse:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"] if p != "body")
    return JSONResponse(
        {
            "error": {
                "code": "invalid_request",
                "message": f"{where}: {first['msg']}." if where else f"{first['msg']}.",
                "details": [
                    {"loc": [str(p) for p in e["loc"]], "msg": e["msg"]} for e in error.errors()
                ],
            }
        },
        422,
    )


# Dependencies are ``async def`` even when they await nothing: FastAPI runs a plain ``def``
# dependency in a worker thread, a thread hop on every request.
async def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(_runtime)]


async def _sealer(request: Request) -> Sealer:
    sealer: Sealer = request.app.state.sealer
    return sealer


SealerDep = Annotated[Sealer, Depends(_sealer)]
"""Webhook secrets are sealed before they are stored; the gateway never opens them."""


async def _caller(
    runtime: RuntimeDep, authorization: Annotated[str | None, Header()] = None
) -> Caller:
    if not authorization:
        raise Refused("missing_key", "Send an API key as 'Authorization: Bearer <key>'.", 401)
    scheme, _, secret = authorization.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Refused("missing_key", "Send an API key as 'Authorization: Bearer <key>'.", 401)
    caller = await store.caller(runtime.db.pool, digest(secret.strip()))
    if caller is None:
        raise Refused("invalid_key", "This API key is not valid.", 401)
    return caller


CallerDep = Annotated[Caller, Depends(_caller)]


# --- projects and keys ---------------------------------------------------------------------


@router.post("/projects", status_code=201, response_model=schemas.Project)
async def create_project(
    body: schemas.ProjectCreate, caller: CallerDep, runtime: RuntimeDep, sealer: SealerDep
) -> Any:
    caller.require_platform_admin()
    policy = POLICIES[body.policy]
    limits = checked_limits(
        policy,
        Limits(
            max_files=body.max_files or policy.max_files,
            max_bytes=body.max_bytes or policy.max_bytes,
            max_image_bytes=body.max_image_bytes or policy.max_image_bytes,
        ),
    )
    project_id = uuid.uuid4()
    async with runtime.db.transaction() as tx:
        await store.create_project(
            tx,
            project_id,
            name=body.name,
            policy=policy.name,
            ceiling=(body.ceiling or Classification.UNCLASSIFIED).value,
            timezone=body.timezone or "UTC",
            max_files=limits.max_files,
            max_bytes=limits.max_bytes,
            max_image_bytes=limits.max_image_bytes,
            digest_minutes=body.digest_minutes,
        )
        await store.replace_recipients(
            tx,
            project_id,
            [str(e) for e in body.recipient_emails or []],
            sealed_webhooks(sealer, body.webhooks or []),
        )
    return await _project(runtime, project_id)


@router.get("/projects/{project_id}", response_model=schemas.Project)
async def get_project(project_id: uuid.UUID, caller: CallerDep, runtime: RuntimeDep) -> Any:
    caller.require(project_id, Role.viewer)
    return await _project(runtime, project_id)


@router.patch("/projects/{project_id}", response_model=schemas.Project)
async def update_project(
    project_id: uuid.UUID,
    body: schemas.ProjectChange,
    caller: CallerDep,
    runtime: RuntimeDep,
    sealer: SealerDep,
) -> Any:
    caller.require(project_id, Role.admin)
    async with runtime.db.transaction() as tx:
        row = await tx.fetchrow("SELECT * FROM projects WHERE id = $1 FOR UPDATE", project_id)
        if row is None:
            raise not_found("project")
        changes = body.model_dump(exclude_unset=True, exclude={"recipient_emails", "webhooks"})
        if "ceiling" in changes:
            changes["ceiling"] = changes["ceiling"].value
        merged = {**dict(row), **changes}
        checked_limits(
            POLICIES[row["policy"]],
            Limits(merged["max_files"], merged["max_bytes"], merged["max_image_bytes"]),
        )
        await store.update_project(tx, project_id, changes)
        if body.recipient_emails is not None or body.webhooks is not None:
            current = await store.recipients(tx, project_id)
            emails = body.recipient_emails
            hooks = body.webhooks
            await store.replace_recipients(
                tx,
                project_id,
                [str(e) for e in emails]
                if emails is not None
                else [r["address"] for r in current if r["kind"] == "email"],
                sealed_webhooks(sealer, hooks)
                if hooks is not None
                else [
                    (r["address"], sealer.reseal(r["secret"]))  # one from before sealing, too
                    for r in current
                    if r["kind"] == "webhook"
                ],
            )
    return await _project(runtime, project_id)


def sealed_webhooks(sealer: Sealer, hooks: list[schemas.Webhook]) -> list[tuple[str, str]]:
    return [(str(hook.url), sealer.seal(hook.secret)) for hook in hooks]


async def _project(runtime: Runtime, project_id: uuid.UUID) -> schemas.Project:
    row = await store.project(runtime.db.pool, project_id)
    if row is None:
        raise not_found("project")
    found = await store.recipients(runtime.db.pool, project_id)
    return schemas.Project(
        **{k: row[k] for k in ("id", "name", "policy", "ceiling", "timezone")},
        max_files=row["max_files"],
        max_bytes=row["max_bytes"],
        max_image_bytes=row["max_image_bytes"],
        digest_minutes=row["digest_minutes"],
        recipient_emails=[r["address"] for r in found if r["kind"] == "email"],
        webhooks=[r["address"] for r in found if r["kind"] == "webhook"],
    )


@router.post("/projects/{project_id}/keys", status_code=201, response_model=schemas.Key)
async def create_key(
    project_id: uuid.UUID, body: schemas.KeyCreate, caller: CallerDep, runtime: RuntimeDep
) -> Any:
    caller.require(project_id, Role.admin)
    if await store.project(runtime.db.pool, project_id) is None:
        raise not_found("project")
    secret, key_id = new_secret(), uuid.uuid4()
    async with runtime.db.transaction() as tx:
        await store.create_key(
            tx,
            key_id=key_id,
            secret_sha256=digest(secret),
            role=Role[body.role],
            platform_admin=False,
            projects=[project_id],
            label=body.label,
        )
    return schemas.Key(id=key_id, key=secret, role=body.role, projects=[project_id])


# --- sessions --------------------------------------------------------------------------------


@router.post("/projects/{project_id}/sessions", status_code=201, response_model=schemas.Session)
async def create_session(
    project_id: uuid.UUID, body: schemas.SessionCreate, caller: CallerDep, runtime: RuntimeDep
) -> Any:
    caller.require(project_id, Role.uploader)
    project = await store.project(runtime.db.pool, project_id)
    if project is None:
        raise not_found("project")
    check_classification(body.classification, Classification(project["ceiling"]))
    session_id = uuid.uuid4()
    async with runtime.db.transaction() as tx:
        await store.create_session(
            tx,
            session_id,
            project_id=project_id,
            source=body.source,
            view_name=body.view_name,
            capture_date=body.capture_date,
            classification=body.classification.value,
            ai_tagging=body.ai_tagging,
            uploader_email=body.uploader_email,
            created_by=caller.key_id,
        )
    return await _session(runtime, session_id)


@router.get("/projects/{project_id}/sessions", response_model=list[schemas.Session])
async def pending_uploads(project_id: uuid.UUID, caller: CallerDep, runtime: RuntimeDep) -> Any:
    """The project's sessions still in progress (not yet submitted), with their counts."""
    caller.require(project_id, Role.viewer)
    rows = await store.pending_sessions(runtime.db.pool, project_id)
    found = await store.counts(runtime.db.pool, [r["id"] for r in rows])
    return [_session_view(r, found.get(r["id"])) for r in rows]


@router.get("/sessions/{session_id}", response_model=schemas.SessionDetail)
async def get_session(
    session_id: uuid.UUID,
    caller: CallerDep,
    runtime: RuntimeDep,
    status: Annotated[schemas.FileStatus | None, Query()] = None,
) -> Any:
    row = await visible_session(runtime, caller, session_id, Role.viewer)
    view = await _session(runtime, row["id"])
    rows = await store.files(runtime.db.pool, session_id, status)
    return schemas.SessionDetail(**view.model_dump(), files=[file_view(f) for f in rows])


async def visible_session(
    runtime: Runtime, caller: Caller, session_id: uuid.UUID, role: Role
) -> asyncpg.Record:
    row = await store.session(runtime.db.pool, session_id)
    if row is None:
        raise not_found("session")
    require_visible(caller, row["project_id"], role, "session")
    return row


def require_visible(caller: Caller, project_id: uuid.UUID, role: Role, what: str) -> None:
    """Refuse unless the caller may act on a ``what`` of ``project_id`` with ``role``; one of
    another project is answered as a ``what`` that does not exist."""
    try:
        caller.require(project_id, role)
    except Refused as refused:
        if refused.status == 404:
            raise not_found(what) from None
        raise


async def _session(runtime: Runtime, session_id: uuid.UUID) -> schemas.Session:
    row = await store.session(runtime.db.pool, session_id)
    assert row is not None
    found = await store.counts(runtime.db.pool, [session_id])
    return _session_view(row, found.get(session_id))


def _session_view(row: asyncpg.Record, counts: asyncpg.Record | None) -> schemas.Session:
    tally = schemas.Counts(**{k: v for k, v in dict(counts or {}).items() if k != "session_id"})
    progress = tally.bytes_received / tally.bytes_total if tally.bytes_total else 0.0
    return schemas.Session(
        **{k: row[k] for k in schemas.Session.model_fields if k not in {"counts", "progress"}},
        counts=tally,
        progress=round(progress, 4),
    )


def file_view(row: asyncpg.Record) -> schemas.File:
    return schemas.File(
        id=row["id"],
        path=row["relative_path"],
        status=row["status"],
        size=row["declared_size"],
        received_bytes=row["received_bytes"],
        sha256=row["sha256"],
        content_type=row["content_type"],
        code=row["reason_code"],
        reason=row["reason"],
        duplicate_of=row["duplicate_of"],
        attempts=row["attempts"],
    )


def policy_and_limits(row: asyncpg.Record) -> tuple[Policy, Limits]:
    return POLICIES[row["policy"]], Limits(
        row["max_files"], row["max_bytes"], row["max_image_bytes"]
    )


# --- files -----------------------------------------------------------------------------------


def _plan(
    planned: list[schemas.PlannedFile],
    session: asyncpg.Record,
    existing: list[asyncpg.Record],
) -> list[tuple[schemas.FileEntry, bool]]:
    """Judge each planned file alone: refused, a duplicate, or to be queued; with each, whether
    it is kept in the session (a policy's refusal is, as a failed file; an unsafe or repeated
    path is not)."""
    policy, limits = policy_and_limits(session)
    ceiling = Classification(session["ceiling"])
    by_path = {f["relative_path"]: f for f in existing if not f["refused"]}
    by_sha = {
        (f["sha256"] or f["declared_sha256"]): f["relative_path"]
        for f in existing
        if f["status"] != "skipped_duplicate"
        and not f["refused"]
        and (f["sha256"] or f["declared_sha256"])
    }
    entries: list[tuple[schemas.FileEntry, bool]] = []
    for index, item in enumerate(planned):
        try:
            path = normalise(item.path)
        except UnsafePath as unsafe:
            entries.append((_refusal(index, item.path, unsafe), False))
            continue
        try:
            check_planned(policy, limits, path, item.size)
            check_classification(
                item.classification or Classification(session["classification"]), ceiling
            )
        except Refused as refused:
            entries.append((_refusal(index, path, refused), path not in by_path))
            continue
        if path in by_path:
            duplicate = Refused(
                "duplicate_path", f"A file with the path {path!r} is already in this session."
            )
            entries.append((_refusal(index, path, duplicate), False))
            continue
        sha = item.sha256.lower() if item.sha256 else None
        if sha and sha in by_sha:
            entries.append(
                (
                    schemas.FileEntry(
                        index=index,
                        path=path,
                        status="skipped_duplicate",
                        code="duplicate_content",
                        message=f"The same content is already in this session as {by_sha[sha]!r}.",
                        duplicate_of=by_sha[sha],
                    ),
                    True,
                )
            )
            by_path[path] = item
            continue
        by_path[path] = item
        if sha:
            by_sha[sha] = path
        entries.append((schemas.FileEntry(index=index, path=path, status="queued"), True))
    return entries


def _refusal(index: int, path: str, refusal: UnsafePath | Refused) -> schemas.FileEntry:
    return schemas.FileEntry(
        index=index, path=path, status="refused", code=refusal.code, message=refusal.message
    )


@router.post("/sessions/{session_id}/precheck", response_model=schemas.Precheck)
async def precheck(
    session_id: uuid.UUID, body: schemas.Batch, caller: CallerDep, runtime: RuntimeDep
) -> Any:
    """The answer adding this batch would get (repeats, refusals, room), with nothing kept."""
    session = await visible_session(runtime, caller, session_id, Role.uploader)
    existing = await store.files(runtime.db.pool, session_id)
    entries = [entry for entry, _ in _admitted(body.files, session, existing)]
    return schemas.Precheck(
        files=entries,
        duplicates=sum(e.status == "skipped_duplicate" for e in entries),
        refused=sum(e.status == "refused" for e in entries),
    )


@router.post("/sessions/{session_id}/files", status_code=201, response_model=schemas.BatchResult)
async def add_batch(
    session_id: uuid.UUID, body: schemas.Batch, caller: CallerDep, runtime: RuntimeDep
) -> Any:
    """Add a batch of at most 100 files; each is then uploaded with PUT …/files/{id}/content."""
    await visible_session(runtime, caller, session_id, Role.uploader)
    async with runtime.db.transaction() as tx:
        session = await store.session_for_update(tx, session_id)
        assert session is not None
        planned = _admitted(body.files, session, await store.files(tx, session_id))
        for entry, kept in planned:
            if not kept:
                continue
            entry.id = uuid.uuid4()
            item = body.files[entry.index]
            refused = entry.status == "refused"
            await store.insert_file(
                tx,
                id=entry.id,
                session_id=session_id,
                project_id=session["project_id"],
                relative_path=entry.path,
                declared_size=item.size,
                declared_sha256=item.sha256.lower() if item.sha256 else None,
                status="failed" if refused else entry.status,
                duplicate_of=None,
                classification=item.classification.value if item.classification else None,
                refused=refused,
                reason_code=entry.code if refused else None,
                reason=entry.message if refused else None,
            )
    entries = [entry for entry, _ in planned]
    return schemas.BatchResult(
        files=entries,
        queued=sum(e.status == "queued" for e in entries),
        skipped=sum(e.status == "skipped_duplicate" for e in entries),
        refused=sum(e.status == "refused" for e in entries),
    )


def _admitted(
    files: list[schemas.PlannedFile], session: asyncpg.Record, existing: list[asyncpg.Record]
) -> list[tuple[schemas.FileEntry, bool]]:
    """A batch judged against the session as it stands: each file's answer, and whether the
    session keeps it; the whole batch refused when it is too large, the session closed, or
    its queued files would not fit."""
    if len(files) > MAX_BATCH:
        raise Refused(
            "batch_too_large",
            f"A batch holds at most {MAX_BATCH} files; this one has {len(files)}.",
        )
    require_open(session)
    planned = _plan(files, session, existing)
    queued = [entry for entry, _ in planned if entry.status == "queued"]
    kept = [f for f in existing if f["status"] != "skipped_duplicate" and not f["refused"]]
    _, limits = policy_and_limits(session)
    if len(kept) + len(queued) > limits.max_files:
        room = limits.max_files - len(kept)
        raise Refused(
            "session_full",
            f"A session holds at most {limits.max_files:,} files and this one has room for "
            f"{room:,} more; start a new session for the rest.",
            409,
        )
    planned_bytes = sum(files[entry.index].size for entry in queued)
    held = sum(f["declared_size"] for f in kept)
    if held + planned_bytes > limits.max_bytes:
        raise Refused(
            "upload_too_large",
            f"An upload holds at most {limits.max_bytes:,} bytes; this batch would bring the "
            f"session to {held + planned_bytes:,}. Start a new session for the rest.",
            409,
        )
    # Refused and skipped files are kept up to MAX_SET_ASIDE; one replacing a refused file of
    # the same path takes no more room.
    set_aside = len(existing) - len(kept)
    refused_paths = {f["relative_path"] for f in existing if f["refused"]}
    admitted = []
    for entry, keep in planned:
        if keep and entry.status != "queued" and entry.path not in refused_paths:
            if set_aside >= MAX_SET_ASIDE:
                entry.message = (
                    f"{entry.message} Not kept in the session: it keeps at most"
                    f" {MAX_SET_ASIDE:,} refused or skipped files."
                )
                keep = False
            else:
                set_aside += 1
        admitted.append((entry, keep))
    return admitted


async def claim_upload(
    pool: asyncpg.Pool, session_id: uuid.UUID, file_id: uuid.UUID
) -> asyncpg.Record:
    """The file, claimed for one upload (plain or resumable); else why it takes no bytes now."""
    claimed = await store.start_upload(pool, session_id, file_id)
    if claimed is not None:
        return claimed
    row = await store.file(pool, session_id, file_id)
    if row is None:
        raise not_found("file")
    require_uploadable(row)
    session = await store.session(pool, session_id)
    assert session is not None
    require_open(session)  # submitted since the caller's request began
    raise Refused("upload_in_progress", "This file is being uploaded right now.", 409)


def require_uploadable(row: asyncpg.Record) -> None:
    """Only a queued or failed file takes bytes, and never one refused when it was added."""
    if row["refused"]:
        raise Refused(
            "refused_when_added",
            "This file was refused when it was added, and the same file would be again;"
            " add it again once it is changed.",
            409,
        )
    if row["status"] not in ("queued", "failed"):
        raise Refused(
            "not_retryable",
            f"This file is {row['status'].replace('_', ' ')}; only a queued or failed file "
            "can be uploaded.",
            409,
        )


def require_open(session: asyncpg.Record) -> None:
    if session["submitted_at"] is not None:
        raise Refused(
            "session_submitted",
            "This session was already submitted; start a new session to add files.",
            409,
        )


@router.put(
    "/sessions/{session_id}/files/{file_id}/content",
    response_model=schemas.File,
    max_body_size=LARGEST_UPLOAD,
)
async def upload_content(
    session_id: uuid.UUID,
    file_id: uuid.UUID,
    request: Request,
    caller: CallerDep,
    runtime: RuntimeDep,
) -> Any:
    """Upload (or retry) one file's bytes; it streams to S3 as it arrives."""
    session = await visible_session(runtime, caller, session_id, Role.uploader)
    require_open(session)
    row = await claim_upload(runtime.db.pool, session_id, file_id)
    try:
        return await _receive(runtime, session, row, request)
    except BaseException as error:
        code, reason = failure(error)
        failed = await store.fail(runtime.db.pool, file_id, code, reason, attempt=row["attempts"])
        if isinstance(error, Refused):
            raise Refused(code, reason, error.status) from None
        if isinstance(error, (LimitExceeded, Incomplete, ClientDisconnect)):
            raise Refused(code, reason) from None
        if failed:  # cut short after its bytes may have been stored (by the database, a stop)
            key = object_key(session["project_id"], file_id, row["attempts"])
            await runtime.blobs.remove(runtime.settings.bucket_originals, key)
        raise


def failure(error: BaseException) -> tuple[str, str]:
    if isinstance(error, Refused):
        return error.code, error.message
    if isinstance(error, LimitExceeded):
        return "size_mismatch", "The file sent more bytes than its declared size."
    if isinstance(error, Incomplete):
        return (
            "incomplete",
            f"{error.received:,} of the declared {error.size:,} bytes arrived;"
            " upload the file again.",
        )
    if isinstance(error, ClientDisconnect):
        return "upload_interrupted", "The connection closed before the whole file arrived."
    return "upload_error", "The file could not be stored; retry it."


async def _receive(
    runtime: Runtime, session: asyncpg.Record, row: asyncpg.Record, request: Request
) -> schemas.File:
    policy, _ = policy_and_limits(session)
    path, size, file_id = row["relative_path"], row["declared_size"], row["id"]
    key = object_key(session["project_id"], file_id, row["attempts"])
    found: list[Family] = []

    async def report(received: int) -> None:
        await store.progress(runtime.db.pool, file_id, received, attempt=row["attempts"])

    chunks = reported(judged(_body(request), policy, path, found), report, size)
    stored = await runtime.blobs.put_stream(
        runtime.settings.bucket_originals, key, chunks, size=size
    )
    return await complete_upload(
        runtime, session, row, key=key, size=stored.size, sha256=stored.sha256, family=found[0]
    )


async def complete_upload(
    runtime: Runtime,
    session: asyncpg.Record,
    row: asyncpg.Record,
    *,
    key: str,
    size: int,
    sha256: str,
    family: Family,
) -> schemas.File:
    """Mark a file uploaded, its bytes stored at ``key``, or skip it as a duplicate of a copy
    already in the session.

    The one end of every upload, plain or resumable. The key is this attempt's alone, so the
    bytes are removed whenever the file does not keep them: they do not match the SHA-256 the
    file was added with (the file fails), they are a copy, or the upload was given up.
    """
    file_id, attempt = row["id"], row["attempts"]
    pool, bucket = runtime.db.pool, runtime.settings.bucket_originals
    if row["declared_sha256"] and row["declared_sha256"] != sha256:
        reason = "The bytes received do not match the declared SHA-256."
        await store.fail(pool, file_id, "checksum_mismatch", reason, attempt=attempt)
        await runtime.blobs.remove(bucket, key)
        raise Refused("checksum_mismatch", reason)
    kind = content_type(family, extension(row["relative_path"]))
    try:
        done = await store.finish_upload(
            pool,
            file_id,
            attempt=attempt,
            size=size,
            sha256=sha256,
            content_type=kind,
            object_key=key,
        )
    except asyncpg.UniqueViolationError as error:  # a copy finished at the same moment
        if error.constraint_name != "files_one_copy":
            raise
        copy = await store.stored_copy(pool, session["id"], sha256)
        assert copy is not None
        done = await store.skip_as_duplicate(
            pool, file_id, attempt=attempt, duplicate_of=copy["id"], sha256=sha256
        )
    if done is None:
        # Given up while it ran: its bytes go, unless the file keeps this very key (a retry by
        # a gateway from before keys per attempt wrote the first attempt's key again).
        await remove_unless_kept(runtime, file_id, key)
        raise Refused(
            "upload_superseded",
            "This upload was given up while it ran (it stalled, or the file was uploaded"
            " again); the file is as its later attempt left it.",
            409,
        )
    if done["status"] == "skipped_duplicate":
        await runtime.blobs.remove(bucket, key)
    return file_view(done)


async def remove_unless_kept(runtime: Runtime, file_id: uuid.UUID, key: str) -> None:
    """Remove the object at ``key`` unless it is the one the file records as its bytes."""
    kept = await runtime.db.pool.fetchval("SELECT object_key FROM files WHERE id = $1", file_id)
    if kept != key:
        await runtime.blobs.remove(runtime.settings.bucket_originals, key)


async def sweep_stalled(runtime: Runtime, idle_seconds: int = store.STALLED_AFTER) -> int:
    """Fail the plain uploads with no progress for ``idle_seconds``, and drop what their
    attempts stored (a process may have died between storing the bytes and recording them; an
    attempt that wakes later is superseded and drops its bytes itself). How many."""
    stalled = await store.fail_stalled(runtime.db.pool, idle_seconds=idle_seconds)
    for row in stalled:
        key = object_key(row["project_id"], row["id"], row["attempts"])
        try:
            await runtime.blobs.remove(runtime.settings.bucket_originals, key)
        except Exception:  # the others still go; this one stays behind, said in the log
            log.exception("the object of a stalled upload could not be removed: %s", key)
    return len(stalled)


def object_key(project_id: uuid.UUID, file_id: uuid.UUID, attempt: int) -> str:
    """Where one upload attempt of a file writes its bytes: built from ids and the attempt's
    number only, never from a user's file name; an attempt given up while it ran cannot
    overwrite the bytes of the one after it. The file keeps the key of the attempt that
    finished it (``files.object_key``). The first attempt's key is the one every attempt had
    before retries had keys of their own (gateways of both kinds agree on it while a rolling
    update runs)."""
    if attempt == 1:
        return f"{project_id}/{file_id}/original"
    return f"{project_id}/{file_id}/{attempt}/original"


async def _body(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


# --- submit ----------------------------------------------------------------------------------


@router.post("/sessions/{session_id}/submit", response_model=schemas.Submitted)
async def submit(session_id: uuid.UUID, caller: CallerDep, runtime: RuntimeDep) -> Any:
    """Send the uploaded files on to processing; failed files stay failed in the session."""
    await visible_session(runtime, caller, session_id, Role.uploader)
    async with runtime.db.transaction() as tx:
        session = await store.session_for_update(tx, session_id)
        assert session is not None
        require_open(session)
        await store.abandon_idle_tus(tx, session_id, idle_seconds=store.STALLED_AFTER)
        if await tx.fetchval(
            "SELECT count(*) FROM files WHERE session_id = $1 AND status = 'uploading'", session_id
        ):
            raise Refused(
                "uploads_in_progress",
                "Files of this session are still uploading; submit once they have finished.",
                409,
            )
        await store.submit(tx, session_id)
        rows = await store.files(tx, session_id)
        emails, webhooks = await store.audience(tx, session["project_id"])
        uploaded = [r for r in rows if r["status"] == "uploaded"]
        failed = [r for r in rows if r["status"] == "failed"]
        for row in uploaded:
            await publish(tx, uploaded_event(session, row), source=SOURCE)
        await publish(
            tx,
            SessionSubmitted(
                session_id=session_id,
                project_id=session["project_id"],
                view_name=session["view_name"],
                source=session["source"],
                uploader_email=session["uploader_email"],
                recipients=emails,
                webhooks=webhooks,
                digest_minutes=session["digest_minutes"],
                uploaded=len(uploaded),
                failed=[
                    FileOutcome(relative_path=r["relative_path"], reason=r["reason"] or "")
                    for r in failed
                ],
                skipped=sum(r["status"] == "skipped_duplicate" for r in rows),
            ),
            source=SOURCE,
        )
        await processing.finish(tx, session_id)  # nothing sent on: nothing to wait for
    return schemas.Submitted(
        session_id=session_id,
        sent=len(uploaded),
        failed=len(failed),
        skipped=sum(r["status"] == "skipped_duplicate" for r in rows),
    )


def uploaded_event(session: asyncpg.Record, row: asyncpg.Record) -> MediaUploaded:
    return MediaUploaded(
        media=MediaRef(
            media_id=row["id"],
            project_id=session["project_id"],
            session_id=session["id"],
            object_key=row["object_key"],
            relative_path=row["relative_path"],
            ai_tagging=session["ai_tagging"],
            classification=Classification(row["classification"] or session["classification"]),
        ),
        sha256=row["sha256"],
        size=row["declared_size"],
        content_type=row["content_type"],
        session_capture_date=session["capture_date"],
        project_timezone=session["timezone"],
        source=session["source"],
        view_name=session["view_name"],
        uploaded_at=row["updated_at"],
    )
