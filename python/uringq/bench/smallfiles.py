"""W2, many small files (SPEC sections 6 and 9): every file of the W2 set (20 000 files of
4-12 KiB, page cache warm) read whole, and a write sub-section creating such files.

Reads: ``uringq.read_files`` on io_uring and on the threadpool provider, and
``uringq.aio.read_file`` with 64 tasks, against an ``open(p, "rb").read()`` loop (the
reference), ``os.open/os.read/os.close`` (with and without ``os.fstat``), ``pathlib``,
a ``ThreadPoolExecutor(8)``, aiofiles with 64 tasks and the C ceiling
(``smallfiles_ceiling.c``: the C loop and one io_uring chain per file, each keeping every
file's content as the Python rows keep theirs, and reusing its buffers). Every row keeps
all its results until the run ends: fresh memory for 20 000 results costs about two page
faults a file, the same for every row. Writes:
``uringq.write_files`` against an ``open(p, "wb").write(data)`` loop, on fresh files.
Results are checked (sizes, and the bytes of a sample) outside the timed region.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import uringq
from uringq import aio
from uringq.bench.asyncrun import drive, run_async
from uringq.bench.ceilings import smallfiles_runner
from uringq.bench.data import small_contents
from uringq.bench.env import Env, SmallFiles
from uringq.bench.sections import W2_READ, W2_WRITE
from uringq.bench.skips import Skip, function_or_skip, optional_import, probe
from uringq.bench.timing import KIB, Runner, Spec, Timing, windowed

__all__ = ["open_read_loop", "open_read_tasks", "style_module", "w2_specs"]

READ_SIZE = 64 * KIB  # the os.read loop reads once: every W2 file is smaller
# The C ceiling's two modes (smallfiles_ceiling.c). Every Python row keeps its results (a
# list of bytes, new memory), so the C rows it is fairly compared with keep theirs too.
KEEP = "each file copied to a malloc'd buffer of its size, kept"
REUSE = "reused buffers, nothing kept"
SPEC9 = "SPEC section 9"


def _small(env: Env) -> SmallFiles:
    if env.small is None:
        raise Skip("the W2 files were not created")
    return env.small


def _checked(timing: Timing, small: SmallFiles, out: Sequence[object], what: str) -> Timing:
    """``timing``, once every file read came back whole; its ``nbytes`` set."""
    n = timing.ops
    for path, size, data in zip(small.paths[:n], small.sizes[:n], out, strict=True):
        if not isinstance(data, bytes) or len(data) != size:
            got = f"{len(data)} bytes" if isinstance(data, bytes) else repr(data)
            raise RuntimeError(f"{what}: {path} gave {got}, not {size} bytes")
    for i in {0, n - 1}:
        if Path(small.paths[i]).read_bytes() != out[i]:
            raise RuntimeError(f"{what}: the bytes of {small.paths[i]} differ")
    timing.nbytes = sum(small.sizes[:n])
    return timing


# -- reads: baselines --------------------------------------------------------------------
def open_read_loop(env: Env, n: int) -> Timing:
    """``with open(p, "rb") as f: f.read()`` for each file: the reference."""
    small = _small(env)
    paths = small.paths[:n]
    out: list[bytes] = []
    append = out.append

    def chunk(i: int, j: int) -> None:
        for p in paths[i:j]:
            with open(p, "rb") as f:
                append(f.read())

    return _checked(windowed(n, chunk), small, out, "open().read()")


# The loops below are spelled out one by one, not built from a shared helper: what they
# measure is their per-file cost, which an extra call or branch per file would change.
def os_read_loop(env: Env, n: int) -> Timing:
    """``os.open``, one ``os.read`` of 64 KiB, ``os.close`` for each file."""
    small = _small(env)
    paths = small.paths[:n]
    out: list[bytes] = []
    append, os_open, os_read, os_close = out.append, os.open, os.read, os.close

    def chunk(i: int, j: int) -> None:
        for p in paths[i:j]:
            fd = os_open(p, os.O_RDONLY)
            try:
                append(os_read(fd, READ_SIZE))
            finally:
                os_close(fd)

    return _checked(windowed(n, chunk), small, out, "os.read loop")


def os_fstat_read_loop(env: Env, n: int) -> Timing:
    """The same with ``os.fstat`` for the size to read."""
    small = _small(env)
    paths = small.paths[:n]
    out: list[bytes] = []
    append, os_open, os_read, os_close, fstat = out.append, os.open, os.read, os.close, os.fstat

    def chunk(i: int, j: int) -> None:
        for p in paths[i:j]:
            fd = os_open(p, os.O_RDONLY)
            try:
                append(os_read(fd, fstat(fd).st_size))
            finally:
                os_close(fd)

    return _checked(windowed(n, chunk), small, out, "os.fstat/os.read loop")


def pathlib_loop(env: Env, n: int) -> Timing:
    small = _small(env)
    paths = [Path(p) for p in small.paths[:n]]
    out: list[bytes] = []
    append = out.append

    def chunk(i: int, j: int) -> None:
        for p in paths[i:j]:
            append(p.read_bytes())

    return _checked(windowed(n, chunk), small, out, "pathlib")


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def thread_pool_run(env: Env, n: int) -> Timing:
    """``ThreadPoolExecutor(8).map`` of ``open().read()`` (its threads started beforehand)."""
    small = _small(env)
    paths = small.paths[:n]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(_read, paths[:64]))
        start = time.perf_counter()
        out = list(pool.map(_read, paths))
        elapsed = time.perf_counter() - start
    return _checked(Timing(elapsed, n, []), small, out, "ThreadPoolExecutor")


def style_module(name: str) -> Any:
    """The module aiofiles-style code runs on: ``uringq.aio`` or an installed ``aiofiles``."""
    return aio if name == "uringq.aio" else optional_import(name)


def open_read_tasks(module: str) -> Runner:
    """``async with m.open(p, "rb") as f: await f.read()`` over the W2 files, in tasks."""

    def run(env: Env, n: int) -> Timing:
        m = style_module(module)
        small = _small(env)
        paths = small.paths[:n]
        out: list[bytes] = [b""] * n

        async def read_one(path: str) -> bytes:
            async with m.open(path, "rb") as f:
                data: bytes = await f.read()
                return data

        async def worker(it: Iterator[tuple[int, str]]) -> None:
            for i, path in it:
                async with m.open(path, "rb") as f:
                    out[i] = await f.read()

        async def main() -> Timing:
            await probe(f"{module}.open(p, 'rb') + await f.read()", read_one(paths[0]))
            return await drive(list(enumerate(paths)), env.tasks, worker)

        return _checked(run_async("asyncio", main()), small, out, module)

    return run


# -- reads: uringq -----------------------------------------------------------------------
def read_files_run(provider: str, *, one_ring: bool = False) -> Runner:
    """One ``uringq.read_files(paths, provider=...)`` call over the files; ``one_ring``:
    the io_uring engine kept on one ring (and thread), whatever the CPU count."""

    def run(env: Env, n: int) -> Timing:
        if one_ring:
            read = _one_ring_reader()
        else:
            public = function_or_skip(uringq, "read_files", SPEC9)

            def read(paths: list[str]) -> list[Any]:
                return public(paths, provider=provider)  # type: ignore[no-any-return]

        small = _small(env)
        paths = small.paths[:n]
        read(paths[:64])  # the provider's setup, outside the timing
        start = time.perf_counter()
        out = read(paths)
        elapsed = time.perf_counter() - start
        return _checked(Timing(elapsed, n, []), small, out, "read_files")

    return run


def _one_ring_reader() -> Callable[[list[str]], list[Any]]:
    """The io_uring engine's ``read_files`` forced onto one ring."""
    try:
        from uringq import _native
    except ImportError as exc:
        raise Skip(f"no native module ({exc})") from None
    native = function_or_skip(_native, "read_files_rings", "one-ring runs")
    del native
    return lambda paths: _native.read_files(paths, _threads=1)


