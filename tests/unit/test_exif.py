"""Reading image files: the real corpus against ExifTool, damaged files, and the edge cases.

How a field of ours is compared with ExifTool's CSV cell (`exiftool -j -n`):

- date_time: the capture time ExifTool reports is its DateTimeOriginal; where that is empty or
  a placeholder ("0000:00:00 00:00:00"), its CreateDate (EXIF DateTimeDigitized or XMP
  xmp:CreateDate) - the order Darkroom follows too. Compared as a wall-clock time: to the
  microsecond when ExifTool's value has sub-seconds, else to the second (ExifTool leaves
  SubSecTimeOriginal out of DateTimeOriginal; Darkroom folds it in).
- offset: ExifTool's OffsetTimeOriginal, else the zone designator written in the date-time just
  chosen (XMP dates carry one) - the offset recorded for that same time stamp.
- gps: latitude and longitude within 1e-5 degrees, as one field.
- make, model: equal text. orientation: equal number.
- size: ExifTool's ImageWidth/ImageHeight are the *stored* size; ours is the size as shown, so
  ours is turned back by the file's orientation (5-8 swap) before comparing.

A field counts as reported when ExifTool's cell is not empty. Every file where any field
differs - also where ExifTool has nothing and Darkroom reads something - is listed in
KNOWN_DIFFERENCES with the fields and why, and the list must stay exact.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from darkroom.metadata.exif import MAX_LABEL, GeoPoint, ImageFacts, UnreadableMedia, read_image
from tests.unit.corpus_truth import (
    CORPUS,
    TruthRow,
    corpus_files,
    exiftool_date_time,
    exiftool_offset,
    truth,
)

ISSUE_FIELDS = ("date_time", "offset", "gps", "make", "model", "orientation")
MODIFY_DATE = (
    "no DateTimeOriginal or CreateDate: Darkroom falls back to DateTime (IFD0 0x0132, "
    "ExifTool's ModifyDate, which the CSV does not carry)"
)

# Every file where Darkroom and ExifTool differ: (the fields, space-separated; why).
KNOWN_DIFFERENCES: dict[str, tuple[str, str]] = {
    "cameras/jpg/Android Depth Map.jpg": ("date_time", MODIFY_DATE),
    "cameras/jpg/FLIR iPhone device.jpg": (
        "gps",
        "both read FLIR's own GPS record (its EXIF has none), but ExifTool drops the record's "
        "'W': longitude +118.25 puts Los Angeles in China; Darkroom says -118.25",
    ),
    "cameras/jpg/Issue 308.jpg": (
        "gps",
        "the position is exactly 0,0 - a receiver with no fix; Darkroom treats it as absent",
    ),
    "cameras/jpg/Photoshop (1).jpg": ("date_time", MODIFY_DATE),
    "cameras/jpg/metadata-extractor-dotnet issue 51.jpg": ("date_time", MODIFY_DATE),
    "cameras/tif/multipage.tif": (
        "orientation",
        "page 1 has no Orientation (so the default, 1); ExifTool reports page 2's",
    ),
    "exif-samples/heic/mobile/HMD_Nokia_8.3_5G.heif": (
        "date_time size",
        f"{MODIFY_DATE}. Size: the container's irot turns the picture a quarter turn while the "
        "stale EXIF Orientation says 1; libheif (like every HEIF reader) shows it 3456x4608, "
        "ExifTool's ImageWidth/ImageHeight are the stored 4608x3456",
    ),
    "exif-samples/heic/mobile/HMD_Nokia_8.3_5G_hdr.heif": ("date_time", MODIFY_DATE),
    "exif-samples/jpg/Canon_40D_photoshop_import.jpg": ("date_time", MODIFY_DATE),
    "exif-samples/jpg/long_description.jpg": (
        "date_time offset",
        "Darkroom takes the IPTC date created (XMP photoshop:DateCreated 2003-08-31, no time: "
        "midnight) before xmp:CreateDate (2005-12-17 22:03:32Z, when the file was made); "
        "ExifTool builds DateTimeOriginal only from a date created with a time. The photo is of "
        "Operation Mountain Viper, August-September 2003: Darkroom has the right day",
    ),
    "exif-samples/jpg/tests/67-0_length_string.jpg": ("date_time", MODIFY_DATE),
    "exif-samples/tiff/Crémieux11.tiff": ("date_time", MODIFY_DATE),
    "exif-samples/tiff/DudleyLeavittUtah.tiff": ("date_time", MODIFY_DATE),
}

# Files that cannot be read at all: (the code they are refused with, why).
UNREADABLE: dict[str, tuple[str, str]] = {
    "cameras/jpg/beach.jpg": (
        "unreadable_image",
        "an extended-sequential (SOF1) JPEG whose frame header says height 0 (the height "
        "would follow in a DNL marker): Pillow cannot open it; ExifTool reads only the header",
    ),
    "cameras/rw2/Issue 419.rw2": (
        "unsupported_format",
        "Panasonic RAW, which Pillow does not read; ExifTool reads no field of it either",
    ),
}


def expected_fields(row: TruthRow) -> dict[str, tuple[bool, Any]]:
    """ExifTool's value of each compared field, and whether ExifTool reports it at all."""
    original = exiftool_date_time(row.date_time_original)
    chosen = original or exiftool_date_time(row.create_date)
    offset = exiftool_offset(row.offset_time_original) or (chosen[1] if chosen else None)
    gps = (float(row.gps_lat), float(row.gps_lon)) if row.gps_lat and row.gps_lon else None
    return {
        "date_time": (bool(row.date_time_original or row.create_date), chosen and chosen[0]),
        "offset": (offset is not None or bool(row.offset_time_original), offset),
        "gps": (gps is not None, gps),
        "make": (bool(row.make), row.make or None),
        "model": (bool(row.model), row.model or None),
        "orientation": (bool(row.orientation), int(row.orientation) if row.orientation else None),
        "size": (bool(row.width), (int(row.width), int(row.height)) if row.width else None),
    }


