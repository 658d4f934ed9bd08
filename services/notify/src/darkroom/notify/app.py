"""Wiring of the notify service: its settings, resources, subscribers and the dispatcher."""

from __future__ import annotations

from darkroom.common.broker import subscribe
from darkroom.common.db import Transaction
from darkroom.common.events import SessionProcessed, SessionSubmitted
from darkroom.common.runtime import Runtime
from darkroom.common.sealing import Sealer
from darkroom.common.settings import NotifySettings
from darkroom.notify.handlers import dispatch, on_processed, on_submitted


def create_runtime(settings: NotifySettings | None = None) -> Runtime:
    settings = settings or NotifySettings()
    sealer = Sealer(settings.sealing_keys)  # before anything starts: no key, no notify
    runtime = Runtime(settings, migrations=("darkroom.notify",))

    @subscribe(runtime.broker, SessionSubmitted, service=settings.service, db=runtime.db)
    async def submitted(event: SessionSubmitted, tx: Transaction) -> None:
        await on_submitted(event, tx, settings)

    @subscribe(runtime.broker, SessionProcessed, service=settings.service, db=runtime.db)
    async def processed(event: SessionProcessed, tx: Transaction) -> None:
        await on_processed(event, tx, settings)

    async def send_due() -> None:
        await dispatch(runtime.db, settings, sealer, until=runtime.stopping)

    runtime.every(settings.dispatch_interval_seconds, "dispatch", send_due)
    return runtime
