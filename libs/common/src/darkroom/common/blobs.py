"""S3 for every service: the ``minio`` SDK behind a small async interface.

The SDK is synchronous, so every call runs in a worker thread. ``put_stream`` sends a stream of
known size as it arrives: the bytes cross to the SDK's thread through a bounded queue and go
out as the body of one PUT (a multipart upload past ``STREAMED_PART_SIZE``, its parts streamed
too), so memory stays at a few pieces per upload whatever the size; SHA-256 and size are
computed on the way, and a stream that passes its size, or ends short of it, is stopped at
once, its request cut off, so no object is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

from minio import Minio
from minio.datatypes import Part
from minio.error import S3Error
from minio.helpers import DictType
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from darkroom.common.settings import CommonSettings

PART_SIZE = 5 * 1024 * 1024
"""The smallest part S3 accepts (but the last): resumable uploads gather parts this size."""
STREAMED_PART_SIZE = 1024**3
"""``put_stream`` sends a stream up to this size as one PUT, a larger one in parts this size (a
streamed part costs no memory, and S3 takes at most 10,000 parts)."""
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


class Incomplete(Exception):
    """The stream ended short of its size; nothing was stored."""

    def __init__(self, received: int, size: int) -> None:
        super().__init__(f"{received:,} of {size:,} bytes arrived")
        self.received = received
        self.size = size


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
        self._client = _Client(
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
        size: int,
        content_type: str = "application/octet-stream",
    ) -> StoredBlob:
        """Store the stream as ``bucket/key``; it must carry exactly ``size`` bytes: raises
        ``LimitExceeded`` past them, ``Incomplete`` short of them."""
        with _span("put", bucket, key):
            return await self._put_stream(bucket, key, chunks, size, content_type)

    async def _put_stream(
        self,
        bucket: str,
        key: str,
        chunks: AsyncIterable[bytes],
        size: int,
        content_type: str,
    ) -> StoredBlob:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(_QUEUE_CHUNKS)
        feed = _Feed(queue, loop)
        upload = asyncio.create_task(
            asyncio.to_thread(self._send, bucket, key, feed, size, content_type)
        )
        received = held = 0
        pending: list[bytes] = []
        try:
            async for chunk in chunks:
                received += len(chunk)
                if received > size:
                    raise LimitExceeded(size)
                if upload.done():
                    break  # the upload failed; its error is raised below
                pending.append(chunk)
                held += len(chunk)
                # The bytes that complete the size wait for the stream's end: sent at once,
                # the object would be whole in S3 before a byte too many could be seen.
                if held >= _HANDOFF_BYTES and received < size:
                    await _put_unless_done(queue, b"".join(pending), upload)
                    pending, held = [], 0
            else:
                if received < size:
                    raise Incomplete(received, size)
                if pending:
                    await _put_unless_done(queue, b"".join(pending), upload)
            etag = await upload
        except BaseException as exc:
            if not upload.done():
                feed.abort(exc)
                await asyncio.wait([upload])
            if not upload.cancelled():
                upload.exception()  # taken: the error raised here is the one that counts
            raise
        return StoredBlob(sha256=feed.sha256.hexdigest(), size=feed.size, etag=etag)

    def _send(self, bucket: str, key: str, feed: _Feed, size: int, content_type: str) -> str:
        """In the SDK's thread: the stream as one PUT, or a multipart upload; its ETag."""
        client = self._client
        headers: DictType = {"Content-Type": content_type}
        if size <= STREAMED_PART_SIZE:
            body = cast(bytes, feed.body(size))
            return client._put_object(bucket, key, body, headers).etag or ""
        upload_id = client._create_multipart_upload(bucket, key, headers)
        try:
            parts = []
            for number, start in enumerate(range(0, size, STREAMED_PART_SIZE), 1):
                body = cast(bytes, feed.body(min(STREAMED_PART_SIZE, size - start)))
                etag = client._upload_part(bucket, key, body, None, upload_id, number)
                parts.append(Part(number, etag))
            return client._complete_multipart_upload(bucket, key, upload_id, parts).etag or ""
        except BaseException:
            with contextlib.suppress(S3Error):
                client._abort_multipart_upload(bucket, key, upload_id)
            raise

    async def put_bytes(self, bucket: str, key: str, data: bytes) -> None:
        with _span("put", bucket, key):
            headers: DictType = {"Content-Type": "application/octet-stream"}
            body = cast(bytes, _BytesBody(data))
            await asyncio.to_thread(self._client._put_object, bucket, key, body, headers)

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
                self._client._upload_part,
                bucket,
                key,
                cast(bytes, _BytesBody(data)),
                None,
                upload_id,
                number,
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


class _Feed:
    """The stream's bytes in the SDK's thread, taken from the event loop's queue as they
    arrive, hashed and counted on the way."""

    def __init__(
        self, queue: asyncio.Queue[bytes | BaseException | None], loop: asyncio.AbstractEventLoop
    ) -> None:
        self._queue = queue
        self._loop = loop
        self._left = memoryview(b"")
        self._error: BaseException | None = None
        self.sha256 = hashlib.sha256()
        self.size = 0

    def abort(self, error: BaseException) -> None:
        """Make the SDK's thread fail with ``error`` (called on the event loop)."""
        self._error = error
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(error)

    def body(self, length: int) -> _StreamedBody:
        return _StreamedBody(self, length)

    def take(self, most: int) -> memoryview:
        """The next piece of the stream, at most ``most`` bytes."""
        if not self._left:
            item = asyncio.run_coroutine_threadsafe(self._queue.get(), self._loop).result()
            if isinstance(item, BaseException):
                raise item
            if item is None:
                raise RuntimeError("the stream ended before its size")  # the loop says first
            self._left = memoryview(item)
        if self._error is not None:
            raise self._error
        piece, self._left = self._left[:most], self._left[most:]
        self.sha256.update(piece)
        self.size += len(piece)
        return piece


class _UnsignedBody:
    """A request body the SDK sends as it is read, its payload not hashed to sign it."""

    def __init__(self, length: int) -> None:
        self._length = length

    def __len__(self) -> int:
        return self._length


class _StreamedBody(_UnsignedBody):
    """The next ``length`` bytes of a feed."""

    def __init__(self, feed: _Feed, length: int) -> None:
        super().__init__(length)
        self._feed = feed
        self._sent = False

    def __iter__(self) -> Iterator[memoryview]:
        if self._sent:  # a retry cannot send it again: the bytes are gone
            raise RuntimeError("a streamed body cannot be sent twice")
        self._sent = True
        left = self._length
        while left:
            piece = self._feed.take(left)
            left -= len(piece)
            yield piece


class _BytesBody(_UnsignedBody):
    """Bytes in memory (a retry sends them again)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(len(data))
        self._data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self._data


class _Client(Minio):
    """The SDK, taught to send an ``_UnsignedBody`` as it is read: with its length, and without
    hashing the payload first to sign it (``UNSIGNED-PAYLOAD``, as the SDK itself signs over
    HTTPS). Darkroom hashes what it stores itself; the S3 server is spared checking a hash
    per request, which costs it more CPU than the rest of a PUT."""

    def _build_headers(
        self,
        host: str,
        headers: dict[str, Any] | None = None,
        body: bytes | None = None,
        creds: Any = None,
    ) -> tuple[dict[str, Any], datetime]:
        if not isinstance(body, _UnsignedBody):
            return super()._build_headers(host, headers, body, creds)
        built, date = super()._build_headers(host, headers, None, creds)
        built["Content-Length"] = str(len(body))
        if creds:
            built["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
        return built, date
