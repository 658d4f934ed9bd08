"""Near-duplicate look-up at library scale: the band index against a scan, in one run.

    uv run python -m bench.dedup_scale [--sizes 10000 100000 1000000] [--queries 400]

One project of N synthetic media (uniformly random 64-bit pHash and dHash: the hardest case
for the band index, whose bands are then as selective as they can be and no more) in a fresh
database with the dedup service's own schema. For each N, the service's own query
(``store.near``, through the band indexes) and a linear scan of the project with the same
distance test are timed on the same query hashes: half of them copies of a stored hash with
up to the dHash distance of bits flipped (a near duplicate exists), half random (none does).
Every scanned query's answer must equal the index's: the index may not miss what the scan
finds. Latencies are p50 and p99 over the queries, on a warm cache.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Iterator
from typing import Any

import asyncpg

from darkroom.common.db import Database
from darkroom.common.events import MediaRef
from darkroom.common.settings import DedupSettings
from darkroom.dedup import store
from darkroom.dedup.bands import keys, signed

from .stack import fresh_database

SCAN = (
    "SELECT media_id FROM media WHERE project_id = $1"
    " AND bit_count((dhash # $2)::bit(64)) <= $4 AND bit_count((phash # $3)::bit(64)) <= $5"
)
COPY_BATCH = 100_000


def _rows(
    project: uuid.UUID, count: int, rng: random.Random, stored: list[tuple[int, int]]
) -> Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
    """Rows of ``media`` and of ``media_bands`` for ``count`` synthetic media."""
    ref = MediaRef(
        media_id=uuid.uuid4(),
        project_id=project,
        session_id=uuid.uuid4(),
        object_key="synthetic",
        relative_path="synthetic.jpg",
        ai_tagging=False,
        classification="UNCLASSIFIED",
    ).model_dump_json()
    for _ in range(count):
        phash, dhash = rng.getrandbits(64), rng.getrandbits(64)
        if len(stored) < 10_000:
            stored.append((phash, dhash))
        media_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        medium = (
            media_id,
            project,
            ref,
            f"{rng.getrandbits(256):064x}",
            signed(phash),
            signed(dhash),
            "ok",
        )
        yield (
            medium,
            [(project, key, media_id, signed(dhash), signed(phash)) for key in keys(dhash)],
        )


async def fill(
    conn: asyncpg.Connection,
    project: uuid.UUID,
    count: int,
    rng: random.Random,
    stored: list[tuple[int, int]],
) -> None:
    rows = _rows(project, count, rng, stored)
    while batch := [row for _, row in zip(range(COPY_BATCH), rows, strict=False)]:
        await conn.copy_records_to_table(
            "media",
            records=[medium for medium, _ in batch],
            columns=("media_id", "project_id", "ref", "sha256", "phash", "dhash", "outcome"),
        )
        await conn.copy_records_to_table(
            "media_bands",
            records=[band for _, bands in batch for band in bands],
            columns=("project_id", "band", "media_id", "dhash", "phash"),
        )
    await conn.execute("VACUUM ANALYZE media")
    await conn.execute("VACUUM ANALYZE media_bands")


def _flip(value: int, bits: int, rng: random.Random) -> int:
    for position in rng.sample(range(64), bits):
        value ^= 1 << position
    return value


def queries(
    stored: list[tuple[int, int]], count: int, dhash_distance: int, rng: random.Random
) -> list[tuple[int, int]]:
    made = []
    for number in range(count):
        if number % 2:
            made.append((rng.getrandbits(64), rng.getrandbits(64)))
        else:
            phash, dhash = rng.choice(stored)
            made.append(
                (
                    _flip(phash, rng.randint(0, 6), rng),
                    _flip(dhash, rng.randint(0, dhash_distance), rng),
                )
            )
    return made


async def timed(pending: Awaitable[Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = await pending
    return time.perf_counter() - start, result


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def measure(
    conn: asyncpg.Connection,
    project: uuid.UUID,
    asked: list[tuple[int, int]],
    scans: int,
    settings: DedupSettings,
) -> dict[str, float]:
    d, p = settings.near_dhash_distance, settings.near_phash_distance
    for phash, dhash in asked[:20]:  # warm the cache and the plans
        await store.near(conn, project, dhash, phash, d, p)
    indexed, scanned, found = [], [], 0
    for number, (phash, dhash) in enumerate(asked):
        took, rows = await timed(store.near(conn, project, dhash, phash, d, p))
        indexed.append(took)
        found += bool(rows)
        if number < scans:
            took, scan = await timed(conn.fetch(SCAN, project, signed(dhash), signed(phash), d, p))
            scanned.append(took)
            by_index = {row["media_id"] for row in rows}
            by_scan = {row["media_id"] for row in scan}
            if by_index != by_scan:
                raise SystemExit(f"the index found {by_index}, the scan {by_scan}")
    return {
        "index_p50": _percentile(indexed, 0.5),
        "index_p99": _percentile(indexed, 0.99),
        "scan_p50": _percentile(scanned, 0.5),
        "scan_p99": _percentile(scanned, 0.99),
        "found": found / len(asked),
    }


async def run(sizes: list[int], count: int, scans: int) -> dict[int, dict[str, float]]:
    settings = DedupSettings()
    rng = random.Random(7)
    project = uuid.uuid4()
    stored: list[tuple[int, int]] = []
    figures: dict[int, dict[str, float]] = {}
    async with fresh_database("dedup_scale") as url:
        database = Database(url, max_size=2)
        await database.connect()
        try:
            await database.migrate(("darkroom.dedup",))
            async with database.pool.acquire() as conn:
                # another project's media share the table, as in a real deployment
                await fill(conn, uuid.uuid4(), 50_000, rng, [])
                have = 0
                for size in sorted(sizes):
                    start = time.monotonic()
                    await fill(conn, project, size - have, rng, stored)
                    have = size
                    print(f"{size:,} media stored in {time.monotonic() - start:.0f} s", flush=True)
                    asked = queries(stored, count, settings.near_dhash_distance, rng)
                    figures[size] = await measure(conn, project, asked, scans, settings)
                    print(_row(size, figures[size]), flush=True)
        finally:
            await database.close()
    return figures


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def _row(size: int, f: dict[str, float]) -> str:
    return (
        f"| {size:,} | {_ms(f['index_p50'])} | {_ms(f['index_p99'])} | {_ms(f['scan_p50'])} "
        f"| {_ms(f['scan_p99'])} | {f['scan_p50'] / f['index_p50']:.0f}x | {f['found']:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=400, help="look-ups per size")
    parser.add_argument("--scans", type=int, default=30, help="of them also done by a scan")
    args = parser.parse_args()
    print(
        "| media in the project | index p50 (ms) | index p99 (ms) | scan p50 (ms) "
        "| scan p99 (ms) | scan ÷ index (p50) | queries with a match |"
    )
    print("|---|---|---|---|---|---|---|")
    figures = asyncio.run(run(args.sizes, args.queries, args.scans))
    smallest, largest = min(figures), max(figures)
    growth = figures[largest]["index_p50"] / figures[smallest]["index_p50"]
    speedup = figures[largest]["scan_p50"] / figures[largest]["index_p50"]
    print(
        f"\nindex p50 at {largest:,} ÷ at {smallest:,}: {growth:.2f} (target ≤ 2); "
        f"scan ÷ index at {largest:,}: {speedup:.0f}x (target ≥ 50x)"
    )


if __name__ == "__main__":
    main()
