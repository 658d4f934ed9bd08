"""Country, region, town and time zone of a position, offline, on real places and corpus files."""

from __future__ import annotations

import csv
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from darkroom.metadata.place import MAX_TOWN_DISTANCE_KM, distance_km, place_at, zone_at
from tests.unit.corpus_truth import COUNTRIES

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"

# (what, latitude, longitude, country code, region, zone)
PLACES = [
    ("Paris, Notre-Dame", 48.8530, 2.3499, "FR", "Île-de-France", "Europe/Paris"),
    ("New York, City Hall", 40.7128, -74.0060, "US", "New York", "America/New_York"),
    ("Sydney, Opera House", -33.8568, 151.2153, "AU", "New South Wales", "Australia/Sydney"),
    ("Tokyo, Shinjuku", 35.6938, 139.7034, "JP", "Tokyo", "Asia/Tokyo"),
    ("Kansas City, Missouri", 39.0997, -94.5786, "US", "Missouri", "America/Chicago"),
    ("Kansas City, Kansas", 39.1142, -94.6275, "US", "Kansas", "America/Chicago"),
    ("Geneva, Jet d'Eau", 46.2073, 6.1557, "CH", "Geneva", "Europe/Zurich"),
    # 1.5 km over the border from Geneva airport: France, and French time rules
    ("Ferney-Voltaire", 46.2558, 6.1081, "FR", "Auvergne-Rhône-Alpes", "Europe/Paris"),
    ("Mauritius, Black River", -20.4406, 57.3189, "MU", "Black River", "Indian/Mauritius"),
    ("Svalbard, Longyearbyen", 78.2232, 15.6267, "SJ", "Svalbard", "Arctic/Longyearbyen"),
    ("Fiji, east of the 180th meridian", -18.2365, -178.8123, "FJ", "Eastern", "Pacific/Fiji"),
]

# (what, latitude, longitude, zone): no town within MAX_TOWN_DISTANCE_KM, so no place
NOWHERE = [
    ("mid-Atlantic, 1,000 km from the Azores", 30.0, -40.0, "Etc/GMT+3"),  # UTC-3 at sea
    ("Gulf of Guinea at 0, 0", 0.0, 0.0, "Etc/GMT"),
    ("Antarctic plateau", -80.0, 60.0, "Antarctica/Mawson"),  # the research station's zone
    ("North Pacific", 35.0, -160.0, "Etc/GMT+11"),
]


@pytest.mark.parametrize(("what", "lat", "lon", "code", "region", "zone"), PLACES)
def test_a_place_on_land_has_its_country_region_and_zone(
    what: str, lat: float, lon: float, code: str, region: str, zone: str
) -> None:
    place = place_at(lat, lon)
    assert place is not None, what
    assert (place.country_code, place.region) == (code, region), what
    assert place.country and place.city
    assert zone_at(lat, lon) == zone


def test_countries_have_their_english_names() -> None:
    names = {place.country_code: place.country for p in PLACES if (place := place_at(p[1], p[2]))}
    assert names["FR"] == "France"
    assert names["US"] == "United States"
    assert names["CH"] == "Switzerland"


@pytest.mark.parametrize(("what", "lat", "lon", "zone"), NOWHERE)
def test_far_from_any_town_there_is_no_place(what: str, lat: float, lon: float, zone: str) -> None:
    assert place_at(lat, lon) is None, what
    assert zone_at(lat, lon) == zone, what


@pytest.mark.parametrize(
    ("lat", "lon"),
    [(91.0, 0.0), (-90.5, 10.0), (10.0, 180.5), (10.0, -181.0), (math.nan, 0.0), (0.0, math.inf)],
)
def test_an_impossible_position_has_neither_place_nor_zone(lat: float, lon: float) -> None:
    assert place_at(lat, lon) is None
    assert zone_at(lat, lon) is None


def test_distance_is_the_great_circle_distance() -> None:
    assert distance_km(48.8566, 2.3522, 51.5074, -0.1278) == pytest.approx(343.5, abs=1)  # Paris
    assert distance_km(40.7128, -74.0060, 35.6762, 139.6503) == pytest.approx(10_849, rel=0.005)
    assert distance_km(0, 179.5, 0, -179.5) == pytest.approx(111.2, abs=0.5)  # across 180°
    assert distance_km(10, 10, 10, 10) == 0


def test_the_cut_off_is_the_distance_to_the_town() -> None:
    # Lajes das Flores, Azores, (39.377, -31.178): west of it by a little less and a little more
    # than the cut-off along the parallel.
    town_lat, town_lon = 39.37744, -31.17847
    degree_km = distance_km(town_lat, 0, town_lat, 1)
    near = town_lon - (MAX_TOWN_DISTANCE_KM - 10) / degree_km
    far = town_lon - (MAX_TOWN_DISTANCE_KM + 10) / degree_km
    place = place_at(town_lat, near)
    assert place is not None and place.country_code == "PT"
    assert place_at(town_lat, far) is None


def test_threads_share_one_load_of_each_data_set() -> None:
    positions = [(p[1], p[2]) for p in PLACES] * 20
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(lambda pos: place_at(*pos), positions))
        zones = list(pool.map(lambda pos: zone_at(*pos), positions))
    assert [p.country_code if p else None for p in codes] == [p[3] for p in PLACES] * 20
    assert zones == [p[5] for p in PLACES] * 20


def _corpus_positions() -> dict[str, tuple[float, float]]:
    with (CORPUS / "exiftool-truth.csv").open(newline="", encoding="utf-8") as table:
        return {
            row["path"]: (float(row["gps_lat"]), float(row["gps_lon"]))
            for row in csv.DictReader(table)
            if row["gps_lat"] and row["gps_lon"]
        }


def test_every_corpus_file_with_gps_is_placed_in_its_country() -> None:
    positions = _corpus_positions()
    assert set(positions) == set(COUNTRIES)  # a new file with GPS gets a line in COUNTRIES
    found = {}
    for path, (lat, lon) in positions.items():
        place = place_at(lat, lon) if (lat, lon) != (0, 0) else None
        found[path] = place.country_code if place else None
        if place is not None:
            assert zone_at(lat, lon) is not None
    assert found == COUNTRIES
