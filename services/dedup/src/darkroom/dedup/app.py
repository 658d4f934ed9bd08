"""Wiring of the dedup service: its settings, resources and subscribers."""

from __future__ import annotations

from darkroom.common.runtime import Runtime
from darkroom.common.settings import DedupSettings


def create_runtime(settings: DedupSettings | None = None) -> Runtime:
    return Runtime(settings or DedupSettings())
