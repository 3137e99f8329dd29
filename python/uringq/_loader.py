"""Imports the Rust extension once and records why it failed instead of raising.

``import uringq`` must work without the extension (the io_uring provider is then
unavailable and says why), so every module asks :data:`NATIVE_IMPORT_ERROR` first and
imports ``uringq._native`` only when it is ``None``.
"""

from __future__ import annotations

import importlib

NATIVE_IMPORT_ERROR: str | None
try:
    importlib.import_module("uringq._native")
except Exception as exc:  # ImportError, or whatever a broken build raises on import
    detail = str(exc) if isinstance(exc, ImportError) else f"{type(exc).__name__}: {exc}"
    NATIVE_IMPORT_ERROR = f"native extension uringq._native could not be imported: {detail}"
else:
    NATIVE_IMPORT_ERROR = None
