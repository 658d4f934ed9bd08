"""The work on one file, run in a worker process: bytes in, everything the service reports out.

Pure but for the CPU: no network, no database. Any failure of the file itself comes back as a
``Failure`` value (exceptions do not cross process boundaries well).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import date, datetime

from PIL import Image

from darkroom.common.imaging import Failure, UnreadableMedia, poster_frame
from darkroom.metadata.capture import capture_time, video_time
from darkroom.metadata.derived import derived_images
from darkroom.metadata.exif import read_image
from darkroom.metadata.place import Place, place_at, zone_at
from darkroom.metadata.video import read_video


@dataclass(frozen=True)
class Hints:
    """What the upload says beyond the bytes."""

    project_zone: str
    session_date: date


@dataclass(frozen=True)
class Extracted:
    captured_at: datetime
    offset_source: str
    make: str | None = None
    model: str | None = None
    lens: str | None = None
    orientation: int | None = None
    width: int | None = None
    height: int | None = None
    gps: tuple[float, float, float | None] | None = None
    place: Place | None = None
    duration_seconds: float | None = None
    thumbnail: bytes | None = None
    preview: bytes | None = None


def extract_image(data: bytes, hints: Hints) -> Extracted | Failure:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            facts = read_image(data)
            thumbnail, preview = derived_images(data, orientation=facts.orientation_to_apply)
    except UnreadableMedia as error:
        return Failure(error.code, error.message)
    except (OSError, ValueError, SyntaxError, EOFError) as error:  # Pillow's "broken"
        return Failure("unreadable_image", f"The image data cannot be decoded ({error}).")
    gps = facts.gps
    captured_at, source = capture_time(
        facts.taken,
        facts.offset,
        (gps[0], gps[1]) if gps else None,
        zone_at,
        hints.project_zone,
        hints.session_date,
    )
    return Extracted(
        captured_at=captured_at,
        offset_source=source,
        make=facts.make,
        model=facts.model,
        lens=facts.lens,
        orientation=facts.orientation,
        width=facts.width,
        height=facts.height,
        gps=gps,
        place=place_at(gps[0], gps[1]) if gps else None,
        thumbnail=thumbnail,
        preview=preview,
    )


def extract_video(path: str, hints: Hints) -> Extracted | Failure:
    try:
        facts = read_video(path)
    except UnreadableMedia as error:
        return Failure(error.code, error.message)
    thumbnail: bytes | None
    preview: bytes | None
    try:
        thumbnail, preview = derived_images(
            poster_frame(path, facts.duration_seconds), orientation=1
        )
    except UnreadableMedia:  # frames ffmpeg cannot decode: what the container says still holds
        thumbnail = preview = None
    gps = facts.gps
    if facts.created is not None:
        captured_at, source = video_time(
            facts.created,
            facts.created_offset,
            (gps[0], gps[1]) if gps else None,
            zone_at,
            hints.project_zone,
        )
    else:
        captured_at, source = capture_time(
            None, None, None, zone_at, hints.project_zone, hints.session_date
        )
    return Extracted(
        captured_at=captured_at,
        offset_source=source,
        width=facts.width,
        height=facts.height,
        gps=gps,
        place=place_at(gps[0], gps[1]) if gps else None,
        duration_seconds=facts.duration_seconds,
        thumbnail=thumbnail,
        preview=preview,
    )
