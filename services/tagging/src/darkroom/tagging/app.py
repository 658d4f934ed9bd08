"""Wiring of the tagging service: its settings, resources and subscribers."""

from __future__ import annotations

from darkroom.common.broker import Write, subscribe, subscribe_media
from darkroom.common.db import Transaction
from darkroom.common.events import MediaUploaded, TaggingCommand
from darkroom.common.runtime import Runtime
from darkroom.common.settings import TaggingSettings
from darkroom.tagging.handlers import Deps, on_command, on_uploaded, recluster
from darkroom.tagging.worker import Analyser


def create_runtime(settings: TaggingSettings | None = None) -> Runtime:
    settings = settings or TaggingSettings()
    runtime = Runtime(settings, migrations=("darkroom.tagging",))
    analyser = Analyser(settings, runtime.blobs)
    runtime.on_stop(analyser.close)
    deps = Deps(analyser, settings)

    async def uploaded(event: MediaUploaded) -> Write:
        return await on_uploaded(event, deps)

    subscribe_media(
        runtime.broker,
        service=settings.service,
        db=runtime.db,
        workers=settings.workers,
        read=uploaded,
    )

    @subscribe(runtime.broker, TaggingCommand, service=settings.service, db=runtime.db)
    async def command(command: TaggingCommand, tx: Transaction) -> None:
        await on_command(command, tx, deps)

    async def recluster_faces() -> None:
        await recluster(runtime.db, settings)

    runtime.every(settings.recluster_interval_seconds, "recluster", recluster_faces)
    return runtime
