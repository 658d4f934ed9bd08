"""Relative paths of folder uploads: what is made safe, and what is refused with which code."""

from __future__ import annotations

import random
import unicodedata

import pytest

from darkroom.ingest.paths import (
    MAX_PART_BYTES,
    MAX_PARTS,
    MAX_PATH_CHARS,
    UnsafePath,
    extension,
    file_name,
    normalise,
)

# 31 folders and a file, 1024 characters in all: long, but within every cap.
AT_LENGTH_CAP = ("d" * 31 + "/") * 31 + "x" * 28 + ".jpg"
assert len(AT_LENGTH_CAP) == MAX_PATH_CHARS

# (raw path as sent, the path kept)
KEPT = [
    ("Project A/Camera B/2024/image.png", "Project A/Camera B/2024/image.png"),  # the seed's
    ("Project A\\Camera B\\img.JPG", "Project A/Camera B/img.JPG"),  # from Windows
    ("./a//b/./c.jpg", "a/b/c.jpg"),
    ("a/b/", "a/b"),
    ("cafe\u0301.jpg", "caf\u00e9.jpg"),  # NFD (macOS) becomes NFC
    ("\u0430.jpg", "\u0430.jpg"),  # Cyrillic a (U+0430): kept as is, never folded to Latin
    (" leading and trailing .jpg ", " leading and trailing .jpg "),  # not trimmed silently
    ("...jpg", "...jpg"),  # dots in a name are not ".."
    ("a/" * (MAX_PARTS - 1) + "x.jpg", "a/" * (MAX_PARTS - 1) + "x.jpg"),
    ("\u00e9" * (MAX_PART_BYTES // 2), "\u00e9" * (MAX_PART_BYTES // 2)),  # 254 bytes
    (AT_LENGTH_CAP, AT_LENGTH_CAP),
    ("Jose\u0301/\u65e5\u672c/\u00fc.heic", "Jos\u00e9/\u65e5\u672c/\u00fc.heic"),
]

# (raw path as sent, the code it is refused with)
REFUSED = [
    ("../etc/passwd", "path_traversal"),
    ("a/../../b", "path_traversal"),
    ("a/b/..", "path_traversal"),
    ("a\\..\\b.jpg", "path_traversal"),
    ("/etc/passwd", "absolute_path"),
    ("C:\\Windows\\x.jpg", "absolute_path"),
    ("C:x.jpg", "absolute_path"),  # drive-relative: still another drive
    ("c:", "absolute_path"),
    ("\\\\server\\share\\x.jpg", "absolute_path"),
    ("//server/share/x.jpg", "absolute_path"),
    ("a\x00b.jpg", "control_character"),
    ("a\nb.jpg", "control_character"),
    ("a\tb.jpg", "control_character"),
    ("a\x7fb.jpg", "control_character"),
    ("a\x85b.jpg", "control_character"),  # C1 "next line"
    ("photo\u202egpj.exe", "bidi_control"),  # shows as "photoexe.jpg"
    ("photo\u2067x.jpg", "bidi_control"),
    ("\u200fx.jpg", "bidi_control"),
    ("a\u061cb.jpg", "bidi_control"),
    ("a/" * MAX_PARTS + "x.jpg", "too_deep"),  # 33 parts
    ("../" * 40 + "x.jpg", "path_traversal"),  # the worse problem is the one named
    ("\u00e9" * 128, "name_too_long"),  # 128 characters but 256 bytes
    (AT_LENGTH_CAP + "x", "path_too_long"),  # 1025 characters
    ("x" * 5000, "path_too_long"),
    ("   /x.jpg", "invalid_path"),
    ("a/\u3000/x.jpg", "invalid_path"),  # ideographic space only
    ("", "empty_path"),
    ("/", "empty_path"),
    ("./.", "empty_path"),
    (".//./", "empty_path"),
]


@pytest.mark.parametrize(("raw", "kept"), KEPT)
def test_a_safe_path_is_kept_in_one_spelling(raw: str, kept: str) -> None:
    assert normalise(raw) == kept
    assert normalise(kept) == kept  # normalising twice changes nothing


@pytest.mark.parametrize(("raw", "code"), REFUSED)
def test_an_unsafe_path_is_refused_with_its_code(raw: str, code: str) -> None:
    with pytest.raises(UnsafePath) as caught:
        normalise(raw)
    assert caught.value.code == code


@pytest.mark.parametrize(("raw", "_code"), REFUSED)
def test_every_refusal_is_one_plain_sentence(raw: str, _code: str) -> None:
    with pytest.raises(UnsafePath) as caught:
        normalise(raw)
    message = caught.value.message
    assert message == str(caught.value)
    assert message[0].isupper() and message.endswith(".")
    assert len(message) < 250  # the offending part is quoted short, never whole
    # No control or bidi character, raw or disguised: the message is safe in a log or a page.
    assert message.isprintable()
    assert not any(c in message for c in "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e")
    assert not any("\u2066" <= c <= "\u2069" for c in message)


def test_an_offending_character_is_quoted_escaped() -> None:
    with pytest.raises(UnsafePath) as caught:
        normalise("a\x00b.jpg")
    assert "'\\x00'" in caught.value.message
    with pytest.raises(UnsafePath) as caught:
        normalise("photo\u202egpj.exe")
    assert "\\u202e" in caught.value.message
    with pytest.raises(UnsafePath) as caught:
        normalise("caf\u00e9/../x.jpg")
    assert "'caf\u00e9/../x.jpg'" in caught.value.message  # readable letters stay readable


def test_nfd_and_nfc_spellings_are_the_same_path() -> None:
    assert normalise("cafe\u0301.jpg") == normalise("caf\u00e9.jpg")


def test_a_look_alike_stays_a_different_path() -> None:
    assert normalise("\u0430.jpg") != normalise("a.jpg")


def test_an_unsafe_path_is_a_value_error() -> None:
    assert issubclass(UnsafePath, ValueError)


def test_the_caps_are_the_documented_ones() -> None:
    assert (MAX_PATH_CHARS, MAX_PART_BYTES, MAX_PARTS) == (1024, 255, 32)


@pytest.mark.parametrize(
    ("path", "name", "suffix"),
    [
        ("Project A/Camera B/2024/image.png", "image.png", ".png"),
        ("IMG.JPG", "IMG.JPG", ".jpg"),
        ("a/archive.tar.gz", "archive.tar.gz", ".gz"),
        ("a/.hidden", ".hidden", ""),
        ("README", "README", ""),
        ("name.", "name.", ""),
        ("v1.2/clip.MoV", "clip.MoV", ".mov"),
        ("a.b/noext", "noext", ""),  # a dot in a folder is not the file's extension
    ],
)
def test_file_name_and_extension(path: str, name: str, suffix: str) -> None:
    assert file_name(path) == name
    assert extension(path) == suffix


def test_any_input_is_kept_safe_or_refused_never_crashes() -> None:
    # Random paths from the characters that matter: whatever comes out obeys every rule.
    alphabet = "ab./\\ \x00\n\u202e\u0301\u00e9\u0430:C\u3000"
    rng = random.Random(3)
    for _ in range(5000):
        raw = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))
        try:
            kept = normalise(raw)
        except UnsafePath:
            continue
        parts = kept.split("/")
        assert kept == unicodedata.normalize("NFC", kept)
        assert "\\" not in kept and not kept.startswith("/")
        assert all(part not in ("", ".", "..") and part.strip() for part in parts)
        assert not any(c in kept for c in "\x00\n\u202e")  # no control or bidi character
