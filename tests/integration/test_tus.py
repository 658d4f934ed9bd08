"""Resumable uploads (tus 1.0) through the gateway, with tuspy as the unchanged client."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from minio.error import S3Error
from tusclient.client import TusClient

from darkroom.ingest import tus
from darkroom.ingest.api import sweep_stalled
from darkroom.ingest.tus import clean_expired

from .gateway import PNG, Gateway, big_jpeg, sha
from .test_gateway import Project, add, error, new_project, new_session

MB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}


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
    assert await gateway.stored_sha256(file_id) == sha(data)


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


async def test_a_finished_upload_answers_a_client_that_missed_the_last_answer(
    gateway: Gateway,
) -> None:
    """A client whose last PATCH's answer was lost asks for the offset (HEAD) and sends what
    it then takes to be left: the upload answers as finished, so the client ends in success."""
    data = big_jpeg(6 * MB, variant=11)
    project, session, file_id = await registered(gateway, data)
    async with gateway.client(project.uploader) as client:
        url = await create(client, session, file_id, len(data))
        assert (await patch(client, url, 0, data)).status_code == 204
        head = await client.head(url, headers=TUS)
        assert head.status_code == 200
        assert head.headers["Upload-Offset"] == head.headers["Upload-Length"] == str(len(data))
        again = await patch(client, url, len(data), b"")
        assert again.status_code == 204, again.text
        assert again.headers["Upload-Offset"] == str(len(data))
        assert error(await patch(client, url, len(data), b"more"), 413) == "size_mismatch"
        state = await file_state(client, session, file_id)
    assert state["status"] == "uploaded" and state["sha256"] == sha(data)
    assert await gateway.stored_sha256(file_id) == sha(data)


async def test_a_finished_upload_keeps_its_file_until_it_expires_and_after(
    gateway: Gateway,
) -> None:
    """A DELETE, a POST of the same file again, and at last the expiry sweep leave the file
    uploaded and its bytes stored."""
    data = big_jpeg(6 * MB, variant=12)
    project, session, file_id = await registered(gateway, data)
    async with gateway.client(project.uploader) as client:
        url = await create(client, session, file_id, len(data))
        assert (await patch(client, url, 0, data)).status_code == 204
        assert (await client.delete(url, headers=TUS)).status_code == 204
        again = await client.post(
            "/v1/tus",
            headers=TUS
            | {"Upload-Length": str(len(data)), "Upload-Metadata": metadata(session, file_id)},
        )
        assert error(again, 409) == "not_retryable"
        assert (await client.head(url, headers=TUS)).headers["Upload-Offset"] == str(len(data))
        await gateway.runtime.db.pool.execute(
            "UPDATE tus_uploads SET expires_at = now() - interval '1 minute'"
        )
        assert await clean_expired(gateway.runtime) == 1
        assert (await client.head(url, headers=TUS)).status_code == 404
        state = await file_state(client, session, file_id)
    assert state["status"] == "uploaded" and state["sha256"] == sha(data)
    assert await gateway.stored_sha256(file_id) == sha(data)


async def unrecorded(
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    session: str,
    file_id: str,
    data: bytes,
) -> str:
    """An upload whose one PATCH brought every byte, then failed to record its file (the
    database away, the process killed): answered 500; its URL."""

    async def away(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("the database went away")

    url = await create(client, session, file_id, len(data))
    with monkeypatch.context() as blip:
        blip.setattr(tus, "complete_upload", away)
        assert (await patch(client, url, 0, data)).status_code == 500
    return url


async def test_a_finished_upload_never_recorded_is_failed_as_stalled_and_can_be_sent_again(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All the bytes arrived, and the PATCH broke off before the file was recorded uploaded
    (its process killed, say), and its client never asked again: the sweep of stalled uploads
    fails the file and removes its bytes; the upload no longer says it is whole, and the file
    is then uploaded again."""
    data = big_jpeg(6 * MB, variant=17)
    project, session, file_id = await registered(gateway, data)
    async with gateway.client(project.uploader) as client:
        url = await unrecorded(client, monkeypatch, session, file_id, data)
        await gateway.runtime.db.pool.execute(
            "UPDATE files SET updated_at = now() - interval '20 minutes' WHERE id = $1",
            uuid.UUID(file_id),
        )
        assert await sweep_stalled(gateway.runtime) == 1
        state = await file_state(client, session, file_id)
        assert (state["status"], state["code"]) == ("failed", "upload_unrecorded")
        assert await gateway.stored(project.id, file_id) == []
        asked = await client.head(url, headers=TUS)  # not whole after all: start anew
        assert asked.status_code == 410 and "Upload-Offset" not in asked.headers
        again = await create(client, session, file_id, len(data))
        assert (await patch(client, again, 0, data)).status_code == 204
        state = await file_state(client, session, file_id)
    assert state["status"] == "uploaded" and state["sha256"] == sha(data)


