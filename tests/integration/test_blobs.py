"""Blobs on the real S3-compatible server: streaming puts with flat memory and an exact size."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import psutil
import pytest

from darkroom.common import blobs as blobs_module
from darkroom.common.blobs import Blobs, Incomplete, LimitExceeded
from darkroom.common.settings import CommonSettings

MB = 1024 * 1024
BUCKET = "darkroom-test"


@pytest.fixture
async def blobs(settings: CommonSettings) -> Blobs:
    blobs = Blobs(settings)
    await blobs.ensure_buckets(BUCKET)
    return blobs


async def stream(total: int, *, chunk: int = 256 * 1024) -> AsyncIterator[bytes]:
    """``total`` bytes of varied content, made as they are sent (never held whole)."""
    block = hashlib.sha256(b"darkroom").digest() * (chunk // 32)
    for n in range(total // chunk):
        yield n.to_bytes(8, "big") + block[8:]


class PeakMemory:
    """Samples this process's resident memory in a thread while the block runs."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._stop = threading.Event()
        self.baseline = self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


async def test_a_200_mb_stream_arrives_intact_with_flat_memory(blobs: Blobs) -> None:
    key = f"{uuid.uuid4()}/original"
    expected = hashlib.sha256()
    async for piece in stream(200 * MB):
        expected.update(piece)

    with PeakMemory() as memory:
        stored = await blobs.put_stream(BUCKET, key, stream(200 * MB), size=200 * MB)

    assert stored.size == 200 * MB
    assert stored.sha256 == expected.hexdigest()
    assert memory.growth < 16 * MB, f"memory grew by {memory.growth / MB:.1f} MB"
    info = await blobs.stat(BUCKET, key)
    assert info is not None and info.size == 200 * MB
    assert hashlib.sha256(await blobs.get(BUCKET, key)).hexdigest() == expected.hexdigest()
    await blobs.remove(BUCKET, key)


@pytest.mark.parametrize("size", [3 * MB, 40 * MB], ids=["one part", "multipart"])
async def test_a_put_past_its_limit_stops_and_leaves_no_object(blobs: Blobs, size: int) -> None:
    key = f"{uuid.uuid4()}/original"
    sent = 0

    async def counted() -> AsyncIterator[bytes]:
        nonlocal sent
        async for piece in stream(size):
            sent += len(piece)
            yield piece

    with pytest.raises(LimitExceeded, match="larger than its limit of 1,048,576 bytes"):
        await blobs.put_stream(BUCKET, key, counted(), size=1 * MB)

    assert await blobs.stat(BUCKET, key) is None
    # Stopped at the limit, not after reading the whole stream (the queue holds a few chunks).
    assert sent < 1 * MB + 8 * 256 * 1024


async def test_a_stream_that_fails_midway_leaves_no_object(blobs: Blobs) -> None:
    key = f"{uuid.uuid4()}/original"

    async def broken() -> AsyncIterator[bytes]:
        async for n, piece in _enumerate(stream(20 * MB)):
            if n == 40:
                raise ConnectionResetError("client went away")
            yield piece

    with pytest.raises(ConnectionResetError):
        await blobs.put_stream(BUCKET, key, broken(), size=20 * MB)
    assert await blobs.stat(BUCKET, key) is None


@pytest.mark.parametrize("size", [3 * MB, 40 * MB], ids=["one put", "multipart"])
async def test_a_stream_short_of_its_size_leaves_no_object(
    blobs: Blobs, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blobs_module, "STREAMED_PART_SIZE", 16 * MB)
    key = f"{uuid.uuid4()}/original"
    with pytest.raises(Incomplete, match=f"{size - MB:,} of {size:,} bytes arrived"):
        await blobs.put_stream(BUCKET, key, stream(size - MB), size=size)
    assert await blobs.stat(BUCKET, key) is None


async def test_a_stream_past_the_part_size_goes_in_streamed_parts(
    blobs: Blobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blobs_module, "STREAMED_PART_SIZE", 5 * MB)
    key = f"{uuid.uuid4()}/original"
    size = 12 * MB + 256 * 1024  # two whole parts and a short last one
    expected = hashlib.sha256()
    async for piece in stream(size):
        expected.update(piece)
    stored = await blobs.put_stream(BUCKET, key, stream(size), size=size)
    assert (stored.size, stored.sha256) == (size, expected.hexdigest())
    assert stored.etag.endswith("-3")  # S3's ETag of a multipart object names its parts
    assert hashlib.sha256(await blobs.get(BUCKET, key)).hexdigest() == expected.hexdigest()
    await blobs.remove(BUCKET, key)


async def _enumerate(items: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, bytes]]:
    n = 0
    async for item in items:
        yield n, item
        n += 1


async def test_a_presigned_url_serves_the_object_and_expires(blobs: Blobs) -> None:
    key = f"{uuid.uuid4()}/thumb"
    await blobs.put_bytes(BUCKET, key, b"a small derived image")
    url = await blobs.presigned_get(BUCKET, key, expires=timedelta(seconds=2))
    with urllib.request.urlopen(url, timeout=10) as response:  # no credentials: the URL is all
        assert response.read() == b"a small derived image"
    await asyncio.sleep(3)
    with pytest.raises(urllib.error.HTTPError) as expired:
        urllib.request.urlopen(url, timeout=10)
    assert expired.value.code == 403
    await blobs.remove(BUCKET, key)
