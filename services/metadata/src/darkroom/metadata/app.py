"""Wiring of the metadata service: its settings, resources and subscribers."""

from __future__ import annotations

from darkroom.common.broker import Write, subscribe_media
from darkroom.common.events import MediaUploaded
from darkroom.common.runtime import Runtime
from darkroom.common.settings import MetadataSettings
from darkroom.metadata.handlers import Deps, on_uploaded
from darkroom.metadata.worker import Extractor


def create_runtime(settings: MetadataSettings | None = None) -> Runtime:
    settings = settings or MetadataSettings()
    runtime = Runtime(settings, migrations=("darkroom.metadata",))
    extractor = Extractor(settings, runtime.blobs)
    runtime.on_stop(extractor.close)
    deps = Deps(extractor, runtime.blobs, settings.bucket_derived)

    async def uploaded(event: MediaUploaded) -> Write:
        return await on_uploaded(event, deps)

    subscribe_media(
        runtime.broker,
        service=settings.service,
        db=runtime.db,
        workers=settings.workers,
        read=uploaded,
    )

    return runtime
