"""What a file's first bytes say it is: checked on the real files of the shared corpus.

The corpus (``shared/corpus`` beside the repository, read-only) holds real photos from many
cameras and deliberately damaged files; ``exiftool-truth.csv`` is what ExifTool reads from each.
Only the first ``HEAD_BYTES`` of a file are read, as the gateway does while streaming.
"""

from __future__ import annotations

import csv
import random
from functools import cache
from pathlib import Path

import pytest

from darkroom.ingest.content import (
    CONTENT_TYPES,
    EXTENSIONS,
    HEAD_BYTES,
    Family,
    content_type,
    has_exif,
    sniff,
)

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"


def head(relative: str) -> bytes:
    with (CORPUS / relative).open("rb") as file:
        return file.read(HEAD_BYTES)


def corpus_files(*folders: str) -> list[str]:
    found = [
        path.relative_to(CORPUS).as_posix()
        for folder in folders
        for path in (CORPUS / folder).rglob("*")
        if path.is_file()
    ]
    return sorted(found)


# --- sniff: the corpus -------------------------------------------------------------------------

ACCEPTED_IMAGES = [
    path
    for path in corpus_files("exif-samples", "cameras", "faces")
    if EXTENSIONS.get(Path(path).suffix.lower())
    in (Family.JPEG, Family.PNG, Family.GIF, Family.HEIF)
]

# Files whose extension no policy accepts, and what their bytes really are. The ".nef" files
# are the one place where the corpus's extensions lie: they are JPEGs (JFIF with EXIF, exported
# from a Nikon D70s), not Nikon raw files, so a renamed ".jpg" of them would be accepted.
OTHER_FORMATS = {
    ".nef": Family.JPEG,
    ".webp": None,  # RIFF....WEBP, not AVI
    ".avif": None,  # ftyp avif: AV1, not HEIF's HEVC
    ".tif": None,
    ".tiff": None,
    ".rw2": None,  # Panasonic raw, TIFF-like ("IIU\0")
}


def test_the_corpus_is_there() -> None:
    assert (CORPUS / "exiftool-truth.csv").is_file(), f"no corpus at {CORPUS}"
    assert len(ACCEPTED_IMAGES) > 200


@pytest.mark.parametrize("path", ACCEPTED_IMAGES)
def test_every_accepted_image_in_the_corpus_is_what_its_extension_says(path: str) -> None:
    # No exceptions: every .jpg/.jpeg/.png/.heic/.heif here is what its name says (the corpus
    # has no .gif; GIF is checked on synthetic heads below).
    assert sniff(head(path)) == EXTENSIONS[Path(path).suffix.lower()]


@pytest.mark.parametrize(
    "path",
    [
        path
        for path in corpus_files("exif-samples", "cameras")
        if Path(path).suffix.lower() in OTHER_FORMATS
    ],
)
def test_formats_no_policy_accepts_are_told_apart(path: str) -> None:
    assert sniff(head(path)) == OTHER_FORMATS[Path(path).suffix.lower()]


def test_the_faces_video_is_an_iso_video() -> None:
    assert sniff(head("faces/short_hamilton_clip.mp4")) == Family.ISO_VIDEO


# --- sniff: synthetic heads for what the corpus lacks -----------------------------------------


def ftyp(major: bytes, *compatible: bytes, size: int | None = None) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return (size if size is not None else 8 + len(body)).to_bytes(4, "big") + b"ftyp" + body


