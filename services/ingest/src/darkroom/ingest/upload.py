"""One file's bytes, from the request to S3: judged by their head, counted, hashed, limited.

The first bytes are held back until the policy has judged them (type and EXIF); everything
after goes straight through to ``Blobs.put_stream``, which stops at the declared size.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable

from darkroom.ingest.content import HEAD_BYTES, Family
from darkroom.ingest.policy import Policy, check_head

PROGRESS_EVERY = 4 * 1024 * 1024


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
    chunks: AsyncIterable[bytes], report: Callable[[int], Awaitable[None]], size: int
) -> AsyncIterator[bytes]:
    """Pass ``chunks`` on, reporting the bytes received every few megabytes (not the last:
    the file is about to be marked uploaded)."""
    received = reported_at = 0
    async for chunk in chunks:
        received += len(chunk)
        if received - reported_at >= PROGRESS_EVERY and received < size:
            await report(received)
            reported_at = received
        yield chunk
