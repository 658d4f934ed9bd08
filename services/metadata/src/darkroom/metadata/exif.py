"""What an image file's bytes say about itself: camera, orientation, size, capture time, position.

Pure: bytes in, an ``ImageFacts`` value out, and ``UnreadableMedia`` the only exception that
leaves. Pillow (with pillow-heif for HEIF) parses the container without decoding pixels; EXIF
comes through ``Image.getexif()`` and its Exif and GPS IFDs, and an XMP packet fills whatever
EXIF lacks. A malformed field is dropped on its own: the rest of the file's facts still count.
"""

from __future__ import annotations

import html
import io
import math
import re
import struct
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, ParamSpec, TypeVar

from PIL import Image, UnidentifiedImageError

from darkroom.common.imaging import (
    BOMBS,
    FORMATS,
    UnreadableMedia,
    heif_orientation,
    orientation_to_apply,
    register_heif_opener,
    too_large,
)

P = ParamSpec("P")
T = TypeVar("T")

IFD0_MAKE, IFD0_MODEL, IFD0_ORIENTATION, IFD0_DATETIME = 0x010F, 0x0110, 0x0112, 0x0132
EXIF_IFD, GPS_IFD = 0x8769, 0x8825
DATETIME_ORIGINAL, DATETIME_DIGITIZED = 0x9003, 0x9004
OFFSET_TIME, OFFSET_TIME_ORIGINAL, OFFSET_TIME_DIGITIZED = 0x9010, 0x9011, 0x9012
OFFSET_TAGS = {
    DATETIME_ORIGINAL: OFFSET_TIME_ORIGINAL,
    DATETIME_DIGITIZED: OFFSET_TIME_DIGITIZED,
    IFD0_DATETIME: OFFSET_TIME,
}
SUBSEC_TIME, SUBSEC_ORIGINAL, SUBSEC_DIGITIZED = 0x9290, 0x9291, 0x9292
LENS_MODEL, MAKER_NOTE = 0xA434, 0x927C
GPS_LAT_REF, GPS_LAT, GPS_LON_REF, GPS_LON, GPS_ALT_REF, GPS_ALT = 1, 2, 3, 4, 5, 6
GPS_TIMESTAMP, GPS_DATESTAMP = 7, 0x1D

