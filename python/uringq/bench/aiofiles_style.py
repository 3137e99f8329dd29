"""aiofiles-style code (SPEC sections 6 and 10): the same coroutine run on ``uringq.aio``
and on ``aiofiles``, only the module swapped, against the builtin file doing the same
synchronously (the reference of each section):

* ``async with m.open(p, "rb") as f: await f.read()`` over the W2 files, 64 tasks;
* sequential ``await f.read(4096)`` through a large cached file, one task;
* ``async for line in f`` over a text file, one task;
* ``await f.read()`` of a whole large cached file.

Where the installed ``uringq.aio.open`` does not take a call yet (text mode, ``read()``
without an offset, async iteration), its row is skipped with the exception it raised.
"""

from __future__ import annotations

import os
from functools import partial
from itertools import islice
from typing import Any

from uringq.bench.asyncrun import awindowed, run_async
from uringq.bench.env import Env
from uringq.bench.sections import AIOF_FILES, AIOF_LINES, AIOF_SEQ, AIOF_WHOLE
from uringq.bench.skips import Skip, probe
from uringq.bench.smallfiles import open_read_loop, open_read_tasks, style_module
from uringq.bench.timing import KIB, WINDOW, Spec, Timing, Windows, windowed

__all__ = ["aiofiles_specs", "line_lengths"]

SEQ_READ = 4 * KIB
ENCODING = "utf-8"
_line_lengths: dict[str, list[int]] = {}


def _file(path: str | None, what: str) -> str:
    if path is None:
        raise Skip(f"the {what} was not created")
    return path


def line_lengths(path: str) -> list[int]:
    """The length in characters of each line of ``path`` (computed once per path)."""
    if path not in _line_lengths:
        with open(path, encoding=ENCODING) as f:
            _line_lengths[path] = [len(line) for line in f]
    return _line_lengths[path]


def _check(what: str, got: int, expected: int) -> None:
    if got != expected:
        raise RuntimeError(f"{what}: read {got} bytes or characters, not {expected}")


