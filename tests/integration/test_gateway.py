"""The ingest gateway over real HTTP, PostgreSQL, S3 and Kafka: what a user sees, and refusals."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bench.dedup_set import without_exif
from darkroom.common.sealing import PREFIX
from darkroom.common.settings import CommonSettings
from darkroom.ingest import api, store
from darkroom.ingest.admin import project as project_with_admin
from darkroom.ingest.admin import reseal

from .backbone import eventually, read_topic
from .gateway import PNG, Gateway, big_jpeg, jpeg, sha

MB = 1024 * 1024


@dataclass
class Project:
    id: str
    admin: str
    uploader: str
    viewer: str


async def new_project(gateway: Gateway, policy: str = "library", **settings: Any) -> Project:
    async with gateway.client(gateway.platform_key) as platform:
        made = await platform.post(
            "/v1/projects", json={"name": f"test {policy}", "policy": policy, **settings}
        )
        assert made.status_code == 201, made.text
        project_id = made.json()["id"]
        keys = {}
        for role in ("admin", "uploader", "viewer"):
            key = await platform.post(f"/v1/projects/{project_id}/keys", json={"role": role})
            assert key.status_code == 201, key.text
            keys[role] = key.json()["key"]
    return Project(project_id, **keys)


async def new_session(client: httpx.AsyncClient, project: Project, **fields: Any) -> str:
    body = {"source": "drone", "view_name": "North facade", "capture_date": "2024-05-17"}
    response = await client.post(f"/v1/projects/{project.id}/sessions", json=body | fields)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def add(client: httpx.AsyncClient, session: str, *files: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"/v1/sessions/{session}/files", json={"files": list(files)})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def put(client: httpx.AsyncClient, session: str, file_id: str, data: bytes) -> httpx.Response:
    return await client.put(f"/v1/sessions/{session}/files/{file_id}/content", content=data)


def error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["message"].endswith("."), body
    return str(body["code"])


async def test_a_capture_session_uploads_submits_and_emits_one_event_per_file(
    gateway: Gateway, settings: CommonSettings
) -> None:
    project = await new_project(
        gateway,
        "capture",
        recipient_emails=["ops@example.org"],
        webhooks=[{"url": "https://hooks.example.org/x", "secret": "whsec_c2VjcmV0LXNlY3JldA=="}],
        digest_minutes=30,
    )
    async with gateway.client(project.uploader) as client:
        session = await new_session(client, project, uploader_email="ana@example.org")
        photos = {f"2024/site/{n}.jpg": jpeg(n) for n in range(1, 4)}
        batch = await add(
            client, session, *({"path": p, "size": len(d)} for p, d in photos.items())
        )
        assert batch["queued"] == 3
        for entry in batch["files"]:
            done = await put(client, session, entry["id"], photos[entry["path"]])
            assert done.status_code == 200, done.text
            assert done.json()["status"] == "uploaded"
            assert done.json()["sha256"] == sha(photos[entry["path"]])
            assert done.json()["content_type"] == "image/jpeg"

        pending = await client.get(f"/v1/projects/{project.id}/sessions")
        [listed] = [s for s in pending.json() if s["id"] == session]
        assert listed["counts"]["uploaded"] == 3 and listed["progress"] == 1.0

        submitted = await client.post(f"/v1/sessions/{session}/submit")
        assert submitted.json() == {"session_id": session, "sent": 3, "failed": 0, "skipped": 0}
        pending = await client.get(f"/v1/projects/{project.id}/sessions")
        assert session not in [s["id"] for s in pending.json()]

    uploaded = await _events_of(settings, "darkroom.media.uploaded.v1", session, 3)
    assert sorted(e["media"]["relative_path"] for e in uploaded) == sorted(photos)
    assert {e["sha256"] for e in uploaded} == {sha(d) for d in photos.values()}
    for event in uploaded:  # each names the object holding its bytes
        stored = await gateway.runtime.blobs.sha256("originals", event["media"]["object_key"])
        assert stored == event["sha256"]
    [report] = await _events_of(settings, "darkroom.session.submitted.v1", session, 1)
    assert report["uploaded"] == 3 and report["failed"] == [] and report["skipped"] == 0
    assert report["uploader_email"] == "ana@example.org"
    assert report["recipients"] == ["ops@example.org"]
    assert report["digest_minutes"] == 30  # notify's to know how the project wants its e-mail
    # The webhook's secret travels sealed, and rests sealed in the gateway's database.
    [hook] = report["webhooks"]
    assert hook["url"] == "https://hooks.example.org/x"
    assert "c2VjcmV0LXNlY3JldA" not in hook["secret"]
    assert gateway.sealer.open(hook["secret"]) == "whsec_c2VjcmV0LXNlY3JldA=="
    stored = await gateway.runtime.db.pool.fetchval(
        "SELECT secret FROM recipients WHERE project_id = $1 AND kind = 'webhook'",
        uuid.UUID(project.id),
    )
    assert stored.startswith(PREFIX) and "c2VjcmV0LXNlY3JldA" not in stored


async def test_a_project_change_refuses_nulls_and_bad_webhook_secrets(gateway: Gateway) -> None:
    project = await new_project(gateway, digest_minutes=30, max_files=50)
    async with gateway.client(project.admin) as admin:
        url = f"/v1/projects/{project.id}"
        for field in ("max_files", "ceiling", "timezone", "recipient_emails"):
            refused = await admin.patch(url, json={field: None, "max_bytes": 10**9})
            assert error(refused, 422) == "invalid_request"
            assert field in refused.json()["error"]["message"]
        for secret in ("whsec_not*base64*at-all", "whsec_================"):
            hook = {"url": "https://hooks.example.org/z", "secret": secret}
            assert error(await admin.patch(url, json={"webhooks": [hook]}), 422) == (
                "invalid_request"
            )
        kept = (await admin.get(url)).json()
        assert (kept["max_files"], kept["webhooks"]) == (50, [])
        assert kept["max_bytes"] != 10**9
        changed = await admin.patch(url, json={"digest_minutes": None})
        assert changed.status_code == 200, changed.text
        assert changed.json()["digest_minutes"] is None


async def test_webhook_secrets_stay_sealed_once_and_a_reseal_seals_those_from_before(
    gateway: Gateway,
) -> None:
    sealer = gateway.sealer
    hook = {"url": "https://hooks.example.org/y", "secret": "whsec_c2VhbGVkLW9uY2Utb25seQ=="}
    project = await new_project(gateway, webhooks=[hook])
    pool = gateway.runtime.db.pool

    async def stored() -> str:
        return str(
            await pool.fetchval(
                "SELECT secret FROM recipients WHERE project_id = $1 AND kind = 'webhook'",
                uuid.UUID(project.id),
            )
        )

    # A change that leaves the webhooks alone keeps their secret: sealed once, not twice.
    async with gateway.client(project.admin) as client:
        changed = await client.patch(
            f"/v1/projects/{project.id}", json={"recipient_emails": ["ops@example.org"]}
        )
        assert changed.status_code == 200, changed.text
    assert sealer.open(await stored()) == hook["secret"]

    # A secret stored in clear before sealing existed: `admin reseal` seals it.
    await pool.execute(
        "UPDATE recipients SET secret = $2 WHERE project_id = $1 AND kind = 'webhook'",
        uuid.UUID(project.id),
        hook["secret"],
    )
    assert (await reseal(gateway.runtime.db, sealer))["resealed"] >= 1
    assert (await stored()).startswith(PREFIX) and sealer.open(await stored()) == hook["secret"]


async def _events_of(
    settings: CommonSettings, topic: str, session: str, count: int
) -> list[dict[str, Any]]:
    """The events of one session on a shared topic (other tests write there too)."""

    async def mine() -> list[dict[str, Any]] | None:
        records = await read_topic(settings, topic, 1, everything=True)
        found = [json.loads(r.value) for r in records]
        found = [
            e
            for e in found
            if session in (e.get("session_id"), e.get("media", {}).get("session_id"))
        ]
        return found if len(found) >= count else None

    found = await eventually(mine, timeout=30)
    assert len(found) == count
    return found


async def test_keys_are_required_and_checked(gateway: Gateway) -> None:
    project = await new_project(gateway)
    async with gateway.client() as anonymous:
        response = await anonymous.get(f"/v1/projects/{project.id}")
        assert error(response, 401) == "missing_key"
        assert response.headers["www-authenticate"] == "Bearer"
    async with gateway.client("drk_not-a-key") as stranger:
        assert error(await stranger.get(f"/v1/projects/{project.id}"), 401) == "invalid_key"
    async with gateway.client(project.viewer) as viewer:
        assert (await viewer.get(f"/v1/projects/{project.id}")).status_code == 200
        refused = await viewer.post(
            f"/v1/projects/{project.id}/sessions",
            json={"source": "s", "view_name": "v", "capture_date": "2024-01-01"},
        )
        assert error(refused, 403) == "forbidden"


async def test_another_projects_session_is_answered_as_missing(gateway: Gateway) -> None:
    mine, theirs = await new_project(gateway), await new_project(gateway)
    async with gateway.client(theirs.uploader) as client:
        session = await new_session(client, theirs)
        batch = await add(client, session, {"path": "a.jpg", "size": len(jpeg())})
    async with gateway.client(mine.admin) as client:
        assert error(await client.get(f"/v1/sessions/{session}"), 404) == "session_not_found"
        unknown = await client.get(f"/v1/sessions/{uuid.uuid4()}")
        assert unknown.json() == (await client.get(f"/v1/sessions/{session}")).json()
        file_id = batch["files"][0]["id"]
        assert error(await put(client, session, file_id, jpeg()), 404) == "session_not_found"
        assert error(await client.get(f"/v1/projects/{theirs.id}"), 404) == "project_not_found"
        precheck = await client.post(
            f"/v1/sessions/{session}/precheck",
            json={"files": [{"path": "a.jpg", "size": 1, "sha256": sha(jpeg())}]},
        )
        assert error(precheck, 404) == "session_not_found"


async def test_a_session_needs_its_capture_date(gateway: Gateway) -> None:
    project = await new_project(gateway)
    async with gateway.client(project.uploader) as client:
        response = await client.post(
            f"/v1/projects/{project.id}/sessions", json={"source": "drone", "view_name": "North"}
        )
        assert error(response, 422) == "invalid_request"
        assert "capture_date" in response.json()["error"]["message"]


async def test_text_no_one_types_is_refused_with_a_clear_error(gateway: Gateway) -> None:
    """A NUL, a line break or a bidirectional control in a name or a filter (PostgreSQL keeps
    no NUL: it was a 500 at the gateway, and a person named so halted the tagging service's
    consumer), a blank name, a size past any file, a time out of range: each a 422 that names
    the field, and nothing kept."""
    project = await new_project(gateway)
    async with gateway.client(project.uploader) as client:
        for view_name, told in [
            ("North\x00", "control character"),
            ("North\r\nBcc: x@example.org", "control character"),
            ("\u202egpj.exe", "bidirectional control"),
            ("   ", "at least 1 character"),
        ]:
            made = await client.post(
                f"/v1/projects/{project.id}/sessions",
                json={"source": "drone", "view_name": view_name, "capture_date": "2024-05-17"},
            )
            assert error(made, 422) == "invalid_request"
            assert "view_name" in made.json()["error"]["message"]
            assert told in made.json()["error"]["message"]
        trimmed = await client.post(
            f"/v1/projects/{project.id}/sessions",
            json={"source": " drone ", "view_name": "North", "capture_date": "2024-05-17"},
        )
        assert trimmed.json()["source"] == "drone"
        session = trimmed.json()["id"]
        huge = await client.post(
            f"/v1/sessions/{session}/files", json={"files": [{"path": "a.jpg", "size": 2**64}]}
        )
        assert error(huge, 422) == "invalid_request"
        assert (await client.get(f"/v1/sessions/{session}")).json()["files"] == []
    async with gateway.client(project.admin) as client:
        named = await client.post(
            f"/v1/projects/{project.id}/people/{uuid.uuid4()}/name", json={"name": "Ada\x00"}
        )
        assert error(named, 422) == "invalid_request"
        media = f"/v1/projects/{project.id}/media"
        for query in [
            {"tag": "a\x00"},
            {"person": "\x1b[31m"},
            {"status": "lost"},
            {"captured_from": "0001-01-01T00:00:00+01:00"},  # before year 1 in UTC
        ]:
            assert error(await client.get(media, params=query), 422) == "invalid_request"


async def test_batches_hold_100_files_and_sessions_1500(gateway: Gateway) -> None:
    """Adding files and pre-checking them are refused alike (the pre-check keeps nothing)."""
    project = await new_project(gateway, "capture")
    async with gateway.client(project.uploader) as client:
        session = await new_session(client, project)
        files = [{"path": f"f{n}.jpg", "size": 1000} for n in range(101)]
        for route in ("precheck", "files"):
            too_many = await client.post(f"/v1/sessions/{session}/{route}", json={"files": files})
            assert error(too_many, 422) == "batch_too_large"
        for start in range(0, 1500, 100):
            batch = [{"path": f"f{n}.jpg", "size": 1000} for n in range(start, start + 100)]
            assert (await add(client, session, *batch))["queued"] == 100
        for route in ("precheck", "files"):
            full = await client.post(
                f"/v1/sessions/{session}/{route}",
                json={"files": [{"path": "f1500.jpg", "size": 1000}]},
            )
            assert error(full, 409) == "session_full"
            assert "new session" in full.json()["error"]["message"]
        detail = await client.get(f"/v1/sessions/{session}")
        assert detail.json()["counts"]["queued"] == 1500


async def test_size_limits_are_enforced_before_and_while_bytes_arrive(gateway: Gateway) -> None:
    project = await new_project(gateway, max_bytes=10 * MB)
    async with gateway.client(project.uploader) as client:
        session = await new_session(client, project)
        batch = await add(
            client,
            session,
            {"path": "big.jpg", "size": 51 * MB},
            {"path": "empty.png", "size": 0},
            {"path": "small.jpg", "size": len(jpeg())},
        )
        codes = {f["path"]: f.get("code") for f in batch["files"]}
        assert codes == {"big.jpg": "file_too_large", "empty.png": "empty_file", "small.jpg": None}

        over = await client.post(
            f"/v1/sessions/{session}/files",
            json={"files": [{"path": f"v{n}.mp4", "size": 4 * MB} for n in range(3)]},
        )
        assert error(over, 409) == "upload_too_large"

        # A file that sends more than it declared is stopped at its declared size.
        small = batch["files"][2]["id"]
        longer = await put(client, session, small, jpeg() + b"\0" * (2 * MB))
        assert error(longer, 422) == "size_mismatch"
        state = (await client.get(f"/v1/sessions/{session}")).json()["files"]
        assert [f["status"] for f in state if f["id"] == small] == ["failed"]
        assert await gateway.stored(project.id, small) == []

        # One that sends a whole request but fewer bytes than it declared is failed too.
        shorter = await put(client, session, small, jpeg()[:-1000])
        assert error(shorter, 422) == "incomplete"
        assert f"{len(jpeg()) - 1000:,} of the declared {len(jpeg()):,}" in shorter.text
        assert await gateway.stored(project.id, small) == []
        # and it can be sent again, whole
        assert (await put(client, session, small, jpeg())).status_code == 200

        # Every declared byte, a pause (all of them already on their way to S3), then more:
        # refused, and nothing of it kept.
        whole = big_jpeg(2 * MB)
        [over] = (await add(client, session, {"path": "over.jpg", "size": len(whole)}))["files"]

        async def then_more() -> AsyncIterator[bytes]:
            yield whole
            await asyncio.sleep(1)
            yield b"\0" * 10

        late = await client.put(
            f"/v1/sessions/{session}/files/{over['id']}/content", content=then_more()
        )
        assert error(late, 422) == "size_mismatch"
        assert await gateway.stored(project.id, over["id"]) == []

        # The API's cap on a request body is not a file's: a 6 MB photo goes up whole.
        photo = big_jpeg(6 * MB)
        large = (await add(client, session, {"path": "large.jpg", "size": len(photo)}))["files"]
        sent = await put(client, session, large[0]["id"], photo)
        assert sent.status_code == 200, sent.text
        assert sent.json()["sha256"] == sha(photo)


async def test_content_must_match_the_name_and_capture_needs_exif(gateway: Gateway) -> None:
    library, capture = await new_project(gateway), await new_project(gateway, "capture")
    png = PNG.read_bytes()
    async with gateway.client(library.uploader) as client:
        session = await new_session(client, library)
        batch = await add(client, session, {"path": "really-a-png.jpg", "size": len(png)})
        mismatch = await put(client, session, batch["files"][0]["id"], png)
        assert error(mismatch, 422) == "type_mismatch"
    async with gateway.client(capture.uploader) as client:
        session = await new_session(client, capture)
        bare = without_exif(jpeg())
        batch = await add(
            client,
            session,
            {"path": "bare.jpg", "size": len(bare)},
            {"path": "photo.jpg", "size": len(jpeg())},
            {"path": "photo.png", "size": len(png)},
        )
        [bare_entry, photo_entry, png_entry] = batch["files"]
        assert png_entry["code"] == "unsupported_type"
        assert error(await put(client, session, bare_entry["id"], bare), 422) == "missing_exif"
        assert (await put(client, session, photo_entry["id"], jpeg())).json()[
            "status"
        ] == "uploaded"
        detail = (await client.get(f"/v1/sessions/{session}")).json()
        assert detail["counts"] == detail["counts"] | {"uploaded": 1, "failed": 2}
        failed = {f["path"]: f for f in detail["files"] if f["status"] == "failed"}
        assert failed["bare.jpg"]["code"] == "missing_exif"
        assert "EXIF" in failed["bare.jpg"]["reason"]
        assert failed["photo.png"]["code"] == "unsupported_type"  # refused when added, kept


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("../../etc/passwd.jpg", "path_traversal"),
        ("a/../../b.jpg", "path_traversal"),
        ("/etc/photo.jpg", "absolute_path"),
        ("C:\\Users\\ana\\photo.jpg", "absolute_path"),
        ("photo\u202egpj.jpg", "bidi_control"),
    ],
)
async def test_unsafe_paths_are_refused_alone(gateway: Gateway, path: str, code: str) -> None:
    project = await new_project(gateway)
    async with gateway.client(project.uploader) as client:
        session = await new_session(client, project)
        batch = await add(
            client, session, {"path": path, "size": 10}, {"path": "ok/a.jpg", "size": 10}
        )
        assert [(f["status"], f.get("code")) for f in batch["files"]] == [
            ("refused", code),
            ("queued", None),
        ]


async def test_unicode_names_are_compared_after_normalisation(gateway: Gateway) -> None:
    project = await new_project(gateway)
    async with gateway.client(project.uploader) as client:
        session = await new_session(client, project)
        batch = await add(
            client,
            session,
            {"path": "Caf\u00e9/a.jpg", "size": 10},  # composed é
            {"path": "Cafe\u0301/a.jpg", "size": 20},  # e + combining acute: the same name
            {"path": "Caf\u00e9/\u0430.jpg", "size": 30},  # Cyrillic a (U+0430): another name
        )
        assert [(f["path"], f["status"], f.get("code")) for f in batch["files"]] == [
            ("Caf\u00e9/a.jpg", "queued", None),
            ("Caf\u00e9/a.jpg", "refused", "duplicate_path"),
            ("Caf\u00e9/\u0430.jpg", "queued", None),
        ]


async def test_duplicates_in_a_selection_are_skipped_and_counted(gateway: Gateway) -> None:
    project = await new_project(gateway)
    one, two = jpeg(1), jpeg(2)
    async with gateway.client(project.uploader) as client:
        session = await new_session(client, project)
        planned = [
            {"path": "a/1.jpg", "size": len(one), "sha256": sha(one)},
            {"path": "b/1-copy.jpg", "size": len(one), "sha256": sha(one)},
            {"path": "a/2.jpg", "size": len(two)},
            {"path": "c/2-again.jpg", "size": len(two)},  # no hash: found once its bytes arrive
        ]
        check = await client.post(f"/v1/sessions/{session}/precheck", json={"files": planned})
        assert check.json()["duplicates"] == 1
        assert check.json()["files"][1]["duplicate_of"] == "a/1.jpg"
        assert (await client.get(f"/v1/sessions/{session}")).json()["files"] == []

        batch = await add(client, session, *planned)
        assert (batch["queued"], batch["skipped"]) == (3, 1)
        ids = {f["path"]: f["id"] for f in batch["files"]}
        await put(client, session, ids["a/1.jpg"], one)
        await put(client, session, ids["a/2.jpg"], two)
        again = await put(client, session, ids["c/2-again.jpg"], two)
        assert again.json()["status"] == "skipped_duplicate"
        assert again.json()["duplicate_of"] == ids["a/2.jpg"]
        assert await gateway.stored(project.id, ids["c/2-again.jpg"]) == []

        later = await add(
            client, session, {"path": "d/1.jpg", "size": len(one), "sha256": sha(one)}
        )
        assert later["files"][0]["status"] == "skipped_duplicate"
        counts = (await client.get(f"/v1/sessions/{session}")).json()["counts"]
        assert (counts["uploaded"], counts["skipped_duplicate"]) == (2, 3)


async def test_a_file_added_again_is_refused_and_the_first_kept(gateway: Gateway) -> None:
    """The same entry twice in a batch, then again in a later one (a client retrying its
    registration), and a known copy repeated at one new path: each repeat is refused for its
    path; nothing else of the batch is lost."""
    project = await new_project(gateway)
    one = jpeg(3)
    entry = {"path": "a/1.jpg", "size": len(one), "sha256": sha(one)}
    copy = {"path": "b/copy.jpg", "size": len(one), "sha256": sha(one)}
    async with gateway.client(project.uploader) as client:
        session = await new_session(client, project)
        first = await add(client, session, entry, entry, copy, copy)
        assert [(f["status"], f.get("code")) for f in first["files"]] == [
            ("queued", None),
            ("refused", "duplicate_path"),
            ("skipped_duplicate", "duplicate_content"),
            ("refused", "duplicate_path"),
        ]
        again = await add(client, session, entry, {"path": "c/new.jpg", "size": 10})
        assert [(f["status"], f.get("code")) for f in again["files"]] == [
            ("refused", "duplicate_path"),
            ("queued", None),
        ]
        files = (await client.get(f"/v1/sessions/{session}")).json()["files"]
        assert sorted((f["path"], f["status"]) for f in files) == [
            ("a/1.jpg", "queued"),
            ("b/copy.jpg", "skipped_duplicate"),
            ("c/new.jpg", "queued"),
        ]
        assert (await put(client, session, first["files"][0]["id"], one)).status_code == 200


async def test_two_copies_finishing_at_the_same_moment_store_one(gateway: Gateway) -> None:
    """The second copy's upload finishes while the first one's is being recorded: it finds no
    stored copy, is stopped by the one-copy index, and is skipped as a duplicate of the first."""
    project = await new_project(gateway)
    data = jpeg(5)
    async with gateway.client(project.uploader) as client:
        session = await new_session(client, project)
        batch = await add(
            client,
            session,
            {"path": "a/first.jpg", "size": len(data)},
            {"path": "b/second.jpg", "size": len(data)},
        )
        first, second = (f["id"] for f in batch["files"])
        async with gateway.runtime.db.transaction() as recording:  # the first, not yet committed
            await recording.execute(
                "UPDATE files SET status = 'uploaded', sha256 = $2, object_key = 'k' WHERE id = $1",
                uuid.UUID(first),
                sha(data),
            )
            upload = asyncio.create_task(put(client, session, second, data))

            async def blocked() -> bool:
                waiting = await gateway.runtime.db.pool.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE '%UPDATE files SET status = CASE%'"
                )
                return bool(waiting)

            await eventually(blocked)
        answer = await upload
        assert answer.status_code == 200, answer.text
        assert (answer.json()["status"], answer.json()["duplicate_of"]) == (
            "skipped_duplicate",
            first,
        )
        assert await gateway.stored(project.id, second) == []


async def test_an_upload_cut_off_halfway_fails_alone_and_can_be_retried(gateway: Gateway) -> None:
    project = await new_project(gateway)
    whole, other = jpeg(7), jpeg(8)
    async with gateway.client(project.uploader) as client:
        session = await new_session(client, project)
        batch = await add(
            client,
            session,
            {"path": "cut.jpg", "size": len(whole)},
            {"path": "fine.jpg", "size": len(other)},
        )
        cut, fine = (f["id"] for f in batch["files"])
        await _send_half_then_hang_up(gateway, project.uploader, session, cut, whole)
        assert (await put(client, session, fine, other)).json()["status"] == "uploaded"

        async def cut_failed() -> dict[str, Any] | None:
            files = (await client.get(f"/v1/sessions/{session}")).json()["files"]
            [state] = [f for f in files if f["id"] == cut]
            return state if state["status"] == "failed" else None

        state = await eventually(cut_failed)
        assert state["code"] == "upload_interrupted"

        retried = await put(client, session, cut, whole)
        assert retried.json()["status"] == "uploaded" and retried.json()["attempts"] == 2
        assert error(await put(client, session, fine, other), 409) == "not_retryable"


async def _send_half_then_hang_up(
    gateway: Gateway, key: str, session: str, file_id: str, data: bytes
) -> None:
    host, port = gateway.url.removeprefix("http://").split(":")
    _reader, writer = await asyncio.open_connection(host, int(port))
    head = (
        f"PUT /v1/sessions/{session}/files/{file_id}/content HTTP/1.1\r\n"
        f"Host: {host}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Length: {len(data)}\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    writer.write(head.encode() + data[: len(data) // 2])
    await writer.drain()
    await asyncio.sleep(0.5)
    writer.close()
    await writer.wait_closed()


async def test_classification_above_the_ceiling_is_refused(gateway: Gateway) -> None:
    project = await new_project(gateway, ceiling="RESTRICTED")
    async with gateway.client(project.uploader) as client:
        refused = await client.post(
            f"/v1/projects/{project.id}/sessions",
            json={
                "source": "s",
                "view_name": "v",
                "capture_date": "2024-01-01",
                "classification": "SENSITIVE_NORMAL",
            },
        )
        assert error(refused, 422) == "classification_above_ceiling"
        session = await new_session(client, project, classification="RESTRICTED")
        batch = await add(
            client,
            session,
            {"path": "a.jpg", "size": 10, "classification": "SENSITIVE_NORMAL"},
            {"path": "b.jpg", "size": 10, "classification": "UNCLASSIFIED"},
        )
        assert [f.get("code") for f in batch["files"]] == ["classification_above_ceiling", None]


async def test_submitting_twice_is_refused_and_failed_files_stay_failed(gateway: Gateway) -> None:
    project = await new_project(gateway)
    async with gateway.client(project.uploader) as client:
        session = await new_session(client, project)
        batch = await add(
            client,
            session,
            {"path": "good.jpg", "size": len(jpeg(3))},
            {"path": "never-sent.jpg", "size": 100},
        )
        await put(client, session, batch["files"][0]["id"], jpeg(3))
        first = await client.post(f"/v1/sessions/{session}/submit")
        assert first.json()["sent"] == 1 and first.json()["failed"] == 1
        assert (
            error(await client.post(f"/v1/sessions/{session}/submit"), 409) == "session_submitted"
        )
        for route in ("precheck", "files"):
            late = await client.post(
                f"/v1/sessions/{session}/{route}", json={"files": [{"path": "x.jpg", "size": 5}]}
            )
            assert error(late, 409) == "session_submitted"
        files = (await client.get(f"/v1/sessions/{session}?status=failed")).json()["files"]
        assert [(f["path"], f["code"]) for f in files] == [("never-sent.jpg", "not_uploaded")]


async def test_a_file_the_policy_refuses_is_kept_as_failed_with_its_reason(
    gateway: Gateway,
) -> None:
    project = await new_project(gateway, max_files=2)
    async with gateway.client(project.uploader) as client:
        session = await new_session(client, project)
        batch = await add(
            client,
            session,
            {"path": "notes.txt", "size": 100},
            {"path": "big.jpg", "size": 51 * MB},
            {"path": "../escape.jpg", "size": 100},
            {"path": "good.jpg", "size": len(jpeg(4))},
        )
        answers = {f["path"]: (f["status"], f["code"], f["id"] is not None) for f in batch["files"]}
        assert answers == {
            "notes.txt": ("refused", "unsupported_type", True),  # kept in the session, failed
            "big.jpg": ("refused", "file_too_large", True),
            "../escape.jpg": ("refused", "path_traversal", False),  # no safe name to keep
            "good.jpg": ("queued", None, True),
        }
        shown = (await client.get(f"/v1/sessions/{session}")).json()
        kept = {f["path"]: (f["status"], f["code"]) for f in shown["files"]}
        assert kept == {
            "notes.txt": ("failed", "unsupported_type"),
            "big.jpg": ("failed", "file_too_large"),
            "good.jpg": ("queued", None),
        }
        assert all(f["reason"] for f in shown["files"] if f["status"] == "failed")
        assert shown["counts"]["bytes_total"] == len(jpeg(4))  # the refused are not awaited

        # A refused file cannot be sent: the same file would be refused again.
        refused_id = batch["files"][1]["id"]
        assert error(await put(client, session, refused_id, jpeg(4)), 409) == "refused_when_added"
        # Adding its path again, changed, replaces it; the refused take no room (two at most).
        again = await add(client, session, {"path": "big.jpg", "size": len(jpeg(5))})
        assert again["queued"] == 1
        third = await client.post(
            f"/v1/sessions/{session}/files", json={"files": [{"path": "third.jpg", "size": 10}]}
        )
        assert error(third, 409) == "session_full"
        paths = [f["path"] for f in (await client.get(f"/v1/sessions/{session}")).json()["files"]]
        assert sorted(paths) == ["big.jpg", "good.jpg", "notes.txt"]

        await put(client, session, batch["files"][3]["id"], jpeg(4))
        submitted = (await client.post(f"/v1/sessions/{session}/submit")).json()
        # sent: good.jpg; failed: notes.txt (refused) and big.jpg (never sent)
        assert (submitted["sent"], submitted["failed"]) == (1, 2)


async def test_a_session_keeps_a_bounded_number_of_refused_and_skipped_files(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "MAX_SET_ASIDE", 3)  # 3,000 in service: the rule, made cheap
    project = await new_project(gateway)
    async with gateway.client(project.uploader) as client:
        session = await new_session(client, project)
        first = await add(
            client,
            session,
            {"path": "a.jpg", "size": len(jpeg()), "sha256": sha(jpeg())},
            {"path": "a.cr2", "size": 10},
            {"path": "copy.jpg", "size": len(jpeg()), "sha256": sha(jpeg())},
        )
        assert [f["status"] for f in first["files"]] == ["queued", "refused", "skipped_duplicate"]
        more = await add(
            client,
            session,
            {"path": "b.cr2", "size": 10},
            {"path": "c.cr2", "size": 10},
            {"path": "a.cr2", "size": 11},  # replaces the refused row at its path: no room taken
            {"path": "b.jpg", "size": len(jpeg(1))},
        )
        answers = [(f["status"], f["code"], f["id"] is not None) for f in more["files"]]
        assert answers == [
            ("refused", "unsupported_type", True),  # the third set aside
            ("refused", "unsupported_type", False),  # answered, not kept
            ("refused", "unsupported_type", True),
            ("queued", None, True),  # room for the files it takes is not touched
        ]
        assert "keeps at most 3 refused or skipped files" in more["files"][1]["message"]
        shown = (await client.get(f"/v1/sessions/{session}")).json()["files"]
        assert sorted(f["path"] for f in shown) == ["a.cr2", "a.jpg", "b.cr2", "b.jpg", "copy.jpg"]


async def test_the_bootstrap_command_makes_a_usable_project_and_admin_key(
    gateway: Gateway,
) -> None:
    made = await project_with_admin(
        gateway.runtime.db, "Field survey", "capture", ["a@b.org"], "UTC"
    )
    async with gateway.client(made["key"]) as admin:
        shown = await admin.get(f"/v1/projects/{made['id']}")
        assert shown.json()["policy"] == "capture"
        assert shown.json()["recipient_emails"] == ["a@b.org"]
        key = await admin.post(f"/v1/projects/{made['id']}/keys", json={"role": "uploader"})
        assert key.status_code == 201 and key.json()["key"].startswith("drk_")
        assert error(await admin.post("/v1/projects", json={"name": "x", "policy": "library"}), 403)


async def test_an_upload_whose_client_vanished_is_failed_so_the_session_can_be_submitted(
    gateway: Gateway,
) -> None:
    project = await new_project(gateway)
    async with gateway.client(project.uploader) as client:
        session = await new_session(client, project)
        batch = await add(client, session, {"path": "stuck.jpg", "size": 1000})
        file_id = batch["files"][0]["id"]
        # As if the gateway had died twenty minutes ago, the bytes stored and not yet recorded.
        await gateway.runtime.db.pool.execute(
            "UPDATE files SET status = 'uploading', attempts = 1,"
            " updated_at = now() - interval '20 minutes' WHERE id = $1",
            uuid.UUID(file_id),
        )
        key = api.object_key(uuid.UUID(project.id), uuid.UUID(file_id), 1)
        await gateway.runtime.blobs.put_bytes("originals", key, jpeg(46))
        refused = await client.post(f"/v1/sessions/{session}/submit")
        assert error(refused, 409) == "uploads_in_progress"
        assert await api.sweep_stalled(gateway.runtime) == 1
        files = (await client.get(f"/v1/sessions/{session}")).json()["files"]
        assert [(f["status"], f["code"]) for f in files] == [("failed", "upload_interrupted")]
        assert await gateway.stored(project.id, file_id) == []
        assert (await client.post(f"/v1/sessions/{session}/submit")).status_code == 200


async def given_up_mid_upload(
    gateway: Gateway, client: httpx.AsyncClient, session: str, file_id: str, data: bytes
) -> tuple[asyncio.Task[httpx.Response], asyncio.Event]:
    """A PUT of ``data`` that sends half, then waits; once its file shows uploading, the stall
    sweep gives it up (as if the bytes had stopped for longer than STALLED_AFTER). The PUT's
    task, and the event that lets it send the rest."""
    go_on = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield data[: len(data) // 2]
        await go_on.wait()
        yield data[len(data) // 2 :]

    url = f"/v1/sessions/{session}/files/{file_id}/content"
    upload = asyncio.create_task(client.put(url, content=slow_body()))

    async def uploading() -> bool | None:
        files = (await client.get(f"/v1/sessions/{session}")).json()["files"]
        return True if [f["status"] for f in files if f["id"] == file_id] == ["uploading"] else None

    await eventually(uploading)
    assert await api.sweep_stalled(gateway.runtime, idle_seconds=0) == 1
    return upload, go_on


async def test_an_upload_given_up_while_it_ran_changes_nothing_when_it_ends(
    gateway: Gateway, settings: CommonSettings
) -> None:
    """A PUT whose file was given up as stalled, and its session submitted, ends later: it is
    told so, the file stays failed, and nothing is sent on for it."""
    project = await new_project(gateway)
    data = jpeg(41)
    async with gateway.client(project.uploader) as client:
        session = await new_session(client, project)
        batch = await add(client, session, {"path": "slow.jpg", "size": len(data)})
        file_id = batch["files"][0]["id"]
        upload, go_on = await given_up_mid_upload(gateway, client, session, file_id, data)
        assert (await client.post(f"/v1/sessions/{session}/submit")).status_code == 200
        go_on.set()
        late = await upload
        assert error(late, 409) == "upload_superseded"
        files = (await client.get(f"/v1/sessions/{session}")).json()["files"]
        assert [(f["status"], f["code"]) for f in files] == [("failed", "upload_interrupted")]
    [report] = await _events_of(settings, "darkroom.session.submitted.v1", session, 1)
    assert report["uploaded"] == 0
    assert [f["relative_path"] for f in report["failed"]] == ["slow.jpg"]
    sent_on = await gateway.runtime.db.pool.fetchval(
        "SELECT count(*) FROM outbox WHERE topic = 'darkroom.media.uploaded.v1'"
        " AND position($1 in convert_from(payload, 'UTF8')) > 0",
        session,
    )
    assert sent_on == 0


async def test_an_upload_given_up_while_it_ran_cannot_overwrite_the_attempt_after_it(
    gateway: Gateway, settings: CommonSettings
) -> None:
    """A stalled PUT is given up, the file is sent again (other bytes, same size) and
    submitted; then the stalled PUT wakes and sends the rest. The file's object still holds
    the later attempt's bytes, and the given-up attempt leaves nothing behind."""
    project = await new_project(gateway)
    first, second = jpeg(43), jpeg(44)
    assert len(first) == len(second) and first != second
    async with gateway.client(project.uploader) as client:
        session = await new_session(client, project)
        batch = await add(client, session, {"path": "twice.jpg", "size": len(first)})
        file_id = batch["files"][0]["id"]
        stalled, go_on = await given_up_mid_upload(gateway, client, session, file_id, first)
        again = await put(client, session, file_id, second)
        assert again.json()["status"] == "uploaded", again.text
        assert (await client.post(f"/v1/sessions/{session}/submit")).status_code == 200
        go_on.set()
        assert error(await stalled, 409) == "upload_superseded"
    [event] = await _events_of(settings, "darkroom.media.uploaded.v1", session, 1)
    assert event["sha256"] == sha(second)
    assert await gateway.stored(project.id, file_id) == [event["media"]["object_key"]]
    stored = await gateway.runtime.blobs.sha256("originals", event["media"]["object_key"])
    assert stored == sha(second)


