"""Wiring of the dedup service: its settings, resources and subscribers."""

from __future__ import annotations

from darkroom.common.broker import subscribe
from darkroom.common.db import Transaction
from darkroom.common.events import DedupCommand, MediaReprocess, MediaUploaded
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
    # New uploads keep every process of the pool busy; the low-priority lane takes one.
    for event, consumers in ((MediaUploaded, settings.workers), (MediaReprocess, 1)):

        @subscribe(
            runtime.broker, event, service=settings.service, db=runtime.db, max_workers=consumers
        )
        async def uploaded(event: MediaUploaded, tx: Transaction) -> None:
            await on_uploaded(event, tx, deps)

    @subscribe(runtime.broker, DedupCommand, service=settings.service, db=runtime.db)
    async def command(command: DedupCommand, tx: Transaction) -> None:
        await on_command(command, tx, deps)

    return runtime