async def test_a_finished_upload_whose_recording_failed_is_recorded_when_its_client_asks(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last PATCH's bytes all arrived, then recording the file failed (the database
    away a moment): the client, told 500, asks for the offset; the file is recorded then,
    and only then is the upload answered as whole."""
    data = big_jpeg(6 * MB, variant=18)
    project, session, file_id = await registered(gateway, data)
    async with gateway.client(project.uploader) as client:
        url = await unrecorded(client, monkeypatch, session, file_id, data)
        assert (await file_state(client, session, file_id))["status"] == "uploading"
        asked = await client.head(url, headers=TUS)
        assert asked.status_code == 200 and asked.headers["Upload-Offset"] == str(len(data))
        state = await file_state(client, session, file_id)
    assert state["status"] == "uploaded" and state["sha256"] == sha(data)


async def _patch_then_hang_up(
    gateway: Gateway, key: str, url: str, part: bytes, total: int
) -> None:
    writer = await _open_patch(gateway, key, url, 0, total)
    writer.write(part)
    await writer.drain()
    await asyncio.sleep(1.0)
    await _hang_up(writer)


async def _open_patch(
    gateway: Gateway, key: str, url: str, offset: int, total: int
) -> asyncio.StreamWriter:
    """A PATCH whose head is sent and whose ``total`` bytes of body the caller writes."""
    host, port = gateway.url.removeprefix("http://").split(":")
    path = url.removeprefix(gateway.url)
    _reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        (
            f"PATCH {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
            f"Tus-Resumable: 1.0.0\r\nUpload-Offset: {offset}\r\n"
            "Content-Type: application/offset+octet-stream\r\n"
            f"Content-Length: {total}\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    return writer


async def _hang_up(writer: asyncio.StreamWriter) -> None:
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0.5)


async def test_uploads_in_progress_leave_the_gateway_free_for_other_requests(
    gateway: Gateway,
) -> None:
    """More slow PATCHes at once than the gateway has database connections (10)."""
    data = big_jpeg(6 * MB, variant=8)
    project = await new_project(gateway)
    async with gateway.client(project.uploader) as client:
        session = await new_session(client, project)
        files = [{"path": f"slow/{n}.jpg", "size": len(data)} for n in range(12)]
        batch = await add(client, session, *files)
        urls = [await create(client, session, f["id"], len(data)) for f in batch["files"]]
        writers = [await _open_patch(gateway, project.uploader, url, 0, len(data)) for url in urls]
        for writer in writers:
            writer.write(data[: MB // 2])
            await writer.drain()
        await asyncio.sleep(1.0)
        try:
            answer = await asyncio.wait_for(client.get(f"/v1/sessions/{session}"), 10)
            assert answer.status_code == 200
            assert {f["status"] for f in answer.json()["files"]} == {"uploading"}
        finally:
            for writer in writers:
                await _hang_up(writer)
        offset = int((await client.head(urls[0], headers=TUS)).headers["Upload-Offset"])
        assert 0 < offset <= MB // 2  # each hang-up kept what arrived
        resumed = await patch(client, urls[0], offset, data[offset:])
        assert resumed.status_code == 204, resumed.text


async def test_a_second_writer_is_told_to_retry_until_the_first_is_done(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tus._Lease, "LEASE_SECONDS", 2)  # renewed every 0.5 s while bytes flow
    monkeypatch.setattr(tus._Lease, "RENEW_SECONDS", 0.5)
    data = big_jpeg(7 * MB, variant=9)
    project, session, file_id = await registered(gateway, data)
    async with gateway.client(project.uploader) as client:
        url = await create(client, session, file_id, len(data))
        first = await _open_patch(gateway, project.uploader, url, 0, len(data))
        for n in range(5):  # five seconds of trickling bytes: longer than a lease
            first.write(data[n * MB // 4 : (n + 1) * MB // 4])
            await first.drain()
            await asyncio.sleep(1.0)
            assert error(await patch(client, url, 0, data), 423) == "upload_busy"
            assert error(await client.delete(url, headers=TUS), 423) == "upload_busy"
        await _hang_up(first)
        offset = int((await client.head(url, headers=TUS)).headers["Upload-Offset"])
        assert offset == 5 * MB // 4
        done = await patch(client, url, offset, data[offset:])
        assert done.status_code == 204, done.text
        state = await file_state(client, session, file_id)
    assert state["status"] == "uploaded" and state["sha256"] == sha(data)


async def test_a_writer_that_died_is_taken_over_once_its_lease_runs_out(
    gateway: Gateway,
) -> None:
    data = big_jpeg(3 * MB, variant=10)
    project, session, file_id = await registered(gateway, data)
    async with gateway.client(project.uploader) as client:
        url = await create(client, session, file_id, len(data))
        upload_id = url.rsplit("/", 1)[1]
        held = "UPDATE tus_uploads SET writer = gen_random_uuid(), writing_until = now() + $2"
        pool = gateway.runtime.db.pool
        # another gateway process writes to it, and then dies without a word
        await pool.execute(held + " WHERE id = $1", uuid.UUID(upload_id), timedelta(minutes=1))
        assert error(await patch(client, url, 0, data), 423) == "upload_busy"
        await pool.execute(held + " WHERE id = $1", uuid.UUID(upload_id), -timedelta(seconds=1))
        done = await patch(client, url, 0, data)
        assert done.status_code == 204, done.text
        assert (await file_state(client, session, file_id))["status"] == "uploaded"


async def test_a_writer_taken_over_does_not_lend_its_hash_to_the_one_that_finishes(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first writer stalls past its lease, the second takes the upload over, and the first
    hangs up while the second finishes: the file's SHA-256 is the whole file's."""
    monkeypatch.setattr(tus._Lease, "LEASE_SECONDS", 2)
    monkeypatch.setattr(tus._Lease, "RENEW_SECONDS", 0.5)
    data = big_jpeg(6 * MB, variant=13)
    project, session, file_id = await registered(gateway, data)
    blobs = gateway.runtime.blobs
    complete = blobs.complete_multipart
    async with gateway.client(project.uploader) as client:
        url = await create(client, session, file_id, len(data))
        first = await _open_patch(gateway, project.uploader, url, 0, len(data))
        first.write(data[:MB])
        await first.drain()
        await asyncio.sleep(2.5)

        async def first_hangs_up_meanwhile(*args: Any) -> None:
            await _hang_up(first)
            await complete(*args)

        monkeypatch.setattr(blobs, "complete_multipart", first_hangs_up_meanwhile)
        done = await patch(client, url, 0, data)
        assert done.status_code == 204, done.text
        state = await file_state(client, session, file_id)
    assert state["status"] == "uploaded" and state["sha256"] == sha(data)


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
    assert await _leftovers(gateway, url) == []


