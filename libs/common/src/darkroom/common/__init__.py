"""Darkroom shared mechanisms: events, settings, broker, blobs, db, telemetry."""
