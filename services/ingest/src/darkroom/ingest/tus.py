"""Resumable uploads: tus 1.0 with its creation, checksum, expiration and termination extensions.

A tus upload carries the bytes of a file already added to a session (its metadata names the
``session`` and the ``file``), so tus-js-client, Uppy and tuspy work unchanged. Bytes go to
an S3 multipart upload in whole parts as they arrive, each part's upload running beside the
receiving of the next; the bytes since the last whole part wait in a small S3 object (the
tail) between requests, so nothing is kept on local disk and the gateway's memory stays at
about three parts per upload. A PATCH holds its upload by a lease in the database, not by an
open transaction. Unfinished uploads expire and are cleaned from S3 and the database; a
finished one answers as finished (HEAD) until it expires too, for a client that missed the
last answer.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Annotated, Any, cast

import asyncpg
from fastapi import APIRouter, Header, Request, Response
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect

from darkroom.common.blobs import PART_SIZE
from darkroom.common.runtime import Runtime
from darkroom.common.settings import IngestSettings
from darkroom.ingest import store
from darkroom.ingest.api import (
    CallerDep,
    RuntimeDep,
    claim_upload,
    complete_upload,
    object_key,
    policy_and_limits,
    refusal,
    remove_unless_kept,
    require_open,
    require_visible,
    visible_session,
)
from darkroom.ingest.content import HEAD_BYTES, Family
from darkroom.ingest.errors import Refused, not_found
from darkroom.ingest.keys import Role
from darkroom.ingest.policy import LARGEST_UPLOAD, POLICIES, check_head

VERSION = "1.0.0"
EXPOSED = (
    "Location",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Expires",
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Checksum-Algorithm",
)
"""The answers' headers a tus client in a browser must be let to read (CORS)."""
CHECKSUMS = {"md5": hashlib.md5, "sha1": hashlib.sha1, "sha256": hashlib.sha256}
OFFSET_STREAM = "application/offset+octet-stream"
_HASHES_KEPT = 256
_PARTS_IN_FLIGHT = 2
"""Parts of one PATCH uploading to S3 while the next is received (each holds 5 MiB)."""