def _rings_note() -> str:
    """How many rings ``read_files`` uses on the bench's files (it says in the note)."""
    try:
        from uringq import _native

        rings = _native.read_files_rings(20_000)
    except (ImportError, AttributeError):
        return "one call for every file"
    return f"one call; {rings} ring(s), one thread each" if rings > 1 else "one call, one ring"


def aio_read_file_run(env: Env, n: int) -> Timing:
    """``await uringq.aio.read_file(p)`` in 64 tasks, on io_uring."""
    read_file = function_or_skip(aio, "read_file", SPEC9)
    small = _small(env)
    paths = small.paths[:n]
    out: list[bytes] = [b""] * n

    async def worker(it: Iterator[tuple[int, str]]) -> None:
        for i, path in it:
            out[i] = await read_file(path)

    async def main() -> Timing:
        aio.get_driver(provider="io_uring")
        await probe("uringq.aio.read_file", read_file(paths[0]))
        return await drive(list(enumerate(paths)), env.tasks, worker)

    return _checked(run_async("asyncio", main()), small, out, "aio.read_file")


# -- writes --------------------------------------------------------------------------------
def _fresh_files(env: Env, n: int) -> tuple[str, dict[str, bytes]]:
    """A new directory and ``n`` files for it (path -> data of a W2 size); none exist yet.

    Every write row starts with the dirty page cache written out (``sync()``, untimed):
    on a slow disk the writeback of one row's 160 MB (and the journal work of removing
    its files) would otherwise land in the next row's timing."""
    small = _small(env)
    os.sync()
    directory = tempfile.mkdtemp(prefix="w2-write-", dir=env.workdir)
    contents = small_contents(random.Random(small.contents_seed), small.sizes[:n])
    return directory, {os.path.join(directory, f"f{i:06d}"): d for i, d in enumerate(contents)}


