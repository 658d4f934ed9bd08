"""Media uploaded in, a metadata result out: one for every medium, ``ok`` or ``failed``."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from darkroom.common.blobs import Blobs
from darkroom.common.broker import Write
from darkroom.common.db import Transaction, publish
from darkroom.common.events import GeoPoint, MediaMetadata, MediaUploaded, Outcome
from darkroom.common.imaging import Failure, attempt
from darkroom.metadata import store
from darkroom.metadata.extract import Extracted
from darkroom.metadata.worker import Extractor

SOURCE = "darkroom/metadata"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deps:
    extractor: Extractor
    blobs: Blobs
    derived_bucket: str


async def on_uploaded(event: MediaUploaded, deps: Deps) -> Write:
    """Read the medium and store its derived images; then, in the transaction, its metadata
    and what was found."""
    found = await attempt(deps.extractor.extract(event))
    cut_short = found.code if isinstance(found, Failure) and found.transient else None
    if isinstance(found, Failure):
        result = MediaMetadata(
            media=event.media, outcome=Outcome.FAILED, reason_code=found.code, reason=found.message
        )
    else:
        result = await _ok(event, found, deps)

    async def write(tx: Transaction) -> None:
        earlier = await store.earlier_ok(tx, event.media) if cut_short else None
        if earlier is not None:  # processed again, cut short: what was read before stands
            log.warning(
                "reading the medium again failed (%s); its earlier result stands",
                cut_short,
                extra={"media_id": str(event.media.media_id)},
            )
            await publish(tx, earlier, source=SOURCE)
            return
        await store.save(tx, result)
        await publish(tx, result, source=SOURCE)

    return write


async def _ok(event: MediaUploaded, found: Extracted, deps: Deps) -> MediaMetadata:
    thumbnail_key = preview_key = None
    prefix = f"{event.media.project_id}/{event.media.media_id}"
    if found.thumbnail is not None and found.preview is not None:
        thumbnail_key, preview_key = f"{prefix}/thumbnail.webp", f"{prefix}/preview.webp"
        await deps.blobs.put_bytes(deps.derived_bucket, thumbnail_key, found.thumbnail)
        await deps.blobs.put_bytes(deps.derived_bucket, preview_key, found.preview)
    gps = found.gps
    place = found.place
    return MediaMetadata(
        media=event.media,
        outcome=Outcome.OK,
        captured_at=found.captured_at,
        offset_source=found.offset_source,
        make=found.make,
        model=found.model,
        lens=found.lens,
        orientation=found.orientation,
        width=found.width,
        height=found.height,
        gps=GeoPoint(latitude=gps[0], longitude=gps[1], altitude=gps[2]) if gps else None,
        country_code=place.country_code if place else None,
        country=place.country if place else None,
        region=place.region if place else None,
        duration_seconds=found.duration_seconds,
        thumbnail_key=thumbnail_key,
        preview_key=preview_key,
    )
