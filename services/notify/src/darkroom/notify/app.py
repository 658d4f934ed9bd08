"""Wiring of the notify service: its settings, resources and subscribers."""

from __future__ import annotations

from darkroom.common.runtime import Runtime
from darkroom.common.settings import NotifySettings


def create_runtime(settings: NotifySettings | None = None) -> Runtime:
    return Runtime(settings or NotifySettings())
