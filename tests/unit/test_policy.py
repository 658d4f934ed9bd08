"""Upload policies judged on plain data: names, sizes, first bytes, levels, limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from darkroom.common.events import Classification
from darkroom.ingest.content import Family
from darkroom.ingest.errors import Refused
from darkroom.ingest.policy import (
    MB,
    POLICIES,
    Limits,
    Policy,
    check_classification,
    check_head,
    check_planned,
    checked_limits,
)

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
CAPTURE, LIBRARY = POLICIES["capture"], POLICIES["library"]
LIBRARY_LIMITS = Limits(LIBRARY.max_files, LIBRARY.max_bytes, LIBRARY.max_image_bytes)
CAPTURE_LIMITS = Limits(CAPTURE.max_files, CAPTURE.max_bytes, CAPTURE.max_image_bytes)


@pytest.mark.parametrize(
    ("policy", "path", "size", "code"),
    [
        (LIBRARY, "a/b/photo.JPG", 5 * MB, None),
        (LIBRARY, "a/photo.jpeg", 50 * MB, None),  # exactly the cap is allowed
        (LIBRARY, "a/photo.jpeg", 50 * MB + 1, "file_too_large"),
        (LIBRARY, "scan.png", 51 * MB, "file_too_large"),
        (LIBRARY, "anim.gif", 51 * MB, "file_too_large"),
        (LIBRARY, "iphone.HEIC", 51 * MB, None),  # the 50 MB cap is for PNG, JPEG and GIF
        (LIBRARY, "clip.mov", 3 * 1024 * MB, None),
        (LIBRARY, "clip.mov", 11 * 1024 * MB, "file_too_large"),  # past the upload's 10 GB
        (LIBRARY, "notes.txt", 10, "unsupported_type"),
        (LIBRARY, "README", 10, "unsupported_type"),
        (LIBRARY, "photo.webp", 10, "unsupported_type"),
        (LIBRARY, "empty.jpg", 0, "empty_file"),
        (CAPTURE, "DJI_0001.JPG", 12 * MB, None),
        (CAPTURE, "DJI_0001.png", 12 * MB, "unsupported_type"),
        (CAPTURE, "clip.mp4", 12 * MB, "unsupported_type"),
    ],
)
def test_planned_files_are_judged_by_name_and_size(
    policy: Policy, path: str, size: int, code: str | None
) -> None:
    limits = LIBRARY_LIMITS if policy is LIBRARY else CAPTURE_LIMITS
    if code is None:
        check_planned(policy, limits, path, size)
    else:
        with pytest.raises(Refused) as refused:
            check_planned(policy, limits, path, size)
        assert refused.value.code == code
        assert refused.value.message.endswith(".")


def test_a_project_limit_below_the_policys_applies() -> None:
    small = Limits(max_files=10, max_bytes=10 * MB, max_image_bytes=2 * MB)
    with pytest.raises(Refused, match="at most 2,097,152 bytes"):
        check_planned(LIBRARY, small, "a.jpg", 3 * MB)


@pytest.mark.parametrize(
    "limits",
    [
        Limits(201, LIBRARY.max_bytes, LIBRARY.max_image_bytes),
        Limits(200, LIBRARY.max_bytes + 1, LIBRARY.max_image_bytes),
        Limits(200, LIBRARY.max_bytes, 0),
    ],
)
def test_a_project_may_not_raise_its_policys_limits(limits: Limits) -> None:
    with pytest.raises(Refused) as refused:
        checked_limits(LIBRARY, limits)
    assert refused.value.code == "limit_above_policy"


def jpeg_head() -> bytes:
    return (CORPUS / "exif-samples" / "jpg" / "Canon_40D.jpg").read_bytes()[: 64 * 1024]


def test_the_head_decides_the_type_and_capture_wants_exif() -> None:
    head = jpeg_head()
    assert check_head(CAPTURE, "a.jpg", head) is Family.JPEG
    png = (CORPUS / "cameras" / "png" / "Issue 62.png").read_bytes()[:4096]
    with pytest.raises(Refused) as mismatch:
        check_head(LIBRARY, "a.jpg", png)
    assert mismatch.value.code == "type_mismatch"
    with pytest.raises(Refused) as unknown:
        check_head(LIBRARY, "a.jpg", b"GIF? no, plain text")
    assert unknown.value.code == "unrecognised_content"
    bare = b"\xff\xd8\xff\xdb\x00\x04\x00\x00" + b"\x00" * 100  # a JPEG with no APP1
    assert check_head(LIBRARY, "a.jpg", bare) is Family.JPEG
    with pytest.raises(Refused) as no_exif:
        check_head(CAPTURE, "a.jpg", bare)
    assert no_exif.value.code == "missing_exif"


@pytest.mark.parametrize(
    ("level", "ceiling", "allowed"),
    [
        (Classification.UNCLASSIFIED, Classification.UNCLASSIFIED, True),
        (Classification.RESTRICTED, Classification.UNCLASSIFIED, False),
        (Classification.RESTRICTED, Classification.RESTRICTED, True),
        (Classification.SENSITIVE_NORMAL, Classification.RESTRICTED, False),
        (Classification.UNCLASSIFIED, Classification.SENSITIVE_NORMAL, True),
    ],
)
def test_levels_above_the_ceiling_are_refused(
    level: Classification, ceiling: Classification, allowed: bool
) -> None:
    if allowed:
        check_classification(level, ceiling)
    else:
        with pytest.raises(Refused, match="classified up to"):
            check_classification(level, ceiling)
