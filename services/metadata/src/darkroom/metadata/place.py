"""Where a photo was taken, offline: its country, region and town, and the time zone there.

Both data sets ship inside packages, so no web service is asked:

- ``reverse-geocode``: GeoNames' towns of 1,000 people or more, with their country and
  first-level region (state, province, Land).
- ``timezonefinder``: the time zone polygons of timezone-boundary-builder (OpenStreetMap),
  territorial waters included.

Loading them costs seconds (``reverse_geocode`` imports SciPy and builds a k-d tree), so each
is loaded on its first use, once. The service calls these functions from worker threads:
each data set sits behind its own lock, held for loading and for every look-up — the
libraries do not promise concurrent reads (``TimezoneFinder`` says to keep one instance per
thread), and a look-up costs microseconds, so the lock costs nothing worth measuring.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from timezonefinder import TimezoneFinder

# A town of 1,000 people or more lies within 200 km of nearly every inhabited place; past it,
# the "nearest town" is usually across a sea (a point in the Atlantic is 1,000 km from the
# Azores) and naming its country would be a guess. Deserts, ice caps and the open ocean get
# no place rather than a wrong one.
MAX_TOWN_DISTANCE_KM = 200.0
EARTH_RADIUS_KM = 6371.0088  # the mean radius (IUGG)


@dataclass(frozen=True)
class Place:
    """The country, region and town nearest to a position."""

    country_code: str  # ISO 3166-1 alpha-2, e.g. "FR"
    country: str  # its English name, e.g. "France"
    region: str | None  # first-level division: "Île-de-France", "Missouri", "Tokyo"
    city: str | None  # the nearest town of 1,000 people or more


_towns_lock = threading.Lock()
_zones_lock = threading.Lock()
_zones: TimezoneFinder | None = None


def place_at(latitude: float, longitude: float) -> Place | None:
    """The place at a position, or None at sea, in a desert or for an impossible position.

    The nearest town is the one nearest in degrees (the data set's k-d tree), which far north
    and across the 180th meridian is not always the nearest on the ground.
    """
    if not _is_position(latitude, longitude):
        return None
    with _towns_lock:
        import reverse_geocode  # imports SciPy: seconds, so only when a place is first asked

        town = dict(reverse_geocode.get((latitude, longitude)))
    if distance_km(latitude, longitude, town["latitude"], town["longitude"]) > MAX_TOWN_DISTANCE_KM:
        return None
    code = town["country_code"]
    return Place(
        country_code=code,
        country=town.get("country") or code,
        region=town.get("state") or None,
        city=town.get("city") or None,
    )


def zone_at(latitude: float, longitude: float) -> str | None:
    """The IANA time zone at a position, e.g. "Europe/Paris"; None for an impossible position.

    Beyond territorial waters the answer is a nautical zone such as "Etc/GMT+3" (UTC-3: the
    sign is POSIX's, inverted). Those are kept: they are the legal time at sea, and a photo
    taken on a boat is better dated by the sea it was on than by the project's time zone.
    """
    if not _is_position(latitude, longitude):
        return None
    global _zones
    with _zones_lock:
        if _zones is None:
            from timezonefinder import TimezoneFinder

            _zones = TimezoneFinder()
        return _zones.timezone_at(lat=latitude, lng=longitude)


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The great-circle (haversine) distance between two positions, in kilometres."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    half_dphi = (phi2 - phi1) / 2
    half_dlambda = math.radians(lon2 - lon1) / 2
    a = math.sin(half_dphi) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(half_dlambda) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def _is_position(latitude: float, longitude: float) -> bool:
    return (
        math.isfinite(latitude)
        and math.isfinite(longitude)
        and -90 <= latitude <= 90
        and -180 <= longitude <= 180
    )
