"""Runs the five Darkroom services on this machine as compose would (standard library only).

Each service is its own process (``python -m darkroom.<service>`` in this virtualenv), started
once Kafka, PostgreSQL and S3 answer, logged to var/log/<service>.log and, when it dies,
restarted after a capped backoff (compose's ``restart: unless-stopped``). SIGTERM or Ctrl-C
stops them all (SIGTERM, up to 30 s, then SIGKILL). Run by ``deploy/local/stack up``; what it
says goes to the terminal and to var/log/supervise.log.

    python deploy/local/supervise.py [--only ingest,metadata] [--replicas 2]

With ``--replicas N`` each service runs N processes that share its Kafka consumer group, as
``docker compose up --scale`` would: replica k is named ``<service>-k`` (log, pid file) and
listens on the service's port + 10 * (k - 1).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parents[2]
DEV_ENV = ROOT / "var" / "dev.env"
SEALING_KEY = ROOT / "var" / "sealing.key"
LOGS = ROOT / "var" / "log"
RUN = ROOT / "var" / "run"
PID_FILE = RUN / "supervise.pid"

# Each service and the default port of its HTTP server (/healthz, /readyz; the gateway's API).
SERVICES = {"ingest": 8000, "metadata": 8001, "dedup": 8002, "tagging": 8003, "notify": 8004}
# The services that hold webhook secrets (their settings are SealingSettings): only they are
# given the sealing key, as in compose.yaml and deploy/k8s.
SEALING = {"ingest", "notify"}
INFRASTRUCTURE = {"Kafka": 9092, "PostgreSQL": 5432, "S3": 9000}
INFRASTRUCTURE_TIMEOUT = 120.0
FIRST_BACKOFF, MAX_BACKOFF = 1.0, 30.0
STEADY_AFTER = 60.0  # a service that ran this long is restarted at the first backoff again
STOP_GRACE = 30.0
NAG_EVERY = 60.0
TICK = 0.5
# As in the services' Dockerfiles: glibc's per-thread malloc arenas (S3 calls run in threads)
# otherwise hold freed memory; two arenas took the gateway's peak from 160 to 144 MiB under a
# 100-file batch (bench/RESULTS.md).
SERVICE_ENV = {"PYTHONUNBUFFERED": "1", "MALLOC_ARENA_MAX": "2"}


def say(message: str) -> None:
    """One line to the terminal and to var/log/supervise.log."""
    print(f"{time.strftime('%H:%M:%S')} supervise: {message}", flush=True)
    with (LOGS / "supervise.log").open("a", encoding="utf-8") as log:
        log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}\n")


def port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def is_ready(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/readyz")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


REPLICA_PORT_STEP = 10


@dataclass
class Service:
    module: str  # darkroom.<module>
    base_port: int
    replica: int = 1
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float = 0.0
    backoff: float = FIRST_BACKOFF
    ready: bool = False

    @property
    def name(self) -> str:
        return self.module if self.replica == 1 else f"{self.module}-{self.replica}"

    @property
    def port(self) -> int:
        return self.base_port + REPLICA_PORT_STEP * (self.replica - 1)

    @property
    def log(self) -> Path:
        return LOGS / f"{self.name}.log"

    def start(self) -> None:
        with self.log.open("ab") as log:
            log.write(f"\n==== {time.strftime('%FT%TZ', time.gmtime())} starting\n".encode())
            log.flush()
            # A session of its own: Ctrl-C reaches the supervisor only, which stops each
            # service once, with SIGTERM.
            env = {
                **SERVICE_ENV,
                **os.environ,
                f"DARKROOM_{self.module.upper()}_HTTP_PORT": str(self.port),
            }
            if self.module not in SEALING:
                env.pop("DARKROOM_SEALING_KEYS", None)
            self.process = subprocess.Popen(  # noqa: S603 (a fixed command)
                [sys.executable, "-m", f"darkroom.{self.module}"],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        (RUN / f"{self.name}.pid").write_text(f"{self.process.pid}\n")
        self.started_at = time.monotonic()
        self.ready = False

    def watch(self, now: float) -> None:
        """One look at the service: restarts it when due, notices its exit or its readiness."""
        if self.process is None:
            if now >= self.restart_at:
                self.start()
            return
        code = self.process.poll()
        if code is None:
            if not self.ready and is_ready(self.port):
                self.ready = True
                say(f"{self.name} is ready on http://127.0.0.1:{self.port}")
            return
        if now - self.started_at >= STEADY_AFTER:
            self.backoff = FIRST_BACKOFF
        log = self.log.relative_to(ROOT)
        say(f"{self.name} exited with code {code}; restarting in {self.backoff:g}s (see {log})")
        self.process, self.ready = None, False
        self.restart_at = now + self.backoff
        self.backoff = min(self.backoff * 2, MAX_BACKOFF)

    def signal(self, signum: signal.Signals) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def stopped(self, deadline: float) -> None:
        """Waits for the process until the deadline, then kills it."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"{self.name} did not stop within {STOP_GRACE:g}s; killing it")
            self.signal(signal.SIGKILL)
            self.process.wait()
        (RUN / f"{self.name}.pid").unlink(missing_ok=True)


class Stop:
    """Set by SIGTERM or SIGINT; the main loop notices within one tick."""

    requested = False

    @classmethod
    def handle(cls, signum: int, frame: FrameType | None) -> None:
        cls.requested = True


def wait_for_infrastructure() -> bool:
    deadline = time.monotonic() + INFRASTRUCTURE_TIMEOUT
    missing = dict(INFRASTRUCTURE)
    told = False
    while not Stop.requested:
        missing = {name: port for name, port in missing.items() if not port_answers(port)}
        if not missing:
            return True
        if time.monotonic() > deadline:
            names = ", ".join(f"{name} (127.0.0.1:{port})" for name, port in missing.items())
            say(f"gave up waiting for {names}; start them with deploy/local/stack start")
            return False
        if not told:
            say(f"waiting for {', '.join(missing)}")
            told = True
        time.sleep(TICK)
    return False


