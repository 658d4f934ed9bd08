"""Tags from where a file came from: its folders and its upload session.

``Project A/Camera B/2024/image.png`` gets ``Project A``, ``Camera B`` and ``2024``: every
folder of the relative path, never the file name. Each part is trimmed and put in Unicode NFC;
empty and ``.`` parts are dropped; tags that differ only in case are one tag, spelt as first
met (``Camera B/camera b/x.jpg`` gets ``Camera B`` once). The session gives its source of
upload and its view name.
"""

from __future__ import annotations

import unicodedata

from darkroom.common.events import Tag, TagSource


def folder_tags(relative_path: str) -> list[Tag]:
    *folders, _name = relative_path.replace("\\", "/").split("/")
    return [Tag(name=name, source=TagSource.FOLDER) for name in _distinct(folders)]


def session_tags(source: str, view_name: str) -> list[Tag]:
    return [Tag(name=name, source=TagSource.SESSION) for name in _distinct([source, view_name])]


def _distinct(parts: list[str]) -> list[str]:
    seen: set[str] = set()
    kept = []
    for part in parts:
        name = unicodedata.normalize("NFC", part).strip()
        folded = _caseless(name)
        if name in ("", ".") or folded in seen:
            continue
        seen.add(folded)
        kept.append(name)
    return kept


def _caseless(text: str) -> str:
    """Unicode's canonical caseless form: case folded between decompositions, so that accents
    folding apart (Greek ΐ against Ϊ́) compare as one."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", text).casefold())
