"""Runs each file's extraction in a pool of processes, with a time limit.

CPU work never blocks the event loop, several files are read in parallel (``workers``), and a
file whose extraction passes ``extraction_timeout_seconds`` fails alone: the pool that held it
is replaced, so a stuck decoder cannot stall the consumer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from darkroom.common.blobs import Blobs
from darkroom.common.events import MediaUploaded
from darkroom.common.settings import MetadataSettings
from darkroom.metadata.extract import Extracted, Failure, Hints, extract_image, extract_video

log = logging.getLogger(__name__)
T = TypeVar("T")


class Extractor:
    def __init__(self, settings: MetadataSettings, blobs: Blobs) -> None:
        self._settings = settings
        self._blobs = blobs
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self._settings.workers)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    async def extract(self, event: MediaUploaded) -> Extracted | Failure:
        hints = Hints(project_zone=event.project_timezone, session_date=event.session_capture_date)
        bucket, key = self._settings.bucket_originals, event.media.object_key
        if event.content_type.startswith("video/"):
            with tempfile.TemporaryDirectory(prefix="darkroom-video-") as folder:
                path = os.path.join(folder, "original")
                await self._blobs.download(bucket, key, path)
                return await self._run(extract_video, path, hints)
        if event.size > self._settings.max_image_bytes:
            return Failure(
                "image_too_large",
                f"The image is {event.size:,} bytes; images up to "
                f"{self._settings.max_image_bytes:,} bytes are read.",
            )
        data = await self._blobs.get(bucket, key)
        return await self._run(extract_image, data, hints)

    async def _run(self, work: Callable[..., T], *args: Any) -> T | Failure:
        loop = asyncio.get_running_loop()
        pool = self._executor()
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(pool, work, *args),
                timeout=self._settings.extraction_timeout_seconds,
            )
        except TimeoutError:
            self._replace(pool)
            limit = self._settings.extraction_timeout_seconds
            return Failure("extraction_timeout", f"Reading the file took longer than {limit:g} s.")
        except BrokenProcessPool:  # the file crashed its worker (e.g. a decoder fault)
            self._replace(pool)
            return Failure("extraction_crashed", "Reading the file crashed its worker process.")

    def _replace(self, pool: ProcessPoolExecutor) -> None:
        """Drop a pool whose worker is stuck or dead; the next file gets a new one."""
        if self._pool is pool:
            self._pool = None
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        log.warning("extraction pool replaced")
