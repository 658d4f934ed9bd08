"""What a file's first bytes say it is, whatever its name says.

Upload policies are judged from the bytes, not the name: a ``.jpg`` that is really a PNG, or
an executable, is caught here. Everything works on a bounded ``head`` of the file (the first
``HEAD_BYTES``) so the gateway can decide while streaming, and nothing here raises on any
input: a broken file is a "no", never a crash.
"""

from __future__ import annotations

from enum import StrEnum


class Family(StrEnum):
    """Formats the upload policies accept, grouped by how their bytes begin."""

    JPEG = "jpeg"
    PNG = "png"
    GIF = "gif"
    HEIF = "heif"
    ISO_VIDEO = "iso_video"  # MP4, M4V and MOV: ISO base media files and QuickTime movies
    AVI = "avi"


EXTENSIONS: dict[str, Family] = {
    ".jpg": Family.JPEG,
    ".jpeg": Family.JPEG,
    ".png": Family.PNG,
    ".gif": Family.GIF,
    ".heic": Family.HEIF,
    ".heif": Family.HEIF,
    ".mp4": Family.ISO_VIDEO,
    ".m4v": Family.ISO_VIDEO,
    ".mov": Family.ISO_VIDEO,
    ".avi": Family.AVI,
}

CONTENT_TYPES: dict[Family, str] = {
    Family.JPEG: "image/jpeg",
    Family.PNG: "image/png",
    Family.GIF: "image/gif",
    Family.HEIF: "image/heif",
    Family.ISO_VIDEO: "video/mp4",
    Family.AVI: "video/x-msvideo",
}

# Where an extension names a more precise type than its family's.
_EXTENSION_TYPES = {
    ".heic": "image/heic",
    ".mov": "video/quicktime",
    ".m4v": "video/x-m4v",
}

# How many leading bytes the checks need at most. Magic numbers and the ISO `ftyp` box sit in
# the first few dozen bytes. EXIF is the APP1 segment that follows SOI, possibly after a JFIF
# APP0 (18 bytes) or a few other small APP segments, so its header starts well inside 64 KiB
# (in the shared corpus at byte 26,590 at the latest, after a 26 KB XMP segment). Only the
# header is needed, not the whole segment, which may run past the head.
HEAD_BYTES = 64 * 1024

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EXIF_HEADER = b"Exif\x00\x00"
# EXIF is a TIFF structure, which starts with its byte order: "II" little-endian, "MM" big.
_BYTE_ORDERS = (b"II", b"MM")

# ISO base media brands (the `ftyp` box), each four bytes. HEIF brands name an HEVC image or
# image sequence (heic, heix, ...) or a generic image file (mif1, msf1). The generic ones are
# weaker: AVIF files also list mif1, and AVIF is not HEIF here (its decoders differ).
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis"}
_GENERIC_IMAGE_BRANDS = {b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}
_VIDEO_BRANDS = {
    b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6",
    b"mp41", b"mp42", b"avc1", b"M4V ", b"M4VH", b"M4VP", b"qt  ",
    b"3gp4", b"3gp5", b"3g2a", b"dash", b"mp71", b"f4v ",
}  # fmt: skip
# Old QuickTime movies have no `ftyp`; they start straight with one of these atoms.
_QUICKTIME_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}

# JPEG markers (the byte after 0xFF).
_SOI, _SOS, _EOI, _APP1, _TEM = 0xD8, 0xDA, 0xD9, 0xE1, 0x01
_RST = range(0xD0, 0xD8)  # RST0-7: no length, no payload


def content_type(family: Family, extension: str) -> str:
    """The media type to store for a file of ``family`` named with ``extension``."""
    precise = _EXTENSION_TYPES.get(extension.lower())
    if precise is not None and EXTENSIONS.get(extension.lower()) == family:
        return precise
    return CONTENT_TYPES[family]


