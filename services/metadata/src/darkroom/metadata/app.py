"""Wiring of the metadata service: its settings, resources and subscribers."""

from __future__ import annotations

from darkroom.common.broker import subscribe
from darkroom.common.db import Transaction
from darkroom.common.events import MediaReprocess, MediaUploaded
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
    # New uploads keep every process of the pool busy; the low-priority lane takes one.
    for event, consumers in ((MediaUploaded, settings.workers), (MediaReprocess, 1)):

        @subscribe(
            runtime.broker, event, service=settings.service, db=runtime.db, max_workers=consumers
        )
        async def uploaded(event: MediaUploaded, tx: Transaction) -> None:
            await on_uploaded(event, tx, deps)

    return runtime