# Only these parsers see untrusted bytes. (A JPEG with a multi-picture index, as phones write
# them, opens through "JPEG" and reports itself as "MPO".)
# Signatures of the formats read here: a file that starts like one of them but cannot be
# opened is damaged ("unreadable_image"), anything else is a format Darkroom does not read.
SIGNATURES = (b"\xff\xd8", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*")
PNG_SIGNATURE = SIGNATURES[1]
# Orientations 5-8 turn the stored pixels a quarter turn: the shown width is the stored height.
QUARTER_TURNS = frozenset({5, 6, 7, 8})
DATE_TIME = re.compile(
    r"\s*(\d{4})[:-](\d{2})[:-](\d{2})"
    r"(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?(?:[.,](\d+))?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?\s*$"
)
OFFSET = re.compile(r"\s*([+-])(\d{2}):?(\d{2})\s*$")
XMP_GPS = re.compile(r"\s*(\d{1,3}),(\d{1,2}(?:\.\d+)?)(?:,(\d{1,2}(?:\.\d+)?))?([NSEW])\s*$")
XMP_NAMESPACES = {
    "aux": "http://ns.adobe.com/exif/1.0/aux/",
    "exif": "http://ns.adobe.com/exif/1.0/",
    "exifEX": "http://cipa.jp/exif/1.0/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "tiff": "http://ns.adobe.com/tiff/1.0/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
}
RECONYX_HYPERFIRE = b"\x01\xf1"  # maker note version 0xF101, little-endian
MAX_METADATA_BYTES = 16 * 1024 * 1024
MAX_OFFSET = timedelta(hours=18)  # the widest offset ISO 8601 and Python's timezone allow


class GeoPoint(NamedTuple):
    latitude: float
    longitude: float
    altitude: float | None  # metres above sea level, negative below


@dataclass(frozen=True)
class ImageFacts:
    format: str
    make: str | None
    model: str | None
    lens: str | None
    orientation: int | None  # the file's EXIF (or XMP) Orientation, as ExifTool reports it
    width: int  # as shown: after the orientation is applied
    height: int
    taken: datetime | None  # naive: the camera's wall clock
    offset: timedelta | None  # the UTC offset recorded with ``taken``
    gps: GeoPoint | None
    gps_time: datetime | None  # the GPS receiver's UTC time stamp
    # What a thumbnailer still has to do to the pixels Pillow decodes from these bytes (an EXIF
    # orientation value): ``orientation`` less what the decoder turns itself, as
    # ``imaging.orientation_to_apply`` decides for every format.
    orientation_to_apply: int


def read_image(data: bytes) -> ImageFacts:
    """The facts of one image file; raises ``UnreadableMedia`` and nothing else."""
    register_heif_opener()
    try:
        with warnings.catch_warnings():
            # Pillow warns about bad EXIF it skips; that is a dropped field here, not log noise.
            # (The filters are process-wide: the service reads files in worker processes.)
            warnings.simplefilter("ignore")
            # The decompression-bomb guard stays on, and its warning level is a refusal too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=FORMATS) as image:
                return _facts(image, data)
    except BOMBS as error:
        raise too_large(error) from error
    except UnidentifiedImageError as error:
        if _looks_like_image(data):
            raise UnreadableMedia(
                "unreadable_image", "The file starts like an image but its header is damaged."
            ) from error
        raise UnreadableMedia(
            "unsupported_format",
            "The file is not in a format Darkroom reads (JPEG, PNG, WebP, GIF, TIFF, HEIF, AVIF).",
        ) from error
    except UnreadableMedia:
        raise
    except Exception as error:  # a damaged file must never take the consumer down
        raise UnreadableMedia(
            "unreadable_image", f"The image cannot be read: {type(error).__name__}: {error}."
        ) from error


def _looks_like_image(data: bytes) -> bool:
    head = data[:16]
    return (
        head.startswith(SIGNATURES)
        or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
        or head[4:8] == b"ftyp"
    )


def _facts(image: Image.Image, data: bytes) -> ImageFacts:
    """Each field from the first source that has it: EXIF, then XMP, then a maker's records."""
    width, height = image.size
    ifd0, exif_ifd, gps_ifd, xmp = _metadata(image, data)
    vendor = _field(_vendor_records, image, exif_ifd) or VendorRecords()
    orientation = _first(
        lambda: heif_orientation(image),
        lambda: _orientation(ifd0.get(IFD0_ORIENTATION)),
        lambda: _xmp_orientation(xmp),
    )
    # Pillow's size is of the pixels as decoded: turned already where the decoder turns them.
    to_apply = orientation_to_apply(image, orientation)
    if to_apply in QUARTER_TURNS:
        width, height = height, width
    taken, offset = _taken(ifd0, exif_ifd, xmp, vendor) or (None, None)
    return ImageFacts(
        format=image.format or "unknown",
        make=_label(
            _first(
                lambda: _text(ifd0.get(IFD0_MAKE)),
                lambda: _xmp_text(xmp, "tiff", "Make"),
                lambda: vendor.make,
            )
        ),
        model=_label(
            _first(
                lambda: _text(ifd0.get(IFD0_MODEL)),
                lambda: _xmp_text(xmp, "tiff", "Model"),
                lambda: vendor.model,
            )
        ),
        lens=_label(
            _first(
                lambda: _text(exif_ifd.get(LENS_MODEL)),
                lambda: _xmp_text(xmp, "exifEX", "LensModel"),
                lambda: _xmp_text(xmp, "aux", "Lens"),  # Lightroom's
            )
        ),
        orientation=orientation,
        width=width,
        height=height,
        taken=taken,
        offset=offset,
        gps=_first(lambda: _gps(gps_ifd), lambda: _xmp_gps(xmp), lambda: vendor.gps),
        gps_time=_field(_gps_time, gps_ifd),
        orientation_to_apply=to_apply,
    )


def _first(*sources: Callable[[], T | None]) -> T | None:
    """The value of the first source that has one; a malformed source is passed over."""
    for source in sources:
        value = _field(source)
        if value is not None:
            return value
    return None


def _field(read: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
    """One value, or None when its bytes are malformed: the file's other facts still count."""
    try:
        return read(*args, **kwargs)
    except Exception:
        return None


def _metadata(
    image: Image.Image, data: bytes
) -> tuple[Mapping[int, Any], Mapping[int, Any], Mapping[int, Any], str]:
    """IFD0, the Exif IFD, the GPS IFD and the XMP packet (as text), each empty when absent."""
    xmp: bytes | str | None
    if image.format == "PNG":
        # Pillow's PNG getexif() decodes the whole image when the eXIf chunk comes after the
        # pixels; walking the chunks finds eXIf and the XMP iTXt without decoding anything.
        exif_bytes, xmp = _png_metadata(data)
        exif = Image.Exif()
        if exif_bytes:
            _field(exif.load, exif_bytes)
    else:
        exif = _field(image.getexif) or Image.Exif()
        xmp = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
    exif_ifd = _field(exif.get_ifd, EXIF_IFD) or {}
    gps_ifd = _field(exif.get_ifd, GPS_IFD) or {}
    if isinstance(xmp, bytes):
        xmp = xmp.decode("utf-8", "replace")
    return exif, exif_ifd, gps_ifd, xmp if isinstance(xmp, str) else ""


def _png_metadata(data: bytes) -> tuple[bytes | None, bytes | None]:
    """EXIF and XMP of a PNG: its eXIf chunk and XMP iTXt, or ImageMagick's raw profiles."""
    exif = xmp = None
    for kind, body in _png_chunks(data):
        if kind == b"eXIf":
            exif = body
        elif kind in (b"tEXt", b"zTXt", b"iTXt"):
            # A damaged text chunk costs only itself.
            keyword, text = _field(_png_text, kind, body) or (b"", b"")
            if keyword == b"XML:com.adobe.xmp":
                xmp = text
            elif keyword == b"Raw profile type xmp":
                xmp = _field(_raw_profile, text)
            elif keyword in (b"Raw profile type exif", b"Raw profile type APP1"):
                exif = exif or _field(_raw_profile, text)
    return exif, xmp


def _png_text(kind: bytes, body: bytes) -> tuple[bytes, bytes]:
    """A text chunk's keyword and (decompressed) text."""
    keyword, _, rest = body.partition(b"\x00")
    if kind == b"tEXt":
        return keyword, rest
    if kind == b"zTXt":
        return keyword, _inflate(rest[1:])
    compressed, rest = rest[:1] == b"\x01", rest[2:]  # flag and method, then two NUL-ended tags
    text = rest.split(b"\x00", 2)[-1]
    return keyword, _inflate(text) if compressed else text


def _inflate(data: bytes) -> bytes:
    # Bounded: a small chunk must not inflate into gigabytes (a zip bomb in the metadata).
    return zlib.decompressobj().decompress(data, MAX_METADATA_BYTES)


def _raw_profile(text: bytes) -> bytes:
    """ImageMagick's "Raw profile type …": a name line, a length line, then the bytes in hex."""
    return bytes.fromhex(b"".join(text.split(b"\n")[3:]).decode("ascii"))


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    position = len(PNG_SIGNATURE)
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        yield kind, data[position + 8 : position + 8 + length]
        if kind == b"IEND":
            return
        position += 12 + length  # length, type, body, CRC


def _orientation(value: object) -> int | None:
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def _xmp_orientation(xmp: str) -> int | None:
    text = _xmp_text(xmp, "tiff", "Orientation")
    return _orientation(int(text)) if text and text.isdigit() else None


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    # EXIF text ends at its first NUL; what some cameras leave after it is padding or garbage.
    return value.split("\x00", 1)[0].strip() or None


MAX_LABEL = 128
"""Characters kept of a camera's make, model or lens (the longest real ones are under 64)."""
CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def _label(text: str | None) -> str | None:
    """A camera's own words as a label: control characters (line breaks, escapes) are spaces,
    and a name longer than any real one is cut."""
    if text is None:
        return None
    return CONTROLS.sub(" ", text).strip()[:MAX_LABEL].strip() or None


def _taken(
    ifd0: Mapping[int, Any], exif_ifd: Mapping[int, Any], xmp: str, vendor: VendorRecords
) -> tuple[datetime, timedelta | None] | None:
    """The capture wall-clock time and the offset recorded *for that same time stamp*.

    In this order: DateTimeOriginal (EXIF, then XMP); the IPTC date created (XMP
    photoshop:DateCreated, which ExifTool also reports as DateTimeOriginal); a camera maker's
    own record of it; DateTimeDigitized (EXIF, then XMP; ExifTool's CreateDate); xmp:CreateDate;
    last DateTime. Each date is paired only with its own offset: OffsetTimeOriginal for
    DateTimeOriginal, OffsetTimeDigitized for DateTimeDigitized, the zone designator of an XMP
    date. OffsetTime is never used: it is the offset of the last edit (DateTime), often made in
    another zone - the mistake Immich and PhotoPrism users report.
    """
    return _first(
        lambda: _exif_date_time(exif_ifd, ifd0, DATETIME_ORIGINAL, SUBSEC_ORIGINAL),
        lambda: _parse_date_time(_xmp_text(xmp, "exif", "DateTimeOriginal")),
        lambda: _parse_date_time(_xmp_text(xmp, "photoshop", "DateCreated")),
        lambda: vendor.taken,
        lambda: _exif_date_time(exif_ifd, ifd0, DATETIME_DIGITIZED, SUBSEC_DIGITIZED),
        lambda: _parse_date_time(_xmp_text(xmp, "exif", "DateTimeDigitized")),
        lambda: _parse_date_time(_xmp_text(xmp, "xmp", "CreateDate")),
        lambda: _modify_date(ifd0, exif_ifd),
    )


def _modify_date(
    ifd0: Mapping[int, Any], exif_ifd: Mapping[int, Any]
) -> tuple[datetime, timedelta | None] | None:
    # A DateTimeOriginal that is there but a placeholder ("0000:00:00 00:00:00") says the camera
    # had no clock: a valid DateTime beside it was written later, by software - no capture time.
    if _text(exif_ifd.get(DATETIME_ORIGINAL)) or _text(ifd0.get(DATETIME_ORIGINAL)):
        return None
    found = _exif_date_time(ifd0, exif_ifd, IFD0_DATETIME, SUBSEC_TIME)
    return (found[0], None) if found else None  # OffsetTime is the edit's zone: never used


def _exif_date_time(
    first: Mapping[int, Any], second: Mapping[int, Any], tag: int, subsec_tag: int
) -> tuple[datetime, timedelta | None] | None:
    """An EXIF date-time with its sub-seconds and the offset tag that belongs to it."""

    # The standard places are the Exif IFD (DateTimeOriginal) or IFD0 (DateTime); some
    # writers put them in the other one, where ExifTool finds them too.
    def get(key: int) -> str | None:
        return _text(first.get(key)) or _text(second.get(key))

    found = _parse_date_time(get(tag))
    if found is None:
        return None
    taken, embedded = found
    subsec = get(subsec_tag)
    if taken.microsecond == 0 and subsec and subsec.isdigit():
        taken = taken.replace(microsecond=int(subsec[:6].ljust(6, "0")))
    offset = _parse_offset(get(OFFSET_TAGS[tag]))
    return taken, offset if offset is not None else embedded


def _parse_date_time(text: str | None) -> tuple[datetime, timedelta | None] | None:
    """``2021:04:11 15:47:53.25+02:00`` (EXIF) or ``2021-04-11T15:47:53`` (XMP), else None."""
    match = DATE_TIME.match(text or "")
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        taken = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")),
        )
    except ValueError:  # "0000:00:00 00:00:00" and other placeholders of cameras with no clock
        return None
    return taken, timedelta(0) if zone == "Z" else _parse_offset(zone)


def _parse_offset(text: str | None) -> timedelta | None:
    match = OFFSET.match(text or "")
    if match is None:
        return None
    sign, hours, minutes = match.groups()
    offset = timedelta(hours=int(hours), minutes=int(minutes))
    if offset >= MAX_OFFSET or int(minutes) >= 60:
        return None
    return -offset if sign == "-" else offset


def _gps(gps_ifd: Mapping[int, Any]) -> GeoPoint | None:
    latitude = _degrees(gps_ifd.get(GPS_LAT), _text(gps_ifd.get(GPS_LAT_REF)), "S")
    longitude = _degrees(gps_ifd.get(GPS_LON), _text(gps_ifd.get(GPS_LON_REF)), "W")
    if latitude is None or longitude is None:
        return None
    return _geo_point(latitude, longitude, _field(_altitude, gps_ifd))


def _degrees(value: object, ref: str | None, negative_ref: str) -> float | None:
    """Degrees, minutes, seconds as rationals (some writers give fewer parts) to signed degrees.
    A 0/0 minutes or seconds part (written by cameras that keep only degrees and minutes) counts
    as 0; 0/0 degrees is no position."""
    parts = value if isinstance(value, tuple) else (value,)
    if not 1 <= len(parts) <= 3 or any(part is None for part in parts):
        return None
    numbers = [float(part) for part in parts]
    numbers[1:] = [0.0 if math.isnan(number) else number for number in numbers[1:]]
    degrees = sum(number / 60**index for index, number in enumerate(numbers))
    return -degrees if (ref or "").upper().startswith(negative_ref) else degrees


def _altitude(gps_ifd: Mapping[int, Any]) -> float | None:
    value = gps_ifd.get(GPS_ALT)
    if value is None:
        return None
    metres = float(value)
    ref = gps_ifd.get(GPS_ALT_REF)
    below_sea_level = ref in (1, b"\x01") or (isinstance(ref, bytes) and ref[:1] == b"\x01")
    return -metres if below_sea_level else metres


def _geo_point(latitude: float, longitude: float, altitude: float | None) -> GeoPoint | None:
    """A valid position, or None: out of range, not a number, or exactly 0,0 (an unset fix)."""
    if not (math.isfinite(latitude) and math.isfinite(longitude)):
        return None
    if abs(latitude) > 90 or abs(longitude) > 180 or (latitude == 0 and longitude == 0):
        return None
    # Deeper than the Mariana Trench or higher than a balloon's ceiling: a broken value.
    if altitude is not None and not (math.isfinite(altitude) and -11_000 <= altitude <= 50_000):
        altitude = None
    return GeoPoint(latitude, longitude, altitude)


def _xmp_gps(xmp: str) -> GeoPoint | None:
    latitude = _xmp_degrees(_xmp_text(xmp, "exif", "GPSLatitude"))
    longitude = _xmp_degrees(_xmp_text(xmp, "exif", "GPSLongitude"))
    if latitude is None or longitude is None:
        return None
    return _geo_point(latitude, longitude, None)


def _xmp_degrees(text: str | None) -> float | None:
    """XMP's ``DDD,MM.mmk`` or ``DDD,MM,SSk`` (k one of N, S, E, W) to signed degrees."""
    match = XMP_GPS.match(text or "")
    if match is None:
        return None
    degrees, minutes, seconds, ref = match.groups()
    value = float(degrees) + float(minutes) / 60 + float(seconds or 0) / 3600
    return -value if ref in "SW" else value


def _gps_time(gps_ifd: Mapping[int, Any]) -> datetime | None:
    date = _text(gps_ifd.get(GPS_DATESTAMP))
    stamp = gps_ifd.get(GPS_TIMESTAMP)
    if date is None or not isinstance(stamp, tuple) or len(stamp) != 3:
        return None
    day = datetime.strptime(date, "%Y:%m:%d").replace(tzinfo=UTC)
    hours, minutes, seconds = (float(part) for part in stamp)
    return day + timedelta(hours=hours, minutes=minutes, seconds=seconds)


@dataclass(frozen=True)
class VendorRecords:
    """What a camera maker's own records say, for files whose EXIF and XMP lack it."""

    taken: tuple[datetime, timedelta | None] | None = None
    make: str | None = None
    model: str | None = None
    gps: GeoPoint | None = None


def _vendor_records(image: Image.Image, exif_ifd: Mapping[int, Any]) -> VendorRecords:
    """Reconyx trail cameras, FLIR thermal cameras, and 1998-2000 Canon and Olympus cameras."""
    maker_note = exif_ifd.get(MAKER_NOTE)
    if isinstance(maker_note, bytes) and maker_note.startswith(RECONYX_HYPERFIRE):
        return VendorRecords(taken=_reconyx_taken(maker_note))
    segments: list[tuple[str, bytes]] = getattr(image, "applist", [])
    flir = [body for marker, body in segments if marker == "APP1" and body[:5] == b"FLIR\x00"]
    if flir:
        return _flir(flir)
    for marker, body in segments:
        if marker == "APP0" and body[6:14] == b"HEAPJPGM":
            return _canon_ciff(body)
        if marker == "APP12" and (time_date := re.search(rb"\nTimeDate=(\d+)", body)):
            # Olympus' "[picture info]" text: the camera's wall clock in seconds since 1970.
            return VendorRecords(taken=(_wall_clock(int(time_date[1])), None))
    return VendorRecords()


def _wall_clock(seconds: int) -> datetime:
    """A camera clock counted in seconds since 1970 with no zone: its digits, as they read."""
    return datetime(1970, 1, 1) + timedelta(seconds=seconds)


def _reconyx_taken(maker_note: bytes) -> tuple[datetime, timedelta | None]:
    # HyperFire: little-endian 16-bit words; 11-16 are second, minute, hour, month, day, year.
    second, minute, hour, month, day, year = struct.unpack_from("<6H", maker_note, 22)
    return datetime(year, month, day, hour, minute, second), None


def _flir(segments: list[bytes]) -> VendorRecords:
    """FLIR's FFF file, split over APP1 segments: its camera-info and GPS records."""
    # Each segment: "FLIR\0", 1, its index, the last index, then its share of the FFF data.
    fff = b"".join(body[8:] for body in sorted(segments, key=lambda body: body[6]))
    directory, count = struct.unpack_from(">II", fff, 24)
    records: dict[int, bytes] = {}
    for index in range(min(count, 64)):
        kind, _, _, _, offset, length = struct.unpack_from(">HHIIII", fff, directory + 32 * index)
        records[kind] = fff[offset : offset + length]
    taken = gps = None
    # Both records are read in the little-endian form FLIR's phone cameras write, which their
    # first word marks; anything else is left alone.
    if (camera := records.get(0x20, b""))[:2] == b"\x02\x00":
        # UTC seconds since 1970, milliseconds, and the zone in minutes west of UTC.
        utc, milliseconds, west = struct.unpack_from("<IIh", camera, 0x384)
        offset = timedelta(minutes=-west)
        local = _wall_clock(utc) + offset + timedelta(milliseconds=milliseconds & 0xFFFF)
        taken = (local, offset)
    if (position := records.get(0x2B, b""))[:4] == b"\x01\x00\x00\x00":  # a valid fix
        north_south, east_west = position[8:9], position[10:11]
        latitude, longitude = struct.unpack_from("<dd", position, 0x10)
        gps = _geo_point(
            -latitude if north_south == b"S" else latitude,
            -longitude if east_west == b"W" else longitude,
            None,
        )
    return VendorRecords(taken=taken, gps=gps)


def _canon_ciff(segment: bytes) -> VendorRecords:
    """Canon's CIFF heap in APP0 ("HEAPJPGM"), the format before EXIF: time, make, model."""
    header_length = struct.unpack_from("<I", segment, 2)[0]
    entries = dict(_ciff_entries(segment[header_length:], depth=0))
    taken = None
    if stamp := entries.get(0x180E):  # the camera's wall clock in seconds since 1970
        taken = (_wall_clock(struct.unpack_from("<I", stamp)[0]), None)
    # "Canon\0Canon PowerShot A5\0": make and model, each ended by a NUL
    make, _, model = entries.get(0x080A, b"").partition(b"\x00")
    return VendorRecords(taken=taken, make=_text(make), model=_text(model))


def _ciff_entries(heap: bytes, depth: int) -> Iterator[tuple[int, bytes]]:
    # A heap ends with its table's offset; the table holds 10-byte entries (tag, size, offset).
    table = struct.unpack_from("<I", heap, len(heap) - 4)[0]
    for index in range(struct.unpack_from("<H", heap, table)[0]):
        tag, size, offset = struct.unpack_from("<HII", heap, table + 2 + 10 * index)
        if tag & 0xC000:  # value kept in the entry itself: none wanted here
            continue
        value = heap[offset : offset + size]
        if (tag & 0x3800) in (0x2800, 0x3000):  # a heap inside the heap
            if depth < 4:
                yield from _ciff_entries(value, depth + 1)
        else:
            yield tag, value


def _xmp_text(xmp: str, namespace: str, name: str) -> str | None:
    """A simple XMP property, written as an attribute or as an element; None when absent.

    The prefix is whatever the packet binds to the namespace (Photoshop CS2 still wrote "xap:"
    for "xmp:"). A regular expression rather than an XML parser: the packet is untrusted input,
    only a handful of simple properties are wanted, and a malformed packet must cost nothing.
    """
    if not xmp:
        return None
    uri = re.escape(XMP_NAMESPACES[namespace])
    prefixes = set(re.findall(rf"""xmlns:([\w.-]+)\s*=\s*["']{uri}["']""", xmp)) or {namespace}
    for prefix in prefixes:
        tag = f"{re.escape(prefix)}:{name}"
        match = re.search(rf"""\b{tag}\s*=\s*(?:"([^"]*)"|'([^']*)')|<{tag}>([^<]*)</""", xmp)
        if match is not None:
            value = next(group for group in match.groups() if group is not None)
            return _text(html.unescape(value))
    return None
