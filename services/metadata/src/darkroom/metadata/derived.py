"""Thumbnails and previews: WebP images of a photo, upright, in sRGB, never larger than it.

One decode serves both: the photo is decoded at reduced size where the format allows it
(a JPEG's DCT scaling through ``Image.draft``: 36-51 ms instead of 85-102 ms for 12 MP), made
to fit the preview, turned upright and converted to sRGB; the thumbnail is made from the
preview.

Upright means:

- JPEG, PNG, WebP, TIFF: the EXIF orientation (or XMP ``tiff:Orientation``), as
  ``ImageOps.exif_transpose`` would apply it — but to the preview rather than to the whole
  decoded photo, which is cheaper.
- HEIF: libheif already applies the container's rotation and mirroring (``irot``, ``imir``),
  which the HEIF standard makes the only authority, and pillow-heif then resets the EXIF
  orientation to 1. Applying the EXIF value as well would turn an iPhone's portrait photo
  twice. Some Samsung phones write an EXIF orientation and no ``irot`` at all; their own
  gallery, ExifTool and the photographer say portrait, so there — and only there — the EXIF
  value is applied.

Pillow's decompression-bomb guard stays on, and is stricter here: an image over
``Image.MAX_IMAGE_PIXELS`` raises ``Image.DecompressionBombError`` even where Pillow would
only warn.
"""

from __future__ import annotations

import io
import threading

from PIL import Image, ImageCms, UnidentifiedImageError

from darkroom.metadata.exif import UnreadableMedia, read_image

# What Darkroom decodes. Pillow knows more formats, but some call out to other programs
# (EPS runs Ghostscript) or are rarely worth the risk of an old decoder on untrusted uploads.
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "HEIF", "AVIF")
WEBP_QUALITY = 80
# libwebp's effort, 0 (fast) to 6 (small). Measured here on a 1440x1080 photo: method 0 takes
# 53 ms for 221 kB, the default 4 takes 230-280 ms for 181 kB — longer than the decode and
# resize together. Thumbnails, shown by the hundred in grids, get the default (10 ms, 16 kB
# against 4 ms, 18 kB); previews, opened one at a time, get the fast method.
THUMBNAIL_METHOD = 4
PREVIEW_METHOD = 0

# EXIF orientation -> the transposition that makes the image upright (as in exif_transpose)
UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_heif_lock = threading.Lock()
_heif_registered = False


class UnreadableImage(ValueError):
    """The bytes are not an image Darkroom can decode: a reason for a failed result."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def derived_images(
    data: bytes, *, thumbnail: int = 256, preview: int = 1440, orientation: int | None = None
) -> tuple[bytes, bytes]:
    """WebP bytes of the photo fit within ``thumbnail``² and ``preview``² pixels, upright.

    ``orientation`` is the turn still to apply to the decoded pixels, as ``exif.read_image``
    tells it (``orientation_to_apply``: the one place that knows which formats Pillow or
    libheif turn themselves); read from ``data`` when not given.
    Raises ``UnreadableImage`` for bytes that are no image or a broken one, and
    ``Image.DecompressionBombError`` for one with more pixels than is safe to decode.
    """
    if not 0 < thumbnail <= preview:
        raise ValueError(f"need 0 < thumbnail <= preview, got {thumbnail} and {preview}")
    if orientation is None:
        try:
            orientation = read_image(data).orientation_to_apply
        except UnreadableMedia:
            orientation = 1
    large = _preview(data, preview, orientation)
    small = large.copy()
    small.thumbnail((thumbnail, thumbnail))
    return _webp(small, THUMBNAIL_METHOD), _webp(large, PREVIEW_METHOD)


def _preview(data: bytes, size: int, orientation: int) -> Image.Image:
    _register_heif_opener()
    try:
        file = Image.open(io.BytesIO(data), formats=FORMATS)
        _refuse_bomb(file)
        profile = file.info.get("icc_profile")
        file.draft("RGB", _fitted(file.size, size))  # JPEG: decode at 1/2, 1/4 or 1/8 scale
        file.load()
        image = _resizable(file)
        image.thumbnail((size, size))
    except UnidentifiedImageError as error:
        raise UnreadableImage(
            "unknown_image_format", "The data is in no image format Darkroom reads."
        ) from error
    except (OSError, SyntaxError, EOFError, ValueError) as error:  # Pillow's ways of "broken"
        raise UnreadableImage(
            "unreadable_image", f"The image cannot be decoded ({error})."
        ) from error
    if orientation in UPRIGHT:
        image = image.transpose(UPRIGHT[orientation])
    return _srgb(image, profile)


def _fitted(size: tuple[int, int], box: int) -> tuple[int, int]:
    """The size of an image fit within box x box: what to ask ``draft`` for.

    Asking for the square itself would keep a 4:3 photo's short side at 1440 or more, and so
    a 12 MP JPEG at full size: draft only scales where both sides stay at or over the request.
    """
    width, height = size
    scale = min(1.0, box / max(width, height, 1))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _refuse_bomb(image: Image.Image) -> None:
    """Pillow only warns between MAX_IMAGE_PIXELS and twice that; Darkroom refuses."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and image.width * image.height > limit:
        raise Image.DecompressionBombError(
            f"{image.width}x{image.height} is {image.width * image.height:,} pixels, "
            f"over the limit of {limit:,}."
        )


def _resizable(image: Image.Image) -> Image.Image:
    """The image in a mode Pillow resamples smoothly: L, LA, RGB, RGBA or CMYK."""
    mode = image.mode
    if mode == "1":
        return image.convert("L")  # a bilevel image resized stays bilevel: jagged
    if mode in ("P", "PA"):  # a palette image is resized by nearest neighbour
        return image.convert("RGBA" if image.has_transparency_data else "RGB")
    if mode == "I" or mode.startswith("I;16"):
        # 16-bit grey (TIFF scans, PNG): plain convert("L") clips everything over 255 to white
        return image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    if mode in ("L", "LA", "RGB", "RGBA", "CMYK"):
        return image
    return image.convert("RGBA" if image.has_transparency_data else "RGB")


def _srgb(image: Image.Image, profile: bytes | None) -> Image.Image:
    """RGB (RGBA where the image has alpha) in sRGB, through its ICC profile where it has one.

    Phones shoot in Display P3 and print shops send CMYK: drawn as if sRGB, the first looks
    dull and the second wrong. A profile that cannot be read leaves the colours as stored.
    """
    mode = "RGBA" if image.mode in ("LA", "RGBA") else "RGB"
    if profile:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            converted = ImageCms.profileToProfile(
                image, source, ImageCms.createProfile("sRGB"), outputMode=mode
            )
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass
        else:
            if converted is not None:
                return converted
    return image if image.mode == mode else image.convert(mode)


def _webp(image: Image.Image, method: int) -> bytes:
    out = io.BytesIO()
    image.save(out, "WEBP", quality=WEBP_QUALITY, method=method)
    return out.getvalue()


def _register_heif_opener() -> None:
    global _heif_registered
    with _heif_lock:
        if not _heif_registered:
            from pillow_heif import register_heif_opener

            register_heif_opener()
            _heif_registered = True
