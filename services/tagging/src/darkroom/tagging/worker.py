"""Runs each medium's AI analysis in the shared worker pool: processes, a time limit."""

from __future__ import annotations

import os
import tempfile

from darkroom.common.blobs import Blobs
from darkroom.common.events import MediaUploaded
from darkroom.common.imaging import UnreadableMedia
from darkroom.common.pool import WorkerPool
from darkroom.common.settings import TaggingSettings
from darkroom.tagging.analysis import Analysis, Options, analyse_picture, analyse_video


class Analyser:
    def __init__(self, settings: TaggingSettings, blobs: Blobs) -> None:
        self._settings = settings
        self._blobs = blobs
        self._pool = WorkerPool(
            settings.workers, settings.analysis_timeout_seconds, what="analysis"
        )
        self._options = Options(
            size=settings.face_image_size,
            upsample=settings.face_upsample,
            min_score=settings.safety_min_score,
            min_face=settings.face_min_pixels,
        )

    def close(self) -> None:
        self._pool.close()

    async def analyse(self, event: MediaUploaded) -> Analysis:
        """Faces and exposed content; raises ``UnreadableMedia``, ``WorkFailed``, ``S3Error``."""
        bucket, key = self._settings.bucket_originals, event.media.object_key
        if event.content_type.startswith("video/"):
            with tempfile.TemporaryDirectory(prefix="darkroom-video-") as folder:
                path = os.path.join(folder, "original")
                await self._blobs.download(bucket, key, path)
                return await self._pool.run(analyse_video, path, self._options)
        if event.size > self._settings.max_image_bytes:
            raise UnreadableMedia(
                "image_too_large",
                f"The image is {event.size:,} bytes; images up to "
                f"{self._settings.max_image_bytes:,} bytes are analysed.",
            )
        data = await self._blobs.get(bucket, key)
        return await self._pool.run(analyse_picture, data, self._options)
