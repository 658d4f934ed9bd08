"""The metadata service with a stopwatch on each stage of a message (a bench probe, no change).

    DARKROOM_BENCH_METADATA_STAGES=/tmp/stages.json python -m bench.metadata_stages

Runs the service as ``python -m darkroom.metadata`` does, with timing wrappers put around its
stages from outside, and writes one record per handled message to the file named by
``DARKROOM_BENCH_METADATA_STAGES`` when it stops; ``bench.metadata_throughput --stages`` starts
the service this way and prints the records. Times are ``time.monotonic()`` (one clock for every
process of the machine), so the bench can line them up with when it published and received.

Of one message, in the order the handler meets them — first its read, with no transaction
open, then its write:

- ``s3_get``: ``Blobs.get`` of the original (the SDK in a thread);
- ``handoff_in``: from ``Extractor._run`` to the worker starting ``extract_image``: pickling the
  original's bytes, the pipe to the worker process, unpickling there, and any wait for a worker;
- ``extract``: ``extract_image`` in the worker process (EXIF, decode, thumbnail, preview, place);
- ``handoff_out``: the result back: pickling it, the pipe, the executor's threads, the event loop;
- ``s3_put``: the thumbnail and the preview (``Blobs.put_bytes``, one after the other);
- ``tx_open``: acquiring a pooled connection and ``BEGIN``;
- ``inbox``: the inbox row (``first_delivery``);
- ``db_write``: ``store.save`` and ``publish`` (the outbox row);
- ``commit``: ``COMMIT`` and the connection's release;
- ``rest``: what is left of the message's time (event-loop turns).

Between two messages of one consumer, ``gap`` is what happened outside them: Kafka's fetch,
FastStream's decoding and validation, the middlewares, the inbox's look for a redelivery, the
offset commit.

"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

from darkroom.common.blobs import Blobs
from darkroom.common.broker import Write
from darkroom.common.db import Database, Transaction
from darkroom.common.events import MediaUploaded
from darkroom.common.imaging import Failure
from darkroom.common.pool import WorkerPool
from darkroom.metadata import app, handlers, store, worker
from darkroom.metadata.extract import Extracted, Hints, extract_image

OUT_VARIABLE = "DARKROOM_BENCH_METADATA_STAGES"
STAGES = (
    "s3_get",
    "handoff_in",
    "extract",
    "handoff_out",
    "s3_put",
    "tx_open",
    "inbox",
    "db_write",
    "commit",
    "rest",
)


@dataclass
class Message:
    """When one message's stages began and ended (monotonic seconds), and what it carried."""

    consumer: str = ""
    media_id: str = ""
    bytes: int = 0
    begin: float = 0.0
    """The handler has the message: its read begins."""
    tx_begin: float = 0.0
    """``db.transaction()`` entered, the read done."""
    opened: float = 0.0
    handler_start: float = 0.0
    handler_end: float = 0.0
    end: float = 0.0
    """The transaction committed and its connection released."""
    s3_get: float = 0.0
    submitted: float = 0.0
    worker_start: float = 0.0
    worker_end: float = 0.0
    returned: float = 0.0
    s3_put: float = 0.0
    db_write: float = 0.0

    def stages(self) -> dict[str, float]:
        spent = {
            "s3_get": self.s3_get,
            "handoff_in": self.worker_start - self.submitted,
            "extract": self.worker_end - self.worker_start,
            "handoff_out": self.returned - self.worker_end,
            "s3_put": self.s3_put,
            "tx_open": self.opened - self.tx_begin,
            "inbox": self.handler_start - self.opened,
            "db_write": self.db_write,
            "commit": self.end - self.handler_end,
        }
        spent["rest"] = self.end - self.begin - sum(spent.values())
        return spent


_records: list[Message] = []
_current: contextvars.ContextVar[Message | None] = contextvars.ContextVar("message", default=None)


def _message() -> Message:
    return _current.get() or Message()  # a call outside a timed message is timed into nothing


