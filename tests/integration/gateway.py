"""The ingest gateway served for real (uvicorn on a free port) over a test database of its own."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from darkroom.common.runtime import Runtime
from darkroom.common.sealing import Sealer
from darkroom.common.settings import CommonSettings, IngestSettings
from darkroom.common.topics import skip_backlog
from darkroom.ingest.admin import platform_key
from darkroom.ingest.api import object_key
from darkroom.ingest.app import create_runtime
from darkroom.ingest.processing import STEPS

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
CAMERA_JPEG = CORPUS / "exif-samples" / "jpg" / "Canon_PowerShot_S40.jpg"
PNG = CORPUS / "cameras" / "png" / "Issue 62.png"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Gateway:
    runtime: Runtime
    url: str
    platform_key: str

    @property
    def sealer(self) -> Sealer:
        """The gateway's own: what it seals, this opens."""
        sealer: Sealer = self.runtime.app.state.sealer
        return sealer

    def client(self, key: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=60)

    async def stored(self, project_id: str, file_id: str) -> list[str]:
        """The keys of the objects the gateway keeps for a file, from any of its attempts.

        Each attempt is looked at by its key (s3proxy cannot list a folder where an aborted
        PUT left its temporary file behind)."""
        attempts = await self.runtime.db.pool.fetchval(
            "SELECT attempts FROM files WHERE id = $1", uuid.UUID(file_id)
        )
        ids = uuid.UUID(project_id), uuid.UUID(file_id)
        keys = [object_key(*ids, attempt) for attempt in range(1, attempts + 1)]
        bucket = self.runtime.settings.bucket_originals
        return [key for key in keys if await self.runtime.blobs.stat(bucket, key) is not None]

    async def stored_sha256(self, file_id: str) -> str:
        """The SHA-256 of the bytes at the key the file's row names."""
        key = await self.runtime.db.pool.fetchval(
            "SELECT object_key FROM files WHERE id = $1", uuid.UUID(file_id)
        )
        return await self.runtime.blobs.sha256(self.runtime.settings.bucket_originals, key)


@asynccontextmanager
async def serve(settings: CommonSettings, database_url: str) -> AsyncIterator[Gateway]:
    # Earlier tests' results on the shared topics are not this gateway's: start past them.
    await skip_backlog(settings, IngestSettings.service, tuple(step.topic for step in STEPS))
    port = free_port()
    runtime = create_runtime(
        IngestSettings(**settings.model_dump(), database_url=database_url, http_port=port)
    )
    server = uvicorn.Server(
        uvicorn.Config(runtime.app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "the gateway did not start"
            await asyncio.sleep(0.05)
        key = (await platform_key(runtime.db, "tests"))["key"]
        yield Gateway(runtime, f"http://127.0.0.1:{port}", key)
    finally:
        server.should_exit = True
        await task


def jpeg(variant: int = 0) -> bytes:
    """A real camera JPEG with EXIF; each variant has other bytes (a trailer after the image)."""
    data = CAMERA_JPEG.read_bytes()
    return data + variant.to_bytes(4, "big") if variant else data


def big_jpeg(size: int, variant: int = 1) -> bytes:
    """A real camera JPEG padded to ``size`` bytes (the padding follows the image's end)."""
    head = jpeg(variant)
    return (
        head + bytes(range(256)) * ((size - len(head)) // 256) + b"\0" * ((size - len(head)) % 256)
    )


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


Setup = Callable[..., Awaitable[Any]]