def agrees(field: str, expected: Any, facts: ImageFacts) -> bool:
    if field == "date_time":
        if expected is None or facts.taken is None:
            return expected is None and facts.taken is None
        taken = facts.taken if expected.microsecond else facts.taken.replace(microsecond=0)
        return bool(taken == expected)
    if field == "gps":
        if expected is None or facts.gps is None:
            return expected is None and facts.gps is None
        return all(
            math.isclose(ours, theirs, abs_tol=1e-5)
            for ours, theirs in zip(facts.gps[:2], expected, strict=True)
        )
    if field == "size":
        shown = (facts.width, facts.height)
        stored = shown[::-1] if facts.orientation in (5, 6, 7, 8) else shown
        return stored == expected
    ours = {
        "offset": facts.offset,
        "make": facts.make,
        "model": facts.model,
        "orientation": facts.orientation,
    }[field]
    return bool(ours == expected)


def test_corpus_agrees_with_exiftool_on_99_percent_of_its_fields() -> None:
    reported = agreed = 0
    differences: dict[str, str] = {}
    for path in corpus_files("exif-samples", "cameras"):
        if path in UNREADABLE:
            continue
        row = truth()[path]
        facts = read_image(row.file.read_bytes())
        differing = []
        for field, (is_reported, expected) in expected_fields(row).items():
            agree = agrees(field, expected, facts)
            if field in ISSUE_FIELDS and is_reported:
                reported += 1
                agreed += agree
            if not agree:
                differing.append(field)
        if differing:
            differences[path] = " ".join(differing)

    assert agreed / reported >= 0.99, f"{agreed} of {reported} fields agree"
    assert differences == {path: fields for path, (fields, _) in KNOWN_DIFFERENCES.items()}


@pytest.mark.parametrize(("path", "code"), [(path, code) for path, (code, _) in UNREADABLE.items()])
def test_files_pillow_cannot_open_are_refused_with_a_reason(path: str, code: str) -> None:
    with pytest.raises(UnreadableMedia) as refused:
        read_image((CORPUS / path).read_bytes())

    assert refused.value.code == code
    assert refused.value.message.endswith(".")


def test_every_broken_file_gives_facts_or_a_reason() -> None:
    outcomes: dict[str, int] = {}
    for path in corpus_files("broken"):
        try:
            facts = read_image((CORPUS / path).read_bytes())
        except UnreadableMedia as refused:
            assert refused.code in ("unreadable_image", "unsupported_format"), path
            assert refused.message, path
            outcome = refused.code
        else:
            assert facts.width > 0 and facts.height > 0, path
            outcome = "facts"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    # Pinned, so that a new Pillow or pillow-heif reading damaged files differently shows here.
    assert outcomes == {"facts": 55, "unreadable_image": 46, "unsupported_format": 1}


