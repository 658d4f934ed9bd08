"""When a photo was taken, as an aware date-time, and where its UTC offset came from.

Pure: the camera's wall clock and what the file says about it in, an aware ``datetime`` out.
The offset is, in this order: the one the camera recorded with the time stamp ("exif"); the
time zone at the photo's GPS position on that date ("gps_timezone"); the project's time zone,
assumed ("project_timezone"). A file with no date at all takes the session's capture date at
midnight in the project's zone ("session_date"). Never silently UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone
from typing import get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from darkroom.common.events import OffsetSource

OFFSET_SOURCES: tuple[OffsetSource, ...] = get_args(OffsetSource)
YEARS = range(1800, 2201)
"""The years a capture time may fall in; a date outside them is a placeholder or garbage
(0001-01-01 is .NET's empty date) and counts as no date."""


def capture_time(
    facts_taken: datetime | None,
    facts_offset: timedelta | None,
    gps: tuple[float, float] | None,
    zone_at: Callable[[float, float], str | None],
    project_zone: str,
    session_date: date,
) -> tuple[datetime, str]:
    """The capture date-time with a fixed UTC offset, and one of ``OFFSET_SOURCES``.

    ``facts_taken`` is the camera's naive wall clock and ``facts_offset`` the offset recorded
    for it; ``zone_at(latitude, longitude)`` names the IANA zone at a position, or None (at sea).
    The wall clock is kept as the camera showed it; only the offset is chosen here.
    """
    if facts_taken is None or facts_taken.year not in YEARS:
        midnight = datetime.combine(session_date, time(0))
        return _in_zone(midnight, project_zone), "session_date"
    if facts_offset is not None:
        return facts_taken.replace(tzinfo=timezone(facts_offset)), "exif"
    zone = zone_at(*gps) if gps is not None else None
    if zone is not None and _known_zone(zone):
        return _in_zone(facts_taken, zone), "gps_timezone"
    return _in_zone(facts_taken, project_zone), "project_timezone"


def video_time(
    instant: datetime,
    recorded_offset: timedelta | None,
    gps: tuple[float, float] | None,
    zone_at: Callable[[float, float], str | None],
    project_zone: str,
) -> tuple[datetime, str]:
    """A video's capture time, shown at the offset of where it was shot, and its source.

    A video states an instant (QuickTime's creation time is UTC), not a wall clock: it is
    kept, and told at the offset the file recorded (``video``: an iPhone's own creation
    date), else at the zone of its GPS position, else at the project's zone.
    """
    if recorded_offset is not None:
        return instant.astimezone(timezone(recorded_offset)), "video"
    zone = zone_at(*gps) if gps is not None else None
    if zone is not None and _known_zone(zone):
        return _instant_in_zone(instant, zone), "gps_timezone"
    return _instant_in_zone(instant, project_zone), "project_timezone"


def _instant_in_zone(instant: datetime, zone: str) -> datetime:
    local = instant.astimezone(ZoneInfo(zone))
    offset = local.utcoffset()
    assert offset is not None  # a ZoneInfo always has one
    return local.replace(tzinfo=timezone(offset))


def _in_zone(wall_clock: datetime, zone: str) -> datetime:
    """The wall clock with the offset its zone had then, summer time included, as a fixed offset.

    Times that happen twice (the hour the clocks go back) take the first, summer-time offset;
    times that never happen (the hour the clocks go forward) take the offset before the change,
    which is what a camera whose clock has not been put forward yet still shows (PEP 495
    ``fold=0`` does both).
    """
    offset = wall_clock.replace(tzinfo=ZoneInfo(zone), fold=0).utcoffset()
    assert offset is not None  # a ZoneInfo always has one
    return wall_clock.replace(tzinfo=timezone(offset))


def _known_zone(zone: str) -> bool:
    # timezonefinder's data can name a zone newer than the system's tz database
    # (America/Ciudad_Juarez, 2022): better the project's zone than a crash.
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
