"""A plain upload's progress: recorded every few megabytes, and every minute while a slow one
trickles in (an upload whose progress stops is given up as stalled)."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Callable

from darkroom.ingest.upload import PROGRESS_EVERY, PROGRESS_SECONDS, reported


async def _chunks(size: int, count: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield b"x" * size


async def _reports(
    chunks: AsyncIterator[bytes], size: int, clock: Callable[[], float] = time.monotonic
) -> list[int]:
    seen: list[int] = []

    async def report(received: int) -> None:
        seen.append(received)

    passed = b"".join([chunk async for chunk in reported(chunks, report, size, clock)])
    assert len(passed) == size  # every byte goes on
    return seen


async def test_progress_is_recorded_every_few_megabytes_but_not_at_the_end() -> None:
    piece = PROGRESS_EVERY // 2
    assert await _reports(_chunks(piece, 5), 5 * piece) == [2 * piece, 4 * piece]


async def test_a_slow_upload_records_its_progress_every_minute() -> None:
    ticks = itertools.count(0, PROGRESS_SECONDS / 2)  # half a minute a chunk
    assert await _reports(_chunks(1000, 6), 6000, lambda: next(ticks)) == [2000, 4000]