# (file, orientation as ExifTool reports it, shown width x height, orientation still to apply)
ORIENTED = [
    # iPhone: irot 270 and EXIF 6 say the same; libheif turns the pixels, pillow-heif resets the
    # EXIF tag to 1 - Darkroom reports the file's 6, with nothing left to apply.
    ("exif-samples/heic/mobile/iphone_13_pro_max.HEIC", 6, (3024, 4032), 1),
    # Samsung: EXIF 6 and no irot - the pixels come out landscape, the photo is portrait.
    ("cameras/heic/Issue 437 (dotnet).heic", 6, (1848, 4000), 6),
    # Nokia: irot 270 and a stale EXIF 1 - the container wins, as in every HEIF reader.
    ("exif-samples/heic/mobile/HMD_Nokia_8.3_5G.heif", 1, (3456, 4608), 1),
    ("cameras/heic/IMG_2929.HEIC", 1, (3024, 4032), 1),
    ("exif-samples/jpg/orientation/portrait_6.jpg", 6, (450, 600), 6),
    ("exif-samples/jpg/orientation/landscape_5.jpg", 5, (600, 450), 5),
    ("exif-samples/jpg/orientation/landscape_3.jpg", 3, (600, 450), 3),
    ("cameras/webp/Issue 473 (Java).webp", 6, (240, 320), 6),
    ("exif-samples/heic/IMG_5195.HEIC", None, (2566, 3313), 1),
]


@pytest.mark.parametrize(("path", "orientation", "shown", "to_apply"), ORIENTED)
def test_orientation_and_shown_size(
    path: str, orientation: int | None, shown: tuple[int, int], to_apply: int
) -> None:
    facts = read_image((CORPUS / path).read_bytes())

    assert (facts.orientation, (facts.width, facts.height)) == (orientation, shown)
    assert facts.orientation_to_apply == to_apply


# Real files, one field each that the CSV does not check or checks only loosely.
REAL_FIELDS = [
    ("exif-samples/heic/mobile/iphone_13_pro_max.HEIC", "offset", timedelta(hours=1)),
    ("cameras/heic/IMG_2929.HEIC", "offset", timedelta(hours=-4)),
    ("exif-samples/jpg/mobile/HMD_Nokia_8.3_5G.jpg", "offset", timedelta(hours=3)),
    # SubSecTimeOriginal "762" folded into DateTimeOriginal 2022:02:16 12:55:41
    (
        "exif-samples/heic/mobile/iphone_13_pro_max.HEIC",
        "taken",
        datetime(2022, 2, 16, 12, 55, 41, 762000),
    ),
    (
        "exif-samples/heic/mobile/iphone_13_pro_max.HEIC",
        "lens",
        "iPhone 13 Pro Max back triple camera 5.7mm f/1.5",
    ),
    ("exif-samples/jpg/Nikon_D70.jpg", "lens", "100.0 mm f/2.8"),  # XMP aux:Lens (Lightroom)
    ("exif-samples/jpg/WWL_(Polaroid)_ION230.jpg", "model", "ION230"),  # "ION230\0F": ends at NUL
    ("exif-samples/jpg/WWL_(Polaroid)_ION230.jpg", "make", "WWL"),  # "WWL     "
    # Kenya, just south of the equator; Mauritius, with the drone's altitude
    ("exif-samples/jpg/Kodak_CX7530.jpg", "gps", GeoPoint(-0.3713, 36.0564166666667, None)),
    ("cameras/tif/Issue 555 (1).tif", "gps", GeoPoint(-20.4405845, 57.3188538333333, 117.096)),
    # AltitudeRef 1: the phone says 166 m below sea level in Cardiff; the file's word is kept.
    (
        "cameras/jpg/Apple iPhone 6 plus.jpg",
        "gps",
        GeoPoint(51.482995, -3.18533666666667, -166.309),
    ),
    (
        "exif-samples/jpg/mobile/HMD_Nokia_8.3_5G.jpg",
        "gps_time",
        datetime(2022, 8, 14, 11, 12, 32, tzinfo=UTC),
    ),
    # PNG: DateTimeOriginal and Orientation only in the XMP iTXt chunk
    ("cameras/png/Issue 356 (dotnet).png", "taken", datetime(1988, 12, 1, 18, 53, 44)),
    ("cameras/png/Issue 356 (dotnet).png", "orientation", 1),
    # XMP written by Photoshop CS2 with the old "xap:" prefix for xmp:CreateDate
    ("exif-samples/jpg/xmp/BlueSquare.jpg", "taken", datetime(2005, 9, 7, 15, 7, 40)),
    ("exif-samples/jpg/xmp/BlueSquare.jpg", "offset", timedelta(hours=-7)),
    ("cameras/avif/32Bit-72dpi-sRGB-800x600.avif", "format", "AVIF"),
    # Makers' own records, where EXIF has nothing: FLIR (UTC, milliseconds and its zone; the
    # position with its 'W'), a Reconyx trail camera, a 2000 Canon (CIFF), a 1998 Olympus.
    (
        "cameras/jpg/FLIR iPhone device.jpg",
        "taken",
        datetime(2021, 5, 16, 12, 27, 36, 107000),
    ),
    ("cameras/jpg/FLIR iPhone device.jpg", "offset", timedelta(hours=-7)),
    (
        "cameras/jpg/FLIR iPhone device.jpg",
        "gps",
        GeoPoint(34.0754261592891, -118.254268165533, None),
    ),
    ("exif-samples/jpg/Reconyx_HC500_Hyperfire.jpg", "taken", datetime(2020, 3, 16, 10, 0, 0)),
    ("exif-samples/jpg/exif-org/sony-powershota5.jpg", "model", "Canon PowerShot A5"),
    ("exif-samples/jpg/exif-org/sony-powershota5.jpg", "taken", datetime(2000, 10, 27, 22, 56, 26)),
    ("exif-samples/jpg/exif-org/olympus-d320l.jpg", "taken", datetime(1998, 10, 29, 22, 6, 59)),
]


