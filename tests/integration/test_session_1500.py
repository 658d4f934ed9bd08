"""A full capture session over HTTP: 1,500 real photos, failures injected, retried, submitted.

The issue's "done when": the files are made from the shared corpus, registered in 15 batches of
100, uploaded 8 at a time; some uploads are cut off halfway and some send the wrong bytes. Each
of those fails alone with its own code, is retried with the right bytes (a few are left failed
on purpose), and after submit Kafka holds exactly one ``media.uploaded.v1`` per uploaded file
and one ``session.submitted.v1`` that lists the failed files with their reasons.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import PurePath
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from bench.dedup_set import without_exif
from darkroom.common.events import MediaUploaded, SessionSubmitted
from darkroom.common.settings import CommonSettings
from darkroom.ingest.content import HEAD_BYTES, has_exif

from .backbone import eventually
from .gateway import CORPUS, PNG, Gateway, jpeg
from .test_gateway import _send_half_then_hang_up, add, error, new_project, new_session, put

FILES = 1500
BATCH = 100
AT_ONCE = 8
SOURCES = (CORPUS / "exif-samples" / "jpg", CORPUS / "cameras" / "jpg")

CUT_OFF = "upload_interrupted"
# What is sent in place of a file, by the code the gateway must answer with.
WRONG_BYTES: dict[str, Callable[[Photo], bytes]] = {
    "type_mismatch": lambda photo: PNG.read_bytes(),
    "missing_exif": lambda photo: without_exif(jpeg()),
    "size_mismatch": lambda photo: photo.data + b"\0" * 4096,
    "incomplete": lambda photo: photo.data[: len(photo.data) // 2],
    "checksum_mismatch": lambda photo: photo.data[:-1] + b"!",
}
FAULTS = (CUT_OFF, *WRONG_BYTES)
TOPICS = (MediaUploaded.topic, SessionSubmitted.topic)
PER_FAULT = 10
# Never uploaded at all: submit marks it failed (not_uploaded).
NEVER_SENT = 750


@cache
def originals() -> tuple[tuple[PurePath, bytes], ...]:
    """The corpus JPEGs the capture policy takes (their first 64 KiB carry EXIF), by name."""
    found = sorted(p for root in SOURCES for p in root.rglob("*") if p.is_file())
    return tuple(
        (PurePath(p.name), data) for p in found if has_exif((data := p.read_bytes())[:HEAD_BYTES])
    )


@dataclass(frozen=True)
class Photo:
    """One file of the session: a corpus JPEG followed by a trailer of its own."""

    number: int

    @property
    def original(self) -> tuple[PurePath, bytes]:
        return originals()[self.number % len(originals())]

    @property
    def data(self) -> bytes:  # made when needed: the whole session is some 600 MB
        return self.original[1] + f"\n-- darkroom session file {self.number:04d}".encode()

    @property
    def path(self) -> str:
        """Spread over 5 days of 4 views: "day-2/view-3/Canon EOS 7D-0137.jpg"."""
        name, n = self.original[0], self.number
        return f"day-{n % 5 + 1}/view-{n % 4 + 1}/{name.stem}-{n:04d}{name.suffix}"

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def declares_sha256(self) -> bool:
        """Every other file comes with its SHA-256, as a client that hashes ahead would send."""
        return self.number % 2 == 1

    def planned(self) -> dict[str, Any]:
        planned: dict[str, Any] = {"path": self.path, "size": len(self.data)}
        return planned | ({"sha256": self.sha256} if self.declares_sha256 else {})


def fault_plan() -> dict[int, str]:
    """Ten files of each fault, spread over the session; all odd, so all declare a SHA-256."""
    plan = {j * 150 + k * 20 + 3: fault for k, fault in enumerate(FAULTS) for j in range(PER_FAULT)}
    assert len(plan) == len(FAULTS) * PER_FAULT and NEVER_SENT not in plan
    assert all(Photo(n).declares_sha256 for n in plan)
    return plan


def _state_after_first_attempts(number: int, plan: dict[int, str]) -> tuple[str, str | None]:
    if number in plan:
        return "failed", plan[number]
    return ("queued", None) if number == NEVER_SENT else ("uploaded", None)


def left_failed(plan: dict[int, str]) -> set[int]:
    """The first file of each fault is not retried: it stays failed."""
    return {min(n for n, f in plan.items() if f == fault) for fault in FAULTS}


@pytest.fixture
async def stored(gateway: Gateway) -> AsyncIterator[list[tuple[str, str]]]:
    """The files (project, file) whose originals the test stores, removed afterwards: they
    weigh some 600 MB."""
    files: list[tuple[str, str]] = []
    yield files
    bucket = gateway.runtime.settings.bucket_originals

    async def remove(project_id: str, file_id: str) -> None:
        for key in await gateway.stored(project_id, file_id):
            await gateway.runtime.blobs.remove(bucket, key)

    await _at_most(AT_ONCE, (remove(*file) for file in files))


async def test_a_1500_file_session_survives_failures_and_emits_one_event_per_file(
    gateway: Gateway, settings: CommonSettings, stored: list[tuple[str, str]]
) -> None:
    photos = [Photo(n) for n in range(FILES)]
    plan, kept_failed = fault_plan(), left_failed(fault_plan())
    uploaded = [p for p in photos if p.number not in kept_failed | {NEVER_SENT}]
    project = await new_project(gateway, "capture", recipient_emails=["ops@example.org"])
    async with gateway.client(project.uploader) as client:
        session = await new_session(client, project, uploader_email="ana@example.org")
        ids = await _register(client, session, photos)
        stored.extend((project.id, file_id) for file_id in ids.values())

        async def send(photo: Photo) -> None:
            file_id, fault = ids[photo.number], plan.get(photo.number)
            if fault == CUT_OFF:
                await _send_half_then_hang_up(
                    gateway, project.uploader, session, file_id, photo.data
                )
            elif fault is not None:
                wrong = await put(client, session, file_id, WRONG_BYTES[fault](photo))
                assert error(wrong, 422) == fault
            else:
                _uploaded(await put(client, session, file_id, photo.data), photo, attempt=1)

        await _at_most(AT_ONCE, (send(p) for p in photos if p.number != NEVER_SENT))
        await eventually(lambda: _settled(client, session))
        files = await _files(client, session)
        assert {n: (files[ids[n]]["status"], files[ids[n]]["code"]) for n in ids} == {
            n: _state_after_first_attempts(n, plan) for n in ids
        }
        for n in plan:
            assert await gateway.stored(project.id, ids[n]) == []

        async def retry(photo: Photo) -> None:
            response = await put(client, session, ids[photo.number], photo.data)
            _uploaded(response, photo, attempt=2)

        await _at_most(AT_ONCE, (retry(Photo(n)) for n in plan if n not in kept_failed))
        counts = (await client.get(f"/v1/sessions/{session}")).json()["counts"]
        assert (counts["uploaded"], counts["failed"], counts["queued"]) == (
            len(uploaded),
            len(kept_failed),
            1,
        )

        marks = {topic: await _end_offsets(settings, topic) for topic in TOPICS}
        submitted = await client.post(f"/v1/sessions/{session}/submit")
        assert submitted.status_code == 200, submitted.text
        assert submitted.json() == {
            "session_id": session,
            "sent": len(uploaded),
            "failed": len(kept_failed) + 1,
            "skipped": 0,
        }
        failed = (await client.get(f"/v1/sessions/{session}?status=failed")).json()["files"]
    assert {f["path"]: f["code"] for f in failed} == {
        Photo(n).path: plan.get(n, "not_uploaded") for n in kept_failed | {NEVER_SENT}
    }

    await eventually(lambda: _outbox_drained(gateway))
    events = [
        MediaUploaded.model_validate_json(r.value)
        for r in await _records_since(settings, MediaUploaded.topic, marks[MediaUploaded.topic])
        if _of_session(r, session)
    ]
    assert sorted((str(e.media.media_id), e.media.relative_path, e.sha256) for e in events) == (
        sorted((ids[p.number], p.path, p.sha256) for p in uploaded)
    )
    [report] = [
        SessionSubmitted.model_validate_json(r.value)
        for r in await _records_since(
            settings, SessionSubmitted.topic, marks[SessionSubmitted.topic]
        )
        if _of_session(r, session)
    ]
    assert (report.uploaded, report.skipped) == (len(uploaded), 0)
    assert sorted((f.relative_path, f.reason) for f in report.failed) == sorted(
        (f["path"], f["reason"]) for f in failed
    )
    assert all(f.reason.endswith(".") for f in report.failed)
    assert report.uploader_email == "ana@example.org" and report.recipients == ["ops@example.org"]


async def _register(client: httpx.AsyncClient, session: str, photos: list[Photo]) -> dict[int, str]:
    """Add the photos in batches of 100; the file id of each photo's number."""
    ids: dict[int, str] = {}
    for start in range(0, len(photos), BATCH):
        batch = photos[start : start + BATCH]
        added = await add(client, session, *(p.planned() for p in batch))
        assert (added["queued"], added["skipped"], added["refused"]) == (len(batch), 0, 0)
        assert [f["path"] for f in added["files"]] == [p.path for p in batch]
        ids |= {p.number: f["id"] for p, f in zip(batch, added["files"], strict=True)}
    return ids


