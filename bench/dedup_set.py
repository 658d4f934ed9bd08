"""A labelled set for near-duplicate detection, built from the corpus photos.

Each corpus picture is a *family*: the file itself and the copies a user would call the same
photo — JPEG at quality 50-95, resized to 25-100 %, converted to PNG, WebP and HEIC, EXIF
stripped, brightness changed by up to ±10 %, cropped by up to 3 %. Pictures of different
families are different photos, including the corpus's near neighbours (the same camera and
scene). A few corpus files are the same picture under two names; they are one family
(``SAME_PICTURE``).

Copies are made from the picture as a viewer shows it (upright, in sRGB), capped at
``BASE_SIZE`` pixels on its long side (HEIC
encoding of a 12 MP photo takes seconds; the hashes look at 256 px anyway), with a seeded
random generator, so a run is repeatable.
"""

from __future__ import annotations

import io
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageEnhance

from darkroom.common.imaging import UnreadableMedia, fitted, register_heif_opener

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
FOLDERS = (
    "cameras/jpg",
    "cameras/png",
    "cameras/webp",
    "cameras/heic",
    "cameras/tif",
    "exif-samples/jpg",
    "exif-samples/heic",
    "exif-samples/tiff",
    "faces",
)
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".tif", ".tiff"}
BASE_SIZE = 2048
SMALLEST = 64  # pictures smaller than this on a side are icons, not photos
KINDS = ("jpeg", "resize", "png", "webp", "heic", "exif_stripped", "brightness", "crop")
# Corpus files that are one picture under two names (the same shot, re-encoded or resized by
# the projects the corpus comes from). Found by looking at every corpus pair within the
# distances, and by eye.
SAME_PICTURE = (
    ("cameras/jpg/Epson PhotoPC 3000Z.jpg", "cameras/jpg/Seiko Epson PhotoPC 3000Z.jpg"),
    ("cameras/jpg/Nikon D1X.jpg", "cameras/webp/Nikon D1X.webp"),
    ("cameras/webp/Alpha Lossless (2).webp", "cameras/webp/Alpha Lossy (2).webp"),
    ("faces/obama-240p.jpg", "faces/obama-480p.jpg"),
    ("faces/obama-240p.jpg", "faces/obama-720p.jpg"),
    ("faces/obama-240p.jpg", "faces/obama-1080p.jpg"),
)


@dataclass(frozen=True)
class Item:
    family: str  # the corpus file the picture comes from (first of its SAME_PICTURE names)
    kind: str  # "original" or one of KINDS
    data: bytes


def originals(limit: int | None = None, only: tuple[str, ...] = ()) -> list[Path]:
    """The corpus pictures, in a stable order (``only``: names relative to the corpus)."""
    found = [
        path
        for folder in FOLDERS
        for path in sorted((CORPUS / folder).iterdir())
        if path.is_file() and path.suffix.lower() in SUFFIXES
    ]
    if only:
        found = [path for path in found if _name(path) in only]
    return found[:limit]


def family_of(path: Path) -> str:
    name = _name(path)
    for first, *others in SAME_PICTURE:
        if name in others:
            return first
    return name


def items(path: Path, seed: int = 1) -> list[Item]:
    """The original and its copies; no items for a file that is no usable photo."""
    register_heif_opener()
    data = path.read_bytes()
    try:
        picture = fitted(data, BASE_SIZE)  # as the user sees it: upright, in sRGB
    except (UnreadableMedia, Image.DecompressionBombError):
        return []
    if min(picture.size) < SMALLEST:
        return []
    picture.info.clear()  # the pixels are upright now: no copy may carry the old EXIF turn
    family = family_of(path)
    rng = random.Random(f"{seed}:{family}")
    made = [Item(family, "original", data)]
    made += [Item(family, kind, copy) for kind, copy in _copies(path, data, picture, rng)]
    return made


def _copies(
    path: Path, data: bytes, picture: Image.Image, rng: random.Random
) -> Iterator[tuple[str, bytes]]:
    width, height = picture.size
    yield "jpeg", _encode(picture, "JPEG", quality=rng.randint(50, 95))
    scale = rng.uniform(0.25, 1.0)
    smaller = picture.resize((max(1, round(width * scale)), max(1, round(height * scale))))
    yield "resize", _encode(smaller, "JPEG", quality=85)
    yield "png", _encode(picture, "PNG")
    yield "webp", _encode(picture, "WEBP", quality=80)
    yield "heic", _encode(picture, "HEIF", quality=80)
    yield "exif_stripped", _stripped(path, data, picture)
    factor = rng.choice((-1, 1)) * rng.uniform(0.05, 0.10)
    yield "brightness", _encode(ImageEnhance.Brightness(picture).enhance(1 + factor), "JPEG")
    share = rng.uniform(0.01, 0.03)
    cut_x, cut_y = round(width * share), round(height * share)
    left, top = rng.randint(0, cut_x), rng.randint(0, cut_y)
    cropped = picture.crop((left, top, width - cut_x + left, height - cut_y + top))
    yield "crop", _encode(cropped, "JPEG", quality=90)


def _stripped(path: Path, data: bytes, picture: Image.Image) -> bytes:
    """A JPEG without its EXIF, pixels untouched (as ``exiftool -all=`` does); others re-saved.

    The orientation goes with the EXIF: a stripped photo that relied on it is shown turned.
    """
    if data[:2] == b"\xff\xd8":
        return without_exif(data)
    return _encode(picture, "JPEG", quality=95)


def without_exif(data: bytes) -> bytes:
    """The same JPEG with its EXIF (APP1) segment removed, the rest byte for byte."""
    out, i = bytearray(data[:2]), 2
    while i + 4 <= len(data) and data[i] == 0xFF and data[i + 1] not in (0xDA, 0xD9):
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        segment = data[i : i + 2 + length]
        if not (data[i + 1] == 0xE1 and segment[4:10] == b"Exif\x00\x00"):
            out += segment
        i += 2 + length
    return bytes(out + data[i:])


def _encode(picture: Image.Image, format: str, **options: int) -> bytes:
    if format == "JPEG" and picture.mode != "RGB":
        picture = picture.convert("RGB")  # JPEG has no alpha: dropped, as Pillow does
    out = io.BytesIO()
    picture.save(out, format, **options)
    return out.getvalue()


def _name(path: Path) -> str:
    return re.sub(r"^.*?/corpus/", "", path.as_posix())