@pytest.mark.parametrize(("path", "field", "expected"), REAL_FIELDS)
def test_real_files_fields(path: str, field: str, expected: Any) -> None:
    facts = read_image((CORPUS / path).read_bytes())

    value = getattr(facts, field)
    if isinstance(expected, GeoPoint):
        assert value is not None
        assert value[:2] == pytest.approx(expected[:2], abs=1e-5)
        assert value.altitude == (
            None if expected.altitude is None else pytest.approx(expected.altitude, abs=1e-3)
        )
    else:
        assert value == expected


def photo(
    image_format: str = "JPEG",
    ifd0: dict[int, Any] | None = None,
    exif_ifd: dict[int, Any] | None = None,
    gps: dict[int, Any] | None = None,
    picture: Image.Image | None = None,
) -> bytes:
    """A picture as a camera would write it, for the cases the corpus lacks (8x6 by default)."""
    exif = Image.Exif()
    exif.update(ifd0 or {})
    exif.get_ifd(0x8769).update(exif_ifd or {})
    exif.get_ifd(0x8825).update(gps or {})
    out = io.BytesIO()
    picture = picture or Image.new("RGB", (8, 6), "red")
    picture.save(out, image_format, exif=exif.tobytes())
    return out.getvalue()


PHONE: dict[str, Any] = {
    "ifd0": {0x010F: "Canon\x00", 0x0110: "EOS R6", 0x0112: 6, 0x0132: "2024:07:20 09:00:00"},
    "exif_ifd": {
        0x9003: "2024:07:14 15:00:00",  # DateTimeOriginal
        0x9291: "25",  # SubSecTimeOriginal
        0x9011: "+05:45",  # OffsetTimeOriginal: Kathmandu
        0x9010: "+02:00",  # OffsetTime: the later edit's, never used
        0xA434: "RF 50mm F1.8 STM",
    },
    "gps": {
        1: "S",
        2: (Fraction(33), Fraction(52), Fraction(768, 100)),
        3: "W",
        4: (Fraction(70), Fraction(40), Fraction(0)),
        5: b"\x01",  # below sea level
        6: Fraction(12),
        7: (Fraction(12), Fraction(30), Fraction(3, 2)),
        0x1D: "2024:07:14",
    },
}


