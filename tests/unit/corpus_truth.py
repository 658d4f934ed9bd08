"""The shared test corpus and what ExifTool 12.57 reads from it (`exiftool -j -n`, one CSV row).

The corpus lives next to the repository, read-only; tests that need to change a file copy it.
"""

from __future__ import annotations

import csv
import functools
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
TRUTH_CSV = CORPUS / "exiftool-truth.csv"

# ExifTool's -n date-time: EXIF "2021:04:11 15:47:53", XMP "2005:09:07 15:07:40-07:00", also
# "…:09.60-04:00" (sub-seconds) or a date alone ("2019:09:02").
DATE_TIME = re.compile(
    r"(\d{4}):(\d{2}):(\d{2})(?: (\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})?$"
)


@dataclass(frozen=True)
class TruthRow:
    """One file as ExifTool reads it; every cell as written, "" where ExifTool has nothing."""

    path: str
    mime: str
    date_time_original: str
    offset_time_original: str
    create_date: str
    gps_lat: str
    gps_lon: str
    make: str
    model: str
    orientation: str
    width: str
    height: str
    duration_s: str

    @property
    def file(self) -> Path:
        return CORPUS / self.path


@functools.cache
def truth() -> dict[str, TruthRow]:
    with TRUTH_CSV.open(newline="", encoding="utf-8") as handle:
        return {row["path"]: TruthRow(**row) for row in csv.DictReader(handle)}


def corpus_files(*folders: str) -> list[str]:
    """Paths (relative to the corpus, as in the CSV) of every file under the folders."""
    return sorted(
        str(file.relative_to(CORPUS))
        for folder in folders
        for file in (CORPUS / folder).rglob("*")
        if file.is_file() and file.suffix != ".rst"
    )


def exiftool_date_time(text: str) -> tuple[datetime, timedelta | None] | None:
    """ExifTool's -n date-time as (wall clock, offset written in it); None if it is no date."""
    match = DATE_TIME.match(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        wall_clock = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")),
        )
    except ValueError:  # "0000:00:00 00:00:00", "    :  :     :  :  "
        return None
    return wall_clock, exiftool_offset(zone or "")


def exiftool_offset(text: str) -> timedelta | None:
    if text == "Z":
        return timedelta(0)
    match = re.fullmatch(r"([+-])(\d{2}):(\d{2})", text)
    if match is None:
        return None
    sign, hours, minutes = match.groups()
    offset = timedelta(hours=int(hours), minutes=int(minutes))
    return -offset if sign == "-" else offset


# Every corpus file with GPS, and the country of the coordinates ExifTool reads (checked on a
# map).
COUNTRIES: dict[str, str | None] = {
    "cameras/heic/IMG_1034.heic": "CN",  # Guangzhou
    "cameras/jpg/Apple iPhone 6 plus.jpg": "GB",  # Cardiff
    # ExifTool reads 118.25° E (Jiangsu); the photo is from Los Angeles: ExifTool drops the W
    # of FLIR's own GPS record, which Darkroom reads (test_exif's KNOWN_DIFFERENCES).
    "cameras/jpg/FLIR iPhone device.jpg": "CN",
    "cameras/jpg/FujiFilm FinePixS1Pro (1).jpg": "GB",
    "cameras/jpg/FujiFilm FinePixS1Pro (3).jpg": "GB",
    "cameras/jpg/FujiFilm FinePixS1Pro (5).jpg": "GB",
    "cameras/jpg/Issue 173 (dotnet).jpg": "US",  # Michigan
    "cameras/jpg/Issue 308.jpg": None,  # 0, 0: no fix (the reader treats it as absent)
    "cameras/jpg/Olympus FE230-X790.jpg": "CA",  # British Columbia
    "cameras/jpg/Panasonic DMC-LX3 (Lumix).jpg": "IT",  # Rome
    "cameras/jpg/Sony DSC-HX5V (2).jpg": "DE",
    "cameras/tif/Issue 151.tif": "FR",  # Normandy
    "cameras/tif/Issue 555 (1).tif": "MU",
    "cameras/webp/Issue 473 (Java).webp": "US",  # Sunnyvale
    "exif-samples/heic/IMG_5195.HEIC": "US",  # near Kansas City
    "exif-samples/heic/mobile/HMD_Nokia_8.3_5G.heif": "ES",
    "exif-samples/heic/mobile/HMD_Nokia_8.3_5G_hdr.heif": "ES",
    "exif-samples/jpg/Kodak_CX7530.jpg": "KE",  # on the equator, Rift Valley
    "exif-samples/jpg/gps/DSCN0010.jpg": "IT",  # Arezzo, and the eight below
    "exif-samples/jpg/gps/DSCN0012.jpg": "IT",
    "exif-samples/jpg/gps/DSCN0021.jpg": "IT",
    "exif-samples/jpg/gps/DSCN0025.jpg": "IT",
    "exif-samples/jpg/gps/DSCN0027.jpg": "IT",
    "exif-samples/jpg/gps/DSCN0029.jpg": "IT",
    "exif-samples/jpg/gps/DSCN0038.jpg": "IT",
    "exif-samples/jpg/gps/DSCN0040.jpg": "IT",
    "exif-samples/jpg/gps/DSCN0042.jpg": "IT",
    "exif-samples/jpg/hdr/iphone_hdr_NO.jpg": "ES",  # Madrid
    "exif-samples/jpg/hdr/iphone_hdr_YES.jpg": "ES",
    "exif-samples/jpg/mobile/HMD_Nokia_8.3_5G.jpg": "FI",  # Helsinki
    "exif-samples/jpg/tests/67-0_length_string.jpg": "DE",
    "exif-samples/jpg/tests/87_OSError.jpg": "IT",  # Florence
}


# Who is in each photo of corpus/faces (looked at): a people/<name>/ folder shows <name>; the
# photos beside them as listed. Lin-Manuel Miranda is in no people/ folder: nobody names him.
FACES_PEOPLE: dict[str, set[str]] = {
    **{
        f"faces/people/{folder.name}/{photo.name}": {folder.name}
        for folder in sorted((CORPUS / "faces" / "people").iterdir())
        for photo in sorted(folder.iterdir())
    },
    "faces/alex-lacamoire.png": {"alex_lacamoire"},
    "faces/biden.jpg": {"biden"},
    "faces/lin-manuel-miranda.png": set(),
    "faces/obama-1080p.jpg": {"obama"},
    "faces/obama-240p.jpg": {"obama"},
    "faces/obama-480p.jpg": {"obama"},
    "faces/obama-720p.jpg": {"obama"},
    "faces/obama.jpg": {"obama"},
    "faces/obama2.jpg": {"obama"},
    "faces/obama_small.jpg": {"obama"},
    "faces/two_people.jpg": {"biden", "obama"},
}
