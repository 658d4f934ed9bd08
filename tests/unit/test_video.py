"""Duration, displayed size, creation time and place of videos, read by libmediainfo."""

from __future__ import annotations

import csv
import io
import multiprocessing
import os
import struct
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import imageio_ffmpeg
import pytest
from imageio_ffmpeg import get_ffmpeg_exe as ffmpeg

from darkroom.common.imaging import UnreadableMedia, poster_frame
from darkroom.metadata.extract import Extracted, Hints, extract_video
from darkroom.metadata.video import VideoFacts, _created, parse_iso6709, read_video

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
CLIP = CORPUS / "faces" / "short_hamilton_clip.mp4"  # 640x360 H.264, 10 s, no date, no place

# (ISO 6709 as stored, latitude, longitude, altitude)
ISO6709_FORMS = [
    ("+48.8584+002.2945+035.000/", 48.8584, 2.2945, 35.0),  # iPhone: with altitude
    ("+35.6586+139.7454/", 35.6586, 139.7454, None),  # Android MediaMuxer: no altitude
    ("-33.8568+151.2153-012.500/", -33.8568, 151.2153, -12.5),  # south, east, below the sea
    ("+40.7128-074.0060+010.123/", 40.7128, -74.0060, 10.123),  # west
    ("-00.3713+036.0564/", -0.3713, 36.0564, None),  # just south of the equator
    ("+4852.504+00217.670/", 48.87506667, 2.2945, None),  # degrees and minutes
    ("+485230.5+0021740.2/", 48.87513889, 2.2945, None),  # degrees, minutes and seconds
    ("+27.5916+086.5640+8850CRSWGS_84/", 27.5916, 86.5640, 8850.0),  # ISO 6709's own example
    ("+48.8584+002.2945", 48.8584, 2.2945, None),  # without the closing slash
    (" +48.8584+002.2945/\n", 48.8584, 2.2945, None),  # padded
]

GARBAGE = [
    "",
    "garbage",
    "48.8584, 2.2945",  # a decimal pair, not ISO 6709
    "+48.8584/",  # no longitude
    "+48.8584+2.2945/",  # a longitude needs three degree digits
    "+91.0000+002.0000/",  # no such latitude
    "+48.8584+181.0000/",  # no such longitude
    "+4860.00+00217.67/",  # sixty minutes
    "+485260.0+0021740.0/",  # sixty seconds
    "+48.8584+002.2945+035.000/trailing",
    "++48.8584+002.2945/",
]


@pytest.mark.parametrize(("text", "lat", "lon", "alt"), ISO6709_FORMS)
def test_iso6709_positions_are_read(text: str, lat: float, lon: float, alt: float | None) -> None:
    assert parse_iso6709(text) == pytest.approx((lat, lon, alt))


@pytest.mark.parametrize("text", GARBAGE)
def test_anything_else_is_no_position(text: str) -> None:
    assert parse_iso6709(text) is None


def _clip_duration_per_exiftool() -> float:
    with (CORPUS / "exiftool-truth.csv").open(newline="", encoding="utf-8") as table:
        row = next(r for r in csv.DictReader(table) if r["path"] == "faces/short_hamilton_clip.mp4")
    return float(row["duration_s"])


def test_the_corpus_clip_has_exiftools_duration_and_size() -> None:
    facts = read_video(CLIP)
    assert facts.duration_seconds == pytest.approx(_clip_duration_per_exiftool(), abs=0.001)
    assert (facts.width, facts.height, facts.rotation) == (640, 360, 0)
    # ExifTool shows its creation date as 0000:00:00 00:00:00: none was written
    assert facts.created is None and facts.created_offset is None
    assert facts.gps is None


def test_a_path_an_open_file_and_bytes_give_the_same_facts() -> None:
    with CLIP.open("rb") as file:
        from_file = read_video(file)
    assert read_video(str(CLIP)) == read_video(CLIP.read_bytes()) == from_file


# The clip with what phones add, written into a copy: boxes appended to its moov, which is the
# last box of the file, so no sample offset moves.


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def _find(data: bytes | bytearray, path: list[bytes], start: int = 0, end: int = 0) -> int:
    """The offset of the box at a path such as [b"moov", b"mvhd"]."""
    position, end = start, end or len(data)
    while position + 8 <= end:
        size, kind = struct.unpack(">I4s", data[position : position + 8])
        if kind == path[0]:
            return (
                position if len(path) == 1 else _find(data, path[1:], position + 8, position + size)
            )
        position += size
    raise KeyError(path[0])