def _uploaded(response: httpx.Response, photo: Photo, *, attempt: int) -> None:
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["sha256"], body["attempts"]) == ("uploaded", photo.sha256, attempt)


async def _at_most(limit: int, work: Iterable[Awaitable[None]]) -> None:
    """Run ``work`` with at most ``limit`` at once, as an uploading client would."""
    slots = asyncio.Semaphore(limit)

    async def one(job: Awaitable[None]) -> None:
        async with slots:
            await job

    await asyncio.gather(*(one(job) for job in work))


async def _files(client: httpx.AsyncClient, session: str) -> dict[str, dict[str, Any]]:
    detail = await client.get(f"/v1/sessions/{session}")
    return {f["id"]: f for f in detail.json()["files"]}


async def _settled(client: httpx.AsyncClient, session: str) -> bool:
    """Every file sent has an outcome (a cut-off one fails once the server sees the hang-up)."""
    counts = (await client.get(f"/v1/sessions/{session}")).json()["counts"]
    return bool(counts["uploading"] == 0 and counts["queued"] == 1)  # the one never sent


async def _outbox_drained(gateway: Gateway) -> bool:
    """Every event the gateway wrote is on Kafka: nothing more of this session is to come."""
    pending = await gateway.runtime.db.pool.fetchval(
        "SELECT count(*) FROM outbox WHERE published_at IS NULL"
    )
    return bool(pending == 0)


