"""The whole shared corpus through `darkroom upload`, on `make up REPLICAS=2` (every service its
own process, two of each): first undisturbed, checked against known answers; then again into a
fresh project while replica 2 of every consumer is killed at random moments — the catalog must
come out the same, and no e-mail twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.unit.corpus_truth import (
    CORPUS,
    COUNTRIES,
    FACES_PEOPLE,
    exiftool_date_time,
    truth,
)

from .makeup import ROOT, Mail, darkroom, dev_env, mails, make_up, wait_until

RECIPIENT = "ops@example.org"
CAPTURE_DATE = "2024-05-17"
CONSUMERS = ("ingest", "metadata", "dedup", "tagging", "notify")  # the gateway reads results
LIBRARY_TYPES = {".jpg", ".jpeg", ".png", ".gif", ".heic", ".heif", ".mp4", ".mov", ".avi", ".m4v"}

# Same bytes as a file before them in the same session (sessions hold 200 files under the
# library policy; the CLI sends paths in order): skipped, never stored twice.
SKIPPED = {
    "corpus/cameras/jpg/Seiko Epson PhotoPC 3000Z.jpg",  # = cameras/jpg/Epson PhotoPC 3000Z.jpg
    "corpus/faces/people/biden/biden.jpg",  # = faces/biden.jpg
    "corpus/faces/people/obama/obama.jpg",  # = faces/obama.jpg
    "corpus/faces/people/obama/obama2.jpg",  # = faces/obama2.jpg
}
# A JPEG outside broken/ that is damaged all the same: 200 x 0 pixels.
DAMAGED = {"corpus/cameras/jpg/beach.jpg"}
EXIF_ORG = "corpus/exif-samples/jpg/exif-org"
# The duplicate groups, each looked at.
GROUPS = {
    # One portrait, resized.
    frozenset(f"corpus/faces/obama-{size}.jpg" for size in ("240p", "480p", "720p", "1080p")),
    # One photo stored turned or mirrored eight ways (EXIF orientation 1-8), read upright.
    frozenset(f"corpus/exif-samples/jpg/orientation/landscape_{n}.jpg" for n in range(1, 9)),
    frozenset(f"corpus/exif-samples/jpg/orientation/portrait_{n}.jpg" for n in range(1, 9)),
    # The same scene with and without HDR.
    frozenset(f"corpus/exif-samples/jpg/hdr/iphone_hdr_{x}.jpg" for x in ("YES", "NO")),
    # The same pixels, with and without Photoshop's metadata.
    frozenset(f"corpus/cameras/png/photoshop-8x12-rgb24{x}.png" for x in ("", "-all-metadata")),
    # The same bytes in both source repositories (in different sessions, so not skipped).
    frozenset(
        {"corpus/cameras/jpg/Kodak DC210.jpg", "corpus/exif-samples/jpg/exif-org/kodak-dc210.jpg"}
    ),
    frozenset(
        {
            "corpus/cameras/jpg/Ricoh RDC5300.jpg",
            "corpus/exif-samples/jpg/exif-org/ricoh-rdc5300.jpg",
        }
    ),
    # Two fuzzings of one 613-byte test file (17 bytes differ); both decode to the same grey.
    frozenset(
        f"corpus/broken/jpg/ImageTestSuite/{name}.jpg"
        for name in ("b55977028a3a574336966b6536640fc9", "f6b4389c3cf0f5997b2e5a4b905aea8d")
    ),
}
# Who is in which photo, as uploaded (the skipped copies are no media).
PERSONS = {
    name: {f"corpus/{path}" for path, people in FACES_PEOPLE.items() if name in people} - SKIPPED
    for name in set().union(*FACES_PEOPLE.values())
}
FACES = "corpus/faces"
# The one photo of each person the user names; every other photo must follow.
NAMED_BY = {
    "obama": f"{FACES}/obama.jpg",
    "biden": f"{FACES}/people/biden/biden2.jpg",
    "alex_lacamoire": f"{FACES}/people/alex_lacamoire/img1.jpg",
    "kit_harington": f"{FACES}/people/kit_harington/john1.jpeg",
    "rose_leslie": f"{FACES}/people/rose_leslie/img1.jpg",
}


@dataclass
class Run:
    project: str
    view: str
    upload: dict[str, Any]  # what `darkroom upload --json` printed
    catalog: dict[str, dict[str, Any]]  # `darkroom media list --json`, by path


@pytest.fixture(scope="module")
def stack() -> Iterator[subprocess.Popen[bytes]]:
    # A sender killed between claiming an e-mail and recording it is taken for dead after 20 s
    # (5 min by default), so that a repeated e-mail would show within this test; a send then
    # has 10 s (the claim must last twice a send).
    quick = {
        "DARKROOM_NOTIFY_UNCONFIRMED_AFTER_SECONDS": "20",
        "DARKROOM_NOTIFY_SMTP_TIMEOUT_SECONDS": "10",
    }
    with make_up(replicas=2, env=quick) as make:
        yield make


@pytest.fixture(scope="module")
def undisturbed(stack: subprocess.Popen[bytes], tmp_path_factory: pytest.TempPathFactory) -> Run:
    return upload_corpus("Corpus", tmp_path_factory.mktemp("undisturbed"))


def upload_corpus(label: str, state: Path) -> Run:
    """A library project, the corpus uploaded as a folder with AI tags, each person named by
    one photo, and the catalog once every photo of each carries the name."""
    env = {**dev_env(), "DARKROOM_STATE_DIR": str(state)}
    project = darkroom(
        env, "admin", "project", "create", label, "--policy", "library",
        "--recipient", RECIPIENT, "--json",
    )["id"]  # fmt: skip
    view = f"corpus {uuid.uuid4().hex[:8]}"
    upload = darkroom(
        env, "upload", str(CORPUS), "--project", project, "--view-name", view,
        "--capture-date", CAPTURE_DATE, "--ai-tags", "--retries", "5", "--wait", "--json",
        codes=(2,),  # some files fail: the exit status says so
    )  # fmt: skip
    for name, path in NAMED_BY.items():
        people = darkroom(env, "people", "list", "--project", project, "--json")
        [person] = [p for p in people if path in p["paths"]]
        darkroom(env, "people", "name", person["id"], name, "--project", project)

    def catalog() -> dict[str, dict[str, Any]]:
        listed = darkroom(env, "media", "list", "--project", project, "--json")
        return {medium["path"]: medium for medium in listed}

    deadline = time.monotonic() + 300  # until the names reached every photo (checked after)
    while person_tags(found := catalog()) != PERSONS and time.monotonic() < deadline:
        time.sleep(2)
    return Run(project, view, upload, found)


def person_tags(catalog: dict[str, dict[str, Any]]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path, medium in catalog.items():
        for tag in medium["tags"]:
            if tag["name"].startswith("person:"):
                assert tag["source"] == "ai.face", tag  # recognised; the name is the user's
                found.setdefault(tag["name"].removeprefix("person:"), set()).add(path)
    return found


def groups(catalog: dict[str, dict[str, Any]]) -> set[frozenset[str]]:
    members: dict[str, set[str]] = {}
    for path, medium in catalog.items():
        if medium["duplicate_group"]:
            members.setdefault(medium["duplicate_group"], set()).add(path)
    return {frozenset(paths) for paths in members.values()}


def corpus_files() -> list[str]:
    return sorted(f"corpus/{p.relative_to(CORPUS)}" for p in CORPUS.rglob("*") if p.is_file())


def test_every_file_of_the_corpus_ends_processed_or_failed_with_a_reason(
    undisturbed: Run,
) -> None:
    upload, catalog = undisturbed.upload, undisturbed.catalog
    failed = {f["path"]: f["reason"] for f in upload["failed"]}
    assert len(upload["sessions"]) == 2  # 200 files a session under the library policy
    assert set(upload["skipped_duplicates"]) == SKIPPED
    assert upload["uploaded"] + len(SKIPPED) + len(failed) == len(corpus_files())
    assert all(failed.values()), failed
    for path in corpus_files():
        if Path(path).suffix.lower() not in LIBRARY_TYPES:  # refused by type, with a reason
            assert Path(path).suffix in failed.get(path, ""), path
        elif not path.startswith("corpus/broken/") and path not in DAMAGED | SKIPPED:
            assert catalog[path]["status"] == "processed", catalog[path]
    for medium in catalog.values():
        assert medium["status"] in {"processed", "processing_failed", "failed", "skipped_duplicate"}
        if medium["status"] in {"processing_failed", "failed"}:
            assert medium["reason_code"] and medium["reason"], medium


def test_folder_and_session_tags_follow_the_paths(undisturbed: Run) -> None:
    for path, medium in undisturbed.catalog.items():
        if medium["status"] in {"failed", "skipped_duplicate"}:
            continue
        by_source: dict[str, list[str]] = {}
        for tag in medium["tags"]:
            by_source.setdefault(tag["source"], []).append(tag["name"])
        assert by_source["folder"] == path.split("/")[:-1], path
        assert sorted(by_source["session"]) == sorted(["cli", undisturbed.view])


def test_capture_dates_match_exiftool(undisturbed: Run) -> None:
    rows = truth()
    compared = 0
    for path, medium in undisturbed.catalog.items():
        if medium["status"] != "processed":
            continue
        row = rows[path.removeprefix("corpus/")]
        if medium["offset_source"] == "session_date":  # nothing in the file: the session's
            assert medium["captured_at"].startswith(CAPTURE_DATE), medium
        read = exiftool_date_time(row.date_time_original)
        if read is None:
            continue
        wall_clock, _ = read
        assert medium["captured_at"][:19] == wall_clock.isoformat()[:19], (path, medium)
        if row.offset_time_original:
            assert medium["captured_at"].endswith(row.offset_time_original), (path, medium)
        compared += 1
    assert compared > 120


def test_countries_match_the_coordinates(undisturbed: Run) -> None:
    # Darkroom reads FLIR's W where ExifTool drops it (tests/unit/test_exif.py).
    expected = {**COUNTRIES, "cameras/jpg/FLIR iPhone device.jpg": "US"}
    placed = 0
    for path, medium in undisturbed.catalog.items():
        if medium["status"] == "processed":
            assert medium["country_code"] == expected.get(path.removeprefix("corpus/")), medium
            placed += medium["country_code"] is not None
    assert placed == 28  # every file with GPS the library policy takes


def test_duplicate_groups_are_the_known_ones(undisturbed: Run) -> None:
    assert groups(undisturbed.catalog) == GROUPS
    for group in GROUPS:
        for path in group:
            assert 0.8 <= undisturbed.catalog[path]["similarity"] <= 1.0


def test_named_persons_tag_every_photo_of_them_and_no_other(undisturbed: Run) -> None:
    assert person_tags(undisturbed.catalog) == PERSONS


def test_both_emails_for_each_session_and_no_more(undisturbed: Run) -> None:
    expected = Counter({"Processing complete": 2, "Upload had failures": 2})
    wait_until(lambda: Counter(m.kind for m in mails(undisturbed.view)) == expected, 120, "mail")
    time.sleep(25)  # longer than a claimed e-mail waits before it is sent again
    assert_mails_once(mails(undisturbed.view), expected)


def assert_mails_once(found: list[Mail], expected: Counter[str]) -> None:
    assert Counter(m.kind for m in found) == expected
    assert {m.to for m in found} == {RECIPIENT}
    assert len({m.message_id for m in found}) == len(found)


class Chaos(threading.Thread):
    """Kills replica 2 of every consumer in turn, in a random order, at random moments: SIGKILL
    to its process group (worker pools too), as a lost node or the OOM killer would. The
    supervisor restarts it."""

    def __init__(self, seed: int) -> None:
        super().__init__(daemon=True)
        self.random = random.Random(seed)
        self.stopping = threading.Event()
        self.killed: list[str] = []

    def run(self) -> None:
        while True:
            order = list(CONSUMERS)
            self.random.shuffle(order)
            for service in order:
                if self.stopping.wait(self.random.uniform(3.0, 15.0)):
                    return
                if kill(service):
                    self.killed.append(service)


def kill(service: str) -> bool:
    """Replica 2 of the service, if it runs now."""
    try:
        pid = int((ROOT / "var" / "run" / f"{service}-2.pid").read_text())
        if psutil.Process(pid).cmdline()[-2:] != ["-m", f"darkroom.{service}"]:
            return False
        os.killpg(pid, signal.SIGKILL)
    except (OSError, ValueError, psutil.Error):
        return False
    return True


def comparable(run: Run) -> dict[str, dict[str, Any]]:
    """The catalog without what is unique to a project: ids, the view name; a duplicate group
    as its members."""
    members = {path: sorted(group) for group in groups(run.catalog) for path in group}
    return {
        path: {
            **{k: v for k, v in medium.items() if k != "id"},
            "tags": sorted(
                ("VIEW" if tag["name"] == run.view else tag["name"], tag["source"])
                for tag in medium["tags"]
            ),
            "duplicate_group": members.get(path),
        }
        for path, medium in run.catalog.items()
    }


def test_replicas_killed_at_random_change_nothing_in_the_catalog_and_send_no_mail_twice(
    undisturbed: Run, tmp_path: Path
) -> None:
    seed = random.randrange(1 << 32)
    print(f"chaos seed {seed}")
    chaos = Chaos(seed)
    chaos.start()
    try:
        disturbed = upload_corpus("Corpus, disturbed", tmp_path)
    finally:
        chaos.stopping.set()
        chaos.join()
    assert set(chaos.killed) == set(CONSUMERS), chaos.killed  # each was killed at least once

    assert comparable(disturbed) == comparable(undisturbed)
    expected = Counter({"Processing complete": 2, "Upload had failures": 2})
    wait_until(lambda: Counter(m.kind for m in mails(disturbed.view)) == expected, 180, "mail")
    time.sleep(25)  # longer than a claimed e-mail waits before it is sent again
    assert_mails_once(mails(disturbed.view), expected)
