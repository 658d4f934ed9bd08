"""Hashes each medium in the shared worker pool: processes, a time limit, a failure per file."""

from __future__ import annotations

import os
import tempfile

from darkroom.common.blobs import Blobs
from darkroom.common.events import MediaUploaded
from darkroom.common.pool import WorkerPool
from darkroom.common.settings import DedupSettings
from darkroom.dedup.hashing import Hashes, picture_hashes, video_hashes


class Hasher:
    def __init__(self, settings: DedupSettings, blobs: Blobs) -> None:
        self._settings = settings
        self._blobs = blobs
        self._pool = WorkerPool(settings.workers, settings.hashing_timeout_seconds, what="hashing")

    def close(self) -> None:
        self._pool.close()

    async def hash(self, event: MediaUploaded) -> Hashes:
        """The medium's hashes; raises ``UnreadableMedia``, ``WorkFailed`` or ``S3Error``.

        An image too large to read into memory gets no hashes: it is matched by its bytes.
        """
        bucket, key = self._settings.bucket_originals, event.media.object_key
        if event.content_type.startswith("video/"):
            with tempfile.TemporaryDirectory(prefix="darkroom-video-") as folder:
                path = os.path.join(folder, "original")
                await self._blobs.download(bucket, key, path)
                return await self._pool.run(video_hashes, path)
        if event.size > self._settings.max_image_bytes:
            return Hashes(None, None)
        return await self._pool.run(picture_hashes, await self._blobs.get(bucket, key))
