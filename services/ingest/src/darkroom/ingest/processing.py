"""What became of each medium: the processing steps' results, and the end of a session.

The gateway keeps the latest result of each step (metadata, duplicates, tags) for each of its
media. When every medium of a submitted session has a result from every step, ``ok`` or
``failed``, the session is processed: one ``session.processed.v1`` goes out through the
outbox, with what was found (a session that sent nothing on is processed when it is
submitted). A later result (a reprocessed medium, a person named) updates
the medium; the session is announced once.
"""

from __future__ import annotations

import json
import uuid

from darkroom.common.db import Transaction, publish
from darkroom.common.events import (
    FileOutcome,
    MediaDuplicates,
    MediaMetadata,
    MediaTags,
    SessionProcessed,
    StepResult,
)
from darkroom.ingest import store

SOURCE = "darkroom/ingest"
STEPS: dict[type[StepResult], str] = {
    MediaMetadata: "metadata",
    MediaDuplicates: "duplicates",
    MediaTags: "tags",
}


async def on_result(result: StepResult, tx: Transaction) -> None:
    """Keep a step's result for one of our media; finish its session if it was the last."""
    session_id = await tx.fetchval(
        "SELECT session_id FROM files WHERE id = $1 AND project_id = $2",
        result.media.media_id,
        result.media.project_id,
    )
    if session_id is None:  # not a medium of this gateway (or of that project): nothing to keep
        return
    await tx.execute(
        "INSERT INTO media_steps (media_id, step, outcome, reason_code, reason, result)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb) ON CONFLICT (media_id, step) DO UPDATE SET"
        " outcome = EXCLUDED.outcome, reason_code = EXCLUDED.reason_code,"
        " reason = EXCLUDED.reason, result = EXCLUDED.result, updated_at = now()",
        result.media.media_id,
        STEPS[type(result)],
        result.outcome.value,
        result.reason_code,
        result.reason,
        result.model_dump_json(),
    )
    await finish(tx, session_id)


async def finish(tx: Transaction, session_id: uuid.UUID) -> None:
    """Announce the session processed if it is submitted and every uploaded medium has every
    step's result (at once for a session that sent nothing on)."""
    session = await store.session_for_update(tx, session_id)
    if session is None or session["submitted_at"] is None or session["processed_at"]:
        return
    waiting = await tx.fetchval(
        "SELECT count(*) FROM files f WHERE f.session_id = $1 AND f.status = 'uploaded'"
        " AND (SELECT count(*) FROM media_steps s WHERE s.media_id = f.id) < $2",
        session_id,
        len(STEPS),
    )
    if waiting:
        return
    rows = await tx.fetch(
        "SELECT f.relative_path, s.step, s.outcome, s.reason, s.result FROM files f"
        " JOIN media_steps s ON s.media_id = f.id WHERE f.session_id = $1 AND f.status = 'uploaded'"
        " ORDER BY f.relative_path, s.step",
        session_id,
    )
    media: set[str] = set()
    duplicates = 0
    # dicts as ordered sets: first seen, first listed
    tags: dict[str, None] = {}
    persons: dict[str, None] = {}
    countries: dict[str, None] = {}
    failed: dict[str, dict[str, None]] = {}  # each medium a step failed on: its reasons
    for row in rows:
        media.add(row["relative_path"])
        found = json.loads(row["result"])
        if row["outcome"] == "failed":
            failed.setdefault(row["relative_path"], {})[row["reason"] or ""] = None
        elif row["step"] == "duplicates":
            duplicates += found.get("group_id") is not None
        elif row["step"] == "metadata" and found.get("country_code"):
            countries[found["country_code"]] = None
        elif row["step"] == "tags":
            for tag in found.get("tags", []):
                if tag["source"] == "ai.face" and tag["name"].startswith("person:"):
                    persons[tag["name"].removeprefix("person:")] = None
                else:
                    tags[tag["name"]] = None
    await tx.execute("UPDATE sessions SET processed_at = now() WHERE id = $1", session_id)
    emails, webhooks = await store.audience(tx, session["project_id"])
    await publish(
        tx,
        SessionProcessed(
            session_id=session_id,
            project_id=session["project_id"],
            view_name=session["view_name"],
            source=session["source"],
            uploader_email=session["uploader_email"],
            recipients=emails,
            webhooks=webhooks,
            digest_minutes=session["digest_minutes"],
            processed=len(media),
            duplicates=duplicates,
            tags=list(tags),
            persons=list(persons),
            countries=list(countries),
            failed=[
                FileOutcome(relative_path=path, reason=" ".join(r for r in reasons if r))
                for path, reasons in failed.items()
            ],
        ),
        source=SOURCE,
    )
