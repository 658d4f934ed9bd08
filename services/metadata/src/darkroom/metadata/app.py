"""Wiring of the metadata service: its settings, resources and subscribers."""

from __future__ import annotations

from darkroom.common.runtime import Runtime
from darkroom.common.settings import MetadataSettings


def create_runtime(settings: MetadataSettings | None = None) -> Runtime:
    return Runtime(settings or MetadataSettings())
