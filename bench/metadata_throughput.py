"""Metadata throughput: 12 MP JPEGs through the running service, against the same bare work.

    uv run python -m bench.metadata_throughput [--images 200] [--replicas 1 2] [--warmup 16]
        [--stages] [--skip-floor] [--skip-service] [--skip-exiftool]

**Images.** A real phone photo of the corpus (``cameras/jpg/Apple iPhone 6 plus.jpg``: 8 MP,
GPS, an ICC profile), turned on its side and scaled to 4000x3000 with Pillow, saved at quality
90 with its own EXIF (orientation set to 6, as a phone stores a portrait photo) and ICC
profile: about 3 MB. ``--images`` distinct files are made from it, each with a trailer of its
own after the JPEG's end, written to a temporary folder and stored once in the originals bucket.

**Floor.** The same work with no service around it: each file read from disk, its SHA-256,
``exif.read_image``, and ``derived.derived_images`` (draft decode, preview and thumbnail as
WebP, turned upright), once in this process alone and once in a pool of
``DARKROOM_METADATA_WORKERS`` processes (the service's own pool size; default 2).

**Service.** For each ``--replicas`` count: a database made for the run (dropped after it), the
``metadata`` consumer group moved to the end of its topics (so no old event is replayed), that
many ``python -m darkroom.metadata`` processes (``MALLOC_ARENA_MAX=2``, as deployed) in that one
group, ``/readyz`` and a stable group awaited, ``--warmup`` events handled first (pools forked,
data sets loaded), then ``--images`` ``MediaUploaded`` events published at once and the clock
stopped when the last ``darkroom.media.metadata.v1`` result arrived. Every result must be
``ok``, upright 3000x4000, in GB. CPU seconds of each process group are taken over the run.

``--stages`` runs the services as ``python -m bench.metadata_stages`` (the same service with
stopwatches on each stage of a message) and prints where each message's time went.
Each replica runs ``--workers`` extraction processes and as many consumers of new uploads
(``DARKROOM_METADATA_WORKERS``), and one of the reprocessing lane.

**ExifTool.** On the corpus JPEGs and HEICs of ``exif-samples`` and ``cameras``: ``exiftool -j
-n`` once per file, the same in one batched call, and ``read_image`` per file in this process
(each file read from disk; best of 5), and the service's whole ``extract_image`` per file.
ExifTool is Debian's ``libimage-exiftool-perl``; without it that part is skipped with a note.

Before each part, the script waits while another benchmark (``python -m bench.…``) or a pytest
run is running; a part during which one ran, or during which more than 10 % of the machine's CPU
went to other processes, is measured again (three attempts at most, else flagged as shared).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import itertools
import json
import os
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import psutil
from aiokafka import AIOKafkaProducer
from minio import Minio
from minio.deleteobjects import DeleteObject
from PIL import Image

from darkroom.common.broker import media_consumers
from darkroom.common.events import (
    MediaMetadata,
    MediaRef,
    MediaReprocess,
    MediaUploaded,
    cloudevent_headers,
)
from darkroom.common.settings import CommonSettings, MetadataSettings
from darkroom.common.topics import skip_backlog
from darkroom.metadata.derived import derived_images
from darkroom.metadata.exif import UnreadableMedia, read_image
from darkroom.metadata.extract import Hints, extract_image

from . import metadata_stages
from .stack import Results, Service, fresh_database, service_processes, wait_group

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
PHOTO = CORPUS / "cameras" / "jpg" / "Apple iPhone 6 plus.jpg"
SIZE = (4000, 3000)
QUALITY = 90
ORIENTATION = 6
"""Stored on its side, shown upright: what a phone writes for a portrait photo."""
UPRIGHT = (3000, 4000)
EXIF_SETS = ("exif-samples", "cameras")
EXIF_SUFFIXES = {".jpg", ".jpeg", ".heic", ".heif"}
GROUP = MetadataSettings.service
TOPICS = (MediaUploaded.topic, MediaReprocess.topic)
"""The topics the service's group reads: ``workers`` consumers of the first, one of the second."""
MiB = 1024 * 1024
FOREIGN_LIMIT = 0.10
"""A part is measured again when more of the machine's CPU than this went to other processes."""


