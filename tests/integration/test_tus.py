"""Resumable uploads (tus 1.0) through the gateway, with tuspy as the unchanged client."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
from typing import Any

import httpx
from tusclient.client import TusClient

from darkroom.ingest.tus import clean_expired

from .gateway import PNG, Gateway, jpeg, sha
from .test_gateway import Project, add, error, new_project, new_session

MB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}


def big_jpeg(size: int, variant: int = 1) -> bytes:
    """A real camera JPEG padded to ``size`` bytes (the padding follows the image's end)."""
    head = jpeg(variant)
    return (
        head + bytes(range(256)) * ((size - len(head)) // 256) + b"\0" * ((size - len(head)) % 256)
    )


async def registered(
    gateway: Gateway, data: bytes, path: str = "big/clip.jpg", **declared: str
) -> tuple[Project, str, str]:
    project = await new_project(gateway)
    async with gateway.client(project.uploader) as client:
        session = await new_session(client, project)
        batch = await add(client, session, {"path": path, "size": len(data), **declared})
    return project, session, batch["files"][0]["id"]


def metadata(session: str, file_id: str) -> str:
    return ",".join(
        f"{k} {base64.b64encode(v.encode()).decode()}"
        for k, v in {"session": session, "file": file_id, "filename": "clip.jpg"}.items()
    )


async def create(client: httpx.AsyncClient, session: str, file_id: str, length: int) -> str:
    made = await client.post(
        "/v1/tus",
        headers=TUS | {"Upload-Length": str(length), "Upload-Metadata": metadata(session, file_id)},
    )
    assert made.status_code == 201, made.text
    assert made.headers["Upload-Expires"].endswith("GMT")
    return made.headers["Location"]


async def patch(
    client: httpx.AsyncClient, url: str, offset: int, data: bytes, **headers: str
) -> httpx.Response:
    return await client.patch(
        url,
        content=data,
        headers=TUS
        | {"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
        | headers,
    )


async def file_state(client: httpx.AsyncClient, session: str, file_id: str) -> dict[str, Any]:
    files = (await client.get(f"/v1/sessions/{session}")).json()["files"]
    return next(f for f in files if f["id"] == file_id)


async def test_tuspy_uploads_a_large_file_in_chunks(gateway: Gateway) -> None:
    data = big_jpeg(21 * MB)
    project, session, file_id = await registered(gateway, data)

    def upload() -> None:
        tus = TusClient(
            f"{gateway.url}/v1/tus", headers={"Authorization": f"Bearer {project.uploader}"}
        )
        tus.uploader(
            file_stream=io.BytesIO(data),
            chunk_size=5 * MB,
            metadata={"session": session, "file": file_id, "filename": "clip.jpg"},
            upload_checksum=True,
        ).upload()

    await asyncio.to_thread(upload)  # tuspy is synchronous; the gateway runs on this loop
    async with gateway.client(project.uploader) as client:
        state = await file_state(client, session, file_id)
    assert state["status"] == "uploaded", state
    assert state["sha256"] == sha(data) and state["content_type"] == "image/jpeg"
    stored = await gateway.runtime.blobs.sha256("originals", f"{project.id}/{file_id}/original")
    assert stored == sha(data)


async def test_an_upload_resumes_after_the_connection_drops(gateway: Gateway) -> None:
    data = big_jpeg(19 * MB, variant=2)
    project, session, file_id = await registered(gateway, data)
    async with gateway.client(project.uploader) as client:
        url = await create(client, session, file_id, len(data))
        await _patch_then_hang_up(gateway, project.uploader, url, data[: 12 * MB], len(data))

        async def offset() -> int:
            head = await client.head(url, headers=TUS)
            return int(head.headers["Upload-Offset"])

        resumed_at = await offset()
        assert 0 < resumed_at <= 12 * MB  # what arrived before the drop is kept
        assert (await file_state(client, session, file_id))["status"] == "uploading"
        done = await patch(client, url, resumed_at, data[resumed_at:])
        assert done.status_code == 204, done.text
        assert done.headers["Upload-Offset"] == str(len(data))
        state = await file_state(client, session, file_id)
    assert state["status"] == "uploaded" and state["sha256"] == sha(data)


async def _patch_then_hang_up(
    gateway: Gateway, key: str, url: str, part: bytes, total: int
) -> None:
    host, port = gateway.url.removeprefix("http://").split(":")
    path = url.removeprefix(gateway.url)
    _reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        (
            f"PATCH {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
            "Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
            "Content-Type: application/offset+octet-stream\r\n"
            f"Content-Length: {total}\r\n\r\n"
        ).encode()
        + part
    )
    await writer.drain()
    await asyncio.sleep(1.0)
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0.5)


async def test_a_checksum_mismatch_is_refused_and_nothing_is_kept(gateway: Gateway) -> None:
    data = big_jpeg(6 * MB, variant=3)
    project, session, file_id = await registered(gateway, data)
    async with gateway.client(project.uploader) as client:
        url = await create(client, session, file_id, len(data))
        wrong = base64.b64encode(hashlib.sha1(b"other bytes").digest()).decode()
        refused = await patch(client, url, 0, data, **{"Upload-Checksum": f"sha1 {wrong}"})
        assert error(refused, 460) == "checksum_mismatch"
        head = await client.head(url, headers=TUS)
        assert head.headers["Upload-Offset"] == "0"

        right = base64.b64encode(hashlib.sha1(data).digest()).decode()
        accepted = await patch(client, url, 0, data, **{"Upload-Checksum": f"sha1 {right}"})
        assert accepted.status_code == 204
        assert (await file_state(client, session, file_id))["status"] == "uploaded"


async def test_a_wrong_offset_and_a_wrong_length_are_refused(gateway: Gateway) -> None:
    data = big_jpeg(2 * MB, variant=4)
    project, session, file_id = await registered(gateway, data)
    async with gateway.client(project.uploader) as client:
        wrong_length = await client.post(
            "/v1/tus",
            headers=TUS
            | {"Upload-Length": str(len(data) + 1), "Upload-Metadata": metadata(session, file_id)},
        )
        assert error(wrong_length, 413) == "size_mismatch"
        url = await create(client, session, file_id, len(data))
        assert error(await patch(client, url, 5, data[5:]), 409) == "offset_mismatch"


async def test_termination_removes_what_was_stored(gateway: Gateway) -> None:
    data = big_jpeg(12 * MB, variant=5)
    project, session, file_id = await registered(gateway, data)
    async with gateway.client(project.uploader) as client:
        url = await create(client, session, file_id, len(data))
        assert (await patch(client, url, 0, data[: 9 * MB])).status_code == 204
        gone = await client.delete(url, headers=TUS)
        assert gone.status_code == 204
        assert (await client.head(url, headers=TUS)).status_code == 404
        state = await file_state(client, session, file_id)
    assert (state["status"], state["code"]) == ("failed", "upload_cancelled")
    assert await _leftovers(gateway) == []


async def test_expired_uploads_are_cleaned_from_s3_and_the_database(gateway: Gateway) -> None:
    data = big_jpeg(10 * MB, variant=6)
    project, session, file_id = await registered(gateway, data)
    async with gateway.client(project.uploader) as client:
        url = await create(client, session, file_id, len(data))
        assert (await patch(client, url, 0, data[: 9 * MB])).status_code == 204  # a part + tail
        await gateway.runtime.db.pool.execute(
            "UPDATE tus_uploads SET expires_at = now() - interval '1 minute'"
        )
        assert error(await patch(client, url, 9 * MB, data[9 * MB :]), 410) == "upload_expired"
        assert await clean_expired(gateway.runtime) == 1
        assert (await client.head(url, headers=TUS)).status_code == 404
        state = await file_state(client, session, file_id)
    assert (state["status"], state["code"]) == ("failed", "upload_expired")
    assert await _leftovers(gateway) == []
    assert await gateway.runtime.db.pool.fetchval("SELECT count(*) FROM tus_uploads") == 0


async def _leftovers(gateway: Gateway) -> list[str]:
    """Objects and unfinished multipart uploads a discarded tus upload could have left."""
    client = gateway.runtime.blobs._client

    def listing() -> list[str]:
        tails = [
            o.object_name for o in client.list_objects("originals", prefix="tus/", recursive=True)
        ]
        return tails

    return await asyncio.to_thread(listing)


async def test_content_that_does_not_match_its_name_fails_the_file(gateway: Gateway) -> None:
    png = PNG.read_bytes()
    project, session, file_id = await registered(gateway, png, path="not-really.jpg")
    async with gateway.client(project.uploader) as client:
        url = await create(client, session, file_id, len(png))
        assert error(await patch(client, url, 0, png), 422) == "type_mismatch"
        state = await file_state(client, session, file_id)
        assert (state["status"], state["code"]) == ("failed", "type_mismatch")
        assert (await client.head(url, headers=TUS)).status_code == 404


async def test_the_server_says_what_it_supports(gateway: Gateway) -> None:
    async with gateway.client() as client:
        answer = await client.options("/v1/tus")
    assert answer.status_code == 204
    assert answer.headers["Tus-Version"] == "1.0.0"
    assert set(answer.headers["Tus-Extension"].split(",")) == {
        "creation",
        "checksum",
        "expiration",
        "termination",
    }
    assert "sha1" in answer.headers["Tus-Checksum-Algorithm"].split(",")


async def test_bytes_unlike_the_declared_sha256_fail_the_file(gateway: Gateway) -> None:
    data = big_jpeg(6 * MB, variant=7)
    project, session, file_id = await registered(gateway, data, sha256=sha(b"something else"))
    async with gateway.client(project.uploader) as client:
        url = await create(client, session, file_id, len(data))
        assert error(await patch(client, url, 0, data), 422) == "checksum_mismatch"
        state = await file_state(client, session, file_id)
    assert (state["status"], state["code"]) == ("failed", "checksum_mismatch")
    key = f"{project.id}/{file_id}/original"
    assert await gateway.runtime.blobs.stat("originals", key) is None
