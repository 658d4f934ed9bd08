"""Upload throughput through the ingest gateway against a direct put to the same S3 server.

    uv run python -m bench.ingest_throughput [--rounds 5] [--files 100] [--mib 4] [--at-once 8]
        [--tus-rounds 4] [--tus-gib 1] [--load-tus-gib 2] [--skip-batch] [--skip-tus]
        [--skip-load]

The gateway runs as its own process (``python -m darkroom.ingest``, with ``MALLOC_ARENA_MAX=2``
as deployed) over a database made for the run and dropped after it; its platform key comes from
``python -m darkroom.ingest.admin``. The run has three parts.

**Batch.** Each round sends one batch of ``--files`` JPEGs of ``--mib`` MiB (a real corpus
photo with EXIF, padded to size, each file ending with a trailer of its own) to a ``capture``
project three ways, in an order that rotates from round to round:

- gateway: registered as one batch (POST …/files), then PUT …/content, ``--at-once`` at a time;
- stream:  the same bytes through ``Blobs.put_stream`` in this process, in 64 KiB chunks: the
           gateway's way to S3 without its HTTP, database and policy work, to tell stages apart;
- direct:  the same bytes with the minio SDK's ``put_object``, ``--at-once`` threads.

Over plain HTTP the SDK signs each body's SHA-256 (and s3proxy checks it); ``Blobs`` sends its
bodies unsigned, as the SDK does over HTTPS, so the direct ways cost s3proxy more CPU.

It prints each round, the median of gateway/direct (the issue's target: at least 0.8), and the
gateway's peak RSS, sampled every 10 ms while each batch runs.

**Tus.** Each of ``--tus-rounds`` rounds sends one file of ``--tus-gib`` GiB (an MP4 head, then
filler made as it is sent: see ``bench.tus_load``) two ways, alternating which goes first:

- tus:    added to a ``library`` session, ``POST /v1/tus``, then one ``PATCH`` streaming the
          whole file (``--tus-chunk-mib N``: PATCHes of N MiB instead);
- direct: the same bytes with ``put_object``, length known, the SDK's part size (5 MiB) and
          ``--direct-parallel`` parts in flight (3, the SDK's default).

**Load.** A ``--load-tus-gib`` GiB tus upload and one batch through the gateway at once, both
started together; the gateway's peak RSS meanwhile is the issue's memory target (under 150 MB).

Before each timed way the page cache is written out (``sync``), so none pays for the disk
writes of the one before. The CPU seconds per GiB of each way are counted for the gateway (and
its event loop's thread alone), this process, s3proxy, PostgreSQL and the rest of the machine.

``--stages`` runs the gateway as ``python -m bench.tus_stages``, which times each stage of its
tus PATCHes; ``--profile FILE`` runs it under cProfile (its event-loop thread only). Either
prints its findings when the gateway stops. ``--server granian`` serves the gateway with
granian instead of uvicorn (``python -m bench.granian_gateway``; run with ``uv run --group
bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import pstats
import random
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
from cryptography.fernet import Fernet
from minio import Minio

from darkroom.common.blobs import Blobs
from darkroom.common.settings import CommonSettings
from darkroom.ingest.api import object_key
from darkroom.ingest.content import HEAD_BYTES, has_exif

from . import tus_stages
from .stack import free_port, fresh_database
from .tus_load import BigFile, TimedMinio, TusTiming, tus_upload
from .tus_load import put_direct as put_big_direct

MiB = 1024 * 1024
CHUNK = 64 * 1024
PHOTO = Path(__file__).resolve().parents[2] / "shared/corpus/exif-samples/jpg/Canon_40D.jpg"
TRAILER = "{round:04d}-{number:06d}"
WAYS = ("gateway", "stream", "direct")
"""The ways the batch is sent to S3, each timed alone."""
TUS_WAYS = ("tus", "direct")
"""The ways one large file is sent to S3, each timed alone."""
GiB = 1024 * MiB
SERVICE_ENV = {"MALLOC_ARENA_MAX": "2"}
"""As deploy/local/supervise.py and the Dockerfiles run the services (the caller's wins)."""

Load = Callable[[], Awaitable[object]]
"""One upload workload sent to the gateway: the batch here; a tus upload is another one."""


@dataclass(frozen=True)
class Batch:
    """``files`` distinct JPEGs of ``size`` bytes, made when sent (memory stays small)."""

    files: int
    size: int
    at_once: int
    padded: bytes = field(repr=False)

    @classmethod
    def of(cls, files: int, size: int, at_once: int) -> Batch:
        photo = PHOTO.read_bytes()
        assert has_exif(photo[:HEAD_BYTES]), f"{PHOTO} has no EXIF in its head"
        padding = size - len(photo) - len(TRAILER.format(round=0, number=0))
        return cls(files, size, at_once, photo + random.Random(0).randbytes(padding))

    def file(self, round_: int, number: int) -> bytes:
        return self.padded + TRAILER.format(round=round_, number=number).encode()

    @property
    def total(self) -> int:
        return self.files * self.size


@dataclass
class Round:
    seconds: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)
    """CPU seconds each process spent while one way ran: way -> process -> seconds."""
    register_seconds: float = 0.0
    peak_rss: int = 0


