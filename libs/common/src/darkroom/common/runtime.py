"""A service process: its resources opened in the lifespan, its health, its shutdown.

Every service builds one ``Runtime`` in its ``app.py``, registers its subscribers on
``runtime.broker``, and serves ``runtime.app``. Start: connect to PostgreSQL (retrying until
it answers), migrate, create topics and buckets, start the consumers and the outbox relay.
SIGTERM: uvicorn runs the lifespan's exit, which stops the consumers after their in-flight
messages and lets each periodic job end the round it is in, both within
``shutdown_grace_seconds``; then the relay and the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import SpanProcessor

from darkroom.common import telemetry
from darkroom.common.blobs import Blobs
from darkroom.common.broker import ConsumerPolicy, create_broker
from darkroom.common.db import Database, purge
from darkroom.common.events import CATALOG
from darkroom.common.relay import OutboxRelay
from darkroom.common.retry import TRANSIENT_ERRORS, backoff
from darkroom.common.settings import ServiceSettings
from darkroom.common.topics import ensure_topics

log = logging.getLogger(__name__)

HOUSEKEEPING_SECONDS = 3600
KEEP_DAYS = 14
"""Inbox and sent outbox rows are kept twice Kafka's default retention of 7 days."""
MAX_BODY_BYTES = 4 * 1024 * 1024
"""The largest request body any service's API reads, unless a route sets its own (the
gateway's uploads): cut off with a 413 as it streams in, or at once from its Content-Length.
The largest valid request, a batch of 100 files with 1,024-character paths written as JSON
escapes, is ~1.3 MB."""


class Runtime:
    def __init__(
        self,
        settings: ServiceSettings,
        *,
        migrations: tuple[str, ...] = (),
        span_processors: tuple[SpanProcessor, ...] = (),
    ) -> None:
        self.settings = settings
        self.service = settings.service
        self.tracer_provider = telemetry.setup(self.service, settings, processors=span_processors)
        self.policy = ConsumerPolicy(self.service, settings)
        self.broker = create_broker(settings, self.policy, self.tracer_provider)
        self.db = Database(settings.database_url)
        self.blobs = Blobs(settings)
        self.relay = OutboxRelay(
            self.db,
            self.broker,
            service=self.service,
            batch_size=settings.outbox_batch_size,
            poll_seconds=settings.outbox_poll_seconds,
            max_backoff_seconds=settings.retry_max_backoff_seconds,
        )
        self._document_publishers()
        self._migrations = ("darkroom.common", *migrations)
        self._relay: asyncio.Task[None] | None = None
        self._rounds: list[asyncio.Task[None]] = []
        self._releases: list[Callable[[], object]] = []
        self._jobs: list[tuple[str, float, Callable[[], Awaitable[object]]]] = [
            ("housekeeping", HOUSEKEEPING_SECONDS, lambda: purge(self.db, keep_days=KEEP_DAYS))
        ]
        self.started = False
        self.stopping = asyncio.Event()
        """Set as the service stops: a periodic job ends its round, and a long one (the
        notify dispatcher's) claims no more work."""
        self.app = FastAPI(
            title=f"darkroom-{self.service}",
            lifespan=self._lifespan,
            max_body_size=MAX_BODY_BYTES,
        )
        self.app.add_api_route("/healthz", self._healthz, methods=["GET"], tags=["health"])
        self.app.add_api_route("/readyz", self._readyz, methods=["GET"], tags=["health"])
        telemetry.instrument(self.app, self.tracer_provider)

    def _document_publishers(self) -> None:
        """Declare the events this service publishes (through its outbox) for AsyncAPI."""
        for event in CATALOG:
            if event.producer == self.service:
                self.broker.publisher(
                    event.topic,
                    title=f"{self.service}/{event.topic}",
                    description=event.__doc__,
                    schema=event,
                )

    @contextlib.asynccontextmanager
    async def _lifespan(self, _: FastAPI) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def start(self) -> None:
        await _until_available("PostgreSQL", self.db.connect)
        await self.db.migrate(self._migrations)
        await _until_available("Kafka", lambda: ensure_topics(self.settings))
        await _until_available(
            "S3",
            lambda: self.blobs.ensure_buckets(
                self.settings.bucket_originals, self.settings.bucket_derived
            ),
        )
        await self.broker.start()
        self.stopping.clear()
        self._relay = asyncio.create_task(self.relay.run(), name="outbox-relay")
        self._rounds = [
            asyncio.create_task(repeat(seconds, job, self.stopping), name=name)
            for name, seconds, job in self._jobs
        ]
        self.started = True
        log.info("%s started", self.service)

    async def stop(self) -> None:
        self.started = False
        self.stopping.set()
        stopped = await asyncio.gather(
            self.broker.stop(),  # waits for in-flight handlers, up to graceful_timeout
            drain(self._rounds, self.settings.shutdown_grace_seconds),
            return_exceptions=True,  # the rest of the stop happens whatever one of them raised
        )
        for error in stopped:
            if isinstance(error, BaseException):
                log.error("stopping %s: %r", self.service, error)
        for release in self._releases:
            await asyncio.to_thread(release)
        if self._relay is not None:  # what it has not published, the next start publishes
            self._relay.cancel()
            await asyncio.gather(self._relay, return_exceptions=True)
        await self.db.close()
        self.tracer_provider.shutdown()  # flushes this process's last spans
        log.info("%s stopped", self.service)

    def on_stop(self, release: Callable[[], object]) -> None:
        """Call ``release`` (blocking is fine: it runs in a thread) once the consumers stopped."""
        self._releases.append(release)

    def every(self, seconds: float, name: str, job: Callable[[], Awaitable[object]]) -> None:
        """Run ``job`` every ``seconds`` while the service runs (register before start)."""
        self._jobs.append((name, seconds, job))

    async def _healthz(self) -> dict[str, str]:
        return {"status": "ok", "service": self.service}

    async def _readyz(self) -> JSONResponse:
        checks: dict[str, Any] = {"started": self.started}
        if self.policy.halted:
            checks["consumer"] = f"halted: {self.policy.halted}"
        reported: dict[str, str] = {}
        if self.started:
            checks["postgres"] = await _check(self.db.ping)
            checks["s3"] = await _check(self.blobs.ping)
            # Said, not waited on: events leave through the outbox, so while Kafka is away
            # they wait there and nothing is lost; taking the gateway out of service for it
            # would refuse every upload for nothing.
            reported["kafka"] = await _check(self._ping_kafka)
            if self._relay is None or self._relay.done():  # a bug: nothing would ever leave
                checks["outbox"] = "stopped"
            else:
                reported["outbox"] = "ok" if self.relay.healthy else "publishing is failing"
        ready = self.started and all(v in (True, "ok") for v in checks.values())
        return JSONResponse(
            {
                "status": "ready" if ready else "not ready",
                "service": self.service,
                **checks,
                **reported,
            },
            status_code=200 if ready else 503,
        )

    async def _ping_kafka(self) -> None:
        if not await self.broker.ping(timeout=2.0):
            raise ConnectionError("Kafka does not answer")

    def run(self) -> None:
        """Serve until SIGTERM or SIGINT."""
        uvicorn.run(
            self.app,
            host=self.settings.http_host,
            port=self.settings.http_port,
            log_config=None,
            # libuv's loop and the C HTTP parser: a batch of 4 MB uploads costs the gateway
            # ~17 % less CPU than on asyncio's loop with h11 (bench/RESULTS.md, the gateway).
            loop="uvloop",
            http="httptools",
            timeout_graceful_shutdown=int(self.settings.shutdown_grace_seconds),
        )


