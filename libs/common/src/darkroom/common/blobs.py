"""S3 for every service: the ``minio`` SDK behind a small async interface.

The SDK is synchronous, so every call runs in a worker thread. ``put_stream`` feeds it from an
async iterator through a bounded queue: memory stays at about two multipart parts whatever the
size, SHA-256 and size are computed on the way, and a stream that passes its limit is stopped
at once, its multipart upload aborted, so no object is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
from collections import deque
from collections.abc import AsyncIterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, BinaryIO, cast
from urllib.parse import urlsplit

from minio import Minio
from minio.datatypes import Part
from minio.error import S3Error
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from darkroom.common.settings import CommonSettings

PART_SIZE = 5 * 1024 * 1024
"""The smallest part S3 accepts: the SDK holds one whole part in memory per upload."""
_QUEUE_CHUNKS = 2
_HANDOFF_BYTES = 1024 * 1024
"""Chunks are gathered to this size before crossing to the SDK's thread: each crossing costs."""
_tracer = trace.get_tracer(__name__)


def _span(operation: str, bucket: str, key: str = "") -> AbstractContextManager[trace.Span]:
    """A client span for one S3 call."""
    return _tracer.start_as_current_span(
        f"s3 {operation}",
        kind=SpanKind.CLIENT,
        attributes={"aws.s3.bucket": bucket, "aws.s3.key": key, "rpc.system": "aws-api"},
    )


