"""Wiring of the ingest gateway: its settings, resources and HTTP API."""

from __future__ import annotations

from darkroom.common.runtime import Runtime
from darkroom.common.settings import IngestSettings
from darkroom.ingest import api, tus


def create_runtime(settings: IngestSettings | None = None) -> Runtime:
    runtime = Runtime(settings or IngestSettings(), migrations=("darkroom.ingest",))
    runtime.app.title = "Darkroom ingest gateway"
    api.install(runtime.app, runtime)
    tus.install(runtime)
    return runtime
