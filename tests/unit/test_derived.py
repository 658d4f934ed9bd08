"""Thumbnails and previews: upright, the photo's shape, sRGB, never enlarged, bombs refused."""

from __future__ import annotations

import csv
import io
import struct
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pillow_heif
import pytest
from PIL import Image, ImageChops, ImageCms, ImageStat

from darkroom.common.imaging import UnreadableMedia, fitted
from darkroom.metadata.derived import derived_images

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
SUFFIXES = {".jpg", ".jpeg", ".png", ".heic", ".heif", ".webp", ".tif", ".tiff", ".avif"}

# Corpus images whose derived images differ from what ExifTool's numbers predict, and why.
ORIENTED_OTHERWISE = {
    # The HEIF container rotates it (irot 270) and its EXIF says 1. Every HEIF reader (libheif,
    # Apple, Windows) applies irot, as the standard says, and shows it portrait — so does
    # Darkroom. ExifTool's width and height are the coded (unrotated) ones. The picture is in
    # fact a landscape: the phone wrote a wrong irot, which no reader can know.
    "exif-samples/heic/mobile/HMD_Nokia_8.3_5G.heif": (3456, 4608),
}
# Files there that Pillow does not open: they fail with a reason.
UNOPENED = {
    "cameras/jpg/beach.jpg": "its frame header says 200x0 pixels",
}


def _truth() -> dict[str, dict[str, str]]:
    with (CORPUS / "exiftool-truth.csv").open(newline="", encoding="utf-8") as table:
        return {row["path"]: row for row in csv.DictReader(table)}


def _corpus_images() -> list[str]:
    return sorted(
        path.relative_to(CORPUS).as_posix()
        for folder in ("exif-samples", "cameras")
        for path in (CORPUS / folder).rglob("*")
        if path.suffix.lower() in SUFFIXES
    )


def _oriented_size(row: dict[str, str]) -> tuple[int, int]:
    width, height = int(row["width"]), int(row["height"])
    return (height, width) if row["orientation"] in ("5", "6", "7", "8") else (width, height)


def _size(webp: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(webp)) as image:
        assert image.format == "WEBP"
        return image.size


def _fit(size: tuple[int, int], box: int) -> tuple[float, float]:
    scale = min(1.0, box / max(size))
    return size[0] * scale, size[1] * scale


TRUTH = _truth()


@pytest.mark.parametrize("path", [p for p in _corpus_images() if p not in UNOPENED])
def test_every_corpus_image_gets_a_thumbnail_of_its_upright_shape(path: str) -> None:
    # a 256 px preview keeps the run short: the full size is checked below
    thumbnail, preview = derived_images((CORPUS / path).read_bytes(), preview=256)
    expected = ORIENTED_OTHERWISE.get(path) or _oriented_size(TRUTH[path])
    for webp in (thumbnail, preview):
        width, height = _size(webp)
        assert max(width, height) <= 256
        fitted = _fit(expected, 256)
        assert abs(width - fitted[0]) <= 1 and abs(height - fitted[1]) <= 1, (width, height)


@pytest.mark.parametrize(("path", "why"), UNOPENED.items())
def test_a_corpus_file_pillow_cannot_open_fails_with_a_reason(path: str, why: str) -> None:
    with pytest.raises(UnreadableMedia) as raised:
        derived_images((CORPUS / path).read_bytes())
    assert raised.value.code == "unknown_image_format", why


def test_the_preview_is_1440_pixels_and_the_thumbnail_256() -> None:
    data = (CORPUS / "exif-samples/jpg/hdr/iphone_hdr_NO.jpg").read_bytes()  # 3264x2448
    thumbnail, preview = derived_images(data)
    assert _size(preview) == (1440, 1080)
    assert _size(thumbnail) == (256, 192)


def test_a_small_image_is_never_enlarged() -> None:
    data = (CORPUS / "cameras/png/mspaint-8x10.png").read_bytes()
    thumbnail, preview = derived_images(data)
    assert _size(thumbnail) == _size(preview) == Image.open(io.BytesIO(data)).size


def _thumbnail(path: str) -> Image.Image:
    thumbnail, _ = derived_images((CORPUS / path).read_bytes(), preview=256)
    return Image.open(io.BytesIO(thumbnail)).convert("RGB")


