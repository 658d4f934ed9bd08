"""Server CPU per GiB of request body: granian against uvicorn, on the same bare ASGI app.

    uv run --group bench python -m bench.asgi_servers [--rounds 3] [--gib 2] [--mib 4]
        [--connections 8]

The app (``bench.asgi_servers:app``) reads each request's body as it streams in, feeds it to
SHA-256, drops it, and answers 200 with the digest: what the ingest gateway's HTTP server does
for a file's bytes before our code, with no framework, database or S3 behind it. Each round
starts each server in turn (the order alternates from round to round) on a free port:

- uvicorn: ``--loop uvloop --http httptools --workers 1 --no-access-log --log-level warning``,
  as the gateway runs (HTTP parsed by httptools, socket reads by uvloop);
- granian: ``--interface asgi --loop uvloop --http 1 --workers 1 --runtime-threads 1
  --runtime-mode st --no-access-log --log-level warning`` (HTTP parsing and socket reads in
  Rust, on one runtime thread; the app on uvloop in one worker process).

Each server is sent ``--gib`` GiB as PUTs of ``--mib`` MiB over ``--connections`` keep-alive
connections, one thread each with ``http.client``, each sending a body of its own made
beforehand; every answer's digest is checked against that body's. The server's CPU time (user
+ system of its process tree: granian runs its worker as a child process) is counted over the
sending, and the wall time. It prints each round, then a table of CPU-s/GiB and MiB/s per
server, medians with their range. The machine's other load moves the MiB/s more than the CPU
seconds: compare the servers within one run.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

MiB = 1024 * 1024
GiB = 1024 * MiB
ROOT = Path(__file__).resolve().parents[1]
APP = "bench.asgi_servers:app"
SERVERS: dict[str, list[str]] = {
    "uvicorn": [
        *("-m", "uvicorn", APP, "--loop", "uvloop", "--http", "httptools", "--workers", "1"),
        *("--no-access-log", "--log-level", "warning"),
    ],
    "granian": [
        *("-m", "granian", APP, "--interface", "asgi", "--loop", "uvloop", "--http", "1"),
        *("--workers", "1", "--runtime-threads", "1", "--runtime-mode", "st"),
        *("--no-access-log", "--log-level", "warning"),
    ],
}
"""Each server's command after ``python``, without its port (both bind 127.0.0.1)."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


