"""Per-request cost of ``uringq.aio`` reads against a bare future round trip (issue 11).

Two uses, both with 64 tasks sharing one iterator of 4 KiB random offsets, as the bench's W1:

* instruction counts: run it under callgrind twice, with ``N`` and ``2N`` requests, and
  divide the difference of the totals by ``N`` (start-up cancels out)::

      valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p \\
          /root/.pyenv/versions/3.11.7/bin/python3 benches/aio_profile.py read asyncio 20000

* interleaved timing (best of ``--rounds``, every path once per round, so a slow phase of
  the machine hits every path alike)::

      python benches/aio_profile.py --time all all 200000 --rounds 7

Paths: ``bare`` (no I/O: a future per request, all resolved by one callback per loop
iteration, as ``uringq.bench.w1.bare_run``), ``read`` (``await f.read(4096, off)`` ->
bytes), ``read_into`` (``await f.read_into(buf, off)``), ``fread`` (the module-level
``aio.read(fd, off, buf)``). Loops: ``asyncio``, ``uvloop``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from uringq import aio

BLOCK = 4096
TASKS = 64
PATHS = ("bare", "read", "read_into", "fread")
LOOPS = ("asyncio", "uvloop")


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


async def _gather(
    offsets: list[int], work: Callable[[Iterator[int]], Coroutine[Any, Any, None]]
) -> float:
    it = iter(offsets)
    start = time.perf_counter()
    await asyncio.gather(*(work(it) for _ in range(TASKS)))
    return time.perf_counter() - start


async def _bare(offsets: list[int]) -> float:
    loop = asyncio.get_running_loop()
    create_future, call_soon = loop.create_future, loop.call_soon
    pending: list[asyncio.Future[int]] = []
    scheduled = [False]

    def resolve() -> None:
        scheduled[0] = False
        batch = pending[:]
        pending.clear()
        for fut in batch:
            fut.set_result(BLOCK)

    async def work(it: Iterator[int]) -> None:
        for _off in it:
            fut = create_future()
            pending.append(fut)
            if not scheduled[0]:
                scheduled[0] = True
                call_soon(resolve)
            await fut

    return await _gather(offsets, work)


async def _aio(path: str, offsets: list[int], method: str) -> float:
    async with aio.open(path, "rb") as f:
        assert len(await f.read(BLOCK, offsets[0])) == BLOCK
        if method == "read":
            read = f.read

            async def work(it: Iterator[int]) -> None:
                for off in it:
                    await read(BLOCK, off)

        elif method == "read_into":
            read_into = f.read_into

            async def work(it: Iterator[int]) -> None:
                buf = bytearray(BLOCK)
                for off in it:
                    await read_into(buf, off)

        else:
            fd, fread = f.fileno(), aio.read

            async def work(it: Iterator[int]) -> None:
                buf = bytearray(BLOCK)
                for off in it:
                    await fread(fd, off, buf)

        return await _gather(offsets, work)


def run(path: str, offsets: list[int], method: str, loop_kind: str) -> float:
    """Seconds for ``len(offsets)`` requests on a fresh loop (its set-up not included)."""
    loop = _new_loop(loop_kind)
    try:
        if method == "bare":
            return loop.run_until_complete(_bare(offsets))
        return loop.run_until_complete(_aio(path, offsets, method))
    finally:
        loop.close()


def _data_file(size: int) -> str:
    fd, path = tempfile.mkstemp(prefix="uringq-aio-profile-")
    with os.fdopen(fd, "wb") as f:
        chunk = os.urandom(1 << 20)
        for _ in range(size >> 20):
            f.write(chunk)
    with open(path, "rb") as f:  # warm the page cache
        while f.read(1 << 20):
            pass
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", choices=(*PATHS, "all"))
    parser.add_argument("loop", choices=(*LOOPS, "all"))
    parser.add_argument("n", type=int)
    parser.add_argument("--time", action="store_true", help="interleaved timing, best of rounds")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size-mb", type=int, default=64, help="a power of two")
    args = parser.parse_args(argv)
    paths = PATHS if args.path == "all" else (args.path,)
    loops = LOOPS if args.loop == "all" else (args.loop,)
    path = _data_file(args.size_mb << 20)
    try:
        # Spread over the file without a random draw per request (that would cost more
        # instructions than a request's native part): an odd multiplier permutes the
        # 2**k blocks.
        blocks = (args.size_mb << 20) // BLOCK
        offsets = [(i * 2654435761 % blocks) * BLOCK for i in range(args.n)]
        if not args.time:
            for lp in loops:
                for p in paths:
                    run(path, offsets, p, lp)
            return 0
        best: dict[tuple[str, str], float] = {}
        for _ in range(args.rounds):
            for lp in loops:
                for p in paths:
                    t = run(path, offsets, p, lp)
                    best[lp, p] = min(best.get((lp, p), t), t)
        for lp in loops:
            bare = best.get((lp, "bare"))
            for p in paths:
                rate = args.n / best[lp, p]
                ratio = f"{bare / best[lp, p]:.3f}x bare" if bare else ""
                print(f"{lp:8} {p:10} {rate / 1e3:8.1f} K/s {1e9 / rate:7.0f} ns/req  {ratio}")
        return 0
    finally:
        os.unlink(path)


if __name__ == "__main__":
    sys.exit(main())
