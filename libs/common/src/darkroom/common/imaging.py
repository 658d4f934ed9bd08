"""Pictures from uploaded bytes, for the services that look at pixels (the `imaging` extra).

- ``fitted``: a photo decoded at reduced size where the format allows it (a JPEG's DCT scaling
  through ``Image.draft``: 36-51 ms instead of 85-102 ms for 12 MP), made to fit a box, turned
  upright and converted to sRGB.
- ``orientation_to_apply``: the EXIF turn still to apply to the pixels Pillow decodes, for
  every format: the one rule of which decoders turn a picture upright themselves.
- ``poster_frame``: one frame of a video, through the ffmpeg binary the ``imageio-ffmpeg``
  wheel ships, so nothing is downloaded at run time.

Pillow's decompression-bomb guard stays on, and is stricter here: an image over
``Image.MAX_IMAGE_PIXELS`` is refused (``UnreadableMedia``, ``image_too_large``) even where
Pillow would only warn. A file that is no picture raises ``UnreadableMedia`` too, whose code
and sentence become a failed result.
"""

from __future__ import annotations

import ctypes
import functools
import io
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import imageio_ffmpeg
import pillow_heif
from minio.error import S3Error
from PIL import Image, ImageChops, ImageCms, UnidentifiedImageError

from darkroom.common.pool import WorkFailed

# What Darkroom decodes. Pillow knows more formats, but some call out to other programs
# (EPS runs Ghostscript) or are rarely worth the risk of an old decoder on untrusted uploads.
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "HEIF", "AVIF")
ORIENTATION_TAG = 0x0112
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
POSTER_TIMEOUT_SECONDS = 30
MISSING = frozenset({"NoSuchKey", "NoSuchObject"})
T = TypeVar("T")


class UnreadableMedia(ValueError):
    """Not a medium Darkroom can read: ``code`` says why, ``message`` in one sentence."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __reduce__(
        self,
    ) -> tuple[type[UnreadableMedia], tuple[str, str]]:  # raised in worker processes
        return type(self), (self.code, self.message)


@dataclass(frozen=True)
class Failure:
    """Why a file itself could not be read: the reason of a failed result.

    ``transient``: the work passed its time limit or crashed its process, which another run
    may not (the machine was busy). A medium read well before keeps that result over such a
    failure when it is processed again.
    """

    code: str
    message: str
    transient: bool = False


async def attempt(work: Awaitable[T]) -> T | Failure:
    """The work on one file, or why the file could not be read.

    A file no decoder reads, one whose work passed its time limit or crashed its process
    (``transient``), and an original missing from storage give a failed result: a ``Failure``,
    never a retry or a dead letter. Anything else (S3 or the database unavailable) is raised.
    """
    try:
        return await work
    except UnreadableMedia as error:
        return Failure(error.code, error.message)
    except WorkFailed as error:
        return Failure(error.code, error.message, transient=True)
    except S3Error as error:
        if error.code not in MISSING:
            raise
        return Failure("missing_original", "The original file is not in storage.")


@functools.cache
def register_heif_opener() -> None:
    """Let Pillow open HEIF and AVIF (once per process)."""
    pillow_heif.register_heif_opener()


BOMBS = (Image.DecompressionBombError, Image.DecompressionBombWarning)
"""Pillow's refusals of an image over ``Image.MAX_IMAGE_PIXELS`` (the warning, made an error)."""


def too_large(error: Exception) -> UnreadableMedia:
    """The refusal of a decompression bomb, in the words every service uses."""
    return UnreadableMedia(
        "image_too_large", f"The image has more pixels than is safe to decode ({error})."
    )


