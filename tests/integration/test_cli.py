"""The `darkroom` CLI, as its own process, against a running gateway."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from .gateway import Gateway, jpeg


async def darkroom(gateway: Gateway, key: str, state: Path, *args: str) -> tuple[int, Any]:
    env = {
        **os.environ,
        "DARKROOM_URL": gateway.url,
        "DARKROOM_API_KEY": key,
        "DARKROOM_STATE_DIR": str(state),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "darkroom.cli.main",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    try:
        return process.returncode, json.loads(out)
    except ValueError:
        return process.returncode, (out + err).decode()


async def test_a_folder_goes_up_with_its_paths_and_a_second_run_resumes(
    gateway: Gateway, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    code, project = await darkroom(
        gateway,
        gateway.platform_key,
        state,
        "admin",
        "project",
        "create",
        "CLI test",
        "--policy",
        "capture",
        "--json",
    )
    assert code == 0, project
    code, key = await darkroom(
        gateway,
        gateway.platform_key,
        state,
        "admin",
        "key",
        "create",
        "--project",
        project["id"],
        "--role",
        "uploader",
        "--json",
    )
    assert code == 0 and key["key"], key

    folder = tmp_path / "Survey"
    (folder / "Cam").mkdir(parents=True)
    (folder / "Cam" / "1.jpg").write_bytes(jpeg(1))
    (folder / "Cam" / "2.jpg").write_bytes(jpeg(2))
    (folder / "copy of 1.jpg").write_bytes(jpeg(1))  # the same bytes: skipped, not stored twice
    (folder / "notes.txt").write_text("not a photo")

    upload = ("upload", str(folder), "--project", project["id"], "--view-name", "North", "--json")
    code, first = await darkroom(gateway, key["key"], state, *upload, "--no-submit")
    assert code == 2, first  # a file failed: the exit status says so
    assert first["uploaded"] == 2
    assert first["skipped_duplicates"] == ["Survey/copy of 1.jpg"]
    assert [f["path"] for f in first["failed"]] == ["Survey/notes.txt"]  # refused, with a reason
    assert first["failed"][0]["reason"]

    # Run again (after an interruption, or to submit): the same session, nothing sent twice.
    code, second = await darkroom(gateway, key["key"], state, *upload)
    assert code == 2, second
    assert second["sessions"] == first["sessions"] and second["uploaded"] == 2

    async with gateway.client(key["key"]) as client:
        session = (await client.get(f"/v1/sessions/{first['sessions'][0]}")).json()
        assert session["submitted_at"] is not None
        assert session["counts"]["uploaded"] == 2
    code, listed = await darkroom(
        gateway, key["key"], state, "media", "list", "--project", project["id"], "--json"
    )
    assert code == 0, listed
    uploaded = sorted((m["path"], m["status"]) for m in listed if m["status"] == "processing")
    assert uploaded == [("Survey/Cam/1.jpg", "processing"), ("Survey/Cam/2.jpg", "processing")]


async def test_sessions_follow_the_projects_limit_and_new_files_go_to_a_new_session(
    gateway: Gateway, tmp_path: Path
) -> None:
    async with gateway.client(gateway.platform_key) as client:
        made = await client.post(
            "/v1/projects", json={"name": "Small uploads", "policy": "capture", "max_files": 2}
        )
        assert made.status_code == 201, made.text
        project = made.json()["id"]
    state = tmp_path / "state"
    folder = tmp_path / "Site"
    folder.mkdir()
    for n in range(3):
        (folder / f"{n}.jpg").write_bytes(jpeg(10 + n))
    upload = ("upload", str(folder), "--project", project, "--json")

    code, first = await darkroom(gateway, gateway.platform_key, state, *upload)
    assert code == 0, first
    assert first["uploaded"] == 3 and len(first["sessions"]) == 2  # 2 files a session

    (folder / "3.jpg").write_bytes(jpeg(13))  # added after both sessions were submitted
    code, second = await darkroom(gateway, gateway.platform_key, state, *upload)
    assert code == 0, second
    assert second["sessions"][:2] == first["sessions"] and len(second["sessions"]) == 3
    assert second["uploaded"] == 4
    async with gateway.client(gateway.platform_key) as client:
        latest = (await client.get(f"/v1/sessions/{second['sessions'][2]}")).json()
        assert [f["path"] for f in latest["files"]] == ["Site/3.jpg"]
        assert latest["submitted_at"] is not None
