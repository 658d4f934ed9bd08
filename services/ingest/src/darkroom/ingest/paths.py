"""Relative paths of files in a folder upload, made safe or refused.

A folder upload sends each file's path relative to the chosen folder
(``Project A/Camera B/2024/image.png``); its folders become tags. The path is data shown to
people and stored in the database, never part of an object key, but it must still be
unambiguous and honest: one spelling per path (NFC, forward slashes), no way out of the
folder, nothing that hides what the file is. What cannot be made safe is refused with a code
and a sentence, never guessed at.
"""

from __future__ import annotations

import re
import unicodedata

# Caps, chosen to fit what real file systems and browsers produce while bounding what we store
# and index. 1024 characters is PATH_MAX on macOS and far beyond any real folder upload;
MAX_PATH_CHARS = 1024
# 255 bytes is NAME_MAX on ext4, APFS and most others, so no real file name is longer;
MAX_PART_BYTES = 255
# and 32 levels of folders is deeper than anyone sorts photos, yet bounds the tags per file.
MAX_PARTS = 32

# C0 controls, DEL and C1 controls: invisible, and some (NUL, newline) break logs and headers.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# Bidirectional controls reorder what is displayed: "photo\u202egpj.exe" shows as
# "photoexe.jpg". Refused rather than stripped, so that the name stored is the name sent.
BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# "C:" or "C:anything": a Windows drive, absolute or drive-relative, never inside the folder.
_DRIVE = re.compile(r"[A-Za-z]:")


class UnsafePath(ValueError):
    """A path that cannot be made safe: ``code`` for machines, ``message`` for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _quote(text: str, limit: int = 60) -> str:
    """Quote user text for a message: escaped by repr, and cut short."""
    # repr() escapes every non-printable character (controls, bidi marks, odd spaces) while
    # keeping readable letters such as "é", so the quoted text can neither break a log line nor
    # reorder the sentence around it.
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def normalise(raw: str) -> str:
    """Return ``raw`` as a safe relative path (NFC, "/"-separated), or raise ``UnsafePath``."""
    path = unicodedata.normalize("NFC", raw).replace("\\", "/")
    if len(path) > MAX_PATH_CHARS:
        raise UnsafePath(
            "path_too_long",
            f"The path is {len(path)} characters long, more than the {MAX_PATH_CHARS} allowed.",
        )
    if match := CONTROL.search(path):
        raise UnsafePath(
            "control_character",
            f"The path {_quote(path)} contains the control character {match.group()!r}.",
        )
    if match := BIDI.search(path):
        raise UnsafePath(
            "bidi_control",
            f"The path {_quote(path)} contains the bidirectional control {match.group()!r}, "
            "which can disguise a file's real name or extension.",
        )
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if not parts:
        raise UnsafePath("empty_path", "The path is empty; a file name is required.")
    if path.startswith("/") or _DRIVE.match(path):
        # "/x", "//server/share/x" (from "\\server\share\x") and "C:/x" all leave the folder.
        raise UnsafePath(
            "absolute_path", f"The path {_quote(path)} is absolute; a relative path is required."
        )
    for part in parts:
        if part == "..":
            # Refused, never resolved: "a/../b" is a client bug or an attack, not a path to fix.
            raise UnsafePath(
                "path_traversal", f"The path {_quote(path)} contains '..', which is not allowed."
            )
        if not part.strip():
            raise UnsafePath(
                "invalid_path",
                f"The path {_quote(path)} has a folder or file name made only of whitespace.",
            )
        size = len(part.encode("utf-8"))
        if size > MAX_PART_BYTES:
            raise UnsafePath(
                "name_too_long",
                f"The name {_quote(part)} is {size} bytes in UTF-8, "
                f"more than the {MAX_PART_BYTES} allowed.",
            )
    if len(parts) > MAX_PARTS:
        raise UnsafePath(
            "too_deep", f"The path has {len(parts)} levels, more than the {MAX_PARTS} allowed."
        )
    return "/".join(parts)


def file_name(path: str) -> str:
    """The last part of a normalised path: the file's own name."""
    return path.rsplit("/", 1)[-1]


def extension(path: str) -> str:
    """The lower-case suffix of the file name, with its dot; "" for none or a dot-file."""
    name = file_name(path)
    stem, dot, suffix = name.rpartition(".")
    # ".hidden" has no stem, so it is a name, not an extension; "name." has an empty suffix.
    if not dot or not stem or not suffix:
        return ""
    return "." + suffix.lower()