class _TimedDatabase:
    """The service's database as its subscribers see it: a message's transaction ends its
    record (begun by its read)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        record = _message()
        record.tx_begin = time.monotonic()
        async with self._db.transaction() as tx:
            record.opened = time.monotonic()
            yield tx
            record.handler_end = record.handler_end or time.monotonic()
        record.end = time.monotonic()
        if record.media_id:
            _records.append(record)
        _current.set(None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def _consumer() -> str:
    task = asyncio.current_task()
    return f"{os.getpid()}/{task.get_name() if task else '?'}"


def timed_extract_image(data: bytes, hints: Hints) -> Extracted | Failure:
    """``extract_image`` in the worker, its start and end carried back on the result."""
    start = time.monotonic()
    result = extract_image(data, hints)
    object.__setattr__(result, "_bench_worker", (start, time.monotonic()))
    return result


def install() -> None:
    """Put the stopwatches in place; ``create_runtime`` must run after this."""
    original_subscribe = app.subscribe_media

    def subscribe_media(broker: Any, *, service: str, db: Database, **options: Any) -> None:
        timed = cast(Database, _TimedDatabase(db))  # it answers what subscribers ask of one
        original_subscribe(broker, service=service, db=timed, **options)

    app.subscribe_media = subscribe_media

    original_on_uploaded = app.on_uploaded

    async def on_uploaded(event: MediaUploaded, deps: handlers.Deps) -> Write:
        record = Message(consumer=_consumer(), begin=time.monotonic())
        record.media_id, record.bytes = str(event.media.media_id), event.size
        _current.set(record)  # the message's task keeps it through its transaction
        write = await original_on_uploaded(event, deps)

        async def timed(tx: Transaction) -> None:
            record.handler_start = time.monotonic()
            await write(tx)
            record.handler_end = time.monotonic()

        return timed

    app.on_uploaded = on_uploaded

    original_get = Blobs.get

    async def get(self: Blobs, bucket: str, key: str) -> bytes:
        start = time.monotonic()
        data = await original_get(self, bucket, key)
        _message().s3_get += time.monotonic() - start
        return data

    Blobs.get = get  # type: ignore[method-assign]

    original_put = Blobs.put_bytes

    async def put_bytes(self: Blobs, bucket: str, key: str, data: bytes) -> None:
        start = time.monotonic()
        await original_put(self, bucket, key, data)
        _message().s3_put += time.monotonic() - start

    Blobs.put_bytes = put_bytes  # type: ignore[method-assign]

    original_run = WorkerPool.run

    async def run(self: WorkerPool, work: Callable[..., Any], *args: Any) -> Any:
        record = _message()
        record.submitted = time.monotonic()
        result = await original_run(self, work, *args)
        record.returned = time.monotonic()
        record.worker_start, record.worker_end = getattr(
            result, "_bench_worker", (record.submitted, record.returned)
        )
        return result

    WorkerPool.run = run  # type: ignore[method-assign]
    worker.extract_image = timed_extract_image

    for module, name in ((store, "save"), (handlers, "publish")):
        _time_db_write(module, name)


def _time_db_write(module: Any, name: str) -> None:
    original = getattr(module, name)

    async def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.monotonic()
        try:
            return await original(*args, **kwargs)
        finally:
            _message().db_write += time.monotonic() - start

    setattr(module, name, timed)


def records(path: Path) -> list[dict[str, Any]]:
    """The records a probed service wrote, each with its ``stages``."""
    if not path.exists():
        return []
    return list(json.loads(path.read_text()))


def main() -> None:
    install()
    try:
        app.create_runtime().run()
    finally:
        if out := os.environ.get(OUT_VARIABLE):
            rows = [asdict(r) | {"stages": r.stages()} for r in _records]
            Path(out).write_text(json.dumps(rows))


if __name__ == "__main__":
    # Through the package's module, not ``__main__``: the worker processes unpickle the
    # wrapped extraction function by that module's name.
    from bench.metadata_stages import main as probe

    probe()
