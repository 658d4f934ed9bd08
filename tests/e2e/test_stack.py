"""`make up`'s supervisor on the real infrastructure: all five services ready, restarts, stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import psutil
import pytest
from standardwebhooks import Webhook

from .makeup import PORTS, ROOT, darkroom, dev_env, mails, make_up, readiness, wait_until

HOOK_SECRET = "whsec_ZTJlLXdlYmhvb2stc2VjcmV0LWtleQ=="


@dataclass
class Receiver:
    url: str
    received: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    """An HTTP server on this machine that keeps what is POSTed to it and answers 204."""
    receiver = Receiver("")

    class Keep(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            receiver.received.append((body, {k.lower(): v for k, v in self.headers.items()}))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Keep)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def stack() -> Iterator[subprocess.Popen[bytes]]:
    # The webhook receiver below listens on this machine, which notify refuses by default.
    with make_up(env={"DARKROOM_NOTIFY_WEBHOOK_PRIVATE_TARGETS": "true"}) as make:
        yield make


def service_process(make: subprocess.Popen[bytes], service: str) -> psutil.Process:
    for child in psutil.Process(make.pid).children(recursive=True):
        if child.cmdline()[-2:] == ["-m", f"darkroom.{service}"]:
            return child
    raise AssertionError(f"no process runs darkroom.{service}")


def test_make_up_brings_all_five_services_to_ready(stack: subprocess.Popen[bytes]) -> None:
    for service, port in PORTS.items():
        status, body = readiness(port)
        assert status == 200, body
        assert body["service"] == service
        assert body["postgres"] == body["kafka"] == body["s3"] == "ok"


def test_an_upload_through_the_stack_brings_both_emails(stack: subprocess.Popen[bytes]) -> None:
    """A project, one photo uploaded and submitted: "upload received" and, once metadata,
    dedup and tagging have all answered, "processing complete" land in var/mail/."""
    view = f"e2e {uuid.uuid4().hex[:8]}"
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "darkroom.ingest.admin",
            "project",
            "E2E",
            "--policy",
            "capture",
            "--recipient",
            "ops@example.org",
        ],
        cwd=ROOT,
        capture_output=True,
        check=True,
        text=True,
    )
    project = json.loads(made.stdout)
    headers = {"Authorization": f"Bearer {project['key']}"}
    photo = (
        ROOT.parent / "shared" / "corpus" / "exif-samples" / "jpg" / "Canon_PowerShot_S40.jpg"
    ).read_bytes()
    with (
        webhook_receiver() as hook,
        httpx.Client(base_url="http://127.0.0.1:8000/v1", headers=headers, timeout=60) as api,
    ):
        # The gateway seals the secret; notify, another process, opens it with the stack's key.
        changed = api.patch(
            f"/projects/{project['id']}",
            json={"webhooks": [{"url": hook.url, "secret": HOOK_SECRET}]},
        )
        assert changed.status_code == 200, changed.text
        session = api.post(
            f"/projects/{project['id']}/sessions",
            json={
                "source": "e2e",
                "view_name": view,
                "capture_date": "2024-05-17",
                "uploader_email": "ana@example.org",
            },
        ).json()["id"]
        [entry] = api.post(
            f"/sessions/{session}/files",
            json={"files": [{"path": "Site/a.jpg", "size": len(photo)}]},
        ).json()["files"]
        assert (
            api.put(f"/sessions/{session}/files/{entry['id']}/content", content=photo).status_code
            == 200
        )
        assert api.post(f"/sessions/{session}/submit").status_code == 200
        wait_until(lambda: len(hook.received) >= 2, 180, "both webhooks, signed")
        verified = [Webhook(HOOK_SECRET).verify(body, headers) for body, headers in hook.received]
        assert sorted(v["type"] for v in verified) == ["processing_complete", "upload_succeeded"]
        assert {v["data"]["session_id"] for v in verified} == {session}

    def by_kind() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for mail in mails(view):
            found.setdefault(mail.kind, []).append(mail.to)
        return {kind: sorted(to) for kind, to in found.items()}

    wait_until(lambda: len(by_kind()) == 2, 180, "both e-mails in var/mail")
    assert by_kind() == {
        "Upload received": ["ana@example.org", "ops@example.org"],
        "Processing complete": ["ana@example.org", "ops@example.org"],
    }


def test_make_up_gives_the_cli_a_project_and_key_and_an_upload_comes_back_processed(
    stack: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    """The issue's "done when": make up, darkroom upload --ai-tags --wait, media list."""
    values = dev_env()
    assert values["DARKROOM_URL"] == "http://127.0.0.1:8000" and values["DARKROOM_API_KEY"]
    folder = tmp_path / f"E2E {uuid.uuid4().hex[:6]}"
    (folder / "Cardiff").mkdir(parents=True)
    corpus = ROOT.parent / "shared" / "corpus"
    (folder / "Cardiff" / "phone.jpg").write_bytes(
        (corpus / "cameras" / "jpg" / "Apple iPhone 6 plus.jpg").read_bytes()
    )
    (folder / "obama.jpg").write_bytes((corpus / "faces" / "obama.jpg").read_bytes())
    env = {**values, "DARKROOM_STATE_DIR": str(tmp_path / "state")}
    project = values["DARKROOM_PROJECT"]
    uploaded = darkroom(
        env, "upload", str(folder), "--project", project, "--ai-tags", "--wait", "--json"
    )
    assert uploaded["uploaded"] == 2 and uploaded["failed"] == []
    listed = {m["path"]: m for m in darkroom(env, "media", "list", "--project", project, "--json")}
    phone = listed[f"{folder.name}/Cardiff/phone.jpg"]
    assert phone["status"] == "processed"
    assert phone["country_code"] == "GB" and phone["offset_source"] == "gps_timezone"
    assert {"name": "Cardiff", "source": "folder"} in phone["tags"]
    assert listed[f"{folder.name}/obama.jpg"]["status"] == "processed"


def test_a_service_that_dies_is_restarted(stack: subprocess.Popen[bytes]) -> None:
    victim = service_process(stack, "dedup")
    victim.kill()
    victim.wait(timeout=10)
    wait_until(lambda: readiness(PORTS["dedup"])[0] != 200, 10, "dedup going away")
    wait_until(lambda: readiness(PORTS["dedup"])[0] == 200, 90, "dedup ready again")
    assert service_process(stack, "dedup").pid != victim.pid
    log = (ROOT / "var" / "log" / "supervise.log").read_text(encoding="utf-8")
    assert "dedup exited" in log and "restarting" in log


def test_sigterm_stops_every_service_cleanly(stack: subprocess.Popen[bytes]) -> None:
    children = psutil.Process(stack.pid).children(recursive=True)
    os.killpg(stack.pid, signal.SIGTERM)  # what Ctrl-C in the terminal does, with SIGTERM
    stack.wait(timeout=60)
    _gone, alive = psutil.wait_procs(children, timeout=40)
    assert alive == []
    supervisor_log = (ROOT / "var" / "log" / "supervise.log").read_text(encoding="utf-8")
    assert supervisor_log.splitlines()[-1].endswith("services stopped")
    for service in PORTS:
        log = (ROOT / "var" / "log" / f"{service}.log").read_text(encoding="utf-8")
        last_lines = "\n".join(log.splitlines()[-5:])  # the log holds earlier runs too
        assert f'"message": "{service} stopped"' in last_lines
