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
