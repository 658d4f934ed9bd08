"""The ingest gateway with a stopwatch on each stage of a tus PATCH (a bench probe, no change).

    DARKROOM_BENCH_STAGES=/tmp/stages.json python -m bench.tus_stages

Runs the gateway as ``python -m darkroom.ingest`` does, with timing wrappers around the tus
handler's stages, and writes one record per PATCH to the file named by
``DARKROOM_BENCH_STAGES`` when it stops; ``bench.ingest_throughput --stages`` starts the
gateway this way and prints the records. Of a PATCH, from its ``_Append`` on:

- ``body_wait``: awaiting the next chunk of the request body (uvicorn, httptools, the client, TCP);
- ``part_wait``: receiving held up by the 5 MiB parts in flight to S3 (``_landed``: a part
  waits for a place, or the last ones at the end); ``sdk`` is the SDK's ``_upload_part`` in
  its thread (hashing to sign, sending, S3's answer), which mostly runs beside the receiving;
- ``loop_work``: the rest of ``receive``: gathering the chunks into parts, hashing;
- ``save``: the last part, completing the multipart upload, the database rows; of it,
  ``s3_join`` is the S3 server's CompleteMultipartUpload (it joins the parts into one object);
- ``complete``: marking the file uploaded.

The wrappers add two ``perf_counter`` calls per chunk and per part: too little to move a figure.
"""

from __future__ import annotations

import contextvars
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from minio import Minio
from starlette.requests import Request

from darkroom.ingest import tus
from darkroom.ingest.app import create_runtime

OUT_VARIABLE = "DARKROOM_BENCH_STAGES"
STAGES = ("body_wait", "part_wait", "sdk", "loop_work", "save", "s3_join", "complete")


@dataclass
class Patch:
    """Seconds one PATCH spent in each stage, and what it carried."""

    bytes: int = 0
    chunks: int = 0
    parts: int = 0
    span: float = 0.0
    """From the handler's ``_Append`` to the end of its last stage."""
    body_wait: float = 0.0
    part_wait: float = 0.0
    sdk: float = 0.0
    receive: float = 0.0
    save: float = 0.0
    s3_join: float = 0.0
    complete: float = 0.0

    @property
    def loop_work(self) -> float:
        return self.receive - self.body_wait - self.part_wait


_records: list[Patch] = []
_stage: contextvars.ContextVar[tuple[Patch, str] | None] = contextvars.ContextVar(
    "stage", default=None
)
"""The PATCH and its stage the code runs in (``asyncio.to_thread`` carries it to the thread)."""


class _TimedRequest:
    """A request whose body stream counts the time spent waiting for each chunk."""

    def __init__(self, request: Request, record: Patch) -> None:
        self._request = request
        self._record = record

    async def stream(self) -> AsyncIterator[bytes]:
        chunks = self._request.stream().__aiter__()
        while True:
            start = time.perf_counter()
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
            self._record.body_wait += time.perf_counter() - start
            self._record.chunks += 1
            self._record.bytes += len(chunk)
            yield chunk


def _record(append: Any) -> Patch:
    record: Patch = append._bench_record
    return record


def _timed_init() -> Callable[..., None]:
    original = tus._Append.__init__

    def init(self: Any, *args: Any) -> None:
        original(self, *args)
        record = Patch()
        self._bench_record = record
        self._bench_start = time.perf_counter()
        _records.append(record)

    return init


def _timed_stage(name: str) -> Callable[..., Awaitable[Any]]:
    original = getattr(tus._Append, name)

    async def timed(self: Any, *args: Any) -> Any:
        record = _record(self)
        if name == "receive":
            args = (_TimedRequest(args[0], record), *args[1:])
        token = _stage.set((record, name))
        start = time.perf_counter()
        try:
            return await original(self, *args)
        finally:
            end = time.perf_counter()
            _stage.reset(token)
            setattr(record, name, getattr(record, name) + end - start)
            record.span = end - self._bench_start

    return timed


def _timed_landed() -> Callable[..., Awaitable[None]]:
    original = tus._Append._landed

    async def timed(self: Any) -> None:
        record = _record(self)
        start = time.perf_counter()
        await original(self)
        if _stage.get() == (record, "receive"):
            record.part_wait += time.perf_counter() - start
            record.parts += 1

    return timed


def _timed_sdk(name: str, stage: str, field: str) -> Callable[..., Any]:
    """The SDK's ``name``, its seconds added to ``field`` when called in ``stage``."""
    original = getattr(Minio, name)

    def timed(self: Minio, *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(self, *args)
        finally:
            if (current := _stage.get()) is not None and current[1] == stage:
                record = current[0]
                setattr(record, field, getattr(record, field) + time.perf_counter() - start)

    return timed


def install() -> None:
    """Put the stopwatches in place (the handler looks its methods up on each request)."""
    patched: dict[str, Any] = {
        "__init__": _timed_init(),
        "receive": _timed_stage("receive"),
        "save": _timed_stage("save"),
        "complete": _timed_stage("complete"),
        "_landed": _timed_landed(),
    }
    for name, method in patched.items():
        setattr(tus._Append, name, method)
    Minio._upload_part = _timed_sdk("_upload_part", "receive", "sdk")  # type: ignore[method-assign]
    Minio._complete_multipart_upload = _timed_sdk(  # type: ignore[method-assign]
        "_complete_multipart_upload", "save", "s3_join"
    )


def records(path: Path) -> list[dict[str, float]]:
    """The records a probed gateway wrote, with ``loop_work`` derived."""
    if not path.exists():
        return []
    return list(json.loads(path.read_text()))


def main() -> None:
    install()
    try:
        create_runtime().run()
    finally:
        if out := os.environ.get(OUT_VARIABLE):
            rows = [asdict(r) | {"loop_work": r.loop_work} for r in _records]
            Path(out).write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