async def test_a_woken_first_attempt_never_removes_the_key_its_file_keeps(
    gateway: Gateway,
) -> None:
    """During a rolling update a gateway from before keys per attempt retries a stalled file,
    to the first attempt's key; the stalled first attempt then wakes, and is superseded: the
    object its file names stays."""
    project = await new_project(gateway)
    data = jpeg(47)
    async with gateway.client(project.uploader) as client:
        session = await new_session(client, project)
        batch = await add(client, session, {"path": "a.jpg", "size": len(data)})
        file_id = batch["files"][0]["id"]
        stalled, go_on = await given_up_mid_upload(gateway, client, session, file_id, data)
        # The older gateway's retry: its bytes at the one key it knows, its row without a key.
        legacy = f"{project.id}/{file_id}/original"
        await gateway.runtime.blobs.put_bytes("originals", legacy, data)
        await gateway.runtime.db.pool.execute(
            "UPDATE files SET status = 'uploaded', attempts = 2, sha256 = $2 WHERE id = $1",
            uuid.UUID(file_id),
            sha(data),
        )
        go_on.set()
        assert error(await stalled, 409) == "upload_superseded"
    kept = await gateway.runtime.db.pool.fetchval(
        "SELECT object_key FROM files WHERE id = $1", uuid.UUID(file_id)
    )
    assert kept == legacy
    assert await gateway.runtime.blobs.stat("originals", legacy) is not None


