"""How a resumable upload's bytes are cut into S3 parts."""

from __future__ import annotations

import random

import pytest

from darkroom.common.blobs import PART_SIZE
from darkroom.ingest.tus import _Gathered


@pytest.mark.parametrize("seed", range(5))
def test_chunks_of_any_size_become_whole_parts_and_a_rest_in_order(seed: int) -> None:
    rng = random.Random(seed)
    data = rng.randbytes(3 * PART_SIZE + rng.randrange(PART_SIZE))
    gathered, parts, at = _Gathered(), [], 0
    while at < len(data):  # from single bytes to chunks of more than two parts
        size = rng.choice([1, 7, 65536, PART_SIZE - 1, PART_SIZE, 2 * PART_SIZE + 3])
        parts += gathered.add(data[at : at + size])
        at += size
    assert [len(part) for part in parts] == [PART_SIZE] * 3
    assert b"".join(parts) + gathered.rest() == data


def test_nothing_gathered_leaves_no_rest() -> None:
    gathered = _Gathered()
    assert gathered.add(b"") == []
    assert gathered.rest() == b""