SYNTHETIC = [
    (b"", None),
    (b"\xff\xd8", None),  # too short for the JPEG signature
    (b"\xff\xd8\xff", Family.JPEG),
    (b"GIF", None),
    (b"GIF87a\x01\x00\x01\x00", Family.GIF),
    (b"GIF89a\x01\x00\x01\x00", Family.GIF),
    (b"GIF88a\x01\x00\x01\x00", None),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", Family.PNG),
    (b"\x89PNG\r\n", None),
    (b"RIFF\x00\x10\x00\x00AVI LIST", Family.AVI),
    (b"RIFF\x00\x10\x00\x00WEBPVP8 ", None),
    (b"RIFF\x00\x10\x00\x00WAVEfmt ", None),
    (b"RIFF\x00\x10", None),
    # ISO base media: the brands decide, major brand first.
    (ftyp(b"qt  ", b"qt  "), Family.ISO_VIDEO),  # a QuickTime .mov
    (ftyp(b"M4V ", b"M4V ", b"M4A ", b"mp42", b"isom"), Family.ISO_VIDEO),  # iTunes .m4v
    (ftyp(b"mp42", b"mp41", b"isom"), Family.ISO_VIDEO),
    (ftyp(b"3gp4", b"3gp4"), Family.ISO_VIDEO),
    (ftyp(b"XAVC", b"XAVC", b"mp42", b"iso2"), Family.ISO_VIDEO),  # Sony: known by compatible
    (ftyp(b"heic", b"mif1", b"heic"), Family.HEIF),
    (ftyp(b"mif1", b"mif1", b"heic"), Family.HEIF),
    (ftyp(b"msf1", b"msf1", b"hevc"), Family.HEIF),  # an HEVC image sequence
    (ftyp(b"mif1"), Family.HEIF),  # generic image file, no codec named
    (ftyp(b"avif", b"avif", b"mif1", b"miaf"), None),
    (ftyp(b"mif1", b"mif1", b"avif", b"miaf"), None),  # AVIF with a generic major brand
    (ftyp(b"avis", b"avis", b"msf1"), None),
    (ftyp(b"crx ", b"crx "), None),  # Canon CR3 raw
    (ftyp(b"abcd") + b"heic", None),  # a brand after the end of the box is not the box's
    (ftyp(b"abcd", b"heic", size=0), Family.HEIF),  # size 0: the box runs to the end
    (b"\x00\x00\x00\x01ftyp" + (28).to_bytes(8, "big") + b"heic\x00\x00\x00\x00mif1", Family.HEIF),
    (b"\x00\x00\x00\x0cftypheic", None),  # smaller than a header with a major brand and version
    (b"\x00\x00\x00\x18ftyp", None),  # truncated
    # QuickTime movies from before ftyp start straight with an atom.
    (b"\x00\x00\x00\x08wide\x00\x10\x00\x00mdat", Family.ISO_VIDEO),
    (b"\x00\x00\x12\x34moov\x00\x00\x00\x6cmvhd", Family.ISO_VIDEO),
    (b"\x00\x00\x00\x14pnot", Family.ISO_VIDEO),
    (b"\x00\x00\x00\x00mdat", Family.ISO_VIDEO),  # size 0: to the end of the file
    (b"\x00\x00\x00\x04free", None),  # smaller than its own header
    (b"\x00\x00\x00\x08junk", None),
    (b"MZ\x90\x00\x03\x00\x00\x00", None),  # a Windows executable
    (b"%PDF-1.7", None),
]


@pytest.mark.parametrize(("data", "family"), SYNTHETIC)
def test_sniff_on_synthetic_heads(data: bytes, family: Family | None) -> None:
    assert sniff(data) == family


def test_sniff_and_has_exif_never_raise_on_random_bytes() -> None:
    rng = random.Random(7)
    prefixes = [b"", b"\xff\xd8", b"\xff\xd8\xff\xe1", b"\x00\x00\x00\x20ftyp", b"RIFF"]
    for _ in range(3000):
        noise = rng.randbytes(rng.randrange(0, 64))
        data = rng.choice(prefixes) + noise
        assert sniff(data) in (None, *Family)
        assert has_exif(data) in (True, False)


# --- has_exif: the corpus against ExifTool ------------------------------------------------------

EXIF_TAGS = ("date_time_original", "make", "model", "orientation")

# JPEGs where ExifTool reports one of EXIF_TAGS but the file has no EXIF APP1: ExifTool also
# reads other blocks, and names what it finds there with the same tag names.
TAGS_FROM_ELSEWHERE = {
    "cameras/jpg/Issue 600 (1).jpg": "DateTimeOriginal is built from IPTC DateCreated and "
    "TimeCreated in the Photoshop APP13 segment",
    "exif-samples/jpg/exif-org/olympus-d320l.jpg": "the date is in Olympus's own APP12 "
    "'[picture info] TimeDate=' text",
    "exif-samples/jpg/exif-org/sony-powershota5.jpg": "date, make and model are in a Canon CIFF "
    "block in APP0 ('HEAPJPGM'); the camera is a Canon PowerShot A5, not a Sony",
    "exif-samples/jpg/invalid/image00971.jpg": "Orientation is XMP's tiff:Orientation",
    "exif-samples/jpg/invalid/image01088.jpg": "Orientation is XMP's tiff:Orientation",
    "exif-samples/jpg/invalid/image01137.jpg": "Orientation is XMP's tiff:Orientation",
    "exif-samples/jpg/invalid/image01713.jpg": "Orientation is XMP's tiff:Orientation",
}