@dataclass
class TusRound:
    size: int
    seconds: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)
    timing: TusTiming = field(default_factory=TusTiming)
    direct_join: float = 0.0
    """Seconds the S3 server took to join the direct put's parts (the tus path pays it too)."""
    peak_rss: int = 0


@dataclass
class LoadResult:
    """A tus upload and a batch at once: the gateway's peak RSS and each load's seconds."""

    tus_size: int
    peak_rss: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


# --- the gateway, as its own process -------------------------------------------------------


@dataclass
class Gateway:
    url: str
    key: str
    process: subprocess.Popen[bytes]


@contextmanager
def gateway_process(
    database_url: str,
    log: Path,
    profile: Path | None,
    stages: Path | None = None,
    server: str = "uvicorn",
) -> Iterator[Gateway]:
    """``python -m darkroom.ingest`` on a free port; stopped with SIGINT, as Ctrl-C would.

    With ``stages``, the gateway runs as ``python -m bench.tus_stages`` and writes there the
    time each tus PATCH spent in each stage; with ``server="granian"``, as
    ``python -m bench.granian_gateway``.
    """
    port = free_port()
    env = {
        **SERVICE_ENV,
        "DARKROOM_SEALING_KEYS": Fernet.generate_key().decode(),  # unless one is set
        **os.environ,
        "DARKROOM_INGEST_DATABASE_URL": database_url,
        "DARKROOM_INGEST_HTTP_PORT": str(port),
    }
    if stages:
        env[tus_stages.OUT_VARIABLE] = str(stages)
    admin = [sys.executable, "-m", "darkroom.ingest.admin", "platform-key", "--label", "bench"]
    made = subprocess.run(admin, env=env, check=True, capture_output=True)
    key = json.loads(made.stdout)["key"]
    profiled = ["-m", "cProfile", "-o", str(profile)] if profile else []
    module = (
        "bench.tus_stages"
        if stages
        else "bench.granian_gateway"
        if server == "granian"
        else "darkroom.ingest"
    )
    command = [sys.executable, *profiled, "-m", module]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, process, log)
        yield Gateway(url, key, process)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the gateway exited ({process.returncode}); see {log}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the gateway was not ready within 60 s; see {log}")


