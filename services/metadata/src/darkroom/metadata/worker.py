"""Reads each file in the shared worker pool: processes, a time limit."""

from __future__ import annotations

import os
import tempfile

from darkroom.common.blobs import Blobs
from darkroom.common.events import MediaUploaded
from darkroom.common.imaging import Failure
from darkroom.common.pool import WorkerPool
from darkroom.common.settings import MetadataSettings
from darkroom.metadata.extract import Extracted, Hints, extract_image, extract_video


class Extractor:
    def __init__(self, settings: MetadataSettings, blobs: Blobs) -> None:
        self._settings = settings
        self._blobs = blobs
        self._pool = WorkerPool(
            settings.workers, settings.extraction_timeout_seconds, what="extraction"
        )

    def close(self) -> None:
        self._pool.close()

    async def extract(self, event: MediaUploaded) -> Extracted | Failure:
        """What the file says, or why it cannot say; raises what ``imaging.attempt`` turns
        into a failure (a worker's timeout or crash, a missing original)."""
        hints = Hints(project_zone=event.project_timezone, session_date=event.session_capture_date)
        bucket, key = self._settings.bucket_originals, event.media.object_key
        if event.content_type.startswith("video/"):
            with tempfile.TemporaryDirectory(prefix="darkroom-video-") as folder:
                path = os.path.join(folder, "original")
                await self._blobs.download(bucket, key, path)
                return await self._pool.run(extract_video, path, hints)
        if event.size > self._settings.max_image_bytes:
            return Failure(
                "image_too_large",
                f"The image is {event.size:,} bytes; images up to "
                f"{self._settings.max_image_bytes:,} bytes are read.",
            )
        data = await self._blobs.get(bucket, key)
        return await self._pool.run(extract_image, data, hints)