@pytest.mark.parametrize(
    ("image_format", "shown", "to_apply"),
    [
        ("JPEG", (6, 8), 6),
        ("PNG", (6, 8), 6),
        ("WEBP", (6, 8), 6),
        ("TIFF", (6, 8), 1),  # Pillow turns TIFFs upright as it loads them
        ("HEIF", (6, 8), 1),  # pillow-heif writes EXIF 6 as irot, which libheif applies
    ],
)
def test_every_format_gives_every_field(
    image_format: str, shown: tuple[int, int], to_apply: int
) -> None:
    facts = read_image(photo(image_format, **PHONE))

    assert facts == ImageFacts(
        format=image_format,
        make="Canon",
        model="EOS R6",
        lens="RF 50mm F1.8 STM",
        orientation=6,
        width=shown[0],
        height=shown[1],
        taken=datetime(2024, 7, 14, 15, 0, 0, 250000),
        offset=timedelta(hours=5, minutes=45),
        gps=GeoPoint(-(33 + 52 / 60 + 7.68 / 3600), -(70 + 40 / 60), -12.0),
        gps_time=datetime(2024, 7, 14, 12, 30, 1, 500000, tzinfo=UTC),
        orientation_to_apply=to_apply,
    )


def test_a_gif_gives_its_size_and_format() -> None:
    out = io.BytesIO()
    Image.new("P", (5, 3)).save(out, "GIF")

    facts = read_image(out.getvalue())

    assert (facts.format, facts.width, facts.height, facts.taken) == ("GIF", 5, 3, None)


# (Exif IFD tags, IFD0 tags, the capture time and offset read)
DATES = [
    (
        {0x9003: "0000:00:00 00:00:00", 0x9004: "2019:03:02 10:00:00"},
        {},
        (datetime(2019, 3, 2, 10), None),
    ),
    ({0x9003: "    :  :     :  :  "}, {}, (None, None)),
    (
        {0x9004: "2019:03:02 10:00:00", 0x9012: "-03:00"},
        {},
        (datetime(2019, 3, 2, 10), timedelta(hours=-3)),
    ),
    # OffsetTime belongs to DateTime, the last edit: never the capture's offset
    ({0x9003: "2019:03:02 10:00:00", 0x9010: "+09:00"}, {}, (datetime(2019, 3, 2, 10), None)),
    ({}, {0x0132: "2019:03:02 10:00:00"}, (datetime(2019, 3, 2, 10), None)),
    ({0x9003: "2019:03:02 10:00:00", 0x9011: "+99:00"}, {}, (datetime(2019, 3, 2, 10), None)),
    ({0x9003: "2019:02:30 10:00:00"}, {}, (None, None)),
    ({0x9003: "2019:03:02 10:00:00\x00"}, {}, (datetime(2019, 3, 2, 10), None)),
]


@pytest.mark.parametrize(("exif_ifd", "ifd0", "expected"), DATES)
def test_capture_date_time_and_its_offset(
    exif_ifd: dict[int, str],
    ifd0: dict[int, str],
    expected: tuple[datetime | None, timedelta | None],
) -> None:
    facts = read_image(photo(ifd0=ifd0, exif_ifd=exif_ifd))

    assert (facts.taken, facts.offset) == expected


NORTH_EAST = {
    1: "N",
    2: (Fraction(48), Fraction(51), Fraction(24)),
    3: "E",
    4: (Fraction(2), Fraction(21), Fraction(7)),
}
# (GPS IFD tags, the position read)
POSITIONS = [
    (NORTH_EAST, GeoPoint(48 + 51 / 60 + 24 / 3600, 2 + 21 / 60 + 7 / 3600, None)),
    (
        {**NORTH_EAST, 5: b"\x00", 6: Fraction(35)},
        GeoPoint(48.85666666666667, 2.3519444444444444, 35.0),
    ),
    (
        {
            1: "N",
            2: (Fraction(0), Fraction(0), Fraction(0)),
            3: "E",
            4: (Fraction(0), Fraction(0), Fraction(0)),
        },
        None,
    ),
    ({1: "N", 2: (Fraction(91), Fraction(0), Fraction(0)), 3: "E", 4: NORTH_EAST[4]}, None),
    ({1: "N", 2: NORTH_EAST[2]}, None),  # a latitude alone is no position
    ({**NORTH_EAST, 6: Fraction(10**9)}, GeoPoint(48.85666666666667, 2.3519444444444444, None)),
    (  # seconds written 0/0 by a camera that keeps degrees and decimal minutes
        {
            1: "S",
            2: (Fraction(33), Fraction(5218, 100), IFDRational(0, 0)),
            3: "E",
            4: (Fraction(151), Fraction(1235, 100), IFDRational(0, 0)),
        },
        GeoPoint(-(33 + 52.18 / 60), 151 + 12.35 / 60, None),
    ),
    ({**NORTH_EAST, 2: (IFDRational(0, 0), Fraction(51), Fraction(24))}, None),  # no degrees
]


