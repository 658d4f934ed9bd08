"""Faces: persons found across the corpus faces folder, and faces per second on 2 cores.

    make infra && uv run python -m bench.tagging_faces [--photos 100] [--warmup 4] [--stages]

**Persons.** Every photo of ``corpus/faces`` (the ``people/<name>/`` folders and the photos
beside them; who is in each: ``tests/unit/corpus_truth.FACES_PEOPLE``) is announced with AI
tagging on, to one project, through a running ``python -m darkroom.tagging``. Then, as a user
would, the first photo of each ``people/<name>/`` folder has its face's person named
``<name>``. Every medium's latest ``media.tags.v1`` is read back: a ``person:`` tag is right
when that person is in the photo. Precision: the share of person tags that are right; recall:
the share of people in the photos (among those named) who got their tag.

**Faces per second.** ``--photos`` media (the faces photos over and over, each its own medium)
through the service (2 worker processes, as deployed), from the first event published to the
last result, against the bare dlib calls (detection and embedding, ``analysis.faces_of``) on
the same pictures, already decoded at the service's size, in a pool of as many processes, in
the same run. The originals are in S3 before the clock starts (the gateway's work, not the
service's). The service also fetches and decodes each file, runs the content-safety model,
stores and publishes; the ratio says what all that costs (target ≥ 0.8).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
from aiokafka import AIOKafkaProducer

from darkroom.common.blobs import Blobs
from darkroom.common.broker import media_consumers
from darkroom.common.events import (
    Event,
    MediaRef,
    MediaReprocess,
    MediaTags,
    MediaUploaded,
    NamePerson,
    TaggingCommand,
    cloudevent_headers,
)
from darkroom.common.imaging import fitted
from darkroom.common.settings import TaggingSettings
from darkroom.common.topics import skip_backlog
from darkroom.tagging.analysis import detections, faces_of
from tests.unit.corpus_truth import CORPUS, FACES_PEOPLE

from .stack import Results, fresh_database, service_processes, wait_group

FACES = CORPUS / "faces"
GROUP = TaggingSettings.service


def photos() -> list[tuple[Path, set[str]]]:
    """Every faces photo with who is in it."""
    return [(CORPUS / path, people) for path, people in FACES_PEOPLE.items()]


class Bench:
    def __init__(self, settings: TaggingSettings, blobs: Blobs, producer: AIOKafkaProducer) -> None:
        self.settings = settings
        self.blobs = blobs
        self.producer = producer

    async def upload(self, project: uuid.UUID, path: Path, name: str) -> MediaRef:
        uploaded = await self.stage(project, path, name)
        await self.send(uploaded)
        return uploaded.media

    async def stage(self, project: uuid.UUID, path: Path, name: str) -> MediaUploaded:
        """The original stored, as the gateway stores it; its event, not yet sent."""
        media_id = uuid.uuid4()
        ref = MediaRef(
            media_id=media_id,
            project_id=project,
            session_id=uuid.uuid4(),
            object_key=f"{project}/{media_id}/original",
            relative_path=name,
            ai_tagging=True,
            classification="UNCLASSIFIED",
        )
        data = await asyncio.to_thread(path.read_bytes)
        await self.blobs.put_bytes(self.settings.bucket_originals, ref.object_key, data)
        return MediaUploaded(
            media=ref,
            sha256="0" * 64,
            size=len(data),
            content_type="image/png" if path.suffix == ".png" else "image/jpeg",
            session_capture_date=date(2024, 5, 17),
            project_timezone="Europe/Paris",
            source="bench",
            view_name="faces",
            uploaded_at=datetime.now(UTC),
        )

    async def send(self, *events: Event) -> None:
        """Publish the events at once, and wait until Kafka has them all."""
        sent = [
            await self.producer.send(
                event.topic,
                event.model_dump_json().encode(),
                key=event.key().encode(),
                headers=[
                    (k, v.encode()) for k, v in cloudevent_headers(event, source="bench").items()
                ],
            )
            for event in events
        ]
        await asyncio.gather(*sent)


async def persons(bench: Bench, results: Results) -> tuple[float, float, list[str]]:
    """Precision and recall of person tags once one photo of each person is named."""
    project = uuid.uuid4()
    uploaded = [
        (await bench.upload(project, path, path.relative_to(FACES).as_posix()), people)
        for path, people in photos()
    ]
    await results.wait([str(ref.media_id) for ref, _ in uploaded], within=300)
    first = {}
    for folder in sorted((FACES / "people").iterdir()):
        ref = next(r for r, _ in uploaded if r.relative_path.startswith(f"people/{folder.name}/"))
        [face] = results.arrived[str(ref.media_id)][1]["faces"]
        first[folder.name] = ref
        named = NamePerson(person_id=uuid.UUID(face["person_id"]), name=folder.name)
        await bench.send(TaggingCommand(project_id=project, command=named))
    deadline = time.monotonic() + 120
    while not all(name in _persons(results, ref) for name, ref in first.items()):
        if time.monotonic() > deadline:
            raise SystemExit("the names did not reach the named photos within 120 s")
        await asyncio.sleep(0.2)
    await asyncio.sleep(3)  # the other media of each person follow in the same transactions
    right = wrong = expected = 0
    notes = []
    for ref, people in uploaded:
        tagged = _persons(results, ref)
        right += len(tagged & people)
        wrong += len(tagged - people)
        expected += len(people)
        if tagged != people:
            notes.append(f"{ref.relative_path}: tagged {sorted(tagged)}, shows {sorted(people)}")
    precision = right / (right + wrong) if right + wrong else 1.0
    return precision, right / expected, notes


def _persons(results: Results, ref: MediaRef) -> set[str]:
    tags = results.arrived[str(ref.media_id)][1]["tags"]
    return {t["name"].removeprefix("person:") for t in tags if t["name"].startswith("person:")}


def _decoded(path: Path, size: int) -> np.ndarray:
    return np.asarray(fitted(path.read_bytes(), size).convert("RGB"))


def _faces(picture: np.ndarray, upsample: int, min_face: int) -> int:
    return len(faces_of(picture, upsample, min_face))


def stages(paths: list[Path], settings: TaggingSettings) -> dict[str, float]:
    """Mean ms per photo of each part of the service's analysis, in this process alone."""
    spent = {"decode": 0.0, "safety model": 0.0, "dlib": 0.0}
    detections(_decoded(paths[0], settings.face_image_size))  # loaded
    faces_of(_decoded(paths[0], settings.face_image_size), settings.face_upsample, 0)  # loaded
    for path in paths:
        start = time.perf_counter()
        picture = _decoded(path, settings.face_image_size)
        decoded = time.perf_counter()
        detections(picture)
        judged = time.perf_counter()
        faces_of(picture, settings.face_upsample, settings.face_min_pixels)
        spent["decode"] += decoded - start
        spent["safety model"] += judged - decoded
        spent["dlib"] += time.perf_counter() - judged
    return {part: 1000 * total / len(paths) for part, total in spent.items()}