# JPEGs with EXIF that holds none of EXIF_TAGS: EXIF is there, just not those tags.
EXIF_WITHOUT_THOSE_TAGS = {
    "broken/jpg/ImageTestSuite/32d08f4a5eb10332506ebedbb9bc7257.jpg": "resolution, software "
    "and modify date only",
    "broken/jpg/ImageTestSuite/8e5e74dbf9b68a322fbb9512db837329.jpg": "an empty IFD0 behind a "
    "damaged TIFF magic (0xd2, not 42)",
    "broken/jpg/ImageTestSuite/fd44dc63fa7bdd12ee34fc602231ef02.jpg": "a TIFF header and an "
    "empty, truncated IFD0",
    "cameras/jpg/Android Depth Map.jpg": "modify date only",
    "cameras/jpg/Issue 173 (dotnet).jpg": "GPS and user comment only",
    "cameras/jpg/Photoshop (3).jpg": "software, modify date and copyright only",
    "cameras/jpg/metadata-extractor-dotnet issue 51.jpg": "modify date and Windows padding",
    "faces/people/kit_harington/john2.jpeg": "description, artist and copyright only",
}


@cache
def truth() -> dict[str, dict[str, str]]:
    with (CORPUS / "exiftool-truth.csv").open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert rows and set(EXIF_TAGS) <= set(rows[0]), "the CSV's columns have changed"
    return {row["path"]: row for row in rows}


def jpegs_in_truth() -> list[str]:
    # A JPEG is what the bytes say, not the name: this takes in the ".nef" JPEGs, and leaves
    # out the broken files too damaged to start like a JPEG.
    return [path for path in truth() if sniff(head(path)) == Family.JPEG]


def test_every_corpus_file_is_in_the_truth() -> None:
    media = {p for p in corpus_files(".") if Path(p).suffix not in (".md", ".csv", ".rst", ".txt")}
    assert media == set(truth())


@pytest.mark.parametrize("path", jpegs_in_truth())
def test_has_exif_agrees_with_exiftool(path: str) -> None:
    tagged = any(truth()[path][tag] for tag in EXIF_TAGS)
    expected = (tagged and path not in TAGS_FROM_ELSEWHERE) or path in EXIF_WITHOUT_THOSE_TAGS
    assert has_exif(head(path)) == expected


def test_the_exceptions_are_real_exceptions() -> None:
    # Each listed file is still in the corpus and still says what the lists claim of it.
    for path in TAGS_FROM_ELSEWHERE:
        assert any(truth()[path][tag] for tag in EXIF_TAGS), path
    for path in EXIF_WITHOUT_THOSE_TAGS:
        assert not any(truth()[path][tag] for tag in EXIF_TAGS), path


def test_exif_is_found_after_other_segments() -> None:
    assert has_exif(head("exif-samples/jpg/orientation/landscape_2.jpg"))  # after an ICC APP2
    assert has_exif(head("faces/people/kit_harington/john2.jpeg"))  # after Photoshop APP13
    # Named "no_exif", but its EXIF APP1 follows a 26 KB XMP APP1.
    assert has_exif(head("exif-samples/jpg/xmp/no_exif.jpg"))


# --- has_exif: stripped, truncated and synthetic ------------------------------------------------


def strip_exif(data: bytes) -> bytes:
    """The JPEG without its EXIF APP1 segment, as a privacy tool would leave it."""
    at = data.index(b"Exif\x00\x00") - 4
    assert data[at : at + 2] == b"\xff\xe1"
    length = int.from_bytes(data[at + 2 : at + 4], "big")
    return data[:at] + data[at + 2 + length :]