def _of_session(record: ConsumerRecord[bytes, bytes], session: str) -> bool:
    """Whether a record belongs to this session (other tests write to the same topics)."""
    body = json.loads(record.value)
    return session in (body.get("session_id"), body.get("media", {}).get("session_id"))


@asynccontextmanager
async def _consumer(settings: CommonSettings, topic: str) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        assert consumer.assignment(), f"{topic} has no partitions"
        yield consumer
    finally:
        await consumer.stop()


async def _end_offsets(settings: CommonSettings, topic: str) -> dict[TopicPartition, int]:
    async with _consumer(settings, topic) as consumer:
        ends: dict[TopicPartition, int] = await consumer.end_offsets(list(consumer.assignment()))
        return ends


async def _records_since(
    settings: CommonSettings, topic: str, marks: dict[TopicPartition, int]
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` from ``marks`` to its end now (other tests write there too)."""
    async with _consumer(settings, topic) as consumer:
        ends = await consumer.end_offsets(list(marks))
        for partition, offset in marks.items():
            consumer.seek(partition, offset)
        records: list[ConsumerRecord[bytes, bytes]] = []
        async with asyncio.timeout(30):
            for partition, end in ends.items():
                while await consumer.position(partition) < end:
                    fetched = await consumer.getmany(partition, timeout_ms=500)
                    records.extend(fetched.get(partition, []))
        return records
