"""Near-duplicate accuracy on a slice of the labelled corpus set, at the settings' thresholds.

The slice holds the corpus's hardest different pictures — the nearest pairs of different
photos by either hash, shots from one camera, and three resolutions of one frame beside
another photo of the same man — with every kind of copy of each. The whole set is measured
by ``bench/dedup_accuracy.py`` (figures in ``bench/RESULTS.md``).
"""

from __future__ import annotations

from bench import dedup_set
from bench.dedup_accuracy import build, figures
from darkroom.common.settings import DedupSettings

HARDEST = (
    "cameras/jpg/FujiFilm FinePixS5500.jpg",  # pHash 8 from the Kodak
    "cameras/jpg/Kodak PIXPRO FZ201.jpg",
    "cameras/jpg/Issue 609.jpg",  # dHash 9 from the Kodak
    "cameras/jpg/Issue 80.jpg",  # dHash 8 from the Kodak
    "cameras/jpg/Issue 600 (1).jpg",
    "cameras/jpg/Olympus FE230-X790.jpg",
    "cameras/jpg/FujiFilm FinePixS1Pro (1).jpg",  # one camera, three shots
    "cameras/jpg/FujiFilm FinePixS1Pro (3).jpg",
    "cameras/jpg/FujiFilm FinePixS1Pro (5).jpg",
    "cameras/heic/IMG_1034.heic",
    "cameras/webp/Alpha Lossless (2).webp",  # transparency
    "cameras/tif/Issue 151.tif",
    "faces/obama.jpg",
    "faces/obama-240p.jpg",  # the same frame as the 720p: one family
    "faces/obama-720p.jpg",
)


def test_near_duplicates_are_found_and_different_photos_kept_apart() -> None:
    settings = DedupSettings()
    hashed = build(dedup_set.originals(only=HARDEST))
    assert len(set(hashed.families.tolist())) == len(HARDEST) - 1
    assert set(hashed.kinds) == {"original", *dedup_set.KINDS}
    found = figures(hashed, settings.near_dhash_distance, settings.near_phash_distance)
    assert found.wrong == []  # not one pair of different photos called duplicates
    assert found.precision >= 0.99
    assert found.copies_recall >= 0.95, found.missed