class Measured(Protocol):
    @property
    def foreign(self) -> float: ...


M = TypeVar("M", bound=Measured)
HINTS = Hints(project_zone="Europe/Paris", session_date=date(2024, 5, 17))


# --- the images ------------------------------------------------------------------------------


def twelve_megapixels(source: Path = PHOTO) -> bytes:
    """``source`` on its side at 4000x3000, quality 90, with its EXIF (orientation 6) and ICC."""
    with Image.open(source) as photo:
        exif = photo.info.get("exif", b"")
        icc = photo.info.get("icc_profile")
        pixels = photo.convert("RGB")
    if pixels.height > pixels.width:  # upright portrait -> stored landscape, turned when shown
        pixels = pixels.transpose(Image.Transpose.ROTATE_90)
    large = pixels.resize(SIZE, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    large.save(
        out, "JPEG", quality=QUALITY, exif=_with_orientation(exif, ORIENTATION), icc_profile=icc
    )
    return out.getvalue()


def _with_orientation(exif: bytes, orientation: int) -> bytes:
    """The APP1 EXIF payload with IFD0's Orientation (a SHORT) set to ``orientation``."""
    tiff = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
    order = "<" if tiff[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(order + "I", tiff, 4)
    (count,) = struct.unpack_from(order + "H", tiff, ifd)
    for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
        tag, kind = struct.unpack_from(order + "HH", tiff, entry)
        if tag == 0x0112 and kind == 3:
            patched = bytearray(tiff)
            struct.pack_into(order + "H", patched, entry + 8, orientation)
            return exif[: len(exif) - len(tiff)] + bytes(patched)
    raise SystemExit(f"{PHOTO} has no Orientation in IFD0 to set")


@dataclass(frozen=True)
class Photos:
    """The distinct 12 MP files on disk, and where each is stored in S3."""

    folder: Path
    paths: list[Path]
    keys: list[str]
    sha256: list[str]
    sizes: list[int]

    @classmethod
    def make(cls, count: int, folder: Path) -> Photos:
        base = twelve_megapixels()
        run = uuid.uuid4().hex[:8]
        paths, keys, digests, sizes = [], [], [], []
        for number in range(count):
            data = base + f"darkroom-bench-{run}-{number:06d}".encode()  # after the JPEG's EOI
            path = folder / f"photo-{number:04d}.jpg"
            path.write_bytes(data)
            paths.append(path)
            keys.append(f"bench/metadata/{run}/{number:04d}.jpg")
            digests.append(hashlib.sha256(data).hexdigest())
            sizes.append(len(data))
        return cls(folder, paths, keys, digests, sizes)

    def store(self, s3: Minio, bucket: str) -> None:
        with ThreadPoolExecutor(4) as pool:
            list(
                pool.map(
                    lambda i: s3.fput_object(bucket, self.keys[i], str(self.paths[i])),
                    range(len(self.paths)),
                )
            )

    def unstore(self, s3: Minio, bucket: str) -> None:
        remove_prefix(s3, bucket, self.keys[0].rsplit("/", 1)[0] + "/")


# --- the floor: the same work, no service ------------------------------------------------------


FLOOR_STAGES = ("read", "sha256", "exif", "derived")


def floor_one(path: str) -> tuple[float, float, float, float]:
    """One file's bare work, each stage's seconds: read, SHA-256, EXIF, decode + WebPs."""
    start = time.perf_counter()
    data = Path(path).read_bytes()
    read = time.perf_counter()
    hashlib.sha256(data).digest()
    hashed = time.perf_counter()
    facts = read_image(data)
    exif = time.perf_counter()
    derived_images(data, orientation=facts.orientation_to_apply)
    done = time.perf_counter()
    return read - start, hashed - read, exif - hashed, done - exif


@dataclass
class FloorRun:
    processes: int
    seconds: float
    timings: list[tuple[float, float, float, float]]
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return len(self.timings) / self.seconds

    @property
    def foreign(self) -> float:
        """Share of the machine's CPU that went to other processes meanwhile."""
        return self.cpu.get("other", 0.0) / (self.seconds * (psutil.cpu_count() or 1))


def run_floor(paths: list[Path], processes: int, warmup: int) -> FloorRun:
    """The floor in this process (``processes == 1``) or in a pool of that many processes."""
    files = [str(p) for p in paths]
    cpu: dict[str, float] = {}
    meter = CpuMeter({"bench": lambda: [psutil.Process(), *psutil.Process().children(True)]})
    settle()
    if processes == 1:
        for path in files[:warmup]:
            floor_one(path)
        with meter.measure(cpu):
            start = time.perf_counter()
            timings = [floor_one(path) for path in files]
            seconds = time.perf_counter() - start
        return FloorRun(1, seconds, timings, cpu)
    with ProcessPoolExecutor(processes) as pool:
        list(pool.map(floor_one, files[: warmup * processes]))  # every process forked and warm
        with meter.measure(cpu):
            start = time.perf_counter()
            timings = list(pool.map(floor_one, files))
            seconds = time.perf_counter() - start
    return FloorRun(processes, seconds, timings, cpu)


# --- CPU of each process group -----------------------------------------------------------------


Finder = Callable[[], list[psutil.Process]]


class CpuMeter:
    """CPU seconds (user + system) each group of processes spends inside a block.

    ``other`` is the rest of the machine's busy CPU meanwhile: more than a little of it means
    something else was running.
    """

    def __init__(self, groups: dict[str, Finder]) -> None:
        self._groups = groups

    def _now(self) -> tuple[dict[str, dict[int, float]], float]:
        spent: dict[str, dict[int, float]] = {}
        for name, find in self._groups.items():
            spent[name] = {}
            for process in find():
                with suppress(psutil.Error):
                    spent[name][process.pid] = sum(process.cpu_times()[:2])
        return spent, _machine_busy()

    @contextmanager
    def measure(self, into: dict[str, float]) -> Iterator[None]:
        before, busy_before = self._now()
        yield
        after, busy_after = self._now()
        for name, pids in after.items():
            into[name] = sum(cpu - before[name].get(pid, 0.0) for pid, cpu in pids.items())
        into["other"] = busy_after - busy_before - sum(into.values())


def _pid_file(name: str) -> list[psutil.Process]:
    try:
        return [psutil.Process(int((ROOT / "var/run" / f"{name}.pid").read_text()))]
    except (OSError, ValueError, psutil.Error):
        return []


def _with_children(processes: list[psutil.Process]) -> list[psutil.Process]:
    found = list(processes)
    for process in processes:
        with suppress(psutil.Error):
            found += process.children(recursive=True)
    return found


# --- the service, as its own processes ---------------------------------------------------------


@contextmanager
def services(
    database_url: str, replicas: int, *, probe: bool, workers: int
) -> Iterator[list[Service]]:
    """``replicas`` metadata processes, ready. With ``probe``, each runs as
    ``python -m bench.metadata_stages`` and writes the stages of its messages to a file of its
    own."""
    env = {
        "DARKROOM_METADATA_DATABASE_URL": database_url,
        "DARKROOM_METADATA_WORKERS": str(workers),
    }
    module = "bench.metadata_stages" if probe else "darkroom.metadata"
    own = metadata_stages.OUT_VARIABLE if probe else None
    with service_processes(module, replicas, env, name="metadata", own=own) as running:
        yield running


def uploaded(photos: Photos, number: int, project: uuid.UUID, session: uuid.UUID) -> MediaUploaded:
    """The event the gateway would publish for one stored photo."""
    index = number % len(photos.keys)
    ref = MediaRef(
        media_id=uuid.uuid4(),
        project_id=project,
        session_id=session,
        object_key=photos.keys[index],
        relative_path=f"bench/{number:06d}.jpg",
        ai_tagging=False,
        classification="UNCLASSIFIED",
    )
    return MediaUploaded(
        media=ref,
        sha256=photos.sha256[index],
        size=photos.sizes[index],
        content_type="image/jpeg",
        session_capture_date=HINTS.session_date,
        project_timezone=HINTS.project_zone,
        source="bench",
        view_name="metadata throughput",
        uploaded_at=datetime.now(UTC),
    )


async def publish(producer: AIOKafkaProducer, events: list[MediaUploaded]) -> None:
    sent = []
    for event in events:
        headers = cloudevent_headers(event, source="darkroom/bench")
        sent.append(
            await producer.send(
                MediaUploaded.topic,
                event.model_dump_json().encode(),
                key=event.key().encode(),
                headers=[(name, value.encode()) for name, value in headers.items()],
            )
        )
    await asyncio.gather(*sent)


@dataclass
class ServiceRun:
    replicas: int
    images: int
    seconds: float
    cpu: dict[str, float]
    latency: list[float]
    """From publishing each event to its result arriving, seconds."""
    wrong: list[str]
    stages: list[dict[str, Any]] = field(default_factory=list)
    """The probe's records of the measured messages, with ``arrived``, when ``--stages``."""

    @property
    def per_second(self) -> float:
        return self.images / self.seconds

    @property
    def foreign(self) -> float:
        """Share of the machine's CPU that went to processes outside the run meanwhile."""
        return self.cpu.get("other", 0.0) / (self.seconds * (psutil.cpu_count() or 1))

    @property
    def label(self) -> str:
        return f"service, {self.replicas} replica{'s' if self.replicas > 1 else ''}"


async def run_service(
    settings: CommonSettings,
    photos: Photos,
    replicas: int,
    args: argparse.Namespace,
    s3: Minio,
) -> ServiceRun:
    """``args.images`` events through ``replicas`` service processes, after a warm-up."""
    probe = args.stages
    project, session = uuid.uuid4(), uuid.uuid4()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        async with fresh_database("metadata") as database_url:
            await skip_backlog(settings, GROUP, TOPICS)
            async with Results(settings, MediaMetadata.topic) as results:
                with services(database_url, replicas, probe=probe, workers=args.workers) as running:
                    members = replicas * (media_consumers(args.workers) + 1)
                    await wait_group(settings, GROUP, members=members)
                    warm = [uploaded(photos, n, project, session) for n in range(args.warmup)]
                    await publish(producer, warm)
                    await results.wait([e.key() for e in warm], within=120)
                    events = [uploaded(photos, n, project, session) for n in range(args.images)]
                    keys = [e.key() for e in events]
                    own = [psutil.Process(s.process.pid) for s in running]
                    meter = CpuMeter(
                        {
                            "service": lambda: own,
                            "workers": lambda: _with_children(own)[len(own) :],
                            "s3proxy": lambda: _pid_file("s3proxy"),
                            "postgres": lambda: _with_children(_pid_file("postgres")),
                            "kafka": lambda: _pid_file("kafka"),
                            "bench": lambda: [psutil.Process()],
                        }
                    )
                    cpu: dict[str, float] = {}
                    await asyncio.to_thread(settle)
                    with meter.measure(cpu):
                        start = time.monotonic()
                        await publish(producer, events)
                        last = await results.wait(keys, within=max(120, 2.0 * args.images))
                stages = _stage_records(running, keys, results)
            latency = [results.arrived[key][0] - start for key in keys]  # all sent at once
            wrong = [_wrong(key, results.arrived[key][1]) for key in keys]
    finally:
        await producer.stop()
        await asyncio.to_thread(remove_prefix, s3, settings.bucket_derived, f"{project}/")
    return ServiceRun(
        replicas,
        args.images,
        last - start,
        cpu,
        latency,
        [w for w in wrong if w],
        stages,
    )


def _wrong(key: str, result: dict[str, Any]) -> str:
    """What is wrong with one result ('' if nothing): each must be ok, upright and in GB."""
    got = (
        result.get("outcome"),
        result.get("width"),
        result.get("height"),
        result.get("country_code"),
    )
    want = ("ok", *UPRIGHT, "GB")
    return "" if got == want else f"{key}: {got}, expected {want} ({result.get('reason')})"


def _stage_records(
    running: list[Service], keys: list[str], results: Results
) -> list[dict[str, Any]]:
    """The probe's records of the measured messages (the services have stopped and written)."""
    wanted = set(keys)
    found = []
    for service in running:
        if service.stages is None:
            continue
        for record in metadata_stages.records(service.stages):
            if record["media_id"] in wanted:
                record["arrived"] = results.arrived[record["media_id"]][0]
                found.append(record)
    return found


def remove_prefix(s3: Minio, bucket: str, prefix: str) -> None:
    names = [o.object_name for o in s3.list_objects(bucket, prefix=prefix, recursive=True)]
    for error in s3.remove_objects(bucket, [DeleteObject(n) for n in names if n]):
        print(f"could not remove {error.name}: {error.message}", file=sys.stderr)


def minio_client(settings: CommonSettings) -> Minio:
    endpoint = urlsplit(settings.s3_endpoint)
    return Minio(
        endpoint.netloc,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key.get_secret_value(),
        secure=endpoint.scheme == "https",
        region=settings.s3_region,
    )


def settle() -> None:
    """Write the page cache's dirty pages to disk, so no part pays for the one before it."""
    os.sync()


# --- ExifTool against the extractor --------------------------------------------------------------


@dataclass
class ExifComparison:
    files: int
    per_file: dict[str, list[float]] = field(default_factory=dict)
    """Seconds of each file, by way (exiftool, read_image, extract_image)."""
    batched: list[float] = field(default_factory=list)
    """Seconds of each batched exiftool call over all the files."""
    failures: dict[str, int] = field(default_factory=dict)
    foreign: float = 0.0
    """Share of the machine's CPU that went to other processes meanwhile."""


def corpus_files() -> list[Path]:
    return sorted(
        path
        for name in EXIF_SETS
        for path in (CORPUS / name).rglob("*")
        if path.is_file() and path.suffix.lower() in EXIF_SUFFIXES
    )


def exiftool_missing() -> str | None:
    if shutil.which("exiftool"):
        return None
    return (
        "exiftool is not installed, so the ExifTool comparison is skipped. Install Debian's "
        "package and run again:  sudo apt-get install -y libimage-exiftool-perl"
    )


def compare_exiftool(files: list[Path], batches: int, repeats: int) -> ExifComparison:
    result = ExifComparison(len(files))
    with foreign_share() as share:
        _compare(result, files, batches, repeats)
    result.foreign = share[0]
    return result


@contextmanager
def foreign_share() -> Iterator[list[float]]:
    """The share of the machine's CPU, inside the block, not spent by this process or its
    (exited) children: the exiftool calls are children that are gone when it ends."""

    def own() -> float:
        mine = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime

    share = [0.0]
    start, own_before, busy_before = time.perf_counter(), own(), _machine_busy()
    yield share
    wall = (time.perf_counter() - start) * (psutil.cpu_count() or 1)
    share[0] = (_machine_busy() - busy_before - (own() - own_before)) / wall


def _machine_busy() -> float:
    machine = psutil.cpu_times()
    return machine.user + machine.nice + machine.system + machine.irq + machine.softirq


def _compare(result: ExifComparison, files: list[Path], batches: int, repeats: int) -> None:
    names = [str(p) for p in files]
    command = ["exiftool", "-j", "-n"]
    subprocess.run([*command, names[0]], capture_output=True, check=False)  # perl from disk once
    settle()
    times, failed = [], 0
    for name in names:
        start = time.perf_counter()
        done = subprocess.run([*command, name], capture_output=True, check=False)
        times.append(time.perf_counter() - start)
        failed += done.returncode != 0 or not json.loads(done.stdout or b"[]")
    result.per_file["exiftool"], result.failures["exiftool"] = times, failed
    for _ in range(batches):
        start = time.perf_counter()
        done = subprocess.run([*command, *names], capture_output=True, check=False)
        result.batched.append(time.perf_counter() - start)
        result.failures["exiftool batched"] = len(names) - len(json.loads(done.stdout or b"[]"))
    for way, work in (("read_image", _read_image), ("extract_image", _extract_image)):
        times, failed = [], 0
        for path in files:
            best = float("inf")
            for _ in range(repeats if way == "read_image" else 1):
                start = time.perf_counter()
                ok = work(path)
                best = min(best, time.perf_counter() - start)
            times.append(best)
            failed += not ok
        result.per_file[way], result.failures[way] = times, failed


def _read_image(path: Path) -> bool:
    try:
        read_image(path.read_bytes())
    except UnreadableMedia:
        return False
    return True


def _extract_image(path: Path) -> bool:
    return hasattr(extract_image(path.read_bytes(), HINTS), "captured_at")


# --- reports ------------------------------------------------------------------------------------


def others_running() -> list[str]:
    """Other benchmarks and test runs on this machine: ``python -m bench.…`` and pytest.

    Only the Python processes themselves count, not scripts or ``uv run`` waiting to start
    one (another session's "wait until quiet" script must not wait for this one and this one
    for it).
    """
    me = psutil.Process()
    mine = {me.pid, *(p.pid for p in me.parents()), *(p.pid for p in me.children(True))}
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        command = process.info["cmdline"] or []
        if process.info["pid"] not in mine and _is_load(command):
            found.append(f"{process.info['pid']}: {' '.join(command)}")
    return found


def _is_load(command: list[str]) -> bool:
    if not command:
        return False
    program, args = os.path.basename(command[0]), command[1:]
    if program.startswith("pytest"):
        return True
    if not program.startswith("python"):
        return False
    if args and os.path.basename(args[0]).startswith("pytest"):  # python .../bin/pytest
        return True
    modules = [after for before, after in itertools.pairwise(args) if before == "-m"]
    return any(m.startswith("bench.") or m == "pytest" for m in modules)


def wait_quiet(poll: float = 5.0) -> None:
    """Until no other benchmark runs: this machine has two CPUs to share."""
    said = False
    while found := others_running():
        if not said:
            print("waiting for another benchmark to finish:\n  " + "\n  ".join(found), flush=True)
            said = True
        time.sleep(poll)


class Watch:
    """Notes, every second, any other benchmark that runs beside this one, and measures again.

    Each part is measured after waiting until no other benchmark runs; if one started meanwhile,
    the part is measured again (up to ``ATTEMPTS`` times), else it is reported as shared.
    """

    ATTEMPTS = 3

    def __init__(self, *, wait: bool) -> None:
        self.wait = wait
        self.seen: dict[str, None] = {}
        self.shared: dict[str, list[str]] = {}
        """Parts measured while another benchmark ran, with what ran."""
        self._paused = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._look, daemon=True)

    def _look(self) -> None:
        while not self._stop.wait(1.0):
            if not self._paused:
                self.seen |= dict.fromkeys(others_running())

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def quiet(self) -> None:
        """Wait while another benchmark runs (unless ``--no-wait``), then start looking anew."""
        if self.wait:
            self._paused = True
            wait_quiet()
            self._paused = False
        self.seen = {}

    def measure(self, name: str, work: Callable[[], M]) -> M:
        attempt = 1
        while True:
            self.quiet()
            result = work()
            if not self._again(name, attempt, result.foreign):
                return result
            attempt += 1

    async def measure_async(self, name: str, work: Callable[[], Awaitable[M]]) -> M:
        attempt = 1
        while True:
            await asyncio.to_thread(self.quiet)
            result = await work()
            if not self._again(name, attempt, result.foreign):
                return result
            attempt += 1

    def _again(self, name: str, attempt: int, foreign: float) -> bool:
        """Whether to measure ``name`` again: something else ran while it was measured."""
        others = list(self.seen)
        if foreign > FOREIGN_LIMIT:
            others.append(f"{foreign:.0%} of the machine's CPU went to processes outside the run")
        if not others:
            self.shared.pop(name, None)
            return False
        self.shared[name] = others
        again = self.wait and attempt < self.ATTEMPTS
        print(
            f"{name}: something else ran meanwhile ({'; '.join(others)}); "
            + ("measuring it again" if again else "kept, as shared"),
            flush=True,
        )
        return again


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def floor_table(runs: list[FloorRun]) -> str:
    lines = [
        "| floor | images/s | seconds | per image, median ms: "
        + ", ".join(FLOOR_STAGES)
        + " | CPU-s per image | machine CPU elsewhere |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        medians = [statistics.median(t[i] for t in run.timings) for i in range(len(FLOOR_STAGES))]
        cpu = run.cpu.get("bench", 0.0) / len(run.timings)
        lines.append(
            f"| {run.processes} process{'es' if run.processes > 1 else ''} | {run.per_second:.2f} "
            f"| {run.seconds:.1f} | {', '.join(_ms(m) for m in medians)} | {cpu:.3f} "
            f"| {run.foreign:.0%} |"
        )
    return "\n".join(lines)


CPU_GROUPS = ("service", "workers", "s3proxy", "postgres", "kafka", "bench", "other")


def service_table(runs: list[ServiceRun], floors: list[FloorRun]) -> str:
    by_processes = {f.processes: f for f in floors}
    parallel = max(by_processes) if by_processes else 0
    header = "| run | images/s | seconds | ÷ floor " + (f"({parallel} proc.) " if parallel else "")
    header += (
        "| ÷ floor (1 proc.) | result latency p50 / max s | CPU-s per image: "
        + ", ".join(CPU_GROUPS)
        + " |"
    )
    lines = [header, "|---|---|---|---|---|---|---|"]
    for run in runs:
        ratios = [
            f"{run.per_second / by_processes[n].per_second:.2f}" if n in by_processes else "-"
            for n in (parallel, 1)
        ]
        cpu = ", ".join(f"{run.cpu.get(g, 0.0) / run.images:.3f}" for g in CPU_GROUPS)
        lines.append(
            f"| {run.label} | {run.per_second:.2f} | {run.seconds:.1f} | {ratios[0]} | {ratios[1]} "
            f"| {statistics.median(run.latency):.1f} / {max(run.latency):.1f} | {cpu} |"
        )
    return "\n".join(lines)


def stages_table(run: ServiceRun) -> str:
    """Where each message's time went, and what happened between messages and after them."""
    records = run.stages
    if not records:
        return ""
    names = metadata_stages.STAGES
    lines = [
        f"{run.label}: {len(records)} messages, ms per message",
        "| | " + " | ".join(names) + " | message | in tx | gap | relay |",
        "|---" * (len(names) + 5) + "|",
    ]
    gaps = _gaps(records)
    relay = [r["arrived"] - r["end"] for r in records]
    whole = [r["end"] - r["begin"] for r in records]
    in_tx = [r["end"] - r["tx_begin"] for r in records]
    for label, pick in (("median", statistics.median), ("mean", statistics.fmean)):
        cells = [_ms(pick([r["stages"][n] for r in records])) for n in names]
        cells += [_ms(pick(whole)), _ms(pick(in_tx))]
        cells += [_ms(pick(gaps)) if gaps else "-", _ms(pick(relay))]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    consumers = len({r["consumer"] for r in records})
    busy = sum(whole) / (run.seconds * consumers)
    extracting = sum(r["stages"]["extract"] for r in records) / run.seconds
    lines.append(
        f"\n{consumers} consumers; each spent {busy:.0%} of the run on a message (its read,"
        f" then its transaction); extraction busy {extracting:.2f} processes on average"
    )
    return "\n".join(lines)


def _gaps(records: list[dict[str, Any]]) -> list[float]:
    """Per consumer, from one message's commit to the next one's start."""
    gaps = []
    by_consumer: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_consumer.setdefault(record["consumer"], []).append(record)
    for mine in by_consumer.values():
        mine.sort(key=lambda r: r["begin"])
        gaps += [b["begin"] - a["end"] for a, b in itertools.pairwise(mine)]
    return gaps


def exif_table(comparison: ExifComparison) -> str:
    batched = statistics.median(comparison.batched) / comparison.files
    lines = [
        f"{comparison.files} corpus JPEG/HEIC files; ms per file",
        "| way | median | mean | total s | files failed |",
        "|---|---|---|---|---|",
    ]
    for way, label in (
        ("exiftool", "`exiftool -j -n FILE`, one process per file"),
        ("read_image", "`read_image` in-process (file read included; best of repeats)"),
        ("extract_image", "`extract_image` in-process (metadata + thumbnail + preview)"),
    ):
        times = comparison.per_file[way]
        lines.append(
            f"| {label} | {statistics.median(times) * 1000:.2f} "
            f"| {statistics.fmean(times) * 1000:.2f} | {sum(times):.2f} "
            f"| {comparison.failures[way]} |"
        )
        if way == "exiftool":
            lines.append(
                f"| `exiftool -j -n FILE…`, one call for all (median of {len(comparison.batched)}) "
                f"| - | {batched * 1000:.2f} | {statistics.median(comparison.batched):.2f} "
                f"| {comparison.failures['exiftool batched']} |"
            )
    return "\n".join(lines)


# --- the run ------------------------------------------------------------------------------------


async def run_services(args: argparse.Namespace, photos: Photos, watch: Watch) -> list[ServiceRun]:
    settings = CommonSettings()
    s3 = minio_client(settings)
    await asyncio.to_thread(photos.store, s3, settings.bucket_originals)
    runs = []
    try:
        for replicas in args.replicas:
            run = await watch.measure_async(
                f"service, {replicas} replica(s)",
                lambda: run_service(settings, photos, replicas, args, s3),  # noqa: B023
            )
            runs.append(run)
            print(
                f"{run.label}: {run.images} images in {run.seconds:.1f} s = {run.per_second:.2f}/s"
                + (f"; {len(run.wrong)} wrong results, first: {run.wrong[0]}" if run.wrong else ""),
                flush=True,
            )
            if run.stages:
                print(stages_table(run), flush=True)
    finally:
        await asyncio.to_thread(photos.unstore, s3, settings.bucket_originals)
    return runs


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m bench.metadata_throughput",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    root.add_argument("--images", type=int, default=200, help="12 MP JPEGs per measured run")
    root.add_argument(
        "--replicas", type=int, nargs="+", default=[1, 2], help="replica counts to run"
    )
    root.add_argument(
        "--warmup", type=int, default=16, help="events handled before the clock starts"
    )
    root.add_argument(
        "--workers",
        type=int,
        default=MetadataSettings().workers,
        help="the service's pool and consumers per replica, and the floor's processes"
        " (default: DARKROOM_METADATA_WORKERS)",
    )
    root.add_argument(
        "--stages", action="store_true", help="time each stage (bench.metadata_stages)"
    )
    root.add_argument(
        "--exif-repeats", type=int, default=5, help="read_image timings per file (best)"
    )
    root.add_argument("--exif-batches", type=int, default=3, help="batched exiftool calls (median)")
    root.add_argument("--skip-floor", action="store_true")
    root.add_argument("--skip-service", action="store_true")
    root.add_argument("--skip-exiftool", action="store_true")
    root.add_argument("--no-wait", action="store_true", help="measure even if another bench runs")
    return root


def main() -> None:
    args = parser().parse_args()
    watch = Watch(wait=not args.no_wait)
    watch.quiet()
    cores = psutil.cpu_count()
    print(
        f"{cores} CPUs; service pool DARKROOM_METADATA_WORKERS={MetadataSettings().workers}",
        flush=True,
    )
    folder = Path(tempfile.mkdtemp(prefix="darkroom-bench-metadata-"))
    floors: list[FloorRun] = []
    runs: list[ServiceRun] = []
    comparison: ExifComparison | None = None
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, folder, ignore_errors=True)
        stack.enter_context(watch)
        started = time.perf_counter()
        photos = Photos.make(args.images, folder)
        mean = statistics.fmean(photos.sizes) / MiB
        print(
            f"{args.images} files of {SIZE[0]}x{SIZE[1]}, {mean:.2f} MiB each, "
            f"made in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        if not args.skip_floor:
            for processes in sorted({1, args.workers}):
                name = f"floor, {processes} process(es)"
                floors.append(
                    watch.measure(name, lambda: run_floor(photos.paths, processes, warmup=2))  # noqa: B023
                )
                print(
                    f"floor, {processes} process(es): {floors[-1].per_second:.2f} images/s",
                    flush=True,
                )
        if not args.skip_service:
            runs = asyncio.run(run_services(args, photos, watch))
        if not args.skip_exiftool:
            if missing := exiftool_missing():
                print(missing, flush=True)
            else:
                comparison = watch.measure(
                    "exiftool",
                    lambda: compare_exiftool(corpus_files(), args.exif_batches, args.exif_repeats),
                )
    print()
    if floors:
        print(floor_table(floors) + "\n")
    if runs:
        print(service_table(runs, floors) + "\n")
        for run in runs:
            if run.stages:
                print(stages_table(run) + "\n")
    if comparison is not None:
        print(exif_table(comparison))
    for name, others in watch.shared.items():
        print(f"\nNOTE: {name} was measured while something else ran:\n  " + "\n  ".join(others))
    if not watch.shared:
        print("\nNothing else ran while these figures were measured.")


if __name__ == "__main__":
    main()
