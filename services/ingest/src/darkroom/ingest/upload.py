"""One file's bytes, from the request to S3: judged by their head, counted, hashed, limited.

The first bytes are held back until the policy has judged them (type and EXIF); everything
after goes straight through to ``Blobs.put_stream``, which stops at the declared size.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable

from darkroom.ingest.content import HEAD_BYTES, Family
from darkroom.ingest.policy import Policy, check_head

PROGRESS_EVERY = 4 * 1024 * 1024
PROGRESS_SECONDS = 60.0
"""Progress is recorded every few megabytes, and at least this often while bytes arrive: an
upload whose progress stops for ``store.STALLED_AFTER`` is given up."""


async def judged(
    chunks: AsyncIterable[bytes], policy: Policy, path: str, found: list[Family]
) -> AsyncIterator[bytes]:
    """Pass ``chunks`` on once their head is accepted; ``found`` receives the family."""
    head = bytearray()
    stream = aiter(chunks)
    async for chunk in stream:
        head += chunk
        if len(head) >= HEAD_BYTES:
            break
    found.append(check_head(policy, path, bytes(head)))
    if head:
        yield bytes(head)
    async for chunk in stream:
        yield chunk


async def reported(
    chunks: AsyncIterable[bytes],
    report: Callable[[int], Awaitable[None]],
    size: int,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[bytes]:
    """Pass ``chunks`` on, reporting the bytes received every few megabytes or every minute
    (not the last: the file is about to be marked uploaded)."""
    received = reported_at = 0
    last = clock()
    async for chunk in chunks:
        received += len(chunk)
        now = clock()
        if received < size and (
            received - reported_at >= PROGRESS_EVERY or now - last >= PROGRESS_SECONDS
        ):
            await report(received)
            reported_at, last = received, now
        yield chunk
