"""The capture date-time: which offset a photo gets, and from where - never silently UTC."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest
from timezonefinder import TimezoneFinder

from darkroom.metadata.capture import OFFSET_SOURCES, capture_time, video_time

PARIS = (48.8566, 2.3522)
NEW_YORK = (40.7128, -74.0060)
SYDNEY = (-33.8688, 151.2093)
MOSCOW = (55.7558, 37.6173)
MID_ATLANTIC = (0.0, -30.0)  # no land, so no zone: the project's is assumed
SESSION = date(2024, 5, 1)
NEPAL = timedelta(hours=5, minutes=45)

ZoneAt = Callable[[float, float], str | None]


@pytest.fixture(scope="module")
def zone_at() -> ZoneAt:
    """The real look-up, offline; None at sea."""
    finder = TimezoneFinder()
    return lambda latitude, longitude: finder.timezone_at_land(lat=latitude, lng=longitude)


def hours(value: float) -> timedelta:
    return timedelta(hours=value)


# (camera's wall clock, offset it recorded, GPS, project zone, the offset given, its source)
CASES = [
    # Summer and winter time at the GPS position, on the photo's own date
    (datetime(2024, 7, 14, 15, 0), None, PARIS, "Asia/Tokyo", hours(2), "gps_timezone"),
    (datetime(2024, 1, 14, 15, 0), None, PARIS, "Asia/Tokyo", hours(1), "gps_timezone"),
    (datetime(2024, 7, 4, 12, 0), None, NEW_YORK, "Europe/Paris", hours(-4), "gps_timezone"),
    (datetime(2024, 12, 25, 12, 0), None, NEW_YORK, "Europe/Paris", hours(-5), "gps_timezone"),
    # Southern hemisphere: summer time in January
    (datetime(2024, 1, 26, 9, 0), None, SYDNEY, "Europe/Paris", hours(11), "gps_timezone"),
    (datetime(2024, 7, 1, 9, 0), None, SYDNEY, "Europe/Paris", hours(10), "gps_timezone"),
    # Moscow kept summer time all year from 2011 to 2014: the rules of that date apply
    (datetime(2013, 1, 15, 12, 0), None, MOSCOW, "Europe/Paris", hours(4), "gps_timezone"),
    (datetime(2015, 1, 15, 12, 0), None, MOSCOW, "Europe/Paris", hours(3), "gps_timezone"),
    # 02:30 never happened in Paris on 31 March 2024: a clock not yet put forward, still +01:00
    (datetime(2024, 3, 31, 2, 30), None, PARIS, "Asia/Tokyo", hours(1), "gps_timezone"),
    # 02:30 happened twice on 27 October 2024: the first, summer-time one
    (datetime(2024, 10, 27, 2, 30), None, PARIS, "Asia/Tokyo", hours(2), "gps_timezone"),
    # OffsetTimeOriginal wins over the position: Nepal's +05:45, though the GPS says Paris
    (datetime(2024, 7, 14, 15, 0), NEPAL, PARIS, "UTC", NEPAL, "exif"),
    (datetime(2024, 7, 14, 15, 0), hours(-4), None, "Europe/Paris", hours(-4), "exif"),
    # GPS at sea: no zone found, the project's is assumed (with its summer time)
    (
        datetime(2024, 7, 14, 15, 0),
        None,
        MID_ATLANTIC,
        "Europe/Paris",
        hours(2),
        "project_timezone",
    ),
    (datetime(2024, 7, 14, 15, 0), None, None, "America/New_York", hours(-4), "project_timezone"),
    (datetime(2024, 7, 14, 15, 0), None, None, "Asia/Kathmandu", NEPAL, "project_timezone"),
]


@pytest.mark.parametrize(("taken", "recorded", "gps", "project_zone", "offset", "source"), CASES)
def test_capture_time(
    zone_at: ZoneAt,
    taken: datetime,
    recorded: timedelta | None,
    gps: tuple[float, float] | None,
    project_zone: str,
    offset: timedelta,
    source: str,
) -> None:
    captured, offset_source = capture_time(taken, recorded, gps, zone_at, project_zone, SESSION)

    assert (captured.utcoffset(), offset_source) == (offset, source)
    assert captured.replace(tzinfo=None) == taken  # the camera's wall clock is kept as it was


def test_no_date_at_all_takes_the_session_date_at_midnight_in_the_project_zone(
    zone_at: ZoneAt,
) -> None:
    captured, source = capture_time(None, None, PARIS, zone_at, "Europe/Paris", SESSION)

    assert (captured.isoformat(), source) == ("2024-05-01T00:00:00+02:00", "session_date")


def test_a_zone_the_system_does_not_know_falls_back_to_the_project_zone() -> None:
    captured, source = capture_time(
        datetime(2024, 7, 14, 15, 0),
        None,
        PARIS,
        lambda _latitude, _longitude: "Mars/Olympus_Mons",
        "Europe/Paris",
        SESSION,
    )

    assert (captured.utcoffset(), source) == (hours(2), "project_timezone")


def test_every_source_is_named_in_the_product_words() -> None:
    assert {source for *_, source in CASES} | {"session_date", "video"} == set(OFFSET_SOURCES)


# A video states an instant (UTC): (offset it recorded, GPS, project zone, time shown, source)
VIDEO_AT = datetime(2023, 7, 1, 16, 30, tzinfo=UTC)
VIDEO_CASES = [
    (hours(2), PARIS, "UTC", datetime(2023, 7, 1, 18, 30), hours(2), "video"),  # an iPhone's
    (None, NEW_YORK, "Europe/Paris", datetime(2023, 7, 1, 12, 30), hours(-4), "gps_timezone"),
    (None, None, "Australia/Sydney", datetime(2023, 7, 2, 2, 30), hours(10), "project_timezone"),
    (
        None,
        MID_ATLANTIC,
        "Europe/Paris",
        datetime(2023, 7, 1, 18, 30),
        hours(2),
        "project_timezone",
    ),
]


@pytest.mark.parametrize(("recorded", "gps", "project", "shown", "offset", "source"), VIDEO_CASES)
def test_a_videos_instant_is_shown_where_it_was_shot_never_silently_in_utc(
    zone_at: ZoneAt,
    recorded: timedelta | None,
    gps: tuple[float, float] | None,
    project: str,
    shown: datetime,
    offset: timedelta,
    source: str,
) -> None:
    captured, said = video_time(VIDEO_AT, recorded, gps, zone_at, project)
    assert captured == VIDEO_AT  # the same instant
    assert (captured.replace(tzinfo=None), captured.utcoffset(), said) == (shown, offset, source)
    assert said in OFFSET_SOURCES


@pytest.mark.parametrize("taken", [datetime(1, 1, 1), datetime(9999, 12, 31, 23, 30)])
def test_a_placeholder_date_counts_as_none(zone_at: ZoneAt, taken: datetime) -> None:
    # .NET's empty date, or the end of time: at Paris's old +00:09 year 1 is before year 1 in UTC
    captured, source = capture_time(taken, None, None, zone_at, "Europe/Paris", SESSION)
    assert (captured.date(), source) == (SESSION, "session_date")
