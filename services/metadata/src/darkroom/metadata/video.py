"""What a video file says about itself: duration, frame size, creation time and place.

Read with libmediainfo (bundled by ``pymediainfo``), which parses the container without
decoding a frame, from a path or a file object — a video is never copied into memory whole.

- Creation time: Apple's ``com.apple.quicktime.creationdate`` first, because it keeps the
  UTC offset of the moment; else the container's encoded or tagged date, which MP4 and
  QuickTime store in UTC (libmediainfo marks it "UTC"). A date not marked as UTC (an AVI's
  local ``IDIT`` date) is not taken as one: better no date than a silently wrong one.
- Place: the QuickTime location — Apple's ``com.apple.quicktime.location.ISO6709`` or the
  ``©xyz`` atom Android and older iPhones write — as an ISO 6709 string.
- Frame size: as displayed, i.e. after the rotation a phone records in the track matrix.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

from pymediainfo import MediaInfo

from darkroom.common.imaging import UnreadableMedia
from darkroom.metadata.capture import YEARS


@dataclass(frozen=True)
class VideoFacts:
    duration_seconds: float | None
    width: int | None  # as displayed: after the rotation
    height: int | None
    created: datetime | None  # aware, UTC
    gps: tuple[float, float, float | None] | None  # latitude, longitude, altitude (m)
    rotation: int | None  # degrees clockwise a player turns the frames: 0, 90, 180, 270
    created_offset: timedelta | None = None  # the UTC offset where it was shot, when recorded


def read_video(source: str | os.PathLike[str] | bytes | BinaryIO) -> VideoFacts:
    """The facts of a video file, from its path, its bytes or an open binary file."""
    media = source if not isinstance(source, bytes) else io.BytesIO(source)  # no copy
    try:
        info = MediaInfo.parse(media)
    except RuntimeError as error:  # libmediainfo itself failed on the data
        raise UnreadableMedia("unreadable_video", f"The video cannot be read: {error}") from error
    general = info.general_tracks[0].to_data() if info.general_tracks else {}
    if not info.video_tracks:
        raise UnreadableMedia("no_video_track", "The file holds no video track.")
    video = info.video_tracks[0].to_data()
    rotation = _rotation(video.get("rotation"))
    width, height = _integer(video.get("width")), _integer(video.get("height"))
    if rotation in (90, 270):
        width, height = height, width
    created, offset = _created(general)
    return VideoFacts(
        duration_seconds=_seconds(general.get("duration") or video.get("duration")),
        width=width,
        height=height,
        created=created,
        gps=_gps(general),
        rotation=rotation,
        created_offset=offset,
    )


# ISO 6709 Annex H, as QuickTime stores it: latitude, longitude, optional altitude, optional
# coordinate reference system, "/". Each angle is ±DD[MM[SS]][.fraction] (longitude ±DDD...).
ISO6709 = re.compile(
    r"(?P<lat>[+-]\d{2}(?:\d{2}){0,2}(?:\.\d+)?)"
    r"(?P<lon>[+-]\d{3}(?:\d{2}){0,2}(?:\.\d+)?)"
    r"(?P<alt>[+-]\d+(?:\.\d+)?)?"
    r"(?:CRS[A-Za-z0-9_]+)?"
    r"/?"
)


def parse_iso6709(text: str) -> tuple[float, float, float | None] | None:
    """Latitude, longitude (decimal degrees) and altitude (metres) of "+48.8584+002.2945+035/".

    None for anything that is not such a string or names an impossible position.
    """
    match = ISO6709.fullmatch(text.strip())
    if match is None:
        return None
    latitude = _angle(match["lat"], degree_digits=2)
    longitude = _angle(match["lon"], degree_digits=3)
    if latitude is None or longitude is None or abs(latitude) > 90 or abs(longitude) > 180:
        return None
    altitude = float(match["alt"]) if match["alt"] else None
    return latitude, longitude, altitude


def _angle(text: str, degree_digits: int) -> float | None:
    """±DD.D, ±DDMM.M or ±DDMMSS.S (three degree digits for a longitude) in degrees."""
    sign = -1.0 if text[0] == "-" else 1.0
    whole, _, fraction = text[1:].partition(".")
    parts = [
        whole[:degree_digits],
        whole[degree_digits : degree_digits + 2],
        whole[degree_digits + 2 :],
    ]
    parts = [part for part in parts if part]
    parts[-1] += f".{fraction}" if fraction else ""  # the fraction is of the last unit given
    degrees, minutes, seconds = [float(part) for part in parts] + [0.0] * (3 - len(parts))
    if minutes >= 60 or seconds >= 60:
        return None
    return sign * (degrees + minutes / 60 + seconds / 3600)


def _gps(general: dict[str, Any]) -> tuple[float, float, float | None] | None:
    for key in ("comapplequicktimelocationiso6709", "xyz"):
        value = general.get(key)
        position = parse_iso6709(value) if isinstance(value, str) else None
        if position is not None and position[:2] != (0.0, 0.0):  # 0, 0: a device with no fix
            return position
    return None


MEDIAINFO_UTC_DATE = re.compile(
    r"(?:UTC )?(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?:\.\d+)?(?: UTC)?"
)


def _created(general: dict[str, Any]) -> tuple[datetime | None, timedelta | None]:
    """The creation instant (UTC) and the offset recorded with it; a date outside
    ``capture.YEARS`` is none."""
    apple = general.get("comapplequicktimecreationdate")
    if isinstance(apple, str):
        try:
            moment = datetime.fromisoformat(apple.strip())
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None and moment.year in YEARS:
            return moment.astimezone(UTC), moment.utcoffset()
    for key in ("encoded_date", "tagged_date"):
        value = general.get(key)
        if isinstance(value, str) and "UTC" in value:
            match = MEDIAINFO_UTC_DATE.fullmatch(value.strip())
            if match is not None:
                try:
                    moment = datetime.fromisoformat(match[1])
                except ValueError:
                    continue
                if moment.year in YEARS:
                    return moment.replace(tzinfo=UTC), None
    return None, None


def _rotation(value: Any) -> int | None:
    try:
        return round(float(value)) % 360
    except (TypeError, ValueError):
        return None


def _integer(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _seconds(milliseconds: Any) -> float | None:
    try:
        return float(milliseconds) / 1000
    except (TypeError, ValueError):
        return None
