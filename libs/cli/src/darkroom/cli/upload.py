"""`darkroom upload`: folders and files into sessions, resumable, with progress.

A folder keeps its relative paths, top folder included (``Survey/Cam/1.jpg``). Files go in
batches of 100; a new session starts when one holds what the project allows an upload (files
and bytes; never more than 1,500 files). What has been done is written to a state file after
every file (``$DARKROOM_STATE_DIR``, else ``~/.cache/darkroom``), keyed by the project and the
paths given, so the same command run again after an interruption resumes: sessions already
made are reused, files already stored are not sent again, and files added since go to the open
session or, once that was submitted, to a new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from darkroom.cli.client import Gateway, GatewayError

BATCH = 100
SESSION_FILES = 1500
DONE = {"uploaded", "skipped_duplicate", "refused"}


@dataclass(frozen=True)
class Planned:
    path: Path
    relative: str
    size: int


@dataclass
class Options:
    project: str
    source: str
    view_name: str
    capture_date: str
    ai_tagging: bool
    classification: str | None
    retries: int
    submit: bool
    wait: bool


@dataclass
class Outcome:
    sessions: list[str] = field(default_factory=list)
    uploaded: int = 0
    skipped: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)


def plan(paths: list[Path]) -> list[Planned]:
    """Every file under the paths, each with the relative path it is uploaded as."""
    found: dict[str, Planned] = {}
    for given in paths:
        root = given.resolve()
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            relative = (
                root.name if path == root else f"{root.name}/{path.relative_to(root).as_posix()}"
            )
            found.setdefault(relative, Planned(path, relative, path.stat().st_size))
    return list(found.values())


def state_file(project: str, paths: list[Path]) -> Path:
    folder = Path(os.environ.get("DARKROOM_STATE_DIR") or Path.home() / ".cache" / "darkroom")
    key = json.dumps([project, sorted(str(p.resolve()) for p in paths)])
    return folder / f"upload-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


class Upload:
    def __init__(self, gateway: Gateway, options: Options, state: Path) -> None:
        self.gateway = gateway
        self.options = options
        self.state_path = state
        self.state: dict[str, Any] = (
            json.loads(state.read_text()) if state.exists() else {"sessions": []}
        )
        self.limits: tuple[int, int] | None = None  # files and bytes per session

    def run(self, files: list[Planned], progress: Progress) -> Outcome:
        outcome = Outcome()
        overall = progress.add_task("all files", total=sum(f.size for f in files))
        for number, (session, group) in enumerate(self._groups(files)):
            outcome.sessions.append(session["id"])
            task = progress.add_task(f"session {number + 1}", total=sum(f.size for f in group))
            self._register(session, group)
            for planned in group:
                entry = session["files"][planned.relative]
                if entry["status"] not in DONE:
                    self._send(session, planned, entry)
                progress.advance(task, planned.size)
                progress.advance(overall, planned.size)
                self._save()
            if self.options.submit and not session.get("submitted"):
                self.gateway.call("POST", f"/sessions/{session['id']}/submit")
                session["submitted"] = True
                self._save()
            for relative, entry in session["files"].items():
                if entry["status"] == "uploaded":
                    outcome.uploaded += 1
                elif entry["status"] == "skipped_duplicate":
                    outcome.skipped.append(relative)
                else:
                    outcome.failed.append({"path": relative, "reason": entry.get("reason") or ""})
        return outcome

    def _groups(self, files: list[Planned]) -> Iterator[tuple[dict[str, Any], list[Planned]]]:
        """Each session with the files it takes. A file stays in the session it was registered
        in; new files fill the last session while it is open and has room (the project's files
        and bytes per upload, at most 1,500 files), then new sessions are made as needed."""
        sessions: list[dict[str, Any]] = self.state["sessions"]
        placed = {relative: s["id"] for s in sessions for relative in s["files"]}
        new = [planned for planned in files if planned.relative not in placed]
        for session in sessions:
            group = [planned for planned in files if placed.get(planned.relative) == session["id"]]
            if session is sessions[-1] and not session.get("submitted") and new:
                taken = self._room(session, new)
                group, new = group + new[:taken], new[taken:]
            if group or not session.get("submitted"):
                yield session, group
        while new:
            session = self._new_session()
            taken = max(1, self._room(session, new))
            yield session, new[:taken]
            new = new[taken:]

    def _room(self, session: dict[str, Any], files: list[Planned]) -> int:
        """How many of the files, in order, fit in the session under the project's limits."""
        if self.limits is None:
            project = self.gateway.call("GET", f"/projects/{self.options.project}")
            self.limits = (min(SESSION_FILES, project["max_files"]), project["max_bytes"])
        max_files, max_bytes = self.limits
        count = len(session["files"])
        size = sum(entry.get("size", 0) for entry in session["files"].values())
        taken = 0
        for planned in files:
            count, size = count + 1, size + planned.size
            if count > max_files or size > max_bytes:
                break
            taken += 1
        return taken

    def wait(self, sessions: list[str], every: float = 2.0, within: float = 3600) -> None:
        """Until every session has been processed (each step answered for each medium)."""
        deadline = time.monotonic() + within
        for session in sessions:
            while not self.gateway.call("GET", f"/sessions/{session}").get("processed_at"):
                if time.monotonic() > deadline:
                    raise GatewayError("Processing did not finish within an hour.")
                time.sleep(every)

    def _new_session(self) -> dict[str, Any]:
        options = self.options
        body = {
            "source": options.source,
            "view_name": options.view_name,
            "capture_date": options.capture_date,
            "ai_tagging": options.ai_tagging,
        }
        if options.classification:
            body["classification"] = options.classification
        made = self.gateway.call("POST", f"/projects/{options.project}/sessions", json=body)
        self.state["sessions"].append({"id": made["id"], "files": {}})
        self._save()
        return self.state["sessions"][-1]

    def _register(self, session: dict[str, Any], chunk: list[Planned]) -> None:
        new = [planned for planned in chunk if planned.relative not in session["files"]]
        for batch in _chunks(new, BATCH):
            answer = self.gateway.call(
                "POST",
                f"/sessions/{session['id']}/files",
                json={"files": [{"path": p.relative, "size": p.size} for p in batch]},
            )
            for planned, entry in zip(batch, answer["files"], strict=True):
                session["files"][planned.relative] = {
                    "id": entry.get("id"),
                    "size": planned.size,
                    "status": entry["status"],
                    "reason": entry.get("message"),
                }
            self._save()

    def _send(self, session: dict[str, Any], planned: Planned, entry: dict[str, Any]) -> None:
        for attempt in range(self.options.retries + 1):
            try:
                with planned.path.open("rb") as body:
                    answer = self.gateway.call(
                        "PUT",
                        f"/sessions/{session['id']}/files/{entry['id']}/content",
                        content=_read(body),
                    )
                entry.update(status=answer["status"], reason=answer.get("reason"))
                if answer["status"] in DONE:
                    return
            except GatewayError as error:
                entry.update(status="failed", reason=str(error))
                if error.code == "not_retryable":  # stored already (the answer was lost)
                    entry.update(status=self._status(session, entry), reason=None)
                    return
                if not error.transient:  # refused: the same bytes would be refused again
                    return
            except OSError as error:
                entry.update(status="failed", reason=f"cannot read the file: {error}")
                return
            if attempt < self.options.retries:
                time.sleep(min(30.0, 0.5 * 2**attempt))

    def _status(self, session: dict[str, Any], entry: dict[str, Any]) -> str:
        files = self.gateway.call("GET", f"/sessions/{session['id']}")["files"]
        return str(next(f["status"] for f in files if f["id"] == entry["id"]))

    def _save(self) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.state))
        temporary.replace(self.state_path)


def progress_bars(quiet: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        disable=quiet,
    )


def _read(body: Any, size: int = 1 << 20) -> Iterator[bytes]:
    while chunk := body.read(size):
        yield chunk


def _chunks(items: list[Planned], size: int) -> Iterator[list[Planned]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
