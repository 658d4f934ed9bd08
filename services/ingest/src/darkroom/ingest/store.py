"""The gateway's SQL: projects, keys, recipients, sessions and files."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any, TypeAlias

import asyncpg

from darkroom.common.db import Transaction
from darkroom.common.events import WebhookTarget
from darkroom.ingest.keys import Caller, Role

Connection: TypeAlias = asyncpg.Connection | asyncpg.Pool
Record: TypeAlias = asyncpg.Record


async def create_project(tx: Transaction, project_id: uuid.UUID, **fields: Any) -> None:
    await tx.execute(
        "INSERT INTO projects (id, name, policy, ceiling, timezone, max_files, max_bytes,"
        " max_image_bytes, digest_minutes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        project_id,
        fields["name"],
        fields["policy"],
        fields["ceiling"],
        fields["timezone"],
        fields["max_files"],
        fields["max_bytes"],
        fields["max_image_bytes"],
        fields.get("digest_minutes"),
    )


async def update_project(tx: Transaction, project_id: uuid.UUID, fields: dict[str, Any]) -> None:
    allowed = (
        "name",
        "ceiling",
        "timezone",
        "max_files",
        "max_bytes",
        "max_image_bytes",
        "digest_minutes",
    )
    for name in allowed:
        if name in fields:
            await tx.execute(
                f"UPDATE projects SET {name} = $2 WHERE id = $1", project_id, fields[name]
            )


async def project(conn: Connection, project_id: uuid.UUID) -> Record | None:
    return await conn.fetchrow("SELECT * FROM projects WHERE id = $1", project_id)


async def replace_recipients(
    tx: Transaction,
    project_id: uuid.UUID,
    emails: Iterable[str],
    webhooks: Iterable[tuple[str, str]],
) -> None:
    await tx.execute("DELETE FROM recipients WHERE project_id = $1", project_id)
    rows: list[tuple[Any, ...]] = [(uuid.uuid4(), project_id, "email", e, None) for e in emails]
    rows += [(uuid.uuid4(), project_id, "webhook", url, secret) for url, secret in webhooks]
    await tx.executemany(
        "INSERT INTO recipients (id, project_id, kind, address, secret) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT DO NOTHING",
        rows,
    )


async def recipients(conn: Connection, project_id: uuid.UUID) -> list[Record]:
    return await conn.fetch(
        "SELECT kind, address, secret FROM recipients WHERE project_id = $1 ORDER BY kind, address",
        project_id,
    )


async def audience(
    conn: Connection, project_id: uuid.UUID
) -> tuple[list[str], list[WebhookTarget]]:
    """Whom a session's events are for: the project's e-mail addresses and webhooks."""
    found = await recipients(conn, project_id)
    emails = [r["address"] for r in found if r["kind"] == "email"]
    hooks = [
        WebhookTarget(url=r["address"], secret=r["secret"]) for r in found if r["kind"] == "webhook"
    ]
    return emails, hooks


async def create_key(
    tx: Transaction,
    *,
    key_id: uuid.UUID,
    secret_sha256: str,
    role: Role,
    platform_admin: bool,
    projects: Sequence[uuid.UUID],
    label: str,
) -> None:
    await tx.execute(
        "INSERT INTO api_keys (id, secret_sha256, role, platform_admin, label)"
        " VALUES ($1, $2, $3, $4, $5)",
        key_id,
        secret_sha256,
        role.name,
        platform_admin,
        label,
    )
    await tx.executemany(
        "INSERT INTO api_key_projects (key_id, project_id) VALUES ($1, $2)",
        [(key_id, p) for p in projects],
    )


async def caller(conn: Connection, secret_sha256: str) -> Caller | None:
    row = await conn.fetchrow(
        "SELECT k.id, k.role, k.platform_admin,"
        " coalesce(array_agg(p.project_id) FILTER (WHERE p.project_id IS NOT NULL), '{}')"
        " AS projects"
        " FROM api_keys k LEFT JOIN api_key_projects p ON p.key_id = k.id"
        " WHERE k.secret_sha256 = $1 AND k.revoked_at IS NULL GROUP BY k.id",
        secret_sha256,
    )
    if row is None:
        return None
    return Caller(
        key_id=row["id"],
        role=Role[row["role"]],
        platform_admin=row["platform_admin"],
        projects=frozenset(row["projects"]),
    )


async def create_session(tx: Transaction, session_id: uuid.UUID, **fields: Any) -> None:
    await tx.execute(
        "INSERT INTO sessions (id, project_id, source, view_name, capture_date, classification,"
        " ai_tagging, uploader_email, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        session_id,
        fields["project_id"],
        fields["source"],
        fields["view_name"],
        fields["capture_date"],
        fields["classification"],
        fields["ai_tagging"],
        fields["uploader_email"],
        fields["created_by"],
    )


_SESSION = (
    "SELECT s.*, p.policy, p.ceiling, p.timezone, p.max_files, p.max_bytes, p.max_image_bytes,"
    " p.digest_minutes FROM sessions s JOIN projects p ON p.id = s.project_id WHERE s.id = $1"
)


async def session(conn: Connection, session_id: uuid.UUID) -> Record | None:
    return await conn.fetchrow(_SESSION, session_id)


async def session_for_update(tx: Transaction, session_id: uuid.UUID) -> Record | None:
    """The session, locked until the transaction ends: its file count changes one at a time."""
    return await tx.fetchrow(_SESSION + " FOR UPDATE OF s", session_id)


_COUNTS = (
    "SELECT session_id,"
    " count(*) FILTER (WHERE status = 'queued') AS queued,"
    " count(*) FILTER (WHERE status = 'uploading') AS uploading,"
    " count(*) FILTER (WHERE status = 'uploaded') AS uploaded,"
    " count(*) FILTER (WHERE status = 'failed') AS failed,"
    " count(*) FILTER (WHERE status = 'skipped_duplicate') AS skipped_duplicate,"
    " coalesce(sum(declared_size) FILTER (WHERE status <> 'skipped_duplicate' AND NOT refused),"
    "   0) AS bytes_total,"
    " coalesce(sum(CASE WHEN status = 'uploaded' THEN declared_size"
    "   WHEN status = 'uploading' THEN received_bytes ELSE 0 END), 0) AS bytes_received"
    " FROM files WHERE session_id = ANY($1::uuid[]) GROUP BY session_id"
)


async def counts(conn: Connection, session_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Record]:
    return {r["session_id"]: r for r in await conn.fetch(_COUNTS, list(session_ids))}


async def pending_sessions(conn: Connection, project_id: uuid.UUID) -> list[Record]:
    return await conn.fetch(
        "SELECT * FROM sessions WHERE project_id = $1 AND submitted_at IS NULL ORDER BY created_at",
        project_id,
    )


async def files(conn: Connection, session_id: uuid.UUID, status: str | None = None) -> list[Record]:
    return await conn.fetch(
        "SELECT * FROM files WHERE session_id = $1 AND ($2::text IS NULL OR status = $2)"
        " ORDER BY created_at, relative_path",
        session_id,
        status,
    )


async def file(conn: Connection, session_id: uuid.UUID, file_id: uuid.UUID) -> Record | None:
    return await conn.fetchrow(
        "SELECT * FROM files WHERE session_id = $1 AND id = $2", session_id, file_id
    )


async def insert_file(tx: Transaction, **fields: Any) -> None:
    """A new file of the session; one refused earlier at the same path gives way to it."""
    await tx.execute(
        "DELETE FROM files WHERE session_id = $1 AND relative_path = $2 AND refused",
        fields["session_id"],
        fields["relative_path"],
    )
    await tx.execute(
        "INSERT INTO files (id, session_id, project_id, relative_path, declared_size,"
        " declared_sha256, status, duplicate_of, classification, refused, reason_code, reason)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        fields["id"],
        fields["session_id"],
        fields["project_id"],
        fields["relative_path"],
        fields["declared_size"],
        fields["declared_sha256"],
        fields["status"],
        fields.get("duplicate_of"),
        fields.get("classification"),
        fields.get("refused", False),
        fields.get("reason_code"),
        fields.get("reason"),
    )


async def start_upload(
    conn: Connection, session_id: uuid.UUID, file_id: uuid.UUID
) -> Record | None:
    """Claim a queued or failed file for one upload: its row, or None if it takes no bytes now
    (not in the session, refused when added, uploaded, held by another upload, or its session
    submitted)."""
    return await conn.fetchrow(
        "UPDATE files SET status = 'uploading', received_bytes = 0, attempts = attempts + 1,"
        " reason_code = NULL, reason = NULL, updated_at = now()"
        " WHERE session_id = $1 AND id = $2 AND status IN ('queued', 'failed') AND NOT refused"
        # A submit that is committing now is waited for, and its session then seen submitted.
        " AND EXISTS (SELECT 1 FROM sessions WHERE id = $1 AND submitted_at IS NULL FOR SHARE)"
        " RETURNING *",
        session_id,
        file_id,
    )


# An upload's claim is the file's ``attempts`` as its claim left it: an upload given up while
# it ran (stalled, or the file claimed again) changes nothing of the file when it ends.
_HELD = "status = 'uploading' AND attempts = "


async def progress(
    conn: Connection, file_id: uuid.UUID, received: int, *, attempt: int | None = None
) -> None:
    await conn.execute(
        "UPDATE files SET received_bytes = $2, updated_at = now()"
        f" WHERE id = $1 AND {_HELD}coalesce($3, attempts)",
        file_id,
        received,
        attempt,
    )


async def fail(
    conn: Connection, file_id: uuid.UUID, code: str, reason: str, *, attempt: int | None = None
) -> bool:
    """The file failed; with ``attempt``, only while that upload holds it. Whether it did."""
    result = await conn.execute(
        "UPDATE files SET status = 'failed', reason_code = $2, reason = $3, updated_at = now()"
        " WHERE id = $1 AND ($4::int IS NULL OR " + _HELD + "$4)",
        file_id,
        code,
        reason,
        attempt,
    )
    return result != "UPDATE 0"


async def stored_copy(conn: Connection, session_id: uuid.UUID, sha256: str) -> Record | None:
    return await conn.fetchrow(
        "SELECT id, relative_path FROM files"
        " WHERE session_id = $1 AND sha256 = $2 AND status = 'uploaded'",
        session_id,
        sha256,
    )


async def finish_upload(
    conn: Connection,
    file_id: uuid.UUID,
    *,
    attempt: int,
    size: int,
    sha256: str,
    content_type: str,
    object_key: str,
) -> Record | None:
    """The file uploaded (its bytes at ``object_key``), or skipped as a duplicate of the
    session's stored copy of the same bytes; its row as it now stands, or None if this upload
    no longer holds it. Two copies
    finishing at the same moment both find none: the later one is stopped by the
    ``files_one_copy`` index (``UniqueViolationError``)."""
    return await conn.fetchrow(
        "WITH copy AS (SELECT c.id FROM files f JOIN files c ON c.session_id = f.session_id"
        "  WHERE f.id = $1 AND c.sha256 = $3 AND c.status = 'uploaded')"
        " UPDATE files SET status = CASE WHEN (SELECT id FROM copy) IS NULL"
        "  THEN 'uploaded' ELSE 'skipped_duplicate' END,"
        " duplicate_of = (SELECT id FROM copy), received_bytes = $2, sha256 = $3,"
        " object_key = CASE WHEN (SELECT id FROM copy) IS NULL THEN $6 END,"
        f" content_type = $4, updated_at = now() WHERE id = $1 AND {_HELD}$5 RETURNING *",
        file_id,
        size,
        sha256,
        content_type,
        attempt,
        object_key,
    )


async def skip_as_duplicate(
    conn: Connection, file_id: uuid.UUID, *, attempt: int, duplicate_of: uuid.UUID, sha256: str
) -> Record | None:
    """The file skipped as a copy of another; its row as it now stands (None: see above)."""
    return await conn.fetchrow(
        "UPDATE files SET status = 'skipped_duplicate', duplicate_of = $2, sha256 = $3,"
        f" updated_at = now() WHERE id = $1 AND {_HELD}$4 RETURNING *",
        file_id,
        duplicate_of,
        sha256,
        attempt,
    )


STALLED_AFTER = 15 * 60
"""Seconds without progress after which an upload is taken for given up: a plain one by the
periodic sweep (its client or process died), a resumable one when its session is submitted."""


async def abandon_idle_tus(tx: Transaction, session_id: uuid.UUID, *, idle_seconds: int) -> int:
    """Resumable uploads of a session being submitted that no request writes to and that had
    no bytes for ``idle_seconds``: their files fail, and the uploads expire now (the expiry
    sweep removes what they stored). How many."""
    abandoned = await tx.fetch(
        "UPDATE tus_uploads t SET expires_at = now() FROM files f"
        " WHERE t.session_id = $1 AND f.id = t.file_id AND f.status = 'uploading'"
        " AND f.updated_at < now() - make_interval(secs => $2)"
        " AND NOT coalesce(t.writing_until > now(), false) RETURNING t.file_id",
        session_id,
        idle_seconds,
    )
    await tx.execute(
        "UPDATE files SET status = 'failed', reason_code = 'upload_abandoned',"
        " reason = 'The resumable upload was left unfinished when the session was submitted.',"
        " updated_at = now() WHERE id = ANY($1::uuid[])",
        [row["file_id"] for row in abandoned],
    )
    return len(abandoned)


async def fail_stalled(conn: Connection, *, idle_seconds: int) -> list[Record]:
    """Fail uploads that stopped making progress (their connection or process died); each
    one's project, id and attempt.

    A resumable (tus) upload may pause for as long as it has not expired; it is not touched.
    One whose bytes all arrived, never recorded and whose client has not asked for its offset
    since (which records it) is failed as ``upload_unrecorded``.
    """
    whole = "EXISTS (SELECT 1 FROM tus_uploads t WHERE t.file_id = files.id)"  # finished, below
    return await conn.fetch(
        "UPDATE files SET status = 'failed', updated_at = now(),"
        f" reason_code = CASE WHEN {whole} THEN 'upload_unrecorded' ELSE 'upload_interrupted' END,"
        f" reason = CASE WHEN {whole}"
        "  THEN 'The whole file arrived but could not be recorded; upload it again.'"
        "  ELSE 'The upload stopped before the whole file arrived.' END"
        " WHERE status = 'uploading' AND updated_at < now() - make_interval(secs => $1)"
        " AND NOT EXISTS (SELECT 1 FROM tus_uploads t"
        "  WHERE t.file_id = files.id AND t.received < t.length)"
        " RETURNING project_id, id, attempts",
        idle_seconds,
    )


async def submit(tx: Transaction, session_id: uuid.UUID) -> None:
    await tx.execute(
        "UPDATE files SET status = 'failed', reason_code = 'not_uploaded',"
        " reason = 'The file was not uploaded before the session was submitted.',"
        " updated_at = now() WHERE session_id = $1 AND status = 'queued'",
        session_id,
    )
    await tx.execute("UPDATE sessions SET submitted_at = now() WHERE id = $1", session_id)