def fitted(data: bytes, size: int, orientation: int | None = None) -> Image.Image:
    """The photo fit within ``size``² pixels, upright, RGB (RGBA where it has alpha) in sRGB.

    ``orientation`` is the EXIF turn still to apply to the pixels Pillow decodes; when not
    given, ``orientation_to_apply`` of the orientation the file states as Pillow reads it.
    The metadata service passes the one its EXIF reader found with the same rule (that reader
    also reads XMP where Pillow does not).
    """
    register_heif_opener()
    try:
        file = Image.open(io.BytesIO(data), formats=FORMATS)
        _refuse_bomb(file)
        if orientation is None:  # decided before load(), which drops a HEIF's container
            stated = heif_orientation(file) or file.getexif().get(ORIENTATION_TAG)
            orientation = orientation_to_apply(file, stated)
        profile = file.info.get("icc_profile")
        file.draft("RGB", _fitted(file.size, size))  # JPEG: decode at 1/2, 1/4 or 1/8 scale
        file.load()
        image = _resizable(file)
        image.thumbnail((size, size))
    except UnidentifiedImageError as error:
        raise UnreadableMedia(
            "unknown_image_format", "The data is in no image format Darkroom reads."
        ) from error
    except BOMBS as error:
        raise too_large(error) from error
    except (OSError, SyntaxError, EOFError, ValueError) as error:  # Pillow's ways of "broken"
        raise UnreadableMedia(
            "unreadable_image", f"The image cannot be decoded ({error})."
        ) from error
    if orientation in UPRIGHT:
        image = image.transpose(UPRIGHT[orientation])
    return _srgb(image, profile)


def orientation_to_apply(image: Image.Image, orientation: int | None) -> int:
    """The EXIF turn still to apply to the pixels Pillow decodes from ``image``, an opened
    (not yet loaded) file that states ``orientation`` (None where it states none).

    - TIFF: none. Pillow turns a TIFF upright as it loads it (and then drops the tag).
    - HEIF: libheif applies the container's rotation and mirroring (``irot``, ``imir``), which
      the HEIF standard makes the authority (MIAF says EXIF should express no transformation),
      so none where the container has one. Samsung phones write EXIF 6 and no ``irot`` at all
      (Immich #31617, libheif #680): their pixels come out of libheif unturned, and only the
      stated value says the photo is portrait, so it is applied.
    - AVIF, JPEG, PNG, WebP, GIF: the stated value. Pillow's AVIF reader leaves the pixels as
      stored and states the container's ``irot``/``imir`` as the EXIF orientation.
    """
    if image.format == "TIFF":
        return 1
    # Not knowing (pillow-heif changed) counts as turned: most HEIFs are iPhones', with irot.
    if image.format == "HEIF" and _heif_has_transform(image) is not False:
        return 1
    return orientation if orientation in UPRIGHT else 1


def heif_orientation(image: Image.Image) -> int | None:
    """The orientation a HEIF file's EXIF (or XMP) states, which pillow-heif takes out of it.

    pillow-heif rewrites the EXIF Orientation to 1 as it opens the file (so that
    ``exif_transpose`` cannot turn the pixels libheif turned already) and keeps the file's
    value in ``info["original_orientation"]``: Pillow reports 1 where ExifTool says 6 on iPhone
    HEICs (``irot`` 270 and EXIF 6 together). None for other files and where none is stated.
    """
    original = image.info.get("original_orientation")
    return original if isinstance(original, int) and 1 <= original <= 8 else None


def poster_frame(path: str, duration_seconds: float | None) -> bytes:
    """One frame of the video as PNG bytes, upright, to stand for the video as a picture.

    Taken a second in (or a tenth of a short clip), past the black first frame many cameras
    write; ffmpeg applies the video's rotation itself. With no known duration, a second in,
    else the first frame.
    """
    if duration_seconds:
        return _frame_at(path, min(1.0, duration_seconds / 10))
    try:
        return _frame_at(path, 1.0)
    except UnreadableMedia:  # shorter than a second
        return _frame_at(path, 0.0)


def _frame_at(path: str, at: float) -> bytes:
    try:
        done = subprocess.run(  # noqa: S603 - a fixed binary, arguments we build
            [
                imageio_ffmpeg.get_ffmpeg_exe(),
                "-nostdin",
                "-loglevel",
                "error",
                "-ss",
                f"{at:.3f}",
                "-i",
                path,
                "-frames:v",
                "1",
                "-f",
                "image2pipe",
                "-vcodec",
                "png",
                "-",
            ],
            capture_output=True,
            timeout=POSTER_TIMEOUT_SECONDS,
            check=False,
            preexec_fn=_dies_with(os.getpid()),
        )
    except subprocess.TimeoutExpired:
        raise UnreadableMedia(
            "unreadable_video", "No frame of the video could be decoded in time."
        ) from None
    if done.returncode != 0 or not done.stdout:
        raise UnreadableMedia("unreadable_video", "No frame of the video could be decoded.")
    return done.stdout