@pytest.mark.parametrize(
    "path",
    [
        "exif-samples/jpg/Canon_40D.jpg",  # EXIF right after SOI
        "exif-samples/jpg/gps/DSCN0010.jpg",
        "exif-samples/jpg/orientation/landscape_2.jpg",  # after JFIF and ICC
        "exif-samples/jpg/xmp/no_exif.jpg",  # after XMP
        "faces/people/kit_harington/john2.jpeg",  # after Photoshop
    ],
)
def test_a_jpeg_with_its_exif_stripped_has_none(path: str) -> None:
    with (CORPUS / path).open("rb") as file:
        data = file.read()
    assert has_exif(data[:HEAD_BYTES])
    stripped = strip_exif(data)
    assert sniff(stripped[:HEAD_BYTES]) == Family.JPEG
    assert not has_exif(stripped[:HEAD_BYTES])


def segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload


SOI = b"\xff\xd8"
EXIF = segment(0xE1, b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x00")
JFIF = segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
XMP = segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta/>")
SOS = segment(0xDA, b"\x01\x01\x00\x00\x3f\x00") + b"\x12\x34\xff\x00"

HAS_EXIF = [
    (SOI + EXIF + SOS, True),
    (SOI + JFIF + XMP + EXIF + SOS, True),
    (SOI + b"\xff\xff\xff" + EXIF, True),  # fill bytes before a marker
    (SOI + b"\xff\xd0\xff\x01" + EXIF, True),  # standalone RST0 and TEM
    (SOI + EXIF[:14], True),  # cut inside the segment, after its TIFF byte order
    (SOI + EXIF[:11], False),  # cut inside the Exif header
    (SOI + JFIF + SOS + EXIF, False),  # after the image data starts, it is not metadata
    (SOI + JFIF + XMP, False),
    (SOI + segment(0xE1, b"Exif\x00\x00"), False),  # the header and nothing else
    (SOI + segment(0xE1, b"Exif\x00\x00\x00\x00\x00\x00"), False),  # no TIFF byte order
    (SOI + segment(0xE2, b"Exif\x00\x00MM\x00*"), False),  # not APP1
    (SOI + JFIF[:-3], False),  # truncated before EXIF
    (SOI + b"\xff\xe0\x00\x01" + EXIF, False),  # a length shorter than the length field
    (SOI + b"JUNK" + EXIF, False),  # not a marker where one must be
    (SOI + SOI + EXIF, False),
    (EXIF, False),  # no SOI
    (b"\x89PNG\r\n\x1a\n" + EXIF, False),
    (b"", False),
    (SOI, False),
    (SOI + b"\xff", False),
    (SOI + b"\xff\xe1", False),
]


@pytest.mark.parametrize(("data", "expected"), HAS_EXIF)
def test_has_exif_on_synthetic_heads(data: bytes, expected: bool) -> None:
    assert has_exif(data) is expected


# --- broken files --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", corpus_files("broken"))
def test_broken_files_never_make_the_checks_raise(path: str) -> None:
    data = head(path)
    for cut in (0, 1, 2, 3, 4, 8, 12, 16, 32, 100, 1000, len(data)):
        sniff(data[:cut])
        has_exif(data[:cut])


# --- extensions and content types ---------------------------------------------------------------


def test_every_extension_is_lower_case_with_its_dot() -> None:
    assert set(EXTENSIONS) == {
        ".jpg", ".jpeg", ".png", ".gif", ".heic", ".heif", ".mp4", ".m4v", ".mov", ".avi",
    }  # fmt: skip
    assert set(EXTENSIONS.values()) == set(Family) == set(CONTENT_TYPES)


@pytest.mark.parametrize(
    ("family", "extension", "expected"),
    [
        (Family.JPEG, ".jpg", "image/jpeg"),
        (Family.JPEG, ".JPEG", "image/jpeg"),
        (Family.PNG, ".png", "image/png"),
        (Family.GIF, ".gif", "image/gif"),
        (Family.HEIF, ".heic", "image/heic"),
        (Family.HEIF, ".HEIC", "image/heic"),
        (Family.HEIF, ".heif", "image/heif"),
        (Family.ISO_VIDEO, ".mp4", "video/mp4"),
        (Family.ISO_VIDEO, ".mov", "video/quicktime"),
        (Family.ISO_VIDEO, ".m4v", "video/x-m4v"),
        (Family.AVI, ".avi", "video/x-msvideo"),
        # An extension of another family says nothing of this file's type: the bytes decide.
        (Family.JPEG, ".mov", "image/jpeg"),
        (Family.JPEG, "", "image/jpeg"),
    ],
)
def test_content_type(family: Family, extension: str, expected: str) -> None:
    assert content_type(family, extension) == expected
