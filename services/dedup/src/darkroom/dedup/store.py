"""The dedup service's SQL: media with their hashes and groups, and the review decisions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from darkroom.common.db import Transaction
from darkroom.common.events import MediaRef
from darkroom.dedup.bands import keys, probe_keys, signed, unsigned
from darkroom.dedup.hashing import Hashes

# Advisory locks of this service live under this first key; the second is the project's.
PROJECT_LOCK = 0x64656475  # "dedu"


@dataclass(frozen=True)
class Member:
    """A stored medium and where it stands."""

    media_id: uuid.UUID
    ref: MediaRef
    sha256: str
    phash: int | None
    dhash: int | None
    outcome: str
    reason_code: str | None
    reason: str | None
    group_id: uuid.UUID | None
    closest_media_id: uuid.UUID | None
    similarity: float | None
    exact: bool


@dataclass(frozen=True)
class Candidate:
    media_id: uuid.UUID
    group_id: uuid.UUID | None
    exact: bool
    distance: int  # pHash + dHash distance; 0 for the same bytes


async def lock_project(tx: Transaction, project_id: uuid.UUID) -> None:
    """Serialise grouping within a project until the transaction ends.

    Two replicas handling two copies of one picture at the same moment: the second waits,
    then sees the first's committed row and joins its group rather than starting another.
    """
    await tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))", PROJECT_LOCK, str(project_id)
    )


async def save(
    tx: Transaction,
    ref: MediaRef,
    sha256: str,
    hashes: Hashes | None,
    failure: tuple[str, str] | None,
) -> None:
    """Record a medium's hashes (or why it has none); its group is kept on a new reading."""
    phash = hashes.phash if hashes else None
    dhash = hashes.dhash if hashes else None
    await tx.execute(
        "INSERT INTO media (media_id, project_id, ref, sha256, phash, dhash, outcome,"
        " reason_code, reason) VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (media_id) DO UPDATE SET ref = EXCLUDED.ref, sha256 = EXCLUDED.sha256,"
        " phash = EXCLUDED.phash, dhash = EXCLUDED.dhash, outcome = EXCLUDED.outcome,"
        " reason_code = EXCLUDED.reason_code, reason = EXCLUDED.reason, updated_at = now()",
        ref.media_id,
        ref.project_id,
        ref.model_dump_json(),
        sha256,
        signed(phash) if phash is not None else None,
        signed(dhash) if dhash is not None else None,
        "failed" if failure else "ok",
        failure[0] if failure else None,
        failure[1] if failure else None,
    )
    await tx.execute("DELETE FROM media_bands WHERE media_id = $1", ref.media_id)
    if phash is not None and dhash is not None and failure is None:
        await tx.executemany(
            "INSERT INTO media_bands (project_id, band, media_id, dhash, phash)"
            " VALUES ($1, $2, $3, $4, $5)",
            [
                (ref.project_id, key, ref.media_id, signed(dhash), signed(phash))
                for key in keys(dhash)
            ],
        )


async def member(tx: Transaction, project_id: uuid.UUID, media_id: uuid.UUID) -> Member | None:
    row = await tx.fetchrow(
        "SELECT * FROM media WHERE project_id = $1 AND media_id = $2", project_id, media_id
    )
    return _member(row) if row else None


async def members(tx: Transaction, group_id: uuid.UUID) -> list[Member]:
    rows = await tx.fetch("SELECT * FROM media WHERE group_id = $1 ORDER BY media_id", group_id)
    return [_member(row) for row in rows]


