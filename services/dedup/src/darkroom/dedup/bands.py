"""Multi-index hashing: find every stored hash within a distance without scanning them all.

A 64-bit hash is split into ``len(WIDTHS)`` bands, and each band's value is indexed. If two
hashes differ in at most ``d`` bits, one band at least differs in at most ``d // len(WIDTHS)``
bits (pigeonhole: were every band further, the hashes would differ in more than ``d``). So the
candidates are the hashes whose band ``i`` equals one of the values within that radius of
ours, for some ``i``; the exact distance is then checked on those few (Norouzi, Punjani and
Fleet, "Fast search in Hamming space with multi-index hashing", CVPR 2012).

Three bands of 21-22 bits suit a project of a million pictures: a band value is shared by
about one stored hash in two million, and a radius of 2 (distance 8) probes 718 values.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from itertools import combinations

WIDTHS = (21, 21, 22)
SHIFTS = (0, 21, 42)
KEY_SHIFT = max(WIDTHS)  # an index key: band number above the band's value


def bands(value: int) -> tuple[int, ...]:
    """The band values of an unsigned 64-bit hash."""
    return tuple(
        (value >> shift) & ((1 << width) - 1) for shift, width in zip(SHIFTS, WIDTHS, strict=True)
    )


def probes(value: int, distance: int) -> list[list[int]]:
    """For each band, the values a stored hash within ``distance`` may have there."""
    radius = distance // len(WIDTHS)
    return [
        list(_ball(band, width, radius)) for band, width in zip(bands(value), WIDTHS, strict=True)
    ]


def keys(value: int) -> list[int]:
    """The index keys of a hash: each band's value tagged with its band number."""
    return [_key(number, band) for number, band in enumerate(bands(value))]


def probe_keys(value: int, distance: int) -> list[int]:
    """The index keys to look up for every stored hash within ``distance``."""
    radius = distance // len(WIDTHS)
    return [
        number << KEY_SHIFT | (band ^ mask)
        for number, (band, width) in enumerate(zip(bands(value), WIDTHS, strict=True))
        for mask in _masks(width, radius)
    ]


def _key(number: int, band: int) -> int:
    return number << KEY_SHIFT | band


def _ball(value: int, width: int, radius: int) -> Iterator[int]:
    """Every ``width``-bit value within ``radius`` bits of ``value``, ``value`` first."""
    return (value ^ mask for mask in _masks(width, radius))


@functools.cache
def _masks(width: int, radius: int) -> tuple[int, ...]:
    """Every ``width``-bit mask of at most ``radius`` bits set, fewest first."""
    return tuple(
        sum(1 << position for position in positions)
        for flips in range(radius + 1)
        for positions in combinations(range(width), flips)
    )


def signed(value: int) -> int:
    """An unsigned 64-bit hash as PostgreSQL's signed ``bigint``."""
    return value - (1 << 64) if value >= 1 << 63 else value


def unsigned(value: int) -> int:
    return value + (1 << 64) if value < 0 else value