async def test_an_upload_started_again_replaces_the_one_before(gateway: Gateway) -> None:
    """A client that lost its upload's URL starts over: the half-sent upload is dropped (its
    parts with it) and the new one takes the whole file."""
    data = big_jpeg(12 * MB, variant=8)
    project, session, file_id = await registered(gateway, data)
    async with gateway.client(project.uploader) as client:
        first = await create(client, session, file_id, len(data))
        assert (await patch(client, first, 0, data[: 6 * MB])).status_code == 204
        again = await create(client, session, file_id, len(data))
        assert again != first
        assert (await client.head(first, headers=TUS)).status_code == 404
        assert await _leftovers(gateway, first) == []
        assert (await patch(client, again, 0, data)).status_code == 204
        state = await file_state(client, session, file_id)
    assert state["status"] == "uploaded" and state["sha256"] == sha(data)


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
    assert await _leftovers(gateway, url) == []
    assert await gateway.runtime.db.pool.fetchval("SELECT count(*) FROM tus_uploads") == 0


@pytest.mark.parametrize("ended_by", ["termination", "expiry"])
async def test_parts_of_a_first_patch_that_broke_off_go_with_the_upload(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, ended_by: str
) -> None:
    """A first PATCH that ends unexpectedly once S3 holds a part of it (here S3 fails the
    next part; a request cancelled by a restart or a killed process are alike) leaves that
    part to the upload: a DELETE, or the expiry sweep, removes it from S3."""
    data = big_jpeg(12 * MB, variant=14)
    project, session, file_id = await registered(gateway, data)
    started = _multipart_uploads(gateway, monkeypatch)
    blobs = gateway.runtime.blobs
    put_part = blobs.put_part

    async def second_part_fails(
        bucket: str, key: str, upload: str, number: int, part: bytes
    ) -> str:
        if number > 1:
            raise ConnectionError("S3 went away")
        return await put_part(bucket, key, upload, number, part)

    monkeypatch.setattr(blobs, "put_part", second_part_fails)
    async with gateway.client(project.uploader) as client:
        url = await create(client, session, file_id, len(data))
        assert (await patch(client, url, 0, data)).status_code == 500
        assert [await _parts(gateway, *upload) for upload in started] == [[1]]
        if ended_by == "termination":
            assert (await client.delete(url, headers=TUS)).status_code == 204
        else:
            await gateway.runtime.db.pool.execute(
                "UPDATE tus_uploads SET expires_at = now() - interval '1 minute'"
            )
            assert await clean_expired(gateway.runtime) == 1
    assert [await _parts(gateway, *upload) for upload in started] == [[]]


