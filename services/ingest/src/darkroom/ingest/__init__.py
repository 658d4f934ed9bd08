"""Darkroom ingest service."""