def _difference(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


@pytest.mark.parametrize("shape", ["landscape", "portrait"])
def test_all_eight_orientations_come_out_as_the_same_upright_picture(shape: str) -> None:
    # exif-samples/jpg/orientation: one picture stored eight ways, each with the EXIF
    # orientation that makes it upright again
    upright = _thumbnail(f"exif-samples/jpg/orientation/{shape}_1.jpg")
    for orientation in range(2, 9):
        turned = _thumbnail(f"exif-samples/jpg/orientation/{shape}_{orientation}.jpg")
        assert turned.size == upright.size
        assert _difference(turned, upright) < 8, orientation  # WebP and JPEG noise only
    # and the test can tell: the picture turned upside down is far from upright
    assert _difference(upright.transpose(Image.Transpose.ROTATE_180), upright) > 30


@pytest.mark.parametrize(
    "path",
    [
        "exif-samples/heic/mobile/iphone_13_pro_max.HEIC",  # EXIF 6 and irot: turned once only
        "cameras/heic/Issue 437 (dotnet).heic",  # Samsung: EXIF 6 and no irot
        "cameras/heic/IMG_2929.HEIC",  # iPhone 11 Pro portrait
    ],
)
def test_a_heic_shot_upright_gets_a_portrait_thumbnail(path: str) -> None:
    thumbnail, preview = derived_images((CORPUS / path).read_bytes())
    (width, height), (preview_width, preview_height) = _size(thumbnail), _size(preview)
    assert height == 256 and width < height
    assert preview_height == 1440 and preview_width < preview_height
    assert width / height == pytest.approx(preview_width / preview_height, abs=0.01)


def test_an_iphone_heic_thumbnail_matches_the_picture_not_a_crop_or_zoom() -> None:
    # The HEIC holds its own small copy of the picture; Darkroom's thumbnail must show the same.
    path = CORPUS / "exif-samples/heic/mobile/iphone_13_pro_max.HEIC"
    embedded = pillow_heif.open_heif(path)[0].get_thumbnail(0).to_pillow().convert("RGB")
    thumbnail = _thumbnail("exif-samples/heic/mobile/iphone_13_pro_max.HEIC")
    assert _difference(thumbnail, embedded.resize(thumbnail.size)) < 12


def _icc_display_p3() -> bytes:
    profile = pillow_heif.open_heif(CORPUS / "cameras/heic/IMG_1034.heic").info["icc_profile"]
    assert isinstance(profile, bytes)
    return profile


def _pixel(image: Image.Image, x: int, y: int) -> tuple[int, ...]:
    value = image.getpixel((x, y))
    assert isinstance(value, tuple)
    return value


def _png(image: Image.Image, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", **params)
    return out.getvalue()


def test_colours_in_display_p3_are_converted_to_srgb() -> None:
    orange = Image.new("RGB", (64, 64), (200, 100, 50))
    _, tagged = derived_images(_png(orange, icc_profile=_icc_display_p3()))
    _, untagged = derived_images(_png(orange))
    # lcms2 gives (215, 93, 31) for Display P3 (200, 100, 50); WebP adds a little noise
    assert Image.open(io.BytesIO(tagged)).getpixel((32, 32)) == pytest.approx((215, 93, 31), abs=4)
    assert Image.open(io.BytesIO(untagged)).getpixel((32, 32)) == pytest.approx(
        (200, 100, 50), abs=4
    )


@pytest.mark.parametrize(
    ("photo", "converted"),
    [
        ("faces/obama.jpg", False),  # HP's sRGB IEC61966-2.1, as cameras and editors embed it
        ("faces/people/kit_harington/john2.jpeg", True),  # ProPhoto RGB
        ("faces/alex-lacamoire.png", True),  # a display's own profile
    ],
)
def test_colours_go_through_a_profile_unless_it_draws_them_as_srgb_does(
    photo: str, converted: bool
) -> None:
    """Converting through the sRGB profile itself moves no colour by more than a level, and
    costs a pass over every pixel: such a picture is drawn as decoded. Any other profile
    still converts."""
    profile = Image.open(CORPUS / photo).info["icc_profile"]
    colours = Image.linear_gradient("L").resize((64, 64)).convert("RGB")
    colours = Image.merge(
        "RGB",
        (
            colours.getchannel(0),
            colours.rotate(90).getchannel(0),
            colours.rotate(180).getchannel(0),
        ),
    )
    drawn = fitted(_png(colours, icc_profile=profile), 64)
    through = ImageCms.profileToProfile(
        colours, ImageCms.ImageCmsProfile(io.BytesIO(profile)), ImageCms.createProfile("sRGB")
    )
    assert through is not None
    assert ImageChops.difference(through, colours).getbbox() is not None  # it moves colours
    if converted:
        assert ImageChops.difference(drawn, through).getbbox() is None
    else:
        assert ImageChops.difference(drawn, colours).getbbox() is None
        moved = ImageChops.difference(through, colours)
        assert moved.point(lambda level: 255 if level > 1 else 0).getbbox() is None  # by one


def test_a_cmyk_jpeg_becomes_rgb_through_its_profile() -> None:
    data = (CORPUS / "cameras/jpg/Multiple ICC segments.jpg").read_bytes()
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    thumbnail, _ = derived_images(data)
    image = Image.open(io.BytesIO(thumbnail))
    assert image.mode == "RGB"
    assert ImageStat.Stat(image).mean != pytest.approx([0, 0, 0], abs=5)  # not black


def test_a_16_bit_grey_tiff_is_scaled_not_clipped_to_white() -> None:
    data = (CORPUS / "cameras/tif/Issue 555 (1).tif").read_bytes()
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    thumbnail, _ = derived_images(data)
    histogram = Image.open(io.BytesIO(thumbnail)).convert("L").histogram()
    assert (
        sum(histogram[:64]) > 0 and sum(histogram[192:]) > 0
    )  # an aerial photo with shade and sand, not a white page


def test_transparency_is_kept() -> None:
    half = Image.new("RGBA", (300, 200), (0, 128, 255, 128))
    _, preview = derived_images(_png(half, icc_profile=_icc_display_p3()))
    image = Image.open(io.BytesIO(preview))
    assert image.mode == "RGBA"
    assert _pixel(image, 10, 10)[3] == pytest.approx(128, abs=2)

    palette = Image.new("P", (30, 20), 1)
    palette.putpalette([255, 0, 0, 0, 255, 0])
    thumbnail, _ = derived_images(_png(palette, transparency=1))  # green is transparent
    assert _pixel(Image.open(io.BytesIO(thumbnail)).convert("RGBA"), 5, 5)[3] == 0


def test_derived_images_carry_no_exif_so_no_gps() -> None:
    data = (CORPUS / "exif-samples/jpg/gps/DSCN0010.jpg").read_bytes()
    for webp in derived_images(data):
        assert not Image.open(io.BytesIO(webp)).getexif()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_header(width: int, height: int) -> bytes:
    """A 200-byte PNG claiming a size, with a few bytes of pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 100)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", pixels)
        + _chunk(b"IEND", b"")
    )


def test_a_png_claiming_ten_billion_pixels_is_refused_before_decoding() -> None:
    with pytest.raises(UnreadableMedia) as refused:
        derived_images(_png_header(100_000, 100_000))
    assert refused.value.code == "image_too_large"


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_over_the_pixel_limit_is_refused_even_where_pillow_only_warns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = _png(Image.new("RGB", (40, 30)))  # 1,200 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)  # Pillow warns up to 2,000
    with pytest.raises(UnreadableMedia) as refused:
        derived_images(data)
    assert refused.value.code == "image_too_large"
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_200)
    assert _size(derived_images(data)[0]) == (40, 30)


@pytest.mark.parametrize(
    "data", [b"", b"not an image at all", b"\xff\xd8\xff\xe0" + b"\x00" * 20, b"GIF89a"]
)
def test_bytes_that_are_no_image_fail_with_a_reason(data: bytes) -> None:
    with pytest.raises(UnreadableMedia) as raised:
        derived_images(data)
    assert raised.value.code in ("unknown_image_format", "unreadable_image")
    assert raised.value.message


def test_every_broken_corpus_file_fails_with_a_reason_or_succeeds_and_none_hangs() -> None:
    paths = sorted(p for p in (CORPUS / "broken").rglob("*") if p.is_file())
    outcomes: dict[str, str] = {}

    def derive_all() -> None:
        for path in paths:
            derive(path)

    def derive(path: Path) -> None:
        started = time.monotonic()
        try:
            thumbnail, _ = derived_images(path.read_bytes(), preview=256)
            assert max(_size(thumbnail)) <= 256
            outcome = "ok"
        except UnreadableMedia as error:
            outcome = error.code
        assert time.monotonic() - started < 5, path
        outcomes[path.name] = outcome

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(derive_all).result(timeout=60)
    assert len(outcomes) == len(paths) == 102
    assert set(outcomes.values()) <= {"ok", "unreadable_image", "unknown_image_format"}


def test_the_thumbnail_cannot_be_larger_than_the_preview() -> None:
    with pytest.raises(ValueError, match="thumbnail"):
        derived_images(b"", thumbnail=512, preview=256)


def test_a_turned_tiff_is_turned_once() -> None:
    """Pillow turns a TIFF upright as it loads it; turning it again would lay it on its side."""
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, to be shown turned a quarter: portrait
    out = io.BytesIO()
    Image.new("RGB", (800, 600), "white").save(out, format="TIFF", exif=exif)
    thumbnail, _ = derived_images(out.getvalue(), preview=512)
    with Image.open(io.BytesIO(thumbnail)) as shown:
        assert shown.height > shown.width
