"""The driver's glue to its event loop: how the native queue makes the loop's futures, and
``loop.close`` wrapped so that closing the loop closes the driver first."""

from __future__ import annotations

import asyncio
import sys
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from uringq.aio._driver import Driver

__all__ = ["future_factory", "hook_loop_close", "unhook_loop_close"]


def future_factory(
    loop: asyncio.AbstractEventLoop,
) -> tuple[Callable[..., asyncio.Future[Any]], dict[str, Any] | None]:
    """How the native queue makes a loop's futures: ``asyncio.Future(loop=loop)`` with one
    keyword dict for them all where ``loop.create_future`` is asyncio's or uvloop's own
    (they do just that: asyncio's in a Python frame, uvloop's with a new dict per call),
    else ``loop.create_future()``."""
    create = getattr(loop.create_future, "__func__", None)
    uvloop_loop = getattr(sys.modules.get("uvloop"), "Loop", None)
    if create is asyncio.BaseEventLoop.create_future or (
        uvloop_loop is not None and create is uvloop_loop.create_future
    ):
        return asyncio.futures.Future, {"loop": loop}
    return loop.create_future, None


def hook_loop_close(loop: asyncio.AbstractEventLoop, driver: Driver) -> Callable[[], None] | None:
    """Wrap ``loop.close`` so that closing the loop closes ``driver`` first.

    Returns the wrapper, or None for a loop whose attributes cannot be set: there the
    queue is closed (``cancel=True``) when the loop and its driver are collected.
    """
    original = loop.close
    ref = weakref.ref(driver)

    def close() -> None:
        live = ref()
        if live is not None:
            live.close(timeout=0)
        original()

    try:
        setattr(loop, "close", close)  # noqa: B010 - an instance attribute, on purpose
    except (AttributeError, TypeError):
        return None
    return close


def unhook_loop_close(loop: asyncio.AbstractEventLoop, hook: Callable[[], None] | None) -> None:
    """Remove our ``close`` wrapper if it is still the outermost one."""
    if hook is None:
        return
    try:
        if vars(loop).get("close") is hook:
            delattr(loop, "close")
    except TypeError:  # no __dict__
        pass
