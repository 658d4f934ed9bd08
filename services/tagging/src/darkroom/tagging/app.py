"""Wiring of the tagging service: its settings, resources and subscribers."""

from __future__ import annotations

from darkroom.common.runtime import Runtime
from darkroom.common.settings import TaggingSettings


def create_runtime(settings: TaggingSettings | None = None) -> Runtime:
    return Runtime(settings or TaggingSettings())