def supervise(services: list[Service]) -> None:
    for service in services:
        service.start()
    announced = False
    nag_at = time.monotonic() + NAG_EVERY
    while not Stop.requested:
        now = time.monotonic()
        for service in services:
            service.watch(now)
        if not announced and all(service.ready for service in services):
            announced = True
            announce(services)
        elif not announced and now >= nag_at:
            waiting = [service for service in services if not service.ready]
            logs = ", ".join(str(service.log.relative_to(ROOT)) for service in waiting)
            say(f"still waiting for {', '.join(s.name for s in waiting)} (see {logs})")
            nag_at = now + NAG_EVERY
        time.sleep(TICK)


def announce(services: list[Service]) -> None:
    gateway = next((s for s in services if s.name == "ingest"), None)  # the first replica
    if gateway is None:
        say(f"{', '.join(s.name for s in services)} ready")
    else:
        say(f"Darkroom is up: gateway http://127.0.0.1:{gateway.port} (docs at /docs)")
        dev_credentials(gateway.port)


def local_sealing_key() -> str:
    """The local stack's key that seals webhook secrets (darkroom.common.sealing), made on the
    first `make up` and kept in var/sealing.key, readable by its owner only; without it the
    webhook secrets stored so far cannot be opened. DARKROOM_SEALING_KEYS, when set, wins."""
    if not SEALING_KEY.exists():  # written whole, then renamed: never a half-made key
        made = SEALING_KEY.with_suffix(f".{os.getpid()}")
        with os.fdopen(os.open(made, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(base64.urlsafe_b64encode(os.urandom(32)).decode() + "\n")  # a Fernet key
        os.replace(made, SEALING_KEY)
    return SEALING_KEY.read_text().strip()


def dev_credentials(port: int) -> None:
    """A dev project and a platform-admin key, made on the first `make up` and kept in
    var/dev.env (delete the file to get new ones), for the `darkroom` CLI."""
    if not DEV_ENV.exists():
        try:
            key = _admin("platform-key", "--label", "make up")["key"]
            project = _admin(
                "project", "Dev", "--policy", "library", "--recipient", "dev@localhost"
            )
        except (subprocess.CalledProcessError, ValueError, KeyError) as error:
            say(f"could not make the dev project and key: {error}")
            return
        DEV_ENV.write_text(
            f"DARKROOM_URL=http://127.0.0.1:{port}\nDARKROOM_API_KEY={key}\n"
            f"DARKROOM_PROJECT={project['id']}\n"
        )
    values = dict(line.split("=", 1) for line in DEV_ENV.read_text().splitlines() if "=" in line)
    shown_project, shown_key = values.get("DARKROOM_PROJECT"), values.get("DARKROOM_API_KEY")
    say(f"dev project {shown_project}, platform-admin key {shown_key}")
    say(f"for the CLI: set -a; . {DEV_ENV.relative_to(ROOT)}; set +a; uv run darkroom --help")


def _admin(*args: str) -> dict[str, str]:
    done = subprocess.run(  # noqa: S603 - our own command, arguments we build
        [sys.executable, "-m", "darkroom.ingest.admin", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(done.stdout))


def stop_all(services: list[Service]) -> None:
    say("stopping the services")
    for service in services:
        service.signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    for service in services:
        service.stopped(deadline)
    say("services stopped")


def other_supervisor() -> int | None:
    """The pid of a supervisor already running from this repo, if any."""
    try:
        pid = int(PID_FILE.read_text())
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if pid != os.getpid() and Path(__file__).name.encode() in command else None


def parse_only(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = sorted(set(names) - set(SERVICES))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown service(s): {', '.join(unknown)}")
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        type=parse_only,
        default=list(SERVICES),
        metavar="NAME,NAME",
        help=f"start only these services (of {', '.join(SERVICES)})",
    )
    parser.add_argument(
        "--replicas",
        type=int,
        choices=range(1, 9),
        default=1,
        metavar="N",
        help="processes per service (1 to 8, the topics' partitions; default 1)",
    )
    arguments = parser.parse_args()
    names: list[str] = arguments.only
    LOGS.mkdir(parents=True, exist_ok=True)
    RUN.mkdir(parents=True, exist_ok=True)
    if "DARKROOM_SEALING_KEYS" not in os.environ:
        os.environ["DARKROOM_SEALING_KEYS"] = local_sealing_key()
    services = [
        Service(name, int(os.environ.get(f"DARKROOM_{name.upper()}_HTTP_PORT", SERVICES[name])), k)
        for name in names
        for k in range(1, arguments.replicas + 1)
    ]
    if (pid := other_supervisor()) is not None:
        say(f"already running (pid {pid}); stop it with deploy/local/stack stop")
        return 1
    if taken := [f"{s.name} {s.port}" for s in services if port_answers(s.port)]:
        say(f"ports in use: {', '.join(taken)}; services still running? (deploy/local/stack stop)")
        return 1
    signal.signal(signal.SIGTERM, Stop.handle)
    signal.signal(signal.SIGINT, Stop.handle)
    PID_FILE.write_text(f"{os.getpid()}\n")
    try:
        if not wait_for_infrastructure():
            return 0 if Stop.requested else 1
        say(f"starting {', '.join(names)}; logs in {LOGS.relative_to(ROOT)}/<service>.log")
        try:
            supervise(services)
        finally:
            stop_all(services)
    finally:
        PID_FILE.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