async def candidates(
    tx: Transaction,
    medium: Member,
    *,
    dhash_distance: int,
    phash_distance: int,
) -> list[Candidate]:
    """The project's media with the same bytes (hashed or not), or within both distances of
    ``medium``.

    Near ones are found through the band indexes (``bands.probes``), never by a scan.
    """
    project_id = medium.ref.project_id
    found = {
        row["media_id"]: Candidate(row["media_id"], row["group_id"], True, 0)
        for row in await tx.fetch(
            "SELECT media_id, group_id FROM media"
            " WHERE project_id = $1 AND sha256 = $2 AND media_id <> $3",
            project_id,
            medium.sha256,
            medium.media_id,
        )
    }
    if medium.dhash is not None and medium.phash is not None:
        for row in await near(
            tx, project_id, medium.dhash, medium.phash, dhash_distance, phash_distance
        ):
            if row["media_id"] != medium.media_id and row["media_id"] not in found:
                found[row["media_id"]] = Candidate(
                    row["media_id"], row["group_id"], False, row["dd"] + row["pd"]
                )
    return list(found.values())


async def near(
    tx: Transaction,
    project_id: uuid.UUID,
    dhash: int,
    phash: int,
    dhash_distance: int,
    phash_distance: int,
) -> list[Any]:
    """Rows (``media_id``, ``group_id``, ``dd``, ``pd``) within both distances, by the bands."""
    return list(
        await tx.fetch(
            "SELECT media.media_id, media.group_id, near.dd, near.pd FROM ("
            "  SELECT DISTINCT media_id, dd, pd FROM ("
            "   SELECT media_id, bit_count((dhash # $3)::bit(64)) AS dd,"
            "    bit_count((phash # $4)::bit(64)) AS pd"
            "   FROM media_bands WHERE project_id = $1 AND band = ANY($2)"
            "  ) AS banded WHERE dd <= $5 AND pd <= $6"
            " ) AS near JOIN media USING (media_id)",
            project_id,
            probe_keys(dhash, dhash_distance),
            signed(dhash),
            signed(phash),
            dhash_distance,
            phash_distance,
        )
    )


async def partners(tx: Transaction, project_id: uuid.UUID, media_id: uuid.UUID) -> set[uuid.UUID]:
    """The media a user said ``media_id`` is not a duplicate of."""
    rows = await tx.fetch(
        "SELECT CASE WHEN media_a = $2 THEN media_b ELSE media_a END AS other"
        " FROM not_duplicates WHERE project_id = $1 AND (media_a = $2 OR media_b = $2)",
        project_id,
        media_id,
    )
    return {row["other"] for row in rows}


async def groups_of(tx: Transaction, media_ids: set[uuid.UUID]) -> set[uuid.UUID]:
    rows = await tx.fetch(
        "SELECT DISTINCT group_id FROM media WHERE media_id = ANY($1) AND group_id IS NOT NULL",
        list(media_ids),
    )
    return {row["group_id"] for row in rows}


async def not_duplicates(
    tx: Transaction, project_id: uuid.UUID, one: uuid.UUID, other: uuid.UUID
) -> None:
    a, b = sorted((one, other))
    await tx.execute(
        "INSERT INTO not_duplicates (project_id, media_a, media_b) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING",
        project_id,
        a,
        b,
    )


async def place(
    tx: Transaction,
    media_id: uuid.UUID,
    group_id: uuid.UUID | None,
    closest: uuid.UUID | None = None,
    similarity: float | None = None,
    exact: bool = False,
) -> None:
    """Put a medium in a group (or none) with its closest member."""
    await tx.execute(
        "UPDATE media SET group_id = $2, closest_media_id = $3, similarity = $4, exact = $5,"
        " updated_at = now() WHERE media_id = $1",
        media_id,
        group_id,
        closest,
        similarity,
        exact,
    )


def _member(row: Any) -> Member:
    return Member(
        media_id=row["media_id"],
        ref=MediaRef.model_validate_json(row["ref"]),
        sha256=row["sha256"],
        phash=unsigned(row["phash"]) if row["phash"] is not None else None,
        dhash=unsigned(row["dhash"]) if row["dhash"] is not None else None,
        outcome=row["outcome"],
        reason_code=row["reason_code"],
        reason=row["reason"],
        group_id=row["group_id"],
        closest_media_id=row["closest_media_id"],
        similarity=row["similarity"],
        exact=row["exact"],
    )