# -- sequential read(4096) -------------------------------------------------------------------
def _seq_count(path: str, n: int) -> int:
    return min(n, os.path.getsize(path) // SEQ_READ)


def builtin_seq(env: Env, n: int) -> Timing:
    path = _file(env.big_path, "large file")
    n = _seq_count(path, n)
    total = 0
    with open(path, "rb") as f:
        read = f.read

        def chunk(i: int, j: int) -> None:
            nonlocal total
            for _ in range(i, j):
                total += len(read(SEQ_READ))

        timing = windowed(n, chunk)
    _check("f.read(4096)", total, n * SEQ_READ)
    return timing


def async_seq(module: str, env: Env, n: int) -> Timing:
    m = style_module(module)
    path = _file(env.big_path, "large file")
    n = _seq_count(path, n)
    total = 0

    async def first_read() -> None:
        async with m.open(path, "rb") as f:
            await f.read(SEQ_READ)

    async def main() -> Timing:
        nonlocal total
        await probe(f"{module}.open(p, 'rb') + await f.read(4096)", first_read())
        async with m.open(path, "rb") as f:
            read = f.read

            async def chunk(i: int, j: int) -> None:
                nonlocal total
                for _ in range(i, j):
                    total += len(await read(SEQ_READ))

            return await awindowed(n, chunk)

    timing = run_async("asyncio", main())
    _check(f"{module} f.read(4096)", total, n * SEQ_READ)
    return timing


# -- lines ---------------------------------------------------------------------------------
def builtin_lines(env: Env, n: int) -> Timing:
    path = _file(env.text_path, "text file")
    lengths = line_lengths(path)
    n = min(n, len(lengths))
    chars = 0
    with open(path, encoding=ENCODING) as f:

        def chunk(i: int, j: int) -> None:
            nonlocal chars
            for line in islice(f, j - i):
                chars += len(line)

        timing = windowed(n, chunk)
    _check("for line in f", chars, sum(lengths[:n]))
    timing.nbytes = chars  # ASCII: characters are bytes
    return timing


def async_lines(module: str, env: Env, n: int) -> Timing:
    m = style_module(module)
    path = _file(env.text_path, "text file")
    lengths = line_lengths(path)
    n = min(n, len(lengths))
    chars = 0

    async def first_line() -> None:
        async with m.open(path, encoding=ENCODING) as f:
            async for _line in f:
                break

    async def main() -> Timing:
        nonlocal chars
        await probe(f"{module}.open(p, encoding=...) + async for line in f", first_line())
        async with m.open(path, encoding=ENCODING) as f:
            windows = Windows()
            count = marked = 0
            async for line in f:
                chars += len(line)
                count += 1
                if count % WINDOW == 0 or count == n:
                    windows.mark(count - marked)
                    marked = count
                    if count == n:
                        break
            return windows.timing(count)

    timing = run_async("asyncio", main())
    _check(f"{module} async for line in f", chars, sum(lengths[:n]))
    timing.nbytes = chars
    return timing


# -- whole file ------------------------------------------------------------------------------
def builtin_whole(env: Env, n: int) -> Timing:
    path = _file(env.big_path, "large file")
    size = os.path.getsize(path)
    sizes: list[int] = []
    windows = Windows()
    for _ in range(n):
        with open(path, "rb") as f:
            sizes.append(len(f.read()))
        windows.mark(1)
    _check("open().read()", sum(sizes), n * size)
    timing = windows.timing(n)
    timing.nbytes = sum(sizes)
    return timing


def async_whole(module: str, env: Env, n: int) -> Timing:
    m = style_module(module)
    path = _file(env.big_path, "large file")
    size = os.path.getsize(path)
    sizes: list[int] = []

    async def read_whole() -> int:
        async with m.open(path, "rb") as f:
            return len(await f.read())

    async def main() -> Timing:
        await probe(f"{module}.open(p, 'rb') + await f.read()", read_whole())
        windows = Windows()
        for _ in range(n):
            sizes.append(await read_whole())
            windows.mark(1)
        return windows.timing(n)

    timing = run_async("asyncio", main())
    _check(f"{module} await f.read()", sum(sizes), n * size)
    timing.nbytes = sum(sizes)
    return timing


def _pair(section: str, code: str, run: Any, weights: tuple[float, float], **kw: Any) -> list[Spec]:
    """The uringq.aio and aiofiles rows of one section (the same code, the module swapped)."""
    ours, theirs = weights
    return [
        Spec(section, f"uringq.aio: {code}", "uringq", ours, partial(run, "uringq.aio"),
             loop="asyncio", **kw),
        Spec(section, f"aiofiles: {code}", "peer", theirs, partial(run, "aiofiles"),
             loop="asyncio", anchor="aiofiles", **kw),
    ]  # fmt: skip


def aiofiles_specs(big_reads: int) -> list[Spec]:
    """The aiofiles-style sections; ``big_reads`` whole-file reads per run."""
    files = "async with open(p, 'rb') 64 tasks"
    return [
        Spec(AIOF_FILES, "builtin: with open(p, 'rb') as f: f.read()", "baseline", 1.0,
             open_read_loop, reference=True, basis="files"),
        Spec(AIOF_FILES, f"uringq.aio: {files}", "uringq", 0.5, open_read_tasks("uringq.aio"),
             loop="asyncio", basis="files"),
        Spec(AIOF_FILES, f"aiofiles: {files}", "peer", 0.1, open_read_tasks("aiofiles"),
             loop="asyncio", anchor="aiofiles", basis="files"),
        Spec(AIOF_SEQ, "builtin: f.read(4096) loop", "baseline", 1.0, builtin_seq,
             reference=True, block=SEQ_READ),
        *_pair(AIOF_SEQ, "await f.read(4096)", async_seq, (0.1, 0.01), block=SEQ_READ),
        Spec(AIOF_LINES, "builtin: for line in f", "baseline", 1.0, builtin_lines,
             reference=True),
        *_pair(AIOF_LINES, "async for line in f", async_lines, (0.5, 0.01)),
        Spec(AIOF_WHOLE, "builtin: open(p, 'rb').read()", "baseline", big_reads, builtin_whole,
             reference=True, basis="fixed"),
        *_pair(AIOF_WHOLE, "await f.read()", async_whole, (big_reads, big_reads),
               basis="fixed"),
    ]  # fmt: skip
