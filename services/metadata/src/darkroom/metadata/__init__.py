"""Darkroom metadata service."""
