"""Near-duplicate accuracy on the labelled corpus set: precision and recall over pairs.

    uv run python -m bench.dedup_accuracy [--limit N] [--sweep]

Every item of ``bench.dedup_set`` (corpus pictures and their copies) is hashed by the
service's own ``picture_hashes``; every pair of items is then a duplicate or not by the
service's rule (dHash and pHash distances both within the settings' thresholds). A pair is
truly a duplicate when both items come from one family. Precision: the share of the pairs
called duplicates that are; recall: the share of true pairs called duplicates — over all pairs
(copy-to-copy included) and, the issue's figure, over each copy against its original.
``--sweep`` prints the figures for other thresholds: what the settings were chosen from.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from darkroom.common.settings import DedupSettings
from darkroom.dedup.hashing import picture_hashes

from . import dedup_set
from .dedup_set import Item


@dataclass(frozen=True)
class Hashed:
    families: np.ndarray  # family index of each item
    kinds: list[str]
    names: list[str]
    phash: np.ndarray  # uint64
    dhash: np.ndarray
    comparable: np.ndarray  # False for pictures too flat to hash


@dataclass(frozen=True)
class Figures:
    precision: float
    recall: float
    copies_recall: float  # each copy against its original
    copies_precision: float
    true_pairs: int
    false_pairs: int
    missed: list[tuple[str, str]]  # (family, kind) of copies not found
    wrong: list[tuple[str, str, int, int]]  # two families called duplicates, their distances


def build(paths: list[dedup_set.Path], workers: int = 2) -> Hashed:
    """Make every family's items and hash them, in ``workers`` processes."""
    with ProcessPoolExecutor(max_workers=workers) as pool:
        families = [made for made in pool.map(dedup_set.items, paths) if made]
        every: list[Item] = [item for family in families for item in family]
        hashes = list(pool.map(picture_hashes, [item.data for item in every], chunksize=8))
    index = {name: i for i, name in enumerate(dict.fromkeys(item.family for item in every))}
    return Hashed(
        families=np.array([index[item.family] for item in every]),
        kinds=[item.kind for item in every],
        names=[item.family for item in every],
        phash=np.array([h.phash or 0 for h in hashes], dtype=np.uint64),
        dhash=np.array([h.dhash or 0 for h in hashes], dtype=np.uint64),
        comparable=np.array([h.phash is not None for h in hashes]),
    )


def figures(hashed: Hashed, dhash_distance: int, phash_distance: int) -> Figures:
    """Precision and recall of the rule at these thresholds."""
    d = np.bitwise_count(hashed.dhash[:, None] ^ hashed.dhash[None, :])
    p = np.bitwise_count(hashed.phash[:, None] ^ hashed.phash[None, :])
    both = hashed.comparable[:, None] & hashed.comparable[None, :]
    called = (d <= dhash_distance) & (p <= phash_distance) & both
    same = hashed.families[:, None] == hashed.families[None, :]
    upper = np.triu(np.ones_like(same), k=1)
    tp = int((called & same & upper).sum())
    fp = int((called & ~same & upper).sum())
    true = int((same & upper).sum())

    originals = np.array([kind == "original" for kind in hashed.kinds])
    copies = ~originals
    # each copy against the original(s) of its family
    pair = copies[:, None] & originals[None, :] & same
    found = (called & pair).any(axis=1)
    copies_total = int(copies.sum())
    copies_found = int(found[copies].sum())
    # precision of "this copy is a duplicate of that original" against every original
    against_originals = called & copies[:, None] & originals[None, :]
    right = int((against_originals & same).sum())
    all_called = int(against_originals.sum())

    missed = [(hashed.names[i], hashed.kinds[i]) for i in np.flatnonzero(copies & ~found)]
    rows, cols = np.nonzero(called & ~same & upper)
    wrong: set[tuple[str, str, int, int]] = set()
    for i, j in zip(rows, cols, strict=True):
        first, second = sorted((hashed.names[i], hashed.names[j]))
        wrong.add((first, second, int(d[i, j]), int(p[i, j])))
    return Figures(
        precision=tp / (tp + fp) if tp + fp else 1.0,
        recall=tp / true if true else 1.0,
        copies_recall=copies_found / copies_total if copies_total else 1.0,
        copies_precision=right / all_called if all_called else 1.0,
        true_pairs=tp,
        false_pairs=fp,
        missed=missed,
        wrong=sorted(wrong),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, help="only the first N corpus pictures")
    parser.add_argument("--sweep", action="store_true", help="figures for other thresholds")
    args = parser.parse_args()
    settings = DedupSettings()
    start = time.monotonic()
    hashed = build(dedup_set.originals(args.limit))
    kinds = Counter(hashed.kinds)
    print(
        f"{len(set(hashed.families.tolist()))} families, {len(hashed.kinds)} items "
        f"({', '.join(f'{k} {n}' for k, n in kinds.items())}); built and hashed in "
        f"{time.monotonic() - start:.0f} s"
    )
    rule = (settings.near_dhash_distance, settings.near_phash_distance)
    thresholds = [rule]
    if args.sweep:
        thresholds += [
            (d, p) for d in (6, 8, 10, 12) for p in (12, 16, 20, 24, 28) if (d, p) != rule
        ]
    print(
        "| dHash ≤ | pHash ≤ | precision (all pairs) | recall (all pairs) | copies found"
        " | precision (copy → original) |"
    )
    print("|---|---|---|---|---|---|")
    for d, p in thresholds:
        f = figures(hashed, d, p)
        print(
            f"| {d} | {p} | {f.precision:.4f} ({f.false_pairs} wrong) | {f.recall:.4f} "
            f"| {f.copies_recall:.4f} | {f.copies_precision:.4f} |"
        )
    f = figures(hashed, *rule)
    by_kind = Counter(kind for _, kind in f.missed)
    print(f"\nat the settings (dHash ≤ {rule[0]}, pHash ≤ {rule[1]}):")
    print("copies missed, by kind:", dict(by_kind) or "none")
    for family, kind in f.missed:
        print(f"  missed: {kind} of {family}")
    for a, b, dd, pd in f.wrong:
        print(f"  called duplicates but different: {a} ~ {b} (dHash {dd}, pHash {pd})")


if __name__ == "__main__":
    main()