async def repeat(
    seconds: float, job: Callable[[], Awaitable[object]], stopping: asyncio.Event
) -> None:
    """Run a periodic job, untraced, until ``stopping``; a failed round is logged and the next
    one comes."""
    while not stopping.is_set():
        try:
            with suppress_instrumentation():
                await job()
        except TRANSIENT_ERRORS as exc:
            log.warning("periodic job %s: %s; trying again next round", job, exc)
        except Exception:
            log.exception("periodic job %s failed", job)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), seconds)


async def drain(tasks: list[asyncio.Task[None]], grace: float) -> None:
    """Let ``tasks`` end by themselves within ``grace`` seconds; cancel those still running."""
    if not tasks:
        return
    _, running = await asyncio.wait(tasks, timeout=grace)
    for task in running:
        log.warning("%s did not end within %.0f s of the stop; cancelled", task.get_name(), grace)
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _check(probe: Callable[[], Awaitable[Any]]) -> str:
    try:
        with suppress_instrumentation():  # probes every few seconds are not worth a trace
            await asyncio.wait_for(probe(), timeout=3.0)
    except Exception as exc:
        return f"failing: {type(exc).__name__}: {exc}"
    return "ok"


async def _until_available(what: str, attempt: Callable[[], Awaitable[Any]]) -> None:
    """Retry ``attempt`` with capped backoff while ``what`` is not yet answering."""
    failures = 0
    while True:
        try:
            await attempt()
            return
        except TRANSIENT_ERRORS as exc:
            failures += 1
            delay = backoff(failures, cap=5.0)
            log.warning("%s is not available (%s); retrying in %.1fs", what, exc, delay)
            await asyncio.sleep(delay)
