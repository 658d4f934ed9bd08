"""Large files for the ingest bench: one file over tus 1.0 through the gateway, or put directly.

The bytes are made as they are sent, a MiB at a time, so a 2 GiB upload costs the client a few
MiB of memory: the first 64 KiB of a real corpus MP4 (its ``ftyp`` box is what the gateway's
content check reads; a ``.mp4`` may be up to 10 GB under the ``library`` policy, where a JPEG is
capped at 50 MB), then a pseudo-random 1 MiB block repeated, each copy stamped with the file's
seed and its own number, so no two MiB of a run are alike.

Used by ``bench.ingest_throughput``; see there for the runs.
"""

from __future__ import annotations

import base64
import io
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO, cast

import httpx
from minio import Minio

from darkroom.ingest.api import object_key

MiB = 1024 * 1024
BLOCK = MiB
CLIP = Path(__file__).resolve().parents[2] / "shared/corpus/faces/short_hamilton_clip.mp4"
HEAD = 64 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_STREAM = "application/offset+octet-stream"
_FILLER = random.Random(1).randbytes(BLOCK)


@dataclass(frozen=True)
class BigFile:
    """``size`` bytes of an MP4-looking file, made when read; ``seed`` makes it unique."""

    size: int
    seed: int

    def block(self, number: int) -> bytes:
        """The ``number``-th MiB of the file (the last one may be shorter)."""
        if number == 0:
            data = _clip_head() + _FILLER[HEAD:]
        else:
            stamp = f"{self.seed:08d}:{number:012d}".encode()
            data = stamp + _FILLER[len(stamp) :]
        rest = self.size - number * BLOCK
        return data if rest >= BLOCK else data[:rest]

    def blocks(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes from ``start`` (a multiple of a MiB) to ``end``, a MiB at a time."""
        assert start % BLOCK == 0, "ranges start on a MiB"
        end = self.size if end is None else end
        for number in range(start // BLOCK, -(-end // BLOCK)):
            data = self.block(number)
            wanted = end - number * BLOCK
            yield data if wanted >= len(data) else data[:wanted]

    async def chunks(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        for data in self.blocks(start, end):
            yield data

    def reader(self) -> BinaryIO:
        """A file object over the bytes, for the minio SDK."""
        return cast(BinaryIO, _Reader(self.blocks()))


@cache
def _clip_head() -> bytes:
    with CLIP.open("rb") as clip:
        head = clip.read(HEAD)
    assert head[4:8] == b"ftyp", f"{CLIP} does not start with an ftyp box"
    return head


class _Reader(io.RawIOBase):
    """``read(n)`` answers exactly ``n`` bytes until the end, joined once from whole blocks."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        super().__init__()
        self._blocks = blocks
        self._rest = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        pieces, held = [self._rest] if self._rest else [], len(self._rest)
        while size is None or size < 0 or held < size:
            data = next(self._blocks, None)
            if data is None:
                break
            pieces.append(data)
            held += len(data)
        joined = b"".join(pieces)
        if size is None or size < 0 or held <= size:
            self._rest = b""
            return joined
        self._rest = joined[size:]
        return joined[:size]


def _metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


@dataclass
class TusTiming:
    """Where the time of one tus upload went, in seconds."""

    register: float = 0.0
    create: float = 0.0
    patches: float = 0.0

    @property
    def total(self) -> float:
        return self.register + self.create + self.patches


async def tus_upload(
    http: httpx.AsyncClient, project: str, big: BigFile, *, chunk: int = 0
) -> tuple[str, TusTiming]:
    """Send ``big`` over tus as the one file of a new session; the S3 key it is stored under.

    The file is added to the session first, then ``POST /v1/tus`` creates the upload and each
    ``PATCH`` streams its bytes (with their ``Content-Length``): one PATCH for the whole file
    unless ``chunk`` bytes (a multiple of a MiB) are given.
    """
    timing = TusTiming()
    start = time.perf_counter()
    made = await http.post(
        f"/v1/projects/{project}/sessions",
        json={"source": "bench", "view_name": "tus", "capture_date": "2024-05-17"},
    )
    made.raise_for_status()
    session = str(made.json()["id"])
    path = f"big/clip-{big.seed:08d}.mp4"
    added = await http.post(
        f"/v1/sessions/{session}/files", json={"files": [{"path": path, "size": big.size}]}
    )
    added.raise_for_status()
    file_id = str(added.json()["files"][0]["id"])
    timing.register = time.perf_counter() - start

    start = time.perf_counter()
    created = await http.post(
        "/v1/tus",
        headers=TUS
        | {
            "Upload-Length": str(big.size),
            "Upload-Metadata": _metadata(session=session, file=file_id),
        },
    )
    if created.status_code != 201:
        raise SystemExit(
            f"the gateway refused the tus upload: {created.status_code} {created.text}"
        )
    location = created.headers["Location"]
    timing.create = time.perf_counter() - start

    start = time.perf_counter()
    offset, step = 0, chunk or big.size
    assert step % BLOCK == 0 or step == big.size, "PATCHes are whole MiB"
    while offset < big.size:
        end = min(offset + step, big.size)
        sent = await http.patch(
            location,
            content=big.chunks(offset, end),
            headers=TUS
            | {
                "Upload-Offset": str(offset),
                "Content-Type": OFFSET_STREAM,
                "Content-Length": str(end - offset),
            },
        )
        if sent.status_code != 204:
            raise SystemExit(f"the gateway refused a PATCH: {sent.status_code} {sent.text}")
        offset = int(sent.headers["Upload-Offset"])
    timing.patches = time.perf_counter() - start

    files = (await http.get(f"/v1/sessions/{session}")).json()["files"]
    state = next(f for f in files if f["id"] == file_id)
    if state["status"] != "uploaded" or state["size"] != big.size:
        raise SystemExit(f"the tus upload did not end uploaded: {state}")
    return object_key(uuid.UUID(project), uuid.UUID(file_id), attempt=1), timing


class TimedMinio(Minio):
    """The SDK, counting the seconds of its CompleteMultipartUpload calls.

    The S3 server joins the parts into one object then (s3proxy's filesystem backend copies
    them into a new file): a cost the tus path and the direct put share.
    """

    joining = 0.0

    def _complete_multipart_upload(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return super()._complete_multipart_upload(*args, **kwargs)
        finally:
            self.joining += time.perf_counter() - start


def put_direct(s3: TimedMinio, bucket: str, key: str, big: BigFile, *, parallel: int) -> float:
    """The same bytes with the SDK's ``put_object``: length known, its default part size
    (5 MiB up to 50 GiB), ``parallel`` parts in flight (the SDK's default is 3).

    Returns the seconds the S3 server took to join the parts.
    """
    joined = s3.joining
    s3.put_object(bucket, key, big.reader(), big.size, num_parallel_uploads=parallel)
    return s3.joining - joined
