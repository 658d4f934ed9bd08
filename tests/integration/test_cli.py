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
