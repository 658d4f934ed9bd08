"""Darkroom dedup service."""