async def test_an_upload_broken_off_once_its_parts_were_joined_leaves_no_object(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 joined the parts into the object, and then the PATCH broke off before the upload was
    recorded finished (its process killed, say): a DELETE removes the object too."""
    data = big_jpeg(7 * MB, variant=15)
    project, session, file_id = await registered(gateway, data)
    blobs = gateway.runtime.blobs
    complete = blobs.complete_multipart

    async def then_broken_off(*args: Any) -> None:
        await complete(*args)
        raise ConnectionError("the gateway's process was killed")

    monkeypatch.setattr(blobs, "complete_multipart", then_broken_off)
    async with gateway.client(project.uploader) as client:
        url = await create(client, session, file_id, len(data))
        assert (await patch(client, url, 0, data)).status_code == 500
        assert len(await gateway.stored(project.id, file_id)) == 1
        assert (await client.delete(url, headers=TUS)).status_code == 204
        state = await file_state(client, session, file_id)
    assert (state["status"], state["code"]) == ("failed", "upload_cancelled")
    assert await gateway.stored(project.id, file_id) == []


async def test_an_upload_whose_removal_failed_in_s3_is_removed_by_the_next_sweep(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 fails while the sweep removes one expired upload: its row stays for the next round,
    and the sweep goes on to the others meanwhile."""
    data, small = big_jpeg(10 * MB, variant=16), big_jpeg(1 * MB, variant=17)
    project, session, file_id = await registered(gateway, data)
    other_project, other_session, other_file = await registered(gateway, small)
    started = _multipart_uploads(gateway, monkeypatch)
    blobs, pool = gateway.runtime.blobs, gateway.runtime.db.pool
    async with gateway.client(project.uploader) as client:
        url = await create(client, session, file_id, len(data))
        assert (await patch(client, url, 0, data[: 9 * MB])).status_code == 204  # a part + tail
    async with gateway.client(other_project.uploader) as client:
        other = await create(client, other_session, other_file, len(small))
        assert (await patch(client, other, 0, small[: MB // 2])).status_code == 204  # a tail
    await pool.execute("UPDATE tus_uploads SET expires_at = now() - interval '1 minute'")
    with monkeypatch.context() as outage:

        async def unreachable(*args: Any) -> None:
            raise ConnectionError("S3 went away")

        outage.setattr(blobs, "abort_multipart", unreachable)
        assert await clean_expired(gateway.runtime) == 2
    assert await _leftovers(gateway, other) == []  # the other went
    assert await pool.fetchval("SELECT count(*) FROM tus_uploads") == 1  # this one waits
    assert await clean_expired(gateway.runtime) == 1
    assert [await _parts(gateway, *upload) for upload in started] == [[]]
    assert await _leftovers(gateway, url) == []
    assert await pool.fetchval("SELECT count(*) FROM tus_uploads") == 0


def _multipart_uploads(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The S3 multipart uploads the gateway starts from now on, (key, upload id) each."""
    blobs = gateway.runtime.blobs
    start = blobs.start_multipart
    started: list[tuple[str, str]] = []

    async def noted(bucket: str, key: str, content_type: str) -> str:
        upload = await start(bucket, key, content_type)
        started.append((key, upload))
        return upload

    monkeypatch.setattr(blobs, "start_multipart", noted)
    return started


async def _parts(gateway: Gateway, key: str, upload: str) -> list[int]:
    """The numbers of the parts S3 keeps of a multipart upload: none once it was aborted
    (s3proxy lists none; S3 says there is no such upload)."""
    client = gateway.runtime.blobs._client
    try:
        listed = await asyncio.to_thread(client._list_parts, "originals", key, upload)
    except S3Error as error:
        if error.code != "NoSuchUpload":
            raise
        return []
    return [part.part_number for part in listed.parts]


async def test_a_resumable_upload_left_idle_does_not_hold_its_session_back(
    gateway: Gateway,
) -> None:
    """A tus upload whose client went away (no bytes for STALLED_AFTER) fails its file when the
    session is submitted, and is cleaned away; one that moved recently still holds the
    submit back."""
    data = big_jpeg(10 * MB, variant=8)
    project, session, file_id = await registered(gateway, data)
    async with gateway.client(project.uploader) as client:
        url = await create(client, session, file_id, len(data))
        assert (await patch(client, url, 0, data[: 9 * MB])).status_code == 204
        submit = f"/v1/sessions/{session}/submit"
        assert error(await client.post(submit), 409) == "uploads_in_progress"  # moved just now
        await gateway.runtime.db.pool.execute(  # as if its client had gone twenty minutes ago
            "UPDATE files SET updated_at = now() - interval '20 minutes' WHERE id = $1",
            uuid.UUID(file_id),
        )
        assert (await client.post(submit)).status_code == 200
        state = await file_state(client, session, file_id)
        assert (state["status"], state["code"]) == ("failed", "upload_abandoned")
        assert error(await patch(client, url, 9 * MB, data[9 * MB :]), 410) == "upload_expired"
        assert await clean_expired(gateway.runtime) == 1
        state = await file_state(client, session, file_id)
    assert (state["status"], state["code"]) == ("failed", "upload_abandoned")  # said once
    assert await _leftovers(gateway, url) == []


async def _leftovers(gateway: Gateway, url: str) -> list[str]:
    """The objects a discarded tus upload could have left (its tails)."""
    client = gateway.runtime.blobs._client
    prefix = f"tus/{url.rsplit('/', 1)[1]}/"

    def listing() -> list[str]:
        return [
            o.object_name for o in client.list_objects("originals", prefix=prefix, recursive=True)
        ]

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


async def test_a_refusal_speaks_tus_too(gateway: Gateway) -> None:
    project = await new_project(gateway)
    async with gateway.client(project.uploader) as client:
        old = await client.post("/v1/tus", headers={"Tus-Resumable": "0.2.2"})
        assert error(old, 412) == "tus_version"
        assert (old.headers["Tus-Version"], old.headers["Tus-Resumable"]) == ("1.0.0", "1.0.0")
        unknown = await client.head(f"/v1/tus/{uuid.uuid4()}", headers=TUS)
        assert unknown.status_code == 404 and unknown.headers["Tus-Resumable"] == "1.0.0"
    async with gateway.client() as anonymous:
        nobody = await anonymous.post("/v1/tus", headers=TUS | {"Upload-Length": "10"})
        assert error(nobody, 401) == "missing_key"
        assert nobody.headers["Tus-Resumable"] == "1.0.0"


async def test_bytes_unlike_the_declared_sha256_fail_the_file(gateway: Gateway) -> None:
    data = big_jpeg(6 * MB, variant=7)
    project, session, file_id = await registered(gateway, data, sha256=sha(b"something else"))
    async with gateway.client(project.uploader) as client:
        url = await create(client, session, file_id, len(data))
        assert error(await patch(client, url, 0, data), 422) == "checksum_mismatch"
        state = await file_state(client, session, file_id)
    assert (state["status"], state["code"]) == ("failed", "checksum_mismatch")
    assert await gateway.stored(project.id, file_id) == []


async def test_another_projects_upload_is_answered_as_one_that_does_not_exist(
    gateway: Gateway,
) -> None:
    data = big_jpeg(6 * MB, variant=6)
    project, session, file_id = await registered(gateway, data)
    stranger = await new_project(gateway)
    async with gateway.client(project.uploader) as client:
        url = await create(client, session, file_id, len(data))
    unknown = url.rsplit("/", 1)[0] + f"/{uuid.uuid4()}"
    async with gateway.client(stranger.uploader) as client:
        for target in (url, unknown):
            assert (await client.head(target, headers=TUS)).status_code == 404  # no body
            answer = await patch(client, target, 0, data[:MB])
            assert error(answer, 404) == "upload_not_found"
            assert error(await client.delete(target, headers=TUS), 404) == "upload_not_found"
    async with gateway.client(project.uploader) as client:
        assert (await client.head(url, headers=TUS)).headers["Upload-Offset"] == "0"
