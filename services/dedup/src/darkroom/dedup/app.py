"""Wiring of the dedup service: its settings, resources and subscribers."""

from __future__ import annotations

from darkroom.common.broker import Write, subscribe, subscribe_media
from darkroom.common.db import Transaction
from darkroom.common.events import DedupCommand, MediaUploaded
from darkroom.common.runtime import Runtime
from darkroom.common.settings import DedupSettings
from darkroom.dedup.handlers import Deps, on_command, on_uploaded
from darkroom.dedup.worker import Hasher


def create_runtime(settings: DedupSettings | None = None) -> Runtime:
    settings = settings or DedupSettings()
    runtime = Runtime(settings, migrations=("darkroom.dedup",))
    hasher = Hasher(settings, runtime.blobs)
    runtime.on_stop(hasher.close)
    deps = Deps(hasher, settings)

    async def uploaded(event: MediaUploaded) -> Write:
        return await on_uploaded(event, deps)

    subscribe_media(
        runtime.broker,
        service=settings.service,
        db=runtime.db,
        workers=settings.workers,
        read=uploaded,
    )

    @subscribe(runtime.broker, DedupCommand, service=settings.service, db=runtime.db)
    async def command(command: DedupCommand, tx: Transaction) -> None:
        await on_command(command, tx, deps)

    return runtime
