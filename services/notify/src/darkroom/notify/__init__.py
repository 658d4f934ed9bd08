"""Darkroom notify service."""
