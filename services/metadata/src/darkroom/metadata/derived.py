"""Thumbnails and previews: WebP images of a photo, upright, in sRGB, never larger than it.

One decode serves both: the photo is decoded to fit the preview (``imaging.fitted``: at
reduced size, upright, in sRGB); the thumbnail is made from the preview.

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
"""

from __future__ import annotations

import io

from PIL import Image

from darkroom.common.imaging import UnreadableMedia, fitted
from darkroom.metadata.exif import read_image

WEBP_QUALITY = 80
# libwebp's effort, 0 (fast) to 6 (small). Measured here on a 1440x1080 photo: method 0 takes
# 53 ms for 221 kB, the default 4 takes 230-280 ms for 181 kB — longer than the decode and
# resize together. Thumbnails, shown by the hundred in grids, get the default (10 ms, 16 kB
# against 4 ms, 18 kB); previews, opened one at a time, get the fast method.
THUMBNAIL_METHOD = 4
PREVIEW_METHOD = 0


def derived_images(
    data: bytes, *, thumbnail: int = 256, preview: int = 1440, orientation: int | None = None
) -> tuple[bytes, bytes]:
    """WebP bytes of the photo fit within ``thumbnail``² and ``preview``² pixels, upright.

    ``orientation`` is the turn still to apply to the decoded pixels, as ``exif.read_image``
    tells it (by ``imaging.orientation_to_apply``, the one place that knows which formats
    Pillow or libheif turn themselves); read from ``data`` when not given.
    Raises ``UnreadableMedia`` for bytes that are no image, a broken one, or one with more
    pixels than is safe to decode.
    """
    if not 0 < thumbnail <= preview:
        raise ValueError(f"need 0 < thumbnail <= preview, got {thumbnail} and {preview}")
    if orientation is None:
        try:
            orientation = read_image(data).orientation_to_apply
        except UnreadableMedia:
            orientation = 1
    large = fitted(data, preview, orientation)
    small = large.copy()
    small.thumbnail((thumbnail, thumbnail))
    return _webp(small, THUMBNAIL_METHOD), _webp(large, PREVIEW_METHOD)


def _webp(image: Image.Image, method: int) -> bytes:
    out = io.BytesIO()
    image.save(out, "WEBP", quality=WEBP_QUALITY, method=method)
    return out.getvalue()
