"""Running asyncio paths: the event loop (asyncio or uvloop), tasks sharing one iterator of
work, and a sampler that gives per-op windows without a per-op cost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

from uringq.bench.skips import Skip, optional_import
from uringq.bench.timing import WINDOW, Timing, Windows

__all__ = ["ASYNC_WINDOW", "awindowed", "drive", "run_async"]

ASYNC_WINDOW = 0.005  # seconds per latency window in asyncio paths
T = TypeVar("T")
R = TypeVar("R")


def _loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if kind == "uvloop":
        uvloop = optional_import("uvloop")
        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return factory
    return asyncio.new_event_loop


class _Sampler:
    """Samples how many items remain every 5 ms: per-op time per window, at no per-op cost."""

    def __init__(self, it: Iterator[Any]) -> None:
        self.it = it
        self.samples: list[tuple[float, int]] = []
        self.handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.samples.append((time.perf_counter(), self._remaining()))
        self.handle = self.loop.call_later(ASYNC_WINDOW, self._tick)

    def _remaining(self) -> int:
        hint: int = self.it.__length_hint__()  # type: ignore[attr-defined]
        return hint

    def _tick(self) -> None:
        self.samples.append((time.perf_counter(), self._remaining()))
        self.handle = self.loop.call_later(ASYNC_WINDOW, self._tick)

    def stop(self, end: float) -> list[float]:
        if self.handle is not None:
            self.handle.cancel()
        self.samples.append((end, 0))
        windows = []
        for (t0, r0), (t1, r1) in zip(self.samples, self.samples[1:], strict=False):
            if r0 > r1:
                windows.append((t1 - t0) / (r0 - r1))
        return windows


async def drive(
    items: Sequence[T],
    tasks: int,
    make_worker: Callable[[Iterator[T]], Coroutine[Any, Any, None]],
) -> Timing:
    """``tasks`` workers take items from one shared iterator until it is empty."""
    it = iter(list(items))
    sampler = _Sampler(it)
    start = time.perf_counter()
    sampler.start()
    await asyncio.gather(*(make_worker(it) for _ in range(tasks)))
    end = time.perf_counter()
    return Timing(end - start, len(items), sampler.stop(end))


async def awindowed(n: int, chunk: Callable[[int, int], Awaitable[object]]) -> Timing:
    """:func:`uringq.bench.timing.windowed` for one task: awaits ``chunk(i, j)`` per window."""
    windows = Windows()
    for i in range(0, n, WINDOW):
        j = min(n, i + WINDOW)
        await chunk(i, j)
        windows.mark(j - i)
    return windows.timing(n)


def run_async(kind: str, coro: Coroutine[Any, Any, R]) -> R:
    """Run ``coro`` on a new loop of ``kind`` ("asyncio" or "uvloop")."""
    try:
        factory = _loop_factory(kind)
    except Skip:
        coro.close()
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)