def _dies_with(parent: int) -> Callable[[], None] | None:
    """What ffmpeg's process runs before it starts, on Linux: it is killed when the worker
    process ``parent`` that started it dies (a worker replaced for its time limit leaves no
    ffmpeg behind); if that worker died already, before the request took hold, it never
    starts."""
    if sys.platform != "linux":
        return None

    def die_with_parent() -> None:
        if _prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0 or os.getppid() != parent:
            os._exit(1)

    return die_with_parent


if sys.platform == "linux":
    _prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, never in a forked child
    PR_SET_PDEATHSIG = 1


def _fitted(size: tuple[int, int], box: int) -> tuple[int, int]:
    """The size of an image fit within box x box: what to ask ``draft`` for.

    Asking for the square itself would keep a 4:3 photo's short side at 1440 or more, and so
    a 12 MP JPEG at full size: draft only scales where both sides stay at or over the request.
    """
    width, height = size
    scale = min(1.0, box / max(width, height, 1))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _heif_has_transform(image: Image.Image) -> bool | None:
    """Whether the primary image of an opened HEIF has an ``irot`` or ``imir`` box; None when
    pillow-heif does not say."""
    # pillow-heif 1.8 exposes the primary image's container transforms only privately; the
    # corpus tests (iPhone with irot, Samsung without) fail loudly if that ever changes.
    heif_file = getattr(image, "_heif_file", None)
    if heif_file is None:
        return None
    try:
        transforms = heif_file[heif_file.primary_index]._c_image.transformations
        # Any irot (even the 0 degrees iPhones write for an upright photo) or imir box makes
        # the container the authority, as the HEIF standard says; EXIF counts only where it is
        # silent.
        return any(kind in ("irot", "imir") for kind, *_ in transforms)
    except Exception:  # a private interface: any change to it means not knowing
        return None


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
    dull and the second wrong. A profile that cannot be read leaves the colours as stored, as
    does the sRGB profile itself (``_draws_as_srgb``).
    """
    mode = "RGBA" if image.mode in ("LA", "RGBA") else "RGB"
    if profile and not _draws_as_srgb(profile):
        converted = _through(image, profile, mode)
        if converted is not None:
            return converted
    return image if image.mode == mode else image.convert(mode)


def _through(image: Image.Image, profile: bytes, mode: str) -> Image.Image | None:
    """``image`` drawn through ``profile`` into sRGB; None where the profile cannot be read or
    does not fit the image (a CMYK profile on RGB pixels)."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        return ImageCms.profileToProfile(
            image, source, ImageCms.createProfile("sRGB"), outputMode=mode
        )
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None


@functools.lru_cache(maxsize=16)
def _draws_as_srgb(profile: bytes) -> bool:
    """Whether a colour profile draws RGB colours as sRGB does, to within one level of 255.

    Cameras and editors mostly embed the sRGB profile itself (HP's ``sRGB IEC61966-2.1``):
    converting through it moves no colour by more than rounding does, at the cost of a pass
    over every pixel (a third to a half of decoding a 1-megapixel JPEG). Judged once a profile
    (per process) on a probe: 4,096 colours across the cube, 16 levels a channel, and the
    grey ramp.
    """
    probe = _probe()
    drawn = _through(probe, profile, "RGB")
    if drawn is None:
        return False
    moved = ImageChops.difference(drawn, probe).point(lambda level: 255 if level > 1 else 0)
    return moved.getbbox() is None  # no colour moved by more than one level


@functools.cache
def _probe() -> Image.Image:
    """The colours ``_draws_as_srgb`` tries, made once a process and only when first needed."""
    levels = range(0, 256, 17)
    cube = [v for r in levels for g in levels for b in levels for v in (r, g, b)]
    grey = [v for level in range(256) for v in (level, level, level)]
    return Image.frombytes("RGB", (len(levels) ** 3 + 256, 1), bytes(cube + grey))
