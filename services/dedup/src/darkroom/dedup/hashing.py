"""Perceptual hashes of a picture, run in a worker process: bytes in, two 64-bit hashes out.

pHash (the low frequencies of a 32x32 DCT) and dHash (the gradients of a 9x8 grid), both from
``imagehash``, of the picture decoded at reduced size (``imaging.fitted``), upright, in grey.
A video is hashed by its poster frame. A picture with almost no detail (a black frame, a blank
page) has no near duplicates worth the name: every such picture would hash alike, so it gets
no hashes and is matched by its bytes only.
"""

from __future__ import annotations

from dataclasses import dataclass

import imagehash
from PIL import Image, ImageStat

from darkroom.common.imaging import fitted, poster_frame

DECODE_SIZE = 256  # imagehash shrinks to 32x32 and 9x8; a 256 px decode keeps JPEG's 1/8 draft
FLAT_STDDEV = 2.0  # grey levels: a picture flatter than this carries no pattern to compare


@dataclass(frozen=True)
class Hashes:
    """Unsigned 64-bit perceptual hashes; ``None`` for a picture too flat to compare."""

    phash: int | None
    dhash: int | None


def picture_hashes(data: bytes) -> Hashes:
    """The hashes of an image file's picture; raises ``UnreadableMedia`` for a broken one."""
    return _hashes(fitted(data, DECODE_SIZE))


def video_hashes(path: str) -> Hashes:
    """The hashes of a video's poster frame."""
    return _hashes(fitted(poster_frame(path, None), DECODE_SIZE, orientation=1))


def distance(a: int, b: int) -> int:
    """Hamming distance of two 64-bit hashes."""
    return (a ^ b).bit_count()


def _hashes(image: Image.Image) -> Hashes:
    grey = image.convert("L")  # transparency dropped, as in a copy saved without it
    if ImageStat.Stat(grey).stddev[0] < FLAT_STDDEV:
        return Hashes(None, None)
    return Hashes(_int(imagehash.phash(grey)), _int(imagehash.dhash(grey)))


def _int(value: imagehash.ImageHash) -> int:
    return int(str(value), 16)