class _TusRoute(APIRoute):
    """Every tus answer says which protocol it speaks, a refusal's too (tus 1.0 asks it of every
    response but OPTIONS'), and a refused version says which one is (412 with Tus-Version)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                response = await handle(request)
            except Refused as refused:
                response = await refusal(request, refused)
            response.headers.setdefault("Tus-Resumable", VERSION)
            if response.status_code == 412:
                response.headers["Tus-Version"] = VERSION
            return response

        return answer


log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/tus", tags=["resumable uploads (tus 1.0)"], route_class=_TusRoute)

# The running SHA-256 of uploads this process is receiving, so a finished upload need not be
# read back; an upload resumed on another replica is read back from S3 once, at the end.
_hashes: OrderedDict[uuid.UUID, tuple[int, Any]] = OrderedDict()


def install(runtime: Runtime) -> None:
    runtime.app.include_router(router)
    runtime.every(300, "tus-expiry", lambda: clean_expired(runtime))


def _headers(**extra: str) -> dict[str, str]:
    return {"Cache-Control": "no-store", **extra}  # Tus-Resumable: _TusRoute adds it


def _expires(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def _check_version(tus_resumable: str | None) -> None:
    if tus_resumable != VERSION:
        raise Refused("tus_version", f"Only tus {VERSION} is spoken here (Tus-Resumable).", 412)


@router.options("")
@router.options("/{upload_id}")
async def capabilities(runtime: RuntimeDep) -> Response:
    return Response(
        status_code=204,
        headers=_headers(
            **{
                "Tus-Version": VERSION,
                "Tus-Extension": "creation,checksum,expiration,termination",
                "Tus-Max-Size": str(max(p.max_bytes for p in POLICIES.values())),
                "Tus-Checksum-Algorithm": ",".join(CHECKSUMS),
            }
        ),
    )


def _metadata(raw: str | None) -> dict[str, str]:
    """Upload-Metadata: comma-separated ``key base64(value)`` pairs."""
    found: dict[str, str] = {}
    for pair in (raw or "").split(","):
        key, _, value = pair.strip().partition(" ")
        if not key:
            continue
        try:
            found[key] = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise Refused(
                "invalid_metadata", f"Upload-Metadata {key!r} is not base64.", 400
            ) from None
    return found


@router.post("", status_code=201)
async def create(
    request: Request,
    caller: CallerDep,
    runtime: RuntimeDep,
    upload_length: Annotated[str | None, Header()] = None,
    upload_metadata: Annotated[str | None, Header()] = None,
    tus_resumable: Annotated[str | None, Header()] = None,
) -> Response:
    """Start a resumable upload of a file already added to a session."""
    _check_version(tus_resumable)
    if not (upload_length or "").isdigit():
        raise Refused("missing_length", "Upload-Length is required (deferred length is not).", 400)
    meta = _metadata(upload_metadata)
    try:
        session_id, file_id = uuid.UUID(meta["session"]), uuid.UUID(meta["file"])
    except (KeyError, ValueError):
        raise Refused(
            "missing_metadata",
            "Upload-Metadata must name the 'session' and the 'file' (ids from adding the batch).",
            400,
        ) from None
    session = await visible_session(runtime, caller, session_id, Role.uploader)
    require_open(session)
    row = await store.file(runtime.db.pool, session_id, file_id)
    if row is None:
        raise not_found("file")
    if int(upload_length or 0) != row["declared_size"]:
        raise Refused(
            "size_mismatch",
            f"Upload-Length is {upload_length} but the file was added with {row['declared_size']}.",
            413,
        )
    previous = await runtime.db.pool.fetchrow(
        "SELECT * FROM tus_uploads WHERE file_id = $1", file_id
    )
    # A finished upload stays while its file is being recorded or is kept (claim_upload then
    # says why the file takes no bytes); one whose file failed even so is replaced.
    if previous is not None and (not _finished(previous) or row["status"] == "failed"):
        await _remove(runtime, previous["id"])
        await store.fail(
            runtime.db.pool,
            file_id,
            "upload_restarted",
            "A new upload of this file replaced the one before.",
            attempt=row["attempts"],  # one that finished meanwhile stays as it is
        )
    claimed = await claim_upload(runtime.db.pool, session_id, file_id)
    upload_id = uuid.uuid4()
    settings = cast(IngestSettings, runtime.settings)
    expires = datetime.now(UTC) + timedelta(seconds=settings.tus_expiry_seconds)
    await runtime.db.pool.execute(
        "INSERT INTO tus_uploads (id, file_id, session_id, length, expires_at, object_key)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        upload_id,
        file_id,
        session_id,
        row["declared_size"],
        expires,
        object_key(session["project_id"], file_id, claimed["attempts"]),
    )
    location = str(request.url_for("offset", upload_id=str(upload_id)))
    return Response(
        status_code=201,
        headers=_headers(Location=location, **{"Upload-Expires": _expires(expires)}),
    )


async def _upload(
    runtime: Runtime, caller: Any, upload_id: uuid.UUID
) -> tuple[asyncpg.Record, asyncpg.Record]:
    """The upload (with its file's attempt) and its session, if the caller may."""
    upload = await runtime.db.pool.fetchrow(
        "SELECT t.*, f.attempts FROM tus_uploads t JOIN files f ON f.id = t.file_id"
        " WHERE t.id = $1",
        upload_id,
    )
    if upload is None:
        raise not_found("upload")
    session = await store.session(runtime.db.pool, upload["session_id"])
    assert session is not None  # an upload goes with its session
    require_visible(caller, session["project_id"], Role.uploader, "upload")
    if upload["expires_at"] < datetime.now(UTC):
        raise Refused("upload_expired", "This upload expired; start it again.", 410)
    return upload, session


def _busy() -> Refused:
    """tus clients retry a 423: once the other request ends, or its lease runs out, theirs
    goes on."""
    return Refused("upload_busy", "Another request is writing to this upload right now.", 423)


_HELD = "coalesce(writing_until > now(), false)"
"""SQL: a PATCH holds the upload now."""


def _finished(upload: Mapping[str, Any]) -> bool:
    """All its bytes arrived. It stays, answering as finished, until it expires."""
    return bool(upload["received"] == upload["length"])


class _LeaseLost(Exception):
    """Another request took the upload over (this one stalled past its lease) or ended it."""


class _Lease:
    """A PATCH's hold on its upload, kept in the database, not in an open transaction.

    Taken in one statement; renewed while bytes arrive; a gateway that dies leaves it to run
    out after ``LEASE_SECONDS``, and the client's retry takes the upload over.
    """

    LEASE_SECONDS = 60
    RENEW_SECONDS = 10

    def __init__(self, runtime: Runtime, upload: asyncpg.Record, token: uuid.UUID) -> None:
        self.db = runtime.db
        self.upload = upload
        self.token = token
        self.renew_at = time.monotonic() + self.RENEW_SECONDS

    @classmethod
    async def take(cls, runtime: Runtime, upload_id: uuid.UUID) -> _Lease:
        token = uuid.uuid4()
        upload = await runtime.db.pool.fetchrow(
            "UPDATE tus_uploads SET writer = $2,"
            " writing_until = now() + make_interval(secs => $3)"
            f" WHERE id = $1 AND NOT {_HELD} RETURNING *",
            upload_id,
            token,
            cls.LEASE_SECONDS,
        )
        if upload is None:
            raise _busy()
        return cls(runtime, upload, token)

    async def renew(self, received: int) -> None:
        """Hold on for another lease; the file shows ``received`` bytes meanwhile."""
        async with self.db.transaction() as tx:
            held = await tx.fetchval(
                "UPDATE tus_uploads SET writing_until = now() + make_interval(secs => $3)"
                " WHERE id = $1 AND writer = $2 RETURNING true",
                self.upload["id"],
                self.token,
                self.LEASE_SECONDS,
            )
            if not held:
                raise _LeaseLost
            await store.progress(tx, self.upload["file_id"], received)
        self.renew_at = time.monotonic() + self.RENEW_SECONDS

    async def release(self) -> None:
        await self.db.pool.execute(
            "UPDATE tus_uploads SET writer = NULL, writing_until = NULL"
            " WHERE id = $1 AND writer = $2",
            self.upload["id"],
            self.token,
        )


@router.head("/{upload_id}", name="offset")
async def offset(upload_id: uuid.UUID, caller: CallerDep, runtime: RuntimeDep) -> Response:
    """How many bytes of the upload have arrived: where a client resumes."""
    upload, session = await _upload(runtime, caller, upload_id)
    if _finished(upload):
        await _recorded(runtime, upload, session)
    return Response(
        status_code=200,
        headers=_headers(
            **{
                "Upload-Offset": str(upload["received"]),
                "Upload-Length": str(upload["length"]),
                "Upload-Expires": _expires(upload["expires_at"]),
            }
        ),
    )


def _checksum(header: str | None) -> tuple[str, bytes] | None:
    if header is None:
        return None
    algorithm, _, encoded = header.strip().partition(" ")
    if algorithm not in CHECKSUMS:
        raise Refused(
            "unsupported_checksum", f"Upload-Checksum must use one of {sorted(CHECKSUMS)}.", 400
        )
    try:
        return algorithm, base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise Refused("invalid_checksum", "Upload-Checksum's value is not base64.", 400) from None


@router.patch("/{upload_id}", max_body_size=LARGEST_UPLOAD)
async def append(
    upload_id: uuid.UUID,
    request: Request,
    caller: CallerDep,
    runtime: RuntimeDep,
    upload_offset: Annotated[str | None, Header()] = None,
    content_type: Annotated[str | None, Header()] = None,
    upload_checksum: Annotated[str | None, Header()] = None,
    tus_resumable: Annotated[str | None, Header()] = None,
) -> Response:
    """Append bytes at ``Upload-Offset``; a whole-request checksum, if sent, must match."""
    _check_version(tus_resumable)
    if content_type != OFFSET_STREAM:
        raise Refused("content_type", f"A PATCH must be sent as {OFFSET_STREAM}.", 415)
    checksum = _checksum(upload_checksum)
    upload, session = await _upload(runtime, caller, upload_id)
    if _finished(upload):  # its client missed the last answer; a HEAD gave it this offset
        _require_offset(upload, upload_offset)
        await _recorded(runtime, upload, session)
        async for chunk in request.stream():
            if chunk:
                raise Refused("size_mismatch", "This upload is finished; it takes no bytes.", 413)
        return _appended(upload["length"], upload["expires_at"])
    require_open(session)
    lease = await _Lease.take(runtime, upload_id)
    try:
        upload = lease.upload
        _require_offset(upload, upload_offset)
        file_row = await store.file(runtime.db.pool, session["id"], upload["file_id"])
        assert file_row is not None
        appended = _Append(runtime, session, lease, file_row, checksum)
        try:
            outcome = await appended.receive(request)
            await appended.save(outcome)
        except Refused as error:  # the file is refused: nothing of it is kept
            await appended.refuse(error)
            raise
        except _LeaseLost:
            raise Refused(
                "upload_taken",
                "This request stalled and another took the upload over, or it was ended;"
                " ask for its offset (HEAD) before going on.",
                409,
            ) from None
        if appended.finished:  # recorded while the upload is held: see _recorded
            await appended.complete()
    finally:
        await lease.release()
    if outcome == "checksum_mismatch":
        raise Refused("checksum_mismatch", "The request's bytes do not match Upload-Checksum.", 460)
    return _appended(appended.offset, appended.expires_at)


async def _recorded(runtime: Runtime, upload: asyncpg.Record, session: asyncpg.Record) -> None:
    """A finished upload's file recorded before the upload is answered as whole: the request
    that finished it records it while it holds the upload (423 meanwhile), and one that failed
    after its last byte (the database or S3 away, its process stopped) left it to this."""
    row = await store.file(runtime.db.pool, session["id"], upload["file_id"])
    key = upload["object_key"]
    if row is None or key != object_key(session["project_id"], row["id"], row["attempts"]):
        return  # the file is another attempt's now
    if row["status"] == "failed":  # not whole after all: a tus client then starts anew
        raise Refused("upload_failed", "This upload's file failed; upload it again.", 410)
    if row["status"] != "uploading":
        return  # recorded
    lease = await _Lease.take(runtime, upload["id"])
    try:
        bucket = runtime.settings.bucket_originals
        await complete_upload(
            runtime,
            session,
            row,
            key=key,
            size=upload["length"],
            sha256=await runtime.blobs.sha256(bucket, key),
            family=Family(upload["family"]),
        )
    finally:
        await lease.release()


def _require_offset(upload: asyncpg.Record, upload_offset: str | None) -> None:
    if upload_offset != str(upload["received"]):
        raise Refused(
            "offset_mismatch",
            f"Upload-Offset is {upload_offset}; this upload has {upload['received']} bytes.",
            409,
        )


def _appended(offset: int, expires_at: datetime) -> Response:
    return Response(
        status_code=204,
        headers=_headers(**{"Upload-Offset": str(offset), "Upload-Expires": _expires(expires_at)}),
    )


class _Append:
    """One PATCH: its bytes cut into whole parts, the rest kept as the new tail."""

    def __init__(
        self,
        runtime: Runtime,
        session: asyncpg.Record,
        lease: _Lease,
        file_row: asyncpg.Record,
        checksum: tuple[str, bytes] | None,
    ) -> None:
        upload = lease.upload
        self.runtime = runtime
        self.file_row = file_row
        self.session = session
        self.lease = lease
        self.upload = upload
        self.checksum = checksum
        self.bucket = runtime.settings.bucket_originals
        self.key = upload["object_key"]
        self.parts: list[list[Any]] = json.loads(upload["parts"])
        self.multipart_id: str | None = upload["multipart_id"]
        self.family: Family | None = Family(upload["family"]) if upload["family"] else None
        self.offset = upload["received"]
        self.expires_at: datetime = upload["expires_at"]
        self.gathered = _Gathered()
        self.in_flight: deque[tuple[int, asyncio.Task[str]]] = deque()
        self.finished = False
        self.running: Any = None  # the SHA-256 of the bytes so far, if known; else read back

    async def receive(self, request: Request) -> str:
        upload = self.upload
        if upload["tail_size"]:
            tail = await self.runtime.blobs.get(self.bucket, upload["tail_key"])
            await self._send_parts(self.gathered.add(tail))
        known = _hashes.pop(upload["id"], None)
        running = known[1] if known and known[0] == self.offset else None
        if self.offset == 0:
            running = hashlib.sha256()
        whole = CHECKSUMS[self.checksum[0]]() if self.checksum else None
        received = 0
        try:
            async for chunk in request.stream():
                received += len(chunk)
                if self.offset + received > upload["length"]:
                    raise Refused(
                        "size_mismatch", "The upload sent more bytes than its Upload-Length."
                    )
                for hashed in (running, whole):
                    if hashed is not None:
                        hashed.update(chunk)
                await self._send_parts(self.gathered.add(chunk))
                if time.monotonic() >= self.lease.renew_at:
                    await self.lease.renew(self.offset + received)
        except ClientDisconnect:
            if whole is not None:
                return "checksum_mismatch"  # a checksummed request counts whole or not at all
        finally:
            await self._settle()
        if whole is not None and self.checksum and whole.digest() != self.checksum[1]:
            return "checksum_mismatch"
        self.offset += received
        self.finished = self.offset == upload["length"]
        self.running = running
        return "ok"

    def _judge(self, head: bytes) -> None:
        """Judge the file by its first bytes (they start the first part, or the whole file)."""
        if self.family is None:
            policy, _ = policy_and_limits(self.session)
            path = self.file_row["relative_path"]
            self.family = check_head(policy, path, head[:HEAD_BYTES])

    async def _send_parts(self, parts: list[bytes]) -> None:
        """Start each part's upload and go on receiving; a part waits for a place in flight."""
        for data in parts:
            self._judge(data)
            if self.multipart_id is None:
                self.multipart_id = await self._start_multipart()
            while len(self.in_flight) >= _PARTS_IN_FLIGHT:
                await self._landed()
            number = len(self.parts) + len(self.in_flight) + 1
            stored = self.runtime.blobs.put_part(
                self.bucket, self.key, self.multipart_id, number, data
            )
            self.in_flight.append((number, asyncio.create_task(stored)))

    async def _start_multipart(self) -> str:
        """A new S3 multipart upload, named in the upload's row before any part is sent: a
        request that then ends unexpectedly (cancelled by a restart, killed, an S3 or database
        error) leaves its parts where a DELETE or the expiry sweep finds them."""
        blobs = self.runtime.blobs
        multipart_id = await blobs.start_multipart(
            self.bucket, self.key, "application/octet-stream"
        )
        try:
            await self._record(
                self.runtime.db.pool, "UPDATE tus_uploads SET multipart_id = $3", multipart_id
            )
        except _LeaseLost:  # the row was left as it was: nobody else knows of it
            await blobs.abort_multipart(self.bucket, self.key, multipart_id)
            raise
        return multipart_id

    async def _landed(self) -> None:
        number, task = self.in_flight.popleft()
        self.parts.append([number, await task])

    async def _settle(self) -> None:
        """Wait for the parts in flight; when one failed, for the others too, then raise."""
        try:
            while self.in_flight:
                await self._landed()
        finally:
            if self.in_flight:  # nothing may still write once the upload is discarded
                await asyncio.wait([task for _, task in self.in_flight])
                for _, task in self.in_flight:
                    task.exception()  # retrieved: the first failure is the one raised
                self.in_flight.clear()

    async def save(self, outcome: str) -> None:
        """Record what arrived; the S3 work first, under a freshly renewed lease."""
        upload, blobs, db = self.upload, self.runtime.blobs, self.runtime.db
        await self.lease.renew(self.offset)
        if outcome != "ok":  # keep the offset; parts past it are overwritten when resumed
            return
        rest, tail = self.gathered.rest(), None
        if self.finished:
            self._judge(rest)
            if self.multipart_id is None:
                await blobs.put_bytes(self.bucket, self.key, rest)
            else:
                if rest:
                    await self._send_parts([rest])
                    await self._settle()
                await blobs.complete_multipart(
                    self.bucket, self.key, self.multipart_id, [(n, e) for n, e in self.parts]
                )
            # The object is whole: no multipart upload is left to abort. The upload answers as
            # finished for a whole expiry window, for a client that missed this answer.
            self.multipart_id, self.parts = None, []
            settings = cast(IngestSettings, self.runtime.settings)
            self.expires_at = datetime.now(UTC) + timedelta(seconds=settings.tus_expiry_seconds)
        elif rest:
            tail = f"tus/{upload['id']}/tail-{self.offset}"
            await blobs.put_bytes(self.bucket, tail, rest)
        async with db.transaction() as tx:
            await self._record(
                tx,
                "UPDATE tus_uploads SET received = $3, multipart_id = $4, parts = $5::jsonb,"
                " tail_key = $6, tail_size = $7, family = $8, expires_at = $9",
                self.offset,
                self.multipart_id,
                json.dumps(self.parts),
                tail,
                len(rest) if tail else 0,
                self.family.value if self.family else None,
                self.expires_at,
            )
            await store.progress(tx, upload["file_id"], self.offset)
        # Kept for the next request only once its offset is recorded: a request that lost the
        # upload meanwhile records nothing, and lends no hash to the one that took it over.
        if self.running is not None and not self.finished:
            _hashes[upload["id"]] = (self.offset, self.running)
            while len(_hashes) > _HASHES_KEPT:
                _hashes.popitem(last=False)
        if upload["tail_key"] and upload["tail_key"] != tail:
            await blobs.remove(self.bucket, upload["tail_key"])

    async def _record(self, conn: Any, statement: str, *values: Any) -> None:
        """Change the upload's row, if this request still holds it."""
        held = await conn.fetchval(
            f"{statement} WHERE id = $1 AND writer = $2 RETURNING true",
            self.upload["id"],
            self.lease.token,
            *values,
        )
        if not held:
            raise _LeaseLost

    async def refuse(self, error: Refused) -> None:
        """The file is failed and what this upload stored is dropped: from S3 first, while
        this request still holds the upload, so an S3 failure leaves the row to come back to."""
        with contextlib.suppress(_LeaseLost):  # else no longer this request's to fail
            await self.lease.renew(self.offset)
            await _discard(self.runtime, {**self.upload, "multipart_id": self.multipart_id})
            async with self.runtime.db.transaction() as tx:
                await self._record(tx, "DELETE FROM tus_uploads")
                await store.fail(tx, self.upload["file_id"], error.code, error.message)

    async def complete(self) -> None:
        runtime, upload = self.runtime, self.upload
        if self.running is not None:
            sha256 = self.running.hexdigest()
        else:
            sha256 = await runtime.blobs.sha256(self.bucket, self.key)
        assert self.family is not None
        await complete_upload(
            runtime,
            self.session,
            self.file_row,
            key=self.key,
            size=upload["length"],
            sha256=sha256,
            family=self.family,
        )


class _Gathered:
    """Bytes gathered into whole parts, each byte copied once: into its part."""

    def __init__(self) -> None:
        self._pieces: list[memoryview] = []
        self._size = 0

    def add(self, data: bytes) -> list[bytes]:
        """Keep ``data``; the whole parts it completes."""
        view, parts = memoryview(data), []
        while self._size + len(view) >= PART_SIZE:
            take = PART_SIZE - self._size
            self._pieces.append(view[:take])
            view = view[take:]
            parts.append(b"".join(self._pieces))
            self._pieces, self._size = [], 0
        if view:
            self._pieces.append(view)
            self._size += len(view)
        return parts

    def rest(self) -> bytes:
        """What is left short of a whole part."""
        return b"".join(self._pieces)


async def _remove(runtime: Runtime, upload_id: uuid.UUID) -> None:
    """Remove an upload no PATCH holds (else 423), holding it meanwhile: what it stored in S3
    first and its row last, so an S3 failure leaves the row, the one way back to those bytes,
    for the next try (the client's, or the expiry sweep's)."""
    lease = await _Lease.take(runtime, upload_id)
    try:
        await _discard(runtime, lease.upload)
    except BaseException:
        await lease.release()
        raise
    await runtime.db.pool.execute(
        "DELETE FROM tus_uploads WHERE id = $1 AND writer = $2", upload_id, lease.token
    )


async def _discard(runtime: Runtime, upload: Mapping[str, Any]) -> None:
    """Drop what an upload stored in S3: its multipart parts, its tail, and its object unless
    the file keeps it (a process may have died between joining the parts and recording it)."""
    bucket, blobs = runtime.settings.bucket_originals, runtime.blobs
    if upload["multipart_id"]:
        await blobs.abort_multipart(bucket, upload["object_key"], upload["multipart_id"])
    if upload["tail_key"]:
        await blobs.remove(bucket, upload["tail_key"])
    await remove_unless_kept(runtime, upload["file_id"], upload["object_key"])
    _hashes.pop(upload["id"], None)


@router.delete("/{upload_id}", status_code=204)
async def terminate(upload_id: uuid.UUID, caller: CallerDep, runtime: RuntimeDep) -> Response:
    """Cancel an upload: its stored bytes are removed and the file is marked failed. A finished
    upload's file is no longer the upload's to cancel: the answer is the same, and it stays."""
    upload, _ = await _upload(runtime, caller, upload_id)  # the caller may, and not expired
    if not _finished(upload):
        await _remove(runtime, upload_id)
        await store.fail(
            runtime.db.pool,
            upload["file_id"],
            "upload_cancelled",
            "The upload was cancelled.",
            attempt=upload["attempts"],  # one that finished meanwhile stays as it is
        )
    return Response(status_code=204, headers=_headers())


async def clean_expired(runtime: Runtime) -> int:
    """Remove expired uploads from S3 and the database; the files of unfinished ones fail."""
    rows = await runtime.db.pool.fetch(
        "SELECT t.*, f.attempts FROM tus_uploads t JOIN files f ON f.id = t.file_id"
        f" WHERE t.expires_at < now() AND NOT {_HELD} ORDER BY t.expires_at LIMIT 500"
    )
    for row in rows:
        try:
            await _remove(runtime, row["id"])
        except Refused:
            continue  # a PATCH took it meanwhile
        except Exception:  # S3 failing for this one: its row stays for the next round
            log.exception("expired upload %s not removed", row["id"])
            continue
        if _finished(row):  # its file was recorded, or is swept as a stalled upload
            continue
        await store.fail(
            runtime.db.pool,
            row["file_id"],
            "upload_expired",
            "The resumable upload was not finished before it expired; upload the file again.",
            attempt=row["attempts"],  # one failed already (abandoned at submit) stays as it is
        )
    return len(rows)