class LimitExceeded(Exception):
    """The stream passed its byte limit; nothing was stored."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the file is larger than its limit of {limit:,} bytes")
        self.limit = limit


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size: int
    etag: str


@dataclass(frozen=True)
class BlobInfo:
    size: int
    etag: str
    content_type: str | None


class Blobs:
    def __init__(self, settings: CommonSettings) -> None:
        endpoint = urlsplit(settings.s3_endpoint)
        self._client = Minio(
            endpoint.netloc,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key.get_secret_value(),
            secure=endpoint.scheme == "https",
            region=settings.s3_region,
        )

    async def ensure_buckets(self, *names: str) -> None:
        for name in names:
            if not await asyncio.to_thread(self._client.bucket_exists, name):
                try:
                    await asyncio.to_thread(self._client.make_bucket, name)
                except S3Error as exc:  # another replica made it first
                    if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                        raise

    async def ping(self) -> None:
        await asyncio.to_thread(self._client.list_buckets)

    async def put_stream(
        self,
        bucket: str,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        limit: int,
        content_type: str = "application/octet-stream",
    ) -> StoredBlob:
        """Store the stream as ``bucket/key``; raises ``LimitExceeded`` past ``limit`` bytes."""
        with _span("put", bucket, key):
            return await self._put_stream(bucket, key, chunks, limit, content_type)

    async def _put_stream(
        self,
        bucket: str,
        key: str,
        chunks: AsyncIterable[bytes],
        limit: int,
        content_type: str,
    ) -> StoredBlob:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(_QUEUE_CHUNKS)
        reader = _QueueReader(queue, loop)
        upload = asyncio.create_task(
            asyncio.to_thread(
                self._client.put_object,
                bucket,
                key,
                cast(BinaryIO, reader),
                length=-1,
                part_size=PART_SIZE,
                content_type=content_type,
                num_parallel_uploads=1,
            )
        )
        received = held = 0
        pending: list[bytes] = []
        try:
            async for chunk in chunks:
                received += len(chunk)
                if received > limit:
                    raise LimitExceeded(limit)
                if upload.done():
                    break  # the upload failed; its error is raised below
                pending.append(chunk)
                held += len(chunk)
                if held >= _HANDOFF_BYTES:
                    await _put_unless_done(queue, b"".join(pending), upload)
                    pending, held = [], 0
            else:
                if pending:
                    await _put_unless_done(queue, b"".join(pending), upload)
                await _put_unless_done(queue, None, upload)
            result = await upload
        except BaseException as exc:
            if not upload.done():
                reader.abort(exc)
                await asyncio.wait([upload])
            if not upload.cancelled():
                upload.exception()  # taken: the error raised here is the one that counts
            raise
        etag = result.etag or ""
        return StoredBlob(sha256=reader.sha256.hexdigest(), size=reader.size, etag=etag)

    async def put_bytes(self, bucket: str, key: str, data: bytes) -> None:
        with _span("put", bucket, key):
            await asyncio.to_thread(
                self._client.put_object, bucket, key, io.BytesIO(data), len(data)
            )

    # Multipart uploads assembled across requests (resumable uploads). The SDK's multipart
    # calls are its protected API; they are wrapped here, the one place that knows it.

    async def start_multipart(self, bucket: str, key: str, content_type: str) -> str:
        with _span("create multipart", bucket, key):
            upload_id: str = await asyncio.to_thread(
                self._client._create_multipart_upload,
                bucket,
                key,
                {"Content-Type": content_type},
            )
        return upload_id

    async def put_part(
        self, bucket: str, key: str, upload_id: str, number: int, data: bytes
    ) -> str:
        """Store part ``number`` (1-based; at least 5 MiB unless it is the last); its ETag."""
        with _span("upload part", bucket, key):
            etag: str = await asyncio.to_thread(
                self._client._upload_part, bucket, key, data, None, upload_id, number
            )
        return etag

    async def complete_multipart(
        self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> None:
        with _span("complete multipart", bucket, key):
            await asyncio.to_thread(
                self._client._complete_multipart_upload,
                bucket,
                key,
                upload_id,
                [Part(number, etag) for number, etag in parts],
            )

    async def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        with _span("abort multipart", bucket, key), contextlib.suppress(S3Error):
            await asyncio.to_thread(self._client._abort_multipart_upload, bucket, key, upload_id)

    async def sha256(self, bucket: str, key: str) -> str:
        """SHA-256 of a stored object, read as a stream (memory stays flat)."""

        def digest() -> str:
            response = self._client.get_object(bucket, key)
            try:
                hashed = hashlib.sha256()
                for chunk in response.stream(PART_SIZE):
                    hashed.update(chunk)
                return hashed.hexdigest()
            finally:
                response.close()
                response.release_conn()

        with _span("get", bucket, key):
            return await asyncio.to_thread(digest)

    async def download(self, bucket: str, key: str, path: str) -> None:
        """Copy an object to a local file, streaming (for tools that need a file, like video)."""
        with _span("get", bucket, key):
            await asyncio.to_thread(self._client.fget_object, bucket, key, path)

    async def get(self, bucket: str, key: str) -> bytes:
        def read() -> bytes:
            response = self._client.get_object(bucket, key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        with _span("get", bucket, key):
            return await asyncio.to_thread(read)

    async def stat(self, bucket: str, key: str) -> BlobInfo | None:
        try:
            with _span("stat", bucket, key):
                info = await asyncio.to_thread(self._client.stat_object, bucket, key)
        except S3Error as exc:
            if exc.code in {"NoSuchKey", "NoSuchObject", "NotFound"}:
                return None
            raise
        return BlobInfo(size=info.size or 0, etag=info.etag or "", content_type=info.content_type)

    async def remove(self, bucket: str, key: str) -> None:
        with _span("remove", bucket, key):
            await asyncio.to_thread(self._client.remove_object, bucket, key)

    async def presigned_get(self, bucket: str, key: str, *, expires: timedelta) -> str:
        return await asyncio.to_thread(
            self._client.presigned_get_object, bucket, key, expires=expires
        )


async def _put_unless_done(
    queue: asyncio.Queue[bytes | BaseException | None],
    item: bytes | None,
    upload: asyncio.Task[Any],
) -> None:
    """Queue ``item`` for the upload thread, unless the upload ends first."""
    put = asyncio.ensure_future(queue.put(item))
    await asyncio.wait([put, upload], return_when=asyncio.FIRST_COMPLETED)
    if not put.done():
        put.cancel()


class _QueueReader(io.RawIOBase):
    """A blocking file object for the SDK's thread, fed from the event loop's queue.

    It hashes what it hands over and copies each byte once, into the part the SDK asks for.
    """

    def __init__(
        self, queue: asyncio.Queue[bytes | BaseException | None], loop: asyncio.AbstractEventLoop
    ) -> None:
        super().__init__()
        self._queue = queue
        self._loop = loop
        self._pieces: deque[bytes] = deque()
        self._held = 0
        self._eof = False
        self._error: BaseException | None = None
        self.sha256 = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def abort(self, error: BaseException) -> None:
        """Make the SDK's thread fail with ``error`` (called on the event loop)."""
        self._error = error
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(error)

    def read(self, size: int | None = -1) -> bytes:
        wanted = size if size is not None and size >= 0 else None
        while not self._eof and (wanted is None or self._held < wanted):
            item = asyncio.run_coroutine_threadsafe(self._queue.get(), self._loop).result()
            if isinstance(item, BaseException):
                raise item
            if item is None:
                self._eof = True
                break
            self.size += len(item)
            self.sha256.update(item)
            self._pieces.append(item)
            self._held += len(item)
        if self._error is not None:
            raise self._error
        return self._take(self._held if wanted is None else min(wanted, self._held))

    def _take(self, n: int) -> bytes:
        taken: list[bytes] = []
        while n > 0:
            piece = self._pieces.popleft()
            if len(piece) > n:  # split the last piece; its rest waits for the next read
                self._pieces.appendleft(piece[n:])
                piece = piece[:n]
            taken.append(piece)
            n -= len(piece)
            self._held -= len(piece)
        return taken[0] if len(taken) == 1 else b"".join(taken)