class PeakRss:
    """The highest resident set size of a process, sampled every 10 ms on a thread."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.peak = 0

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            self._stop.wait(0.01)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def cpu_seconds(processes: dict[str, psutil.Process], into: dict[str, float]) -> Iterator[None]:
    """CPU time (user + system) each process spends inside the block.

    ``postgres`` counts the server's processes (its backends included); ``other`` is the rest
    of the machine's busy CPU meanwhile (Kafka, the kernel's writeback, anything else running):
    more than a little of it means the figures were shared. ``gateway loop`` is the part of the
    gateway's that its event loop's thread spent (the rest is the S3 SDK's threads).
    """

    def used(process: psutil.Process) -> float:
        group = [process, *process.children(recursive=True)] if process.name() == "postgres" else []
        total = 0.0
        for member in group or [process]:
            with contextlib.suppress(psutil.Error):  # a backend that just ended
                total += sum(member.cpu_times()[:2])
        return total

    def now() -> dict[str, float]:
        spent = {name: used(p) for name, p in processes.items()}
        machine = psutil.cpu_times()
        busy = machine.user + machine.nice + machine.system + machine.irq + machine.softirq
        loop = {}
        if "gateway" in processes:
            gateway = processes["gateway"]
            main = [t for t in gateway.threads() if t.id == gateway.pid]
            loop["gateway loop"] = sum(t.user_time + t.system_time for t in main)
        return spent | loop | {"other": busy - sum(spent.values())}

    before = now()
    yield
    into |= {name: spent - before[name] for name, spent in now().items()}


def stack_process(name: str) -> psutil.Process | None:
    """A process of the local stack (``s3proxy``, ``postgres``) to count its CPU, if it runs."""
    pid_file = Path(__file__).resolve().parents[1] / f"var/run/{name}.pid"
    try:
        return psutil.Process(int(pid_file.read_text()))
    except (OSError, ValueError, psutil.Error):
        return None


async def under_load(gateway: Gateway, *loads: Load) -> int:
    """Run ``loads`` at once and return the gateway's peak RSS meanwhile.

    The issue's memory target is for a 100-file batch and a 2 GB tus upload at once: pass both.
    """
    with PeakRss(gateway.process.pid) as rss:
        await asyncio.gather(*(load() for load in loads))
    return rss.peak


# --- the three ways to S3 ------------------------------------------------------------------


async def new_project(
    http: httpx.AsyncClient, platform_key: str, policy: str = "capture"
) -> tuple[str, str]:
    """A project (``capture``: EXIF checked on every file) and an uploader key for it."""
    auth = {"Authorization": f"Bearer {platform_key}"}
    made = await http.post(
        "/v1/projects", json={"name": f"bench {policy}", "policy": policy}, headers=auth
    )
    made.raise_for_status()
    project = str(made.json()["id"])
    key = await http.post(f"/v1/projects/{project}/keys", json={"role": "uploader"}, headers=auth)
    key.raise_for_status()
    return project, str(key.json()["key"])


async def through_gateway(
    http: httpx.AsyncClient, project: str, batch: Batch, round_: int, result: Round, keys: list[str]
) -> None:
    """One session, the batch registered in one request, then each file PUT to the gateway."""
    made = await http.post(
        f"/v1/projects/{project}/sessions",
        json={"source": "bench", "view_name": "throughput", "capture_date": "2024-05-17"},
    )
    made.raise_for_status()
    session = made.json()["id"]
    planned = [{"path": f"batch/{n:06d}.jpg", "size": batch.size} for n in range(batch.files)]
    start = time.perf_counter()
    added = await http.post(f"/v1/sessions/{session}/files", json={"files": planned})
    added.raise_for_status()
    result.register_seconds = time.perf_counter() - start
    slots = asyncio.Semaphore(batch.at_once)

    async def put(number: int, file_id: str) -> None:
        async with slots:
            url = f"/v1/sessions/{session}/files/{file_id}/content"
            done = await http.put(url, content=batch.file(round_, number))
        if done.status_code != 200 or done.json()["status"] != "uploaded":
            raise SystemExit(f"the gateway refused a file: {done.status_code} {done.text}")
        keys.append(object_key(uuid.UUID(project), uuid.UUID(file_id), attempt=1))

    await asyncio.gather(*(put(n, f["id"]) for n, f in enumerate(added.json()["files"])))
    result.seconds["gateway"] = time.perf_counter() - start


async def through_put_stream(
    blobs: Blobs, bucket: str, batch: Batch, round_: int, result: Round, keys: list[str]
) -> None:
    slots = asyncio.Semaphore(batch.at_once)

    async def put(number: int) -> None:
        async with slots:
            data = batch.file(round_, number)
            key = f"bench/stream/{uuid.uuid4()}"
            await blobs.put_stream(bucket, key, _chunks(data), size=len(data))
        keys.append(key)

    start = time.perf_counter()
    await asyncio.gather(*(put(n) for n in range(batch.files)))
    result.seconds["stream"] = time.perf_counter() - start


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), CHUNK):
        yield data[offset : offset + CHUNK]


def put_direct(
    s3: Minio, bucket: str, batch: Batch, round_: int, result: Round, keys: list[str]
) -> None:
    def put(number: int) -> None:
        data = batch.file(round_, number)
        key = f"bench/direct/{uuid.uuid4()}"
        s3.put_object(bucket, key, io.BytesIO(data), len(data))
        keys.append(key)

    start = time.perf_counter()
    with ThreadPoolExecutor(batch.at_once) as pool:
        list(pool.map(put, range(batch.files)))
    result.seconds["direct"] = time.perf_counter() - start


def minio_client(settings: CommonSettings) -> TimedMinio:
    endpoint = urlsplit(settings.s3_endpoint)
    return TimedMinio(
        endpoint.netloc,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key.get_secret_value(),
        secure=endpoint.scheme == "https",
        region=settings.s3_region,
    )


def remove(s3: Minio, bucket: str, keys: list[str]) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: s3.remove_object(bucket, key), keys))


# --- the run -------------------------------------------------------------------------------


@dataclass
class Bench:
    batch: Batch
    gateway: Gateway
    http: httpx.AsyncClient
    project: str
    tus_http: httpx.AsyncClient
    library: str
    blobs: Blobs
    s3: TimedMinio
    bucket: str
    processes: dict[str, psutil.Process]

    async def round(self, number: int) -> Round:
        """The batch sent the three ways, starting with a different one each round."""
        result, keys = Round(), list[str]()

        async def gateway() -> None:
            result.peak_rss = await under_load(
                self.gateway,
                lambda: through_gateway(self.http, self.project, self.batch, number, result, keys),
            )

        async def stream() -> None:
            await through_put_stream(self.blobs, self.bucket, self.batch, number, result, keys)

        async def direct() -> None:
            await asyncio.to_thread(
                put_direct, self.s3, self.bucket, self.batch, number, result, keys
            )

        ways = [gateway, stream, direct]
        assert tuple(way.__name__ for way in ways) == WAYS
        turn = number % len(ways)
        try:
            for way in ways[turn:] + ways[:turn]:
                await settle()
                with cpu_seconds(self.processes, result.cpu.setdefault(way.__name__, {})):
                    await way()
        finally:
            await asyncio.to_thread(remove, self.s3, self.bucket, keys)
        return result

    async def tus_round(self, number: int, size: int, chunk: int, parallel: int) -> TusRound:
        """One large file over tus and the same bytes put directly, alternating the order."""
        result, keys, big = TusRound(size), list[str](), BigFile(size, seed=1000 + number)

        async def tus() -> None:
            start = time.perf_counter()
            with PeakRss(self.gateway.process.pid) as rss:
                key, result.timing = await tus_upload(self.tus_http, self.library, big, chunk=chunk)
            result.seconds["tus"] = time.perf_counter() - start
            result.peak_rss = rss.peak
            keys.append(key)

        async def direct() -> None:
            key = f"bench/direct/{uuid.uuid4()}"
            keys.append(key)
            start = time.perf_counter()
            result.direct_join = await asyncio.to_thread(
                put_big_direct, self.s3, self.bucket, key, big, parallel=parallel
            )
            result.seconds["direct"] = time.perf_counter() - start

        ways = [tus, direct]
        assert tuple(way.__name__ for way in ways) == TUS_WAYS
        try:
            for way in ways if number % 2 == 0 else ways[::-1]:
                await settle()
                with cpu_seconds(self.processes, result.cpu.setdefault(way.__name__, {})):
                    await way()
                await asyncio.to_thread(remove, self.s3, self.bucket, keys)
                keys.clear()
        finally:
            await asyncio.to_thread(remove, self.s3, self.bucket, keys)
        return result

    async def load(self, size: int, chunk: int) -> LoadResult:
        """A ``size`` tus upload and one batch through the gateway, started together."""
        result, keys, scratch = LoadResult(size), list[str](), Round()

        async def timed(name: str, load: Load) -> None:
            start = time.perf_counter()
            await load()
            result.seconds[name] = time.perf_counter() - start

        async def tus() -> None:
            key, _ = await tus_upload(
                self.tus_http, self.library, BigFile(size, seed=9000), chunk=chunk
            )
            keys.append(key)

        def batch() -> Awaitable[None]:
            return through_gateway(self.http, self.project, self.batch, 9000, scratch, keys)

        await settle()
        try:
            result.peak_rss = await under_load(
                self.gateway, lambda: timed("tus", tus), lambda: timed("batch", batch)
            )
        finally:
            await asyncio.to_thread(remove, self.s3, self.bucket, keys)
        return result


async def settle() -> None:
    """Write the page cache's dirty pages to disk, so no way pays for the one before it.

    The S3 server here (s3proxy, filesystem backend) writes each object to disk, a multipart
    one twice (its parts, then the object they are joined into): a 1 GiB file leaves 2 GiB of
    writeback behind, which otherwise lands on whatever is timed next.
    """
    await asyncio.to_thread(os.sync)


@asynccontextmanager
async def started(
    batch: Batch, profile: Path | None, stages: Path | None, server: str
) -> AsyncIterator[Bench]:
    """A fresh database, the gateway over it, a capture and a library project with keys."""
    settings = CommonSettings()
    log = Path(tempfile.gettempdir()) / "darkroom-bench-gateway.log"
    async with fresh_database("ingest") as database_url:
        with gateway_process(database_url, log, profile, stages, server) as gateway:
            limits = httpx.Limits(max_connections=batch.at_once)
            async with (
                httpx.AsyncClient(base_url=gateway.url, timeout=300, limits=limits) as http,
                httpx.AsyncClient(base_url=gateway.url, timeout=300) as tus_http,
            ):
                project, key = await new_project(http, gateway.key)
                http.headers["Authorization"] = f"Bearer {key}"
                library, library_key = await new_project(tus_http, gateway.key, "library")
                tus_http.headers["Authorization"] = f"Bearer {library_key}"
                processes = {
                    "gateway": psutil.Process(gateway.process.pid),
                    "bench": psutil.Process(),
                }
                for name, component in (("s3", "s3proxy"), ("postgres", "postgres")):
                    if (process := stack_process(component)) is not None:
                        processes[name] = process
                yield Bench(
                    batch,
                    gateway,
                    http,
                    project,
                    tus_http,
                    library,
                    Blobs(settings),
                    minio_client(settings),
                    settings.bucket_originals,
                    processes,
                )


@dataclass
class Results:
    rounds: list[Round] = field(default_factory=list)
    tus_rounds: list[TusRound] = field(default_factory=list)
    load: LoadResult | None = None


async def run(args: argparse.Namespace, batch: Batch) -> Results:
    results = Results()
    chunk = args.tus_chunk_mib * MiB
    stages = Path(tempfile.gettempdir()) / "darkroom-bench-stages.json" if args.stages else None
    if stages:
        stages.unlink(missing_ok=True)
    async with started(batch, args.profile, stages, args.server) as bench:
        idle = bench.processes["gateway"].memory_info().rss
        print(f"gateway pid {bench.gateway.process.pid}, idle RSS {idle / MiB:.0f} MiB")
        if not args.skip_batch:
            print(_header(batch), flush=True)
            for number in range(-args.warmup, args.rounds):
                result = await bench.round(number)
                if number >= 0:
                    results.rounds.append(result)
                    print(_row(number + 1, batch, result), flush=True)
        if not args.skip_tus:
            size = round(args.tus_gib * GiB)
            print(_tus_header(size, chunk, args.direct_parallel), flush=True)
            for number in range(args.tus_rounds):
                tus_round = await bench.tus_round(number, size, chunk, args.direct_parallel)
                results.tus_rounds.append(tus_round)
                print(_tus_row(number + 1, tus_round), flush=True)
        if not args.skip_load:
            size = round(args.load_tus_gib * GiB)
            print(
                f"load: a {size / GiB:g} GiB tus upload and a batch of {batch.files} x "
                f"{batch.size / MiB:g} MiB at once",
                flush=True,
            )
            results.load = await bench.load(size, chunk)
            print(_load_row(batch, results.load), flush=True)
        idle = bench.processes["gateway"].memory_info().rss
        print(f"gateway RSS after the run {idle / MiB:.0f} MiB")
    if args.profile:
        pstats.Stats(str(args.profile)).sort_stats("tottime").print_stats(30)
    if stages:
        print(_stages_table(tus_stages.records(stages)))
    return results


def _mib_per_second(batch: Batch, seconds: float) -> float:
    return batch.total / MiB / seconds


def _header(batch: Batch) -> str:
    return (
        f"{batch.files} x {batch.size / MiB:g} MiB, {batch.at_once} at a time; MiB/s\n"
        "| round | gateway | stream | direct | gateway/direct | register batch | peak RSS |\n"
        "|---|---|---|---|---|---|---|"
    )


def _row(number: int, batch: Batch, result: Round) -> str:
    speed = {way: _mib_per_second(batch, s) for way, s in result.seconds.items()}
    return (
        f"| {number} | {speed['gateway']:.0f} | {speed['stream']:.0f} | {speed['direct']:.0f} "
        f"| {speed['gateway'] / speed['direct']:.2f} | {result.register_seconds * 1000:.0f} ms "
        f"| {result.peak_rss / MiB:.0f} MiB |"
    )


def _tus_header(size: int, chunk: int, parallel: int) -> str:
    patches = f"PATCHes of {chunk / MiB:g} MiB" if chunk else "one PATCH"
    return (
        f"one {size / GiB:g} GiB file: tus ({patches}) vs put_object "
        f"({parallel} parts in flight); MiB/s\n"
        "| round | tus | direct | tus/direct | tus: register, create, PATCH "
        "| direct: S3 joins parts | peak RSS |\n"
        "|---|---|---|---|---|---|---|"
    )


def _tus_row(number: int, result: TusRound) -> str:
    speed = {way: result.size / MiB / s for way, s in result.seconds.items()}
    timing = result.timing
    return (
        f"| {number} | {speed['tus']:.0f} | {speed['direct']:.0f} "
        f"| {speed['tus'] / speed['direct']:.2f} "
        f"| {timing.register * 1000:.0f} ms, {timing.create * 1000:.0f} ms, "
        f"{timing.patches:.1f} s | {result.direct_join:.1f} s | {result.peak_rss / MiB:.0f} MiB |"
    )


def _load_row(batch: Batch, result: LoadResult) -> str:
    tus, batch_seconds = result.seconds["tus"], result.seconds["batch"]
    return (
        f"tus {result.tus_size / MiB / tus:.0f} MiB/s ({tus:.1f} s), batch "
        f"{_mib_per_second(batch, batch_seconds):.0f} MiB/s ({batch_seconds:.1f} s); "
        f"gateway peak RSS {result.peak_rss / MiB:.0f} MiB ({result.peak_rss / 1e6:.0f} MB)"
    )


def _stages_table(records: list[dict[str, float]]) -> str:
    """Each tus PATCH's seconds by stage, as ``bench.tus_stages`` timed them in the gateway."""
    names = ("span", *tus_stages.STAGES)
    lines = [
        "tus PATCHes in the gateway, seconds (sdk is part of part_wait):",
        "| MiB | chunks | parts | " + " | ".join(names) + " |",
        "|---" * (3 + len(names)) + "|",
    ]
    for record in records:
        lines.append(
            f"| {record['bytes'] / MiB:.0f} | {record['chunks']:.0f} | {record['parts']:.0f} | "
            + " | ".join(f"{record[name]:.2f}" for name in names)
            + " |"
        )
    return "\n".join(lines)


def summary(batch: Batch, results: Results) -> str:
    lines = []
    if rounds := results.rounds:
        ratios = [r.seconds["direct"] / r.seconds["gateway"] for r in rounds]
        median = {
            way: statistics.median(_mib_per_second(batch, r.seconds[way]) for r in rounds)
            for way in WAYS
        }
        lines += [
            f"batch median MiB/s: gateway {median['gateway']:.0f}, stream {median['stream']:.0f}, "
            f"direct {median['direct']:.0f}",
            f"batch gateway/direct: median {statistics.median(ratios):.2f} "
            f"(min {min(ratios):.2f}, max {max(ratios):.2f}; target >= 0.80)",
            f"gateway peak RSS during a batch: {max(r.peak_rss for r in rounds) / MiB:.0f} MiB",
            "batch CPU seconds per GiB sent, median: "
            + _cpu_per_gib(WAYS, [(r.cpu, batch.total) for r in rounds]),
        ]
    if tus_rounds := results.tus_rounds:
        ratios = [r.seconds["direct"] / r.seconds["tus"] for r in tus_rounds]
        median = {
            way: statistics.median(r.size / MiB / r.seconds[way] for r in tus_rounds)
            for way in TUS_WAYS
        }
        lines += [
            f"tus median MiB/s: tus {median['tus']:.0f}, direct {median['direct']:.0f}",
            f"tus/direct: median {statistics.median(ratios):.2f} "
            f"(min {min(ratios):.2f}, max {max(ratios):.2f}; target >= 0.80)",
            f"gateway peak RSS during a tus upload: "
            f"{max(r.peak_rss for r in tus_rounds) / MiB:.0f} MiB",
            "tus CPU seconds per GiB sent, median: "
            + _cpu_per_gib(TUS_WAYS, [(r.cpu, r.size) for r in tus_rounds]),
        ]
    if (load := results.load) is not None:
        lines.append(
            f"gateway peak RSS, {load.tus_size / GiB:g} GiB tus upload and a batch at once: "
            f"{load.peak_rss / MiB:.0f} MiB = {load.peak_rss / 1e6:.0f} MB (target < 150 MB)"
        )
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    lines.append(f"bench process peak RSS: {own / MiB:.0f} MiB")
    return "\n".join(lines)


def _cpu_per_gib(ways: tuple[str, ...], runs: list[tuple[dict[str, dict[str, float]], int]]) -> str:
    parts = []
    for way in ways:
        spent = {
            name: statistics.median(cpu[way][name] / (size / GiB) for cpu, size in runs)
            for name in runs[0][0][way]
        }
        shown = ", ".join(f"{name} {s:.1f}" for name, s in spent.items())
        parts.append(f"{way} ({shown})")
    return "; ".join(parts)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m bench.ingest_throughput",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    root.add_argument("--rounds", type=int, default=5, help="measured batch rounds")
    root.add_argument("--warmup", type=int, default=1, help="batch rounds run first, not counted")
    root.add_argument("--files", type=int, default=100, help="files in the batch")
    root.add_argument("--mib", type=int, default=4, help="size of each file in MiB")
    root.add_argument("--at-once", type=int, default=8, help="uploads in flight at once")
    root.add_argument("--tus-rounds", type=int, default=4, help="rounds of the large file")
    root.add_argument("--tus-gib", type=float, default=1.0, help="size of the large file, GiB")
    root.add_argument(
        "--tus-chunk-mib", type=int, default=0, help="PATCH size in MiB (0: one PATCH)"
    )
    root.add_argument(
        "--direct-parallel", type=int, default=3, help="parts in flight of the direct put"
    )
    root.add_argument(
        "--load-tus-gib", type=float, default=2.0, help="tus upload beside the batch, GiB"
    )
    root.add_argument("--skip-batch", action="store_true", help="no batch rounds")
    root.add_argument("--skip-tus", action="store_true", help="no tus vs direct rounds")
    root.add_argument("--skip-load", action="store_true", help="no tus upload and batch at once")
    root.add_argument("--profile", type=Path, help="run the gateway under cProfile, to this file")
    root.add_argument(
        "--server",
        choices=("uvicorn", "granian"),
        default="uvicorn",
        help="the gateway's HTTP server (granian: `uv run --group bench`, bench.granian_gateway)",
    )
    root.add_argument(
        "--stages",
        action="store_true",
        help="time each stage of the gateway's tus PATCHes (bench.tus_stages)",
    )
    return root


def main() -> None:
    args = parser().parse_args()
    batch = Batch.of(args.files, args.mib * MiB, args.at_once)
    results = asyncio.run(run(args, batch))
    print(summary(batch, results))


if __name__ == "__main__":
    main()