@pytest.mark.parametrize(("gps", "expected"), POSITIONS)
def test_position(gps: dict[int, Any], expected: GeoPoint | None) -> None:
    facts = read_image(photo(gps=gps))

    if expected is None:
        assert facts.gps is None
    else:
        assert facts.gps is not None
        assert facts.gps[:2] == pytest.approx(expected[:2])
        assert facts.gps.altitude == expected.altitude


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_with(*extra_after_pixels: bytes, pixels: bytes | None = None) -> bytes:
    """An 8x6 PNG whose metadata chunks come after its pixels (where Pillow looks only on load)."""
    out = io.BytesIO()
    Image.new("RGB", (8, 6), "red").save(out, "PNG")
    data = out.getvalue()
    iend = data.rindex(b"IEND") - 4
    if pixels is not None:
        idat = data.index(b"IDAT") - 4
        data = data[:idat] + png_chunk(b"IDAT", pixels) + data[iend:]
        iend = data.rindex(b"IEND") - 4
    return data[:iend] + b"".join(extra_after_pixels) + data[iend:]


XMP = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description xmlns:ex="http://ns.adobe.com/exif/1.0/" xmlns:tiff="http://ns.adobe.com/tiff/1.0/"'
    ' ex:DateTimeOriginal="2021-06-01T08:30:00+02:00" ex:GPSLatitude="45,30.5N"'
    ' ex:GPSLongitude="73,34.2W"><tiff:Make>AT&amp;T</tiff:Make></rdf:Description>'
    "</rdf:RDF></x:xmpmeta>"
)


def test_png_metadata_after_damaged_pixels_is_read_without_decoding() -> None:
    exif = Image.Exif()
    exif[0x0110] = "Pixel 8"
    data = png_with(png_chunk(b"eXIf", exif.tobytes()), pixels=b"not zlib at all")

    facts = read_image(data)

    assert (facts.model, facts.width, facts.height) == ("Pixel 8", 8, 6)


def test_png_xmp_in_a_compressed_itxt_chunk() -> None:
    body = b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + zlib.compress(XMP.encode())
    facts = read_image(png_with(png_chunk(b"iTXt", body)))

    assert (facts.taken, facts.offset, facts.make) == (
        datetime(2021, 6, 1, 8, 30),
        timedelta(hours=2),
        "AT&T",
    )
    assert facts.gps is not None
    assert facts.gps[:2] == pytest.approx((45 + 30.5 / 60, -(73 + 34.2 / 60)))


def test_jpeg_metadata_is_read_though_its_pixels_are_cut_off() -> None:
    noise = Image.effect_noise((400, 300), 64).convert("RGB")  # scan data: most of the file
    data = photo(**PHONE, picture=noise)

    facts = read_image(data[: len(data) // 2])

    assert (facts.model, facts.offset) == ("EOS R6", timedelta(hours=5, minutes=45))


def png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b"")


# (bytes, the code they are refused with)
REFUSED = [
    (png_header(10_000, 10_000), "image_too_large"),  # over Pillow's limit: its warning
    (png_header(20_000, 20_000), "image_too_large"),  # twice over: its error
    (png_header(0, 6), "unreadable_image"),
    (b"\x89PNG\r\n\x1a\n", "unreadable_image"),
    (b"", "unsupported_format"),
    (b"%PDF-1.7\n", "unsupported_format"),
    (b"BM" + bytes(60), "unsupported_format"),  # a BMP: Pillow reads it, Darkroom does not
]


@pytest.mark.parametrize(("data", "code"), REFUSED)
def test_refused_bytes(data: bytes, code: str) -> None:
    with pytest.raises(UnreadableMedia) as refused:
        read_image(data)

    assert refused.value.code == code


def test_a_cameras_words_lose_their_control_characters_and_a_too_long_name_is_cut() -> None:
    data = photo(  # a PNG: its eXIf chunk holds more than a JPEG's 64 kB segment
        "PNG",
        ifd0={0x010F: "Canon\x1b[31mRED\r\nX-Injected: 1", 0x0110: "M" * 3_000_000},
        exif_ifd={0xA434: "\x07\x08\x1b\x7f"},  # nothing but controls: no lens
    )
    facts = read_image(data)
    assert facts.make == "Canon [31mRED X-Injected: 1"
    assert facts.model == "M" * MAX_LABEL
    assert facts.lens is None