def _size(data: bytearray, offset: int) -> int:
    size: int = struct.unpack(">I", data[offset : offset + 4])[0]
    return size


def _phone_clip(
    *,
    created: datetime | None = None,
    rotation: int | None = None,
    xyz: str | None = None,
    apple_keys: dict[str, str] | None = None,
) -> bytes:
    data = bytearray(CLIP.read_bytes())
    moov = _find(data, [b"moov"])
    assert moov + _size(data, moov) == len(data)
    if created is not None:  # mvhd: seconds since 1904 for creation and modification
        seconds = int((created - datetime(1904, 1, 1, tzinfo=UTC)).total_seconds())
        struct.pack_into(">II", data, _find(data, [b"moov", b"mvhd"]) + 12, seconds, seconds)
    if rotation is not None:  # the video track's display matrix, first two rows
        one, minus_one = 0x10000, 0xFFFF0000
        a, b, c, d = {90: (0, one, minus_one, 0), 180: (minus_one, 0, 0, minus_one)}[rotation]
        tkhd = _find(data, [b"moov", b"trak", b"tkhd"])
        struct.pack_into(">6I", data, tkhd + 48, a, b, 0, c, d, 0)
    added = b""
    if xyz is not None:  # ©xyz inside moov/udta, itself the last box of moov
        text = xyz.encode()
        atom = _box(b"\xa9xyz", struct.pack(">HH", len(text), 0x15C7) + text)
        udta = _find(data, [b"moov", b"udta"])
        assert udta + _size(data, udta) == len(data)
        struct.pack_into(">I", data, udta, _size(data, udta) + len(atom))
        added += atom
    if apple_keys:  # moov/meta with mdta keys, as an iPhone writes them
        keys = b"".join(_box(b"mdta", key.encode()) for key in apple_keys)
        items = b"".join(
            _box(struct.pack(">I", index), _box(b"data", struct.pack(">II", 1, 0) + value.encode()))
            for index, value in enumerate(apple_keys.values(), start=1)
        )
        added += _box(
            b"meta",
            _box(b"hdlr", bytes(8) + b"mdta" + bytes(13))
            + _box(b"keys", struct.pack(">II", 0, len(apple_keys)) + keys)
            + _box(b"ilst", items),
        )
    struct.pack_into(">I", data, moov, _size(data, moov) + len(added))
    return bytes(data + added)


def test_an_android_clip_has_its_place_utc_creation_and_portrait_size() -> None:
    facts = read_video(
        _phone_clip(
            created=datetime(2023, 6, 1, 12, 0, 5, tzinfo=UTC),
            rotation=90,
            xyz="+48.8584+002.2945+035.000/",
        )
    )
    assert facts == VideoFacts(
        duration_seconds=10.008,
        width=360,  # the phone was held upright: shown 360 wide, 640 high
        height=640,
        created=datetime(2023, 6, 1, 12, 0, 5, tzinfo=UTC),
        gps=(48.8584, 2.2945, 35.0),
        rotation=90,
        created_offset=None,
    )


def test_an_iphone_clip_keeps_the_offset_of_its_creation_date() -> None:
    facts = read_video(
        _phone_clip(
            created=datetime(2023, 6, 1, 12, 0, 30, tzinfo=UTC),  # written when recording ended
            apple_keys={
                "com.apple.quicktime.location.ISO6709": "+35.6586+139.7454+045.123/",
                "com.apple.quicktime.make": "Apple",
                "com.apple.quicktime.creationdate": "2023-06-01T21:00:00+0900",
            },
        )
    )
    assert facts.created == datetime(2023, 6, 1, 12, 0, 0, tzinfo=UTC)  # when it started
    assert facts.created_offset == timedelta(hours=9)
    assert facts.gps == (35.6586, 139.7454, 45.123)


def test_an_upside_down_clip_keeps_its_size() -> None:
    facts = read_video(_phone_clip(rotation=180))
    assert (facts.width, facts.height, facts.rotation) == (640, 360, 180)


@pytest.mark.parametrize("xyz", ["+00.0000+000.0000/", "+00.0000+000.0000+000.000/", "junk"])
def test_a_location_of_zero_zero_or_junk_is_no_place(xyz: str) -> None:
    assert read_video(_phone_clip(xyz=xyz)).gps is None


