"""Why a path cannot run here: a missing optional package, provider or uringq function."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable
from typing import Any

import uringq

__all__ = [
    "UNSUPPORTED",
    "Skip",
    "function_or_skip",
    "optional_import",
    "probe",
    "provider_reason",
]


class Skip(Exception):
    """A path that cannot run here; the message says why."""


def optional_import(name: str) -> Any:
    """Import ``name`` or raise :class:`Skip` saying which package is missing."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise Skip(f"{name.split('.', maxsplit=1)[0]} not installed ({exc})") from None


def provider_reason(provider: str) -> str | None:
    """Why ``provider`` cannot run here, or None when it can."""
    try:
        info = uringq.get_provider(provider)
    except LookupError:
        return f"provider {provider} not registered"
    return None if info.available else f"provider {provider} unavailable: {info.reason}"


def function_or_skip(owner: Any, name: str, spec: str) -> Any:
    """``owner.name``, or :class:`Skip` when this uringq does not have it yet."""
    function = getattr(owner, name, None)
    if function is None:
        raise Skip(f"{owner.__name__}.{name} does not exist in this uringq yet ({spec})")
    return function


# What an API that does not take a call yet raises (a missing argument, a refused mode,
# a missing method); a real failure raises something else and fails the row instead.
UNSUPPORTED = (TypeError, ValueError, AttributeError, NotImplementedError)


async def probe(what: str, awaitable: Awaitable[object]) -> None:
    """Await one instance of a path's code before timing it; :class:`Skip` if unsupported."""
    try:
        await awaitable
    except UNSUPPORTED as exc:
        raise Skip(f"{what} does not support this yet: {type(exc).__name__}: {exc}") from None