def _written(
    timing: Timing, files: dict[str, bytes], counts: Sequence[object], what: str
) -> Timing:
    """``timing``, once every file was written whole (counts, and the bytes of a sample)."""
    expected = [len(data) for data in files.values()]
    if list(counts) != expected:
        raise RuntimeError(f"{what}: wrote {list(counts)[:8]}..., not {expected[:8]}...")
    items = list(files.items())
    for path, data in items[:: max(1, len(items) // 8)]:
        if Path(path).read_bytes() != data:
            raise RuntimeError(f"{what}: {path} does not hold what was written")
    timing.nbytes = sum(expected)
    return timing


def open_write_loop(env: Env, n: int) -> Timing:
    """``with open(p, "wb") as f: f.write(data)`` for each new file: the reference."""
    directory, files = _fresh_files(env, n)
    try:
        items = list(files.items())
        counts: list[int] = []
        append = counts.append

        def chunk(i: int, j: int) -> None:
            for path, data in items[i:j]:
                with open(path, "wb") as f:
                    append(f.write(data))

        return _written(windowed(n, chunk), files, counts, "open().write()")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def write_files_run(provider: str) -> Runner:
    """One ``uringq.write_files({path: data, ...}, provider=...)`` call creating the files."""

    def run(env: Env, n: int) -> Timing:
        write_files = function_or_skip(uringq, "write_files", SPEC9)
        directory, files = _fresh_files(env, n)
        try:
            start = time.perf_counter()
            counts = write_files(files, provider=provider)
            elapsed = time.perf_counter() - start
            return _written(Timing(elapsed, n, []), files, counts, "write_files")
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    return run


def w2_specs() -> list[Spec]:
    chain = "OPENAT direct -> READ -> CLOSE, sliding window"
    return [
        Spec(W2_READ, "open(p, 'rb').read() loop", "baseline", 1.0, open_read_loop,
             reference=True, basis="files"),
        Spec(W2_READ, "uringq.read_files (io_uring)", "uringq", 1.0, read_files_run("io_uring"),
             provider="io_uring", note=_rings_note(), basis="files"),
        Spec(W2_READ, "uringq.read_files (io_uring, one ring)", "uringq", 1.0,
             read_files_run("io_uring", one_ring=True), provider="io_uring",
             note="one thread, as the C chain", basis="files"),
        Spec(W2_READ, "uringq.read_files (threadpool)", "uringq", 1.0,
             read_files_run("threadpool"), provider="threadpool", note="pure-Python fallback",
             basis="files"),
        Spec(W2_READ, "uringq.aio.read_file 64 tasks (asyncio)", "uringq", 0.5,
             aio_read_file_run, provider="io_uring", loop="asyncio", basis="files"),
        Spec(W2_READ, "os.open/os.read/os.close loop", "baseline", 1.0, os_read_loop,
             note="one 64 KiB os.read", basis="files"),
        Spec(W2_READ, "os.open/os.fstat/os.read/os.close loop", "baseline", 1.0,
             os_fstat_read_loop, basis="files"),
        Spec(W2_READ, "pathlib.Path.read_bytes loop", "baseline", 1.0, pathlib_loop, basis="files"),
        Spec(W2_READ, "ThreadPoolExecutor(8) open().read()", "baseline", 0.25, thread_pool_run,
             basis="files"),
        Spec(W2_READ, "aiofiles 64 tasks (async with open(p, 'rb'))", "peer", 0.1,
             open_read_tasks("aiofiles"), loop="asyncio", note="await f.read()", basis="files"),
        Spec(W2_READ, "C open/read/close loop (keep)", "ceiling", 1.0,
             smallfiles_runner(32, "loop_keep_files_s"), note=KEEP, basis="files"),
        Spec(W2_READ, "C io_uring chain 32 in flight (keep)", "ceiling", 1.0,
             smallfiles_runner(32, "uring_keep_files_s"), c_depth=32, note=f"{chain}; {KEEP}",
             basis="files"),
        Spec(W2_READ, "C io_uring chain 128 in flight (keep)", "ceiling", 1.0,
             smallfiles_runner(128, "uring_keep_files_s"), c_depth=128, note=f"{chain}; {KEEP}",
             basis="files"),
        Spec(W2_READ, "C open/read/close loop (reuse)", "ceiling", 1.0,
             smallfiles_runner(32, "loop_files_s"), c_reuse=True, note=REUSE, basis="files"),
        Spec(W2_READ, "C io_uring chain 32 in flight (reuse)", "ceiling", 1.0,
             smallfiles_runner(32, "uring_files_s"), c_depth=32, c_reuse=True,
             note=f"{chain}; {REUSE}", basis="files"),
        Spec(W2_READ, "C io_uring chain 128 in flight (reuse)", "ceiling", 1.0,
             smallfiles_runner(128, "uring_files_s"), c_depth=128, c_reuse=True,
             note=f"{chain}; {REUSE}", basis="files"),
        Spec(W2_WRITE, "open(p, 'wb').write(data) loop", "baseline", 0.25, open_write_loop,
             reference=True, note="new files", basis="files"),
        Spec(W2_WRITE, "uringq.write_files (io_uring)", "uringq", 0.25,
             write_files_run("io_uring"), provider="io_uring", note="one call", basis="files"),
        Spec(W2_WRITE, "uringq.write_files (threadpool)", "uringq", 0.25,
             write_files_run("threadpool"), provider="threadpool", note="pure-Python fallback",
             basis="files"),
    ]  # fmt: skip