def sniff(head: bytes) -> Family | None:
    """The family ``head`` (a file's first bytes) belongs to, or None if it is none of them."""
    if head.startswith(b"\xff\xd8\xff"):
        return Family.JPEG
    if head.startswith(_PNG_SIGNATURE):
        return Family.PNG
    if head.startswith((b"GIF87a", b"GIF89a")):
        return Family.GIF
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return Family.AVI  # RIFF also holds WEBP and WAVE, which are not accepted
    if head[4:8] == b"ftyp":
        return _family_of_brands(_brands(head))
    if head[4:8] in _QUICKTIME_ATOMS and _plausible_box_size(head):
        return Family.ISO_VIDEO
    return None


def _brands(head: bytes) -> list[bytes]:
    """Major brand then compatible brands of the `ftyp` box at the start of ``head``."""
    size = int.from_bytes(head[0:4], "big")
    start = 8
    if size == 1:  # a 64-bit size follows the type
        size = int.from_bytes(head[8:16], "big")
        start = 16
    elif size == 0:  # the box runs to the end of the file
        size = len(head)
    # Major brand (4), minor version (4), then compatible brands up to the end of the box;
    # the box never extends past what we were given.
    end = min(size, len(head))
    if end < start + 8:
        return []
    brands = [head[start : start + 4]]
    for offset in range(start + 8, end - 3, 4):
        brands.append(head[offset : offset + 4])
    return brands


def _family_of_brands(brands: list[bytes]) -> Family | None:
    # The first brand that names a codec decides, major brand first: it says what the file is
    # best read as. Only when none does is a generic image brand (mif1, msf1) taken as HEIF.
    for brand in brands:
        if brand in _HEIF_BRANDS:
            return Family.HEIF
        if brand in _VIDEO_BRANDS:
            return Family.ISO_VIDEO
        if brand in _AVIF_BRANDS:
            return None
    if any(brand in _GENERIC_IMAGE_BRANDS for brand in brands):
        return Family.HEIF
    return None


def _plausible_box_size(head: bytes) -> bool:
    # 0 (to end of file), 1 (64-bit size follows) or at least the 8 bytes of its own header:
    # sizes 2 to 7 cannot be a box, so such bytes only happen to spell "free" or "wide".
    size = int.from_bytes(head[0:4], "big")
    return len(head) >= 8 and (size in (0, 1) or size >= 8)


def has_exif(head: bytes) -> bool:
    """Whether the JPEG starting ``head`` has an EXIF APP1 segment before its image data.

    Walks the marker segments from SOI to SOS (or the end of ``head``); a truncated or malformed
    segment before the EXIF one means False, as does an Exif header with no TIFF data after it.
    """
    if not head.startswith(b"\xff\xd8"):
        return False
    pos = 2
    while pos < len(head):
        if head[pos] != 0xFF:
            return False  # segments must follow each other; anything else is malformed
        while pos < len(head) and head[pos] == 0xFF:
            pos += 1  # fill bytes: any number of 0xFF may precede a marker
        if pos >= len(head):
            return False
        marker = head[pos]
        pos += 1
        if marker in _RST or marker == _TEM:
            continue  # standalone markers carry no length
        if marker in (_SOS, _EOI, _SOI, 0x00):
            return False  # image data follows, or a marker out of place: no EXIF before it
        if pos + 2 > len(head):
            return False
        length = int.from_bytes(head[pos : pos + 2], "big")  # counts its own two bytes
        if length < 2:
            return False
        payload = head[pos + 2 : pos + length]
        # The head may end inside a large EXIF segment (a big thumbnail), so the payload is
        # not read to its end: the Exif header and a TIFF byte order, without which nothing can
        # read it, say EXIF is there. TIFF's magic 42 is not required: ExifTool reads EXIF
        # whose magic is damaged (broken/jpg/ImageTestSuite/c3018ebe... in the corpus).
        if marker == _APP1 and payload[:6] == _EXIF_HEADER and payload[6:8] in _BYTE_ORDERS:
            return True
        pos += length
    return False
