"""Wiring of the ingest service: its settings, resources and subscribers."""

from __future__ import annotations

from darkroom.common.runtime import Runtime
from darkroom.common.settings import IngestSettings


def create_runtime(settings: IngestSettings | None = None) -> Runtime:
    return Runtime(settings or IngestSettings())