async def app(
    scope: Scope,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    """Hash each request's body as it arrives and answer with its SHA-256 and length."""
    if scope["type"] == "lifespan":
        while True:
            kind = (await receive())["type"]  # lifespan.startup, then lifespan.shutdown
            await send({"type": f"{kind}.complete"})
            if kind == "lifespan.shutdown":
                return
    digest = hashlib.sha256()
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body = message.get("body", b"")
        digest.update(body)
        size += len(body)
        more = message.get("more_body", False)
    answer = json.dumps({"sha256": digest.hexdigest(), "bytes": size}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(answer))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


@dataclass(frozen=True)
class Run:
    """One server's sending in one round."""

    cpu: float
    seconds: float
    size: int

    @property
    def cpu_per_gib(self) -> float:
        return self.cpu / (self.size / GiB)

    @property
    def mib_per_second(self) -> float:
        return self.size / MiB / self.seconds


def free_port() -> int:
    """As ``bench.stack.free_port``, not imported from there: the servers import this module."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def answer_of(connection: http.client.HTTPConnection, body: bytes) -> dict[str, Any]:
    """PUT ``body`` over ``connection`` and return the app's answer."""
    connection.request("PUT", "/", body=body)
    response = connection.getresponse()
    text = response.read()
    if response.status != 200:
        raise RuntimeError(f"answer {response.status}: {text[:200]!r}")
    answer: dict[str, Any] = json.loads(text)
    return answer


@contextmanager
def server(name: str, port: int, log: Path) -> Iterator[psutil.Process]:
    """The server ``name`` on ``port``, answering; stopped with SIGINT, as Ctrl-C would."""
    command = [sys.executable, *SERVERS[name], "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    tree: list[psutil.Process] = []
    try:
        _wait_ready(name, port, process, log)
        root = psutil.Process(process.pid)
        tree = root.children(recursive=True)
        yield root
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for child in tree:  # a worker its parent left behind
            with contextlib.suppress(psutil.Error):
                child.kill()


def _wait_ready(name: str, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited ({process.returncode}):\n{log.read_text()}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            answer_of(connection, b"")
            return
        except OSError:
            time.sleep(0.1)
        finally:
            connection.close()
    raise SystemExit(f"{name} did not answer within 30 s:\n{log.read_text()}")


def tree_cpu(process: psutil.Process) -> dict[int, float]:
    """User + system CPU seconds of a process and of each of its descendants, by pid."""
    return {
        member.pid: sum(member.cpu_times()[:2])
        for member in [process, *process.children(recursive=True)]
    }


def send(port: int, bodies: list[tuple[bytes, str]], requests: int) -> None:
    """``requests`` PUTs in all, one keep-alive connection and thread per (body, its digest)."""
    failures: list[BaseException] = []

    def sender(body: bytes, digest: str, count: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for _ in range(count):
                answer = answer_of(connection, body)
                if answer != {"sha256": digest, "bytes": len(body)}:
                    raise RuntimeError(f"answer {answer}, expected {digest} for {len(body)} bytes")
        except BaseException as error:
            failures.append(error)
        finally:
            connection.close()

    share, extra = divmod(requests, len(bodies))
    threads = [
        threading.Thread(target=sender, args=(body, digest, share + (number < extra)))
        for number, (body, digest) in enumerate(bodies)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def run(args: argparse.Namespace) -> dict[str, list[Run]]:
    size = args.mib * MiB
    requests = max(1, round(args.gib * GiB / size))
    made = (random.Random(number).randbytes(size) for number in range(args.connections))
    bodies = [(body, hashlib.sha256(body).hexdigest()) for body in made]
    runs: dict[str, list[Run]] = {name: [] for name in SERVERS}
    with tempfile.TemporaryDirectory(prefix="bench-asgi-servers-") as logs:
        for round_ in range(args.rounds):
            order = list(SERVERS) if round_ % 2 == 0 else list(reversed(SERVERS))
            for name in order:
                port = free_port()
                with server(name, port, Path(logs) / f"{name}.log") as process:
                    before = tree_cpu(process)
                    started = time.perf_counter()
                    send(port, bodies, requests)
                    seconds = time.perf_counter() - started
                    after = tree_cpu(process)
                cpu = sum(spent - before.get(pid, 0.0) for pid, spent in after.items())
                done = Run(cpu, seconds, requests * size)
                runs[name].append(done)
                print(
                    f"round {round_ + 1}, {name}: {done.cpu_per_gib:.2f} CPU-s/GiB, "
                    f"{done.mib_per_second:.0f} MiB/s ({cpu:.2f} CPU-s in {seconds:.1f} s)",
                    flush=True,
                )
    return runs


def _median_range(values: list[float], digits: int) -> str:
    return (
        f"{statistics.median(values):.{digits}f} "
        f"({min(values):.{digits}f}\u2013{max(values):.{digits}f})"
    )


def summary(args: argparse.Namespace, runs: dict[str, list[Run]]) -> str:
    lines = [
        f"{args.rounds} rounds of {args.gib:g} GiB a server, PUTs of {args.mib} MiB over "
        f"{args.connections} connections; the server's CPU (its process tree) over the sending:",
        "",
        "| server | CPU-s/GiB, median (range) | per round | MiB/s, median (range) | per round |",
        "|---|---|---|---|---|",
    ]
    for name, server_runs in runs.items():
        cpu = [r.cpu_per_gib for r in server_runs]
        speed = [r.mib_per_second for r in server_runs]
        lines.append(
            f"| {name} | {_median_range(cpu, 2)} | {', '.join(f'{c:.2f}' for c in cpu)} "
            f"| {_median_range(speed, 0)} | {', '.join(f'{s:.0f}' for s in speed)} |"
        )
    medians = {name: statistics.median(r.cpu_per_gib for r in rs) for name, rs in runs.items()}
    lines += [
        "",
        f"granian against uvicorn, medians: {medians['granian'] - medians['uvicorn']:+.2f} "
        f"CPU-s/GiB (x{medians['granian'] / medians['uvicorn']:.2f})",
    ]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m bench.asgi_servers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    root.add_argument("--rounds", type=int, default=3, help="rounds, each server once a round")
    root.add_argument("--gib", type=float, default=2.0, help="GiB sent to each server a round")
    root.add_argument("--mib", type=int, default=4, help="size of each PUT's body in MiB")
    root.add_argument("--connections", type=int, default=8, help="keep-alive connections at once")
    return root


def main() -> None:
    args = parser().parse_args()
    print(summary(args, run(args)))


if __name__ == "__main__":
    main()
