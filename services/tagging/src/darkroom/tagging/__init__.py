"""Darkroom tagging service."""