def bare(paths: list[Path], settings: TaggingSettings) -> tuple[int, float]:
    """Faces found and seconds taken by dlib alone, in ``workers`` processes."""
    pictures = [_decoded(path, settings.face_image_size) for path in paths]
    upsample = [settings.face_upsample] * len(pictures)
    min_face = [settings.face_min_pixels] * len(pictures)
    with ProcessPoolExecutor(max_workers=settings.workers) as pool:
        list(pool.map(_faces, pictures[: settings.workers * 2], upsample, min_face))  # loaded
        start = time.monotonic()
        found = sum(pool.map(_faces, pictures, upsample, min_face))
        return found, time.monotonic() - start


async def through_service(
    bench: Bench, results: Results, paths: list[Path], warmup: int
) -> tuple[int, float]:
    """Faces found and seconds from the first event to the last result. The originals are
    stored before the clock starts, as the gateway stores them: the bench's own uploading is
    not the service's work."""
    project = uuid.uuid4()
    warm = [await bench.upload(project, path, path.name) for path in paths[:warmup]]
    await results.wait([str(ref.media_id) for ref in warm], within=300)
    staged = [await bench.stage(project, path, path.name) for path in paths]
    start = time.monotonic()
    await bench.send(*staged)
    refs = [event.media for event in staged]
    last = await results.wait([str(ref.media_id) for ref in refs], within=600)
    found = sum(len(results.arrived[str(ref.media_id)][1]["faces"]) for ref in refs)
    return found, last - start


async def run(args: argparse.Namespace) -> None:
    settings = TaggingSettings()
    cycle = [path for path, _ in photos()]
    paths = [cycle[n % len(cycle)] for n in range(args.photos)]
    if args.stages:
        parts = await asyncio.to_thread(stages, [path for path, _ in photos()], settings)
        print("ms per photo, one process: " + ", ".join(f"{k} {v:.0f}" for k, v in parts.items()))
        print(f"the service's own work caps the ratio at {parts['dlib'] / sum(parts.values()):.2f}")
    found, seconds = await asyncio.to_thread(bare, paths, settings)
    floor = found / seconds
    print(
        f"bare dlib, {settings.workers} processes: {found} faces in {seconds:.1f} s = "
        f"{floor:.2f} faces/s",
        flush=True,
    )
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        async with fresh_database("tagging") as url:
            topics = (MediaUploaded.topic, MediaReprocess.topic, TaggingCommand.topic)
            await skip_backlog(settings, GROUP, topics)
            env = {
                "DARKROOM_TAGGING_DATABASE_URL": url,
                "DARKROOM_TAGGING_WORKERS": str(settings.workers),
            }
            async with Results(settings, MediaTags.topic) as results:
                with service_processes("darkroom.tagging", 1, env, name="tagging"):
                    await wait_group(settings, GROUP, members=media_consumers(settings.workers) + 2)
                    bench = Bench(settings, Blobs(settings), producer)
                    served, took = await through_service(bench, results, paths, args.warmup)
                    rate = served / took
                    print(
                        f"service: {served} faces in {took:.1f} s = {rate:.2f} faces/s; "
                        f"ratio {rate / floor:.2f} (target >= 0.8)",
                        flush=True,
                    )
                    precision, recall, notes = await persons(bench, results)
                    print(
                        f"persons over corpus/faces: precision {precision:.3f}, recall {recall:.3f}"
                    )
                    for note in notes:
                        print(f"  {note}")
    finally:
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--photos", type=int, default=100, help="media in the timed run")
    parser.add_argument("--warmup", type=int, default=4, help="media handled before the clock")
    parser.add_argument("--stages", action="store_true", help="time each part of the analysis")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