@pytest.mark.parametrize(
    "data",
    [
        b"",
        os.urandom(64 * 1024),
        b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(1000),  # a header, no movie
        (CORPUS / "faces" / "obama.jpg").read_bytes(),  # a photo is no video
    ],
    ids=["empty", "random", "mp4-header-only", "jpeg"],
)
def test_a_file_with_no_video_track_is_refused_with_a_reason(data: bytes) -> None:
    with pytest.raises(UnreadableMedia) as raised:
        read_video(io.BytesIO(data))
    assert raised.value.code == "no_video_track"
    assert isinstance(raised.value, ValueError) and raised.value.message


def test_a_clip_cut_off_before_its_index_is_refused() -> None:
    # This file keeps its index (moov) after the samples, as cameras write it: an upload cut
    # off halfway holds frames no reader can find.
    with pytest.raises(UnreadableMedia) as raised:
        read_video(CLIP.read_bytes()[:300_000])
    assert raised.value.code == "no_video_track"


def test_a_poster_frame_is_a_picture_of_the_video() -> None:
    from PIL import Image

    frame = poster_frame(str(CLIP), 10.0)
    with Image.open(io.BytesIO(frame)) as picture:
        assert picture.format == "PNG" and picture.size == (640, 360)
        grey = picture.convert("L")
        assert sum(grey.histogram()[17:]) > 0  # some pixel is lit: not the black first frame


def test_a_file_with_no_frame_has_no_poster(tmp_path: Path) -> None:
    garbage = tmp_path / "clip.mp4"
    garbage.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4096))
    with pytest.raises(UnreadableMedia, match="No frame"):
        poster_frame(str(garbage), None)


def test_a_videos_creation_time_is_told_at_the_projects_zone_not_in_utc(tmp_path: Path) -> None:
    dated = tmp_path / "dated.mp4"
    subprocess.run(  # the clip with a creation time (UTC, as QuickTime stores it), no place
        [
            ffmpeg(),
            "-v",
            "error",
            "-i",
            str(CLIP),
            "-c",
            "copy",
            "-metadata",
            "creation_time=2023-07-01T16:30:00Z",
            str(dated),
        ],
        check=True,
    )
    result = extract_video(str(dated), Hints("Europe/Paris", date(2023, 7, 1)))
    assert isinstance(result, Extracted)
    assert result.captured_at.isoformat() == "2023-07-01T18:30:00+02:00"
    assert result.offset_source == "project_timezone"


@pytest.mark.parametrize(
    "general",
    [
        {"comapplequicktimecreationdate": "0001-01-01T00:00:00+05:00"},  # before year 1 in UTC
        {"encoded_date": "UTC 0001-01-01 00:00:00"},
        {"encoded_date": "UTC 2023-02-30 10:00:00"},  # no such day
    ],
)
def test_a_placeholder_creation_date_is_no_date(general: dict[str, str]) -> None:
    assert _created(general) == (None, None)


def test_a_video_whose_frames_cannot_be_decoded_keeps_what_its_container_says(
    tmp_path: Path,
) -> None:
    data = bytearray(CLIP.read_bytes())
    frames = data.find(b"mdat") + 4
    data[frames : data.find(b"moov")] = bytes(data.find(b"moov") - frames)  # the frames: zeros
    broken = tmp_path / "zeroed.mp4"
    broken.write_bytes(bytes(data))
    result = extract_video(str(broken), Hints("Europe/Paris", date(2023, 7, 1)))
    assert isinstance(result, Extracted)
    assert result.duration_seconds == pytest.approx(10.008, abs=0.05)
    assert (result.width, result.height) == (640, 360)
    assert result.thumbnail is None and result.preview is None


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_ffmpeg_dies_with_the_worker_process_that_started_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = tmp_path / "pid"
    stuck = tmp_path / "ffmpeg"  # an ffmpeg that never ends, as on a pathological file
    stuck.write_text(f"#!/bin/sh\necho $$ > {started}\nexec sleep 60\n")
    stuck.chmod(0o755)
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: str(stuck))
    worker = multiprocessing.get_context("fork").Process(target=poster_frame, args=(str(CLIP), 10))
    worker.start()
    deadline = time.monotonic() + 10
    while not started.exists() or not started.read_text().strip():
        assert time.monotonic() < deadline, "the stuck ffmpeg never started"
        time.sleep(0.05)
    ffmpeg_pid = int(started.read_text())
    worker.kill()  # the pool replacing a worker past its time limit
    worker.join()
    while _running(ffmpeg_pid):
        assert time.monotonic() < deadline + 10, "ffmpeg outlived its worker"
        time.sleep(0.05)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended, and waits only to be reaped
