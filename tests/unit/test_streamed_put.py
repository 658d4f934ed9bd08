"""A streamed put keeps nothing when the stream breaks its size (S3's side stood in for: the
SDK's thread reads the body as it would send it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from darkroom.common.blobs import Blobs, LimitExceeded
from darkroom.common.settings import CommonSettings

MIB = 1024 * 1024


def standing_in(blobs: Blobs, stored: list[str]) -> None:
    """The SDK's send replaced: it reads the whole body, then the object exists."""

    def send(bucket: str, key: str, feed: object, size: int, content_type: str) -> str:
        body = feed.body(size)  # type: ignore[attr-defined]
        assert sum(len(piece) for piece in body) == size
        stored.append(key)
        return "etag"

    blobs._send = send  # type: ignore[method-assign]


async def test_bytes_past_the_size_after_a_pause_leave_no_object() -> None:
    """Every declared byte arrives, the sender pauses (the last of them could be on their way
    to S3 by then), then sends more: the put fails and no object was completed."""
    blobs, stored = Blobs(CommonSettings()), list[str]()
    standing_in(blobs, stored)

    async def then_more() -> AsyncIterator[bytes]:
        yield b"a" * MIB
        yield b"b" * MIB
        await asyncio.sleep(0.5)
        yield b"c" * 10

    with pytest.raises(LimitExceeded):
        await blobs.put_stream("originals", "p/f/original", then_more(), size=2 * MIB)
    assert stored == []


async def test_a_stream_of_its_size_is_stored() -> None:
    blobs, stored = Blobs(CommonSettings()), list[str]()
    standing_in(blobs, stored)

    async def exactly() -> AsyncIterator[bytes]:
        yield b"a" * MIB
        yield b"b" * MIB

    put = await blobs.put_stream("originals", "p/f/original", exactly(), size=2 * MIB)
    assert (stored, put.size) == (["p/f/original"], 2 * MIB)
