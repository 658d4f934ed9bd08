"""Folder and session tags: the seed's example and the awkward paths users upload."""

from __future__ import annotations

import pytest

from darkroom.tagging.folders import folder_tags, session_tags


def names(path: str) -> list[str]:
    tags = folder_tags(path)
    assert {tag.source for tag in tags} <= {"folder"}
    return [tag.name for tag in tags]


def test_the_seeds_example() -> None:
    assert names("Project A/Camera B/2024/image.png") == ["Project A", "Camera B", "2024"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("image.png", []),  # no folder, no tag: the file name is never one
        ("a/b/c/d/e/f/g/h/i/j/photo.jpg", list("abcdefghij")),  # deep
        ("  Site  /  North wall /x.jpg", ["Site", "North wall"]),  # spaces trimmed
        ("Site//North/./x.jpg", ["Site", "North"]),  # empty and "." parts dropped
        ("Camera B/camera b/CAMERA B/x.jpg", ["Camera B"]),  # case folded, first spelling kept
        ("2024/2024/x.jpg", ["2024"]),  # repeated names
        ("Cafe\u0301/Caf\u00e9/x.jpg", ["Caf\u00e9"]),  # NFD and NFC: one tag, in NFC
        ("Straße/STRASSE/x.jpg", ["Straße"]),  # casefold: ß is ss
        ("Ωmega/ωMEGA/x.jpg", ["Ωmega"]),
        (
            "\u0391\u0390\u03b4\u03b1/\u0391\u03aa\u0301\u0394\u0391/x.jpg",
            ["\u0391\u0390\u03b4\u03b1"],
        ),  # ΐ folds apart
        ("Stra\u00dfe\u0301/STRASSE\u0301/x.jpg", ["Stra\u00df\u00e9"]),  # ß, then an accent
        ("Paris/P\u0430ris/x.jpg", ["Paris", "P\u0430ris"]),  # a Cyrillic a: another name
        ("日本/東京/x.jpg", ["日本", "東京"]),
        ("v1.2/.hidden/x.jpg", ["v1.2", ".hidden"]),  # dots inside names stay
        ("Project A\\Camera B\\x.jpg", ["Project A", "Camera B"]),  # Windows separators
    ],
)
def test_awkward_paths(path: str, expected: list[str]) -> None:
    assert names(path) == expected


def test_session_tags_are_the_source_and_view_name() -> None:
    tags = session_tags("drone", " North facade ")
    assert [(t.name, t.source) for t in tags] == [("drone", "session"), ("North facade", "session")]
    assert [t.name for t in session_tags("Drone", "drone")] == ["Drone"]
