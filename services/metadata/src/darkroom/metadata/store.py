"""The metadata service's SQL: the latest result for each medium."""

from __future__ import annotations

from datetime import timezone

from darkroom.common.db import Transaction
from darkroom.common.events import GeoPoint, MediaMetadata, MediaRef, Outcome


async def save(tx: Transaction, result: MediaMetadata) -> None:
    gps = result.gps
    await tx.execute(
        "INSERT INTO media_metadata (media_id, project_id, outcome, reason_code, reason,"
        " captured_at, utc_offset, offset_source, make, model, lens, orientation, width, height,"
        " latitude, longitude, altitude, country_code, country, region, duration_s,"
        " thumbnail_key, preview_key)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,"
        " $18, $19, $20, $21, $22, $23)"
        " ON CONFLICT (media_id) DO UPDATE SET outcome = EXCLUDED.outcome,"
        " reason_code = EXCLUDED.reason_code, reason = EXCLUDED.reason,"
        " captured_at = EXCLUDED.captured_at, utc_offset = EXCLUDED.utc_offset,"
        " offset_source = EXCLUDED.offset_source, make = EXCLUDED.make, model = EXCLUDED.model,"
        " lens = EXCLUDED.lens, orientation = EXCLUDED.orientation, width = EXCLUDED.width,"
        " height = EXCLUDED.height, latitude = EXCLUDED.latitude,"
        " longitude = EXCLUDED.longitude, altitude = EXCLUDED.altitude,"
        " country_code = EXCLUDED.country_code, country = EXCLUDED.country,"
        " region = EXCLUDED.region, duration_s = EXCLUDED.duration_s,"
        " thumbnail_key = EXCLUDED.thumbnail_key, preview_key = EXCLUDED.preview_key,"
        " updated_at = now()",
        result.media.media_id,
        result.media.project_id,
        result.outcome.value,
        result.reason_code,
        result.reason,
        result.captured_at,
        result.captured_at.utcoffset() if result.captured_at else None,
        result.offset_source,
        result.make,
        result.model,
        result.lens,
        result.orientation,
        result.width,
        result.height,
        gps.latitude if gps else None,
        gps.longitude if gps else None,
        gps.altitude if gps else None,
        result.country_code,
        result.country,
        result.region,
        result.duration_seconds,
        result.thumbnail_key,
        result.preview_key,
    )


async def earlier_ok(tx: Transaction, ref: MediaRef) -> MediaMetadata | None:
    """The medium's result as stored, if it was read well."""
    row = await tx.fetchrow(
        "SELECT * FROM media_metadata WHERE media_id = $1 AND outcome = 'ok'", ref.media_id
    )
    if row is None:
        return None
    captured, offset = row["captured_at"], row["utc_offset"]
    latitude, longitude = row["latitude"], row["longitude"]
    return MediaMetadata(
        media=ref,
        outcome=Outcome.OK,
        captured_at=captured.astimezone(timezone(offset)) if captured and offset else captured,
        offset_source=row["offset_source"],
        make=row["make"],
        model=row["model"],
        lens=row["lens"],
        orientation=row["orientation"],
        width=row["width"],
        height=row["height"],
        gps=(
            GeoPoint(latitude=latitude, longitude=longitude, altitude=row["altitude"])
            if latitude is not None and longitude is not None
            else None
        ),
        country_code=row["country_code"],
        country=row["country"],
        region=row["region"],
        duration_seconds=row["duration_s"],
        thumbnail_key=row["thumbnail_key"],
        preview_key=row["preview_key"],
    )
