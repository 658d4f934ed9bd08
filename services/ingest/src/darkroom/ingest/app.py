"""Wiring of the ingest gateway: its settings, resources and HTTP API."""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware

from darkroom.common.broker import subscribe
from darkroom.common.db import Transaction
from darkroom.common.events import StepResult
from darkroom.common.runtime import Runtime
from darkroom.common.sealing import Sealer
from darkroom.common.settings import IngestSettings
from darkroom.ingest import api, catalog, processing, tus


def create_runtime(settings: IngestSettings | None = None) -> Runtime:
    settings = settings or IngestSettings()
    sealer = Sealer(settings.sealing_keys)  # before anything starts: no key, no gateway
    runtime = Runtime(settings, migrations=("darkroom.ingest",))
    runtime.app.title = "Darkroom ingest gateway"
    api.install(runtime.app, runtime, sealer)
    if origins := [o.strip() for o in settings.cors_origins.split(",") if o.strip()]:
        # Keys travel in the Authorization header, never in cookies: no credentials mode.
        runtime.app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=list(tus.EXPOSED),
            max_age=24 * 3600,
        )
    runtime.app.include_router(catalog.router)
    tus.install(runtime)
    runtime.every(60, "stalled-uploads", lambda: api.sweep_stalled(runtime))
    for step in processing.STEPS:

        @subscribe(runtime.broker, step, service=settings.service, db=runtime.db)
        async def result(event: StepResult, tx: Transaction) -> None:
            await processing.on_result(event, tx)

    return runtime
