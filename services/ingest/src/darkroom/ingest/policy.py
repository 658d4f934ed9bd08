"""Upload policies: which files a project takes, how many, and how large.

``capture`` (the first seed): JPEG photos that carry EXIF, up to 1,500 files a session.
``library`` (the second seed): images and videos, up to 200 files and 10 GB an upload, PNG,
JPEG and GIF at most 50 MB each. A project may set lower limits, never higher ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from darkroom.common.events import Classification
from darkroom.ingest.content import EXTENSIONS, Family, has_exif, sniff
from darkroom.ingest.errors import Refused
from darkroom.ingest.paths import extension, file_name

MB = 1024 * 1024
GB = 1024 * MB
CAPPED_IMAGES = frozenset({Family.JPEG, Family.PNG, Family.GIF})


@dataclass(frozen=True)
class Policy:
    name: str
    extensions: frozenset[str]
    requires_exif: bool
    max_files: int
    max_bytes: int
    max_image_bytes: int
    """The cap of a PNG, JPEG or GIF file; other types are bounded by ``max_bytes`` alone."""


POLICIES = {
    "capture": Policy(
        name="capture",
        extensions=frozenset({".jpg", ".jpeg"}),
        requires_exif=True,
        max_files=1500,
        max_bytes=1500 * 100 * MB,
        max_image_bytes=100 * MB,
    ),
    "library": Policy(
        name="library",
        extensions=frozenset(
            {".png", ".jpg", ".jpeg", ".gif", ".heic", ".heif", ".mp4", ".mov", ".m4v", ".avi"}
        ),
        requires_exif=False,
        max_files=200,
        max_bytes=10 * GB,
        max_image_bytes=50 * MB,
    ),
}

LARGEST_UPLOAD = max(policy.max_bytes for policy in POLICIES.values())
"""The body cap of the routes that take a file's bytes; each file's own, lower limits are
checked as its bytes arrive."""


@dataclass(frozen=True)
class Limits:
    """A project's limits, each at most its policy's."""

    max_files: int
    max_bytes: int
    max_image_bytes: int


def policy_named(name: str) -> Policy:
    if name not in POLICIES:
        raise Refused("unknown_policy", f"The upload policy must be one of {sorted(POLICIES)}.")
    return POLICIES[name]


def checked_limits(policy: Policy, limits: Limits) -> Limits:
    for field, ceiling in (
        ("max_files", policy.max_files),
        ("max_bytes", policy.max_bytes),
        ("max_image_bytes", policy.max_image_bytes),
    ):
        value = getattr(limits, field)
        if not 0 < value <= ceiling:
            raise Refused(
                "limit_above_policy",
                f"{field} must be between 1 and {ceiling:,}, the {policy.name} policy's limit.",
            )
    return limits


def check_classification(level: Classification, ceiling: Classification) -> None:
    order = list(Classification)
    if order.index(level) > order.index(ceiling):
        raise Refused(
            "classification_above_ceiling",
            f"This project accepts media classified up to {ceiling.value};"
            f" {level.value} is above it.",
        )


def check_planned(policy: Policy, limits: Limits, path: str, size: int) -> None:
    """Refuse a planned file by its name and size, before any byte is sent."""
    suffix = extension(path)
    if suffix not in policy.extensions:
        accepted = ", ".join(sorted(policy.extensions))
        shown = suffix or "without an extension"
        raise Refused(
            "unsupported_type",
            f"Files {shown} are not accepted under the {policy.name} policy"
            f" (accepted: {accepted}).",
        )
    if size <= 0:
        raise Refused("empty_file", f"{file_name(path)!r} is empty.")
    if EXTENSIONS[suffix] in CAPPED_IMAGES and size > limits.max_image_bytes:
        raise Refused(
            "file_too_large",
            f"{file_name(path)!r} is {size:,} bytes; {suffix} files may be at most "
            f"{limits.max_image_bytes:,} bytes here.",
        )
    if size > limits.max_bytes:
        raise Refused(
            "file_too_large",
            f"{file_name(path)!r} is {size:,} bytes; an upload may hold at most "
            f"{limits.max_bytes:,} bytes here.",
        )


def check_head(policy: Policy, path: str, head: bytes) -> Family:
    """Judge a file by its first bytes: its type must match its name, and capture needs EXIF."""
    expected = EXTENSIONS[extension(path)]
    found = sniff(head)
    if found is None:
        raise Refused(
            "unrecognised_content",
            f"{file_name(path)!r} does not start like any accepted image or video.",
        )
    if found != expected:
        raise Refused(
            "type_mismatch",
            f"{file_name(path)!r} is named as {expected.value} but its content is {found.value}.",
        )
    if policy.requires_exif and not has_exif(head):
        raise Refused(
            "missing_exif",
            f"{file_name(path)!r} carries no EXIF metadata, which the capture policy requires.",
        )
    return found