async def test_an_attempt_cut_short_after_its_bytes_were_stored_leaves_nothing_behind(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bytes are in S3 when the database fails to record them: the file fails, the
    attempt's object goes, and the retry stores the file once."""
    project = await new_project(gateway)
    data = jpeg(45)

    async def lost(*args: Any, **kwargs: Any) -> None:
        raise ConnectionResetError("the database went away")

    async with gateway.client(project.uploader) as client:
        session = await new_session(client, project)
        file_id = (await add(client, session, {"path": "a.jpg", "size": len(data)}))["files"][0][
            "id"
        ]
        monkeypatch.setattr(store, "finish_upload", lost)
        assert (await put(client, session, file_id, data)).status_code == 500
        monkeypatch.undo()
        [state] = (await client.get(f"/v1/sessions/{session}")).json()["files"]
        assert (state["status"], state["code"]) == ("failed", "upload_error")
        assert await gateway.stored(project.id, file_id) == []
        assert (await put(client, session, file_id, data)).json()["status"] == "uploaded"
    assert await gateway.stored(project.id, file_id) == [f"{project.id}/{file_id}/2/original"]
    assert await gateway.stored_sha256(file_id) == sha(data)


async def test_rows_written_by_a_gateway_from_before_keys_per_attempt_get_the_first_key(
    gateway: Gateway,
) -> None:
    """While a rolling update runs, older gateways finish files and start tus uploads without
    naming a key: their bytes are at the first attempt's key, and the rows say so."""
    project = await new_project(gateway)
    async with gateway.client(project.uploader) as client:
        session = await new_session(client, project)
        batch = await add(
            client, session, {"path": "a.jpg", "size": 10}, {"path": "b.jpg", "size": 10}
        )
    one, two = (uuid.UUID(f["id"]) for f in batch["files"])
    pool = gateway.runtime.db.pool
    key = await pool.fetchval(
        "UPDATE files SET status = 'uploaded', sha256 = 'x', attempts = 1 WHERE id = $1"
        " RETURNING object_key",
        one,
    )
    assert key == f"{project.id}/{one}/original"
    key = await pool.fetchval(
        "INSERT INTO tus_uploads (id, file_id, session_id, length, expires_at)"
        " VALUES ($1, $2, $3, 10, now()) RETURNING object_key",
        uuid.uuid4(),
        two,
        uuid.UUID(session),
    )
    assert key == f"{project.id}/{two}/original"


async def test_a_file_may_declare_a_higher_level_up_to_the_ceiling(
    gateway: Gateway, settings: CommonSettings
) -> None:
    project = await new_project(gateway, ceiling="SENSITIVE_NORMAL")
    data = jpeg(40)
    async with gateway.client(project.uploader) as client:
        session = await new_session(client, project)
        batch = await add(
            client,
            session,
            {"path": "a.jpg", "size": len(data), "classification": "SENSITIVE_NORMAL"},
        )
        await put(client, session, batch["files"][0]["id"], data)
        await client.post(f"/v1/sessions/{session}/submit")
    [event] = await _events_of(settings, "darkroom.media.uploaded.v1", session, 1)
    assert event["media"]["classification"] == "SENSITIVE_NORMAL"
