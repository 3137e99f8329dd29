"""Shared helpers for the uringq test suite (importable as ``helpers`` from tests/)."""
