"""``python -m uringq bench``: uringq side by side with its baselines and peers (SPEC section 6).

Workload W1 (always): 4 KiB random reads of a file held in the page cache, the same
offsets for every Python path, through

* uringq: ``read_many`` (depth 32 and 128, ``--batch`` (1024) requests per call into
  one reused output buffer), the per-request API (prepare/commit/wait, depth 32),
  ``uringq.aio`` with 64 tasks (``read`` -> bytes and ``read_into``; default loop and
  uvloop), and the ``threadpool`` provider the same ways;
* baselines: a Python ``os.pread`` loop (the reference, ratio 1.0),
  ``loop.run_in_executor(None, os.pread, ...)`` with 64 tasks, and a bare asyncio future
  round trip with 64 tasks and no I/O (the ceiling of any asyncio API: one future per
  request, resolved in one callback per loop iteration, as ``uringq.aio`` does);
* peers, where installed: caio (each backend), aiofile (64 tasks), aiofiles (1 task:
  seek + read);
* the C io_uring ceiling ``uring_ceiling.c`` (registered file and buffers), compiled at
  run time when ``cc`` and ``liburing.h`` exist; its plain ``pread`` loop as well. It
  draws its own offsets (same distribution, same file).

``--direct`` adds O_DIRECT 4 KiB random reads: an ``os.preadv`` loop at depth 1 against
uringq at depth 128. ``--seq`` adds sequential 128 KiB reads and writes (buffered writes
through io_uring are punted to kernel worker threads: per request they are slower than
``pwrite``, and the table shows it).

What is measured: each path runs a fixed number of operations (``--ops`` scales them;
slow paths run fewer), best of ``--repeat`` runs, run in rounds (each round runs every
path once), not pinned unless ``--cpu`` says so. ``ops/s`` and ``MB/s`` come from the
whole run. ``p50``/``p99`` are of the time per operation within windows: a window is
1024 operations for loops and per-request paths, one call (``--batch`` requests) for
the batch API, and 5 ms for asyncio paths (operations done in the window / its length). With
depth D, a single request is in flight for about D times that. Timings are noisy; the
claims are the ratios within one run: ``x pread`` against the ``os.pread`` loop of the
same section and ``x C`` against C io_uring (at the same depth for ``read_many``, else
the better C io_uring figure).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import math
import mmap
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import uringq
from uringq import aio

__all__ = ["Result", "main"]

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
W1_BLOCK = 4 * KIB
SEQ_BLOCK = 128 * KIB
CALL = 1024  # requests per read_many call
WINDOW = 1024  # operations per latency window in loops
ASYNC_WINDOW = 0.005  # seconds per latency window in asyncio paths
TASKS = 64
DEFAULT_OPS = 1_000_000
QUICK_OPS = 20_000
DEFAULT_SIZE = GIB
QUICK_SIZE = 64 * MIB
CEILING_ENV = "URINGQ_CEILING_SRC"

_UNITS = {"": 1, "K": KIB, "M": MIB, "G": GIB, "T": 1024 * GIB}

W1 = "W1: 4 KiB random reads, page cache warm"
DIRECT = "O_DIRECT 4 KiB random reads"
SEQ_READ = "sequential 128 KiB reads, page cache warm"
SEQ_WRITE = "sequential 128 KiB buffered writes (new file)"


@dataclass
class Result:
    """One path of one section: what ran, how fast, and its ratios."""

    section: str
    path: str
    group: str  # uringq | baseline | peer | ceiling
    ops: int = 0
    seconds: float = 0.0
    ops_s: float = 0.0
    mb_s: float = 0.0
    p50_us: float | None = None
    p99_us: float | None = None
    ratio_pread: float | None = None
    ratio_c: float | None = None
    runs_ops_s: list[float] = field(default_factory=list)
    skipped: str | None = None
    note: str | None = None


@dataclass
class Timing:
    """One run of one path: elapsed seconds, operations, per-op seconds of each window."""

    seconds: float
    ops: int
    windows: list[float]


@dataclass
class Env:
    """What the paths share: the data file, the offsets and the options."""

    path: str
    size: int
    offsets: array[int]  # W1 offsets, the longest run's worth
    tasks: int
    repeat: int
    batch: int
    quick: bool
    workdir: str
    ceiling: str | None = None  # compiled C ceiling, if any
    ceiling_reason: str | None = None
    direct_path: str | None = None
    direct_offsets: array[int] | None = None
    round: int = 0  # which round of the repeats is running
    c_cache: dict[tuple[int, int], dict[str, float]] = field(default_factory=dict)


Runner = Callable[[Env, int], Timing]


@dataclass
class Spec:
    section: str
    path: str
    group: str
    weight: float  # fraction of the base op count this path runs
    run: Runner
    block: int = W1_BLOCK
    reference: bool = False
    note: str | None = None
    # io_uring depth: on a C io_uring row, the depth it ran at; on a batch row, the C
    # row its "x C" ratio compares with.
    c_depth: int | None = None


class Skip(Exception):
    """A path that cannot run here; the message says why."""


# -- small helpers -------------------------------------------------------------------------
def parse_size(text: str) -> int:
    """``"256M"`` -> bytes (K, M, G, T are powers of 1024; an optional ``iB``/``B``)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", text.upper())
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 8M, 256M, 1G)")
    value = float(match.group(1)) * _UNITS[match.group(2)]
    if value < 1:
        raise argparse.ArgumentTypeError(f"size must be positive: {text!r}")
    return int(value)


def _fmt_size(n: int) -> str:
    for unit, scale in (("G", GIB), ("M", MIB), ("K", KIB)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return f"{n}B"


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise Skip(f"{name.split('.', maxsplit=1)[0]} not installed ({exc})") from None


def _mem_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * KIB
    except OSError:
        pass
    return None


class Progress:
    """One line on stderr: ``[ 3/21] path ... run 2/3`` (rewritten in place on a tty)."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.total = total
        self.count = 0
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.width = 0

    def step(self, label: str) -> None:
        self.count += 1
        self.show(f"[{self.count:2d}/{self.total}] {label}")

    def show(self, text: str) -> None:
        if not self.enabled:
            return
        if self.tty:
            pad = max(0, self.width - len(text))
            sys.stderr.write("\r" + text + " " * pad)
            self.width = len(text)
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def note(self, text: str) -> None:
        if not self.enabled:
            return
        self.done()
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self.tty and self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()
            self.width = 0


# -- the data file -------------------------------------------------------------------------
def prepare_file(directory: str, size: int, progress: Progress) -> str:
    """A new file of ``size`` random-ish bytes in ``directory`` (the caller deletes it)."""
    fd, path = tempfile.mkstemp(prefix="uringq-bench-", suffix=".dat", dir=directory)
    try:
        chunk = random.Random(1).randbytes(MIB)
        written = 0
        while written < size:
            n = min(MIB, size - written)
            # Vary each chunk a little so that no two blocks are identical.
            piece = written.to_bytes(8, "little") + chunk[8:n] if n >= 8 else chunk[:n]
            os.pwrite(fd, piece, written)
            written += n
            if written % (64 * MIB) == 0:
                progress.show(f"creating {_fmt_size(size)} data file: {written * 100 // size}%")
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)
    return path


def warm(path: str, progress: Progress) -> None:
    """Read the whole file once so that W1 runs from the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        with contextlib.suppress(AttributeError, OSError):
            os.posix_fadvise(fd, 0, size, os.POSIX_FADV_WILLNEED)
        buf = bytearray(4 * MIB)
        offset = 0
        while offset < size:
            n = os.preadv(fd, [buf], offset)
            if n <= 0:
                break
            offset += n
            if offset % (256 * MIB) < 4 * MIB:
                progress.show(f"warming the page cache: {offset * 100 // size}%")
    finally:
        os.close(fd)


def random_offsets(size: int, block: int, count: int, seed: int) -> array[int]:
    blocks = size // block
    if blocks < 1:
        raise SystemExit(f"the data file ({size} bytes) is smaller than one {block}-byte block")
    rng = random.Random(seed)
    return array("q", [rng.randrange(blocks) * block for _ in range(count)])


def choose_size(requested: int | None, quick: bool, directory: str) -> tuple[int, str | None]:
    """The data file size: the request, or the default shrunk to what disk and memory allow."""
    if requested is not None:
        return requested, None
    size = QUICK_SIZE if quick else DEFAULT_SIZE
    limits: list[str] = []
    free = shutil.disk_usage(directory).free
    available = _mem_available()
    while size > 16 * MIB and (
        size > free // 2 or (available is not None and size > available // 2)
    ):
        size //= 2
    if size < (QUICK_SIZE if quick else DEFAULT_SIZE):
        limits.append(
            f"data file shrunk to {_fmt_size(size)} (free disk {free // MIB} MiB, available "
            f"memory {'?' if available is None else available // MIB} MiB)"
        )
    return size, "; ".join(limits) or None


# -- timing helpers ------------------------------------------------------------------------
def _windows_from_stamps(
    start: float, stamps: Sequence[float], counts: Sequence[int]
) -> list[float]:
    windows = []
    previous = start
    for stamp, count in zip(stamps, counts, strict=True):
        if count:
            windows.append((stamp - previous) / count)
        previous = stamp
    return windows


def _check_full(results: array[int], block: int, what: str) -> None:
    if results.count(block) != len(results):
        bad = next(r for r in results if r != block)
        raise RuntimeError(f"{what}: a request returned {bad} instead of {block}")


# -- synchronous loops ---------------------------------------------------------------------
def pread_loop(path: str, offsets: array[int], block: int, flags: int = 0) -> Timing:
    fd = os.open(path, os.O_RDONLY | flags)
    try:
        pread = os.pread
        stamps: list[float] = []
        counts: list[int] = []
        n = len(offsets)
        start = time.perf_counter()
        for i in range(0, n, WINDOW):
            for off in offsets[i : i + WINDOW]:
                pread(fd, block, off)
            stamps.append(time.perf_counter())
            counts.append(min(WINDOW, n - i))
        elapsed = time.perf_counter() - start
    finally:
        os.close(fd)
    return Timing(elapsed, n, _windows_from_stamps(start, stamps, counts))


def preadv_direct_loop(path: str, offsets: array[int], block: int) -> Timing:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, block)  # page-aligned
    try:
        preadv = os.preadv
        bufs = [buf]
        stamps: list[float] = []
        counts: list[int] = []
        n = len(offsets)
        start = time.perf_counter()
        for i in range(0, n, WINDOW):
            for off in offsets[i : i + WINDOW]:
                if preadv(fd, bufs, off) != block:
                    raise RuntimeError(f"O_DIRECT preadv at {off} was short")
            stamps.append(time.perf_counter())
            counts.append(min(WINDOW, n - i))
        elapsed = time.perf_counter() - start
    finally:
        os.close(fd)
        buf.close()
    return Timing(elapsed, n, _windows_from_stamps(start, stamps, counts))


def pwrite_loop(workdir: str, n: int, block: int) -> Timing:
    data = random.Random(3).randbytes(block)
    fd, path = tempfile.mkstemp(prefix="uringq-bench-write-", dir=workdir)
    try:
        pwrite = os.pwrite
        stamps: list[float] = []
        counts: list[int] = []
        start = time.perf_counter()
        for i in range(0, n, WINDOW):
            for j in range(i, min(n, i + WINDOW)):
                pwrite(fd, data, j * block)
            stamps.append(time.perf_counter())
            counts.append(min(WINDOW, n - i))
        elapsed = time.perf_counter() - start
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(path)
    return Timing(elapsed, n, _windows_from_stamps(start, stamps, counts))


# -- uringq: batch and per-request ---------------------------------------------------------
def _aligned(size: int) -> mmap.mmap:
    return mmap.mmap(-1, max(size, 1))


def read_many_run(
    path: str,
    offsets: array[int],
    block: int,
    *,
    provider: str,
    depth: int,
    flags: int = 0,
    per_call: int = CALL,
) -> Timing:
    fd = os.open(path, os.O_RDONLY | flags)
    out = _aligned(per_call * block)
    try:
        with uringq.IoQueue(max(depth, 1), provider=provider) as q:
            q.register(fd)
            q.register_buffer(out)  # reused for every call, as io_uring users would
            read_many = q.read_many
            n = len(offsets)
            _check_full(
                read_many(fd, offsets[:per_call], block, out, depth=depth), block, "read_many"
            )
            stamps: list[float] = []
            counts: list[int] = []
            full = array("q", [block]) * per_call  # what a call of complete reads returns
            start = time.perf_counter()
            for i in range(0, n, per_call):
                chunk = offsets[i : i + per_call]
                results = read_many(fd, chunk, block, out, depth=depth)
                stamps.append(time.perf_counter())
                counts.append(len(chunk))
                if results != full:  # one memcmp; the last call may be shorter
                    _check_full(results, block, "read_many")
            elapsed = time.perf_counter() - start
    finally:
        os.close(fd)
        out.close()
    return Timing(elapsed, n, _windows_from_stamps(start, stamps, counts))


def write_many_run(workdir: str, n: int, block: int, *, provider: str, depth: int) -> Timing:
    per_call = 64
    data = random.Random(3).randbytes(block) * per_call
    fd, path = tempfile.mkstemp(prefix="uringq-bench-write-", dir=workdir)
    try:
        with uringq.IoQueue(max(depth, 1), provider=provider) as q:
            q.register(fd)
            write_many = q.write_many
            stamps: list[float] = []
            counts: list[int] = []
            start = time.perf_counter()
            for i in range(0, n, per_call):
                count = min(per_call, n - i)
                offs = range(i * block, (i + count) * block, block)
                results = write_many(fd, offs, block, data, depth=depth)
                stamps.append(time.perf_counter())
                counts.append(count)
                _check_full(results, block, "write_many")
            elapsed = time.perf_counter() - start
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(path)
    return Timing(elapsed, n, _windows_from_stamps(start, stamps, counts))


def per_request_run(
    fd: int,
    offsets: Sequence[int],
    block: int,
    *,
    provider: str,
    depth: int,
    write: bool = False,
) -> Timing:
    """Keep ``depth`` requests in flight with prepare/commit/wait; one buffer per slot."""
    n = len(offsets)
    memory = _aligned(depth * block)
    view = memoryview(memory)
    if write:
        view[: depth * block] = random.Random(3).randbytes(block) * depth
    bufs = [view[j * block : (j + 1) * block] for j in range(depth)]
    try:
        with uringq.IoQueue(depth, provider=provider) as q:
            q.register(fd)
            prepare = q.prepare_write if write else q.prepare_read
            commit, wait = q.commit, q.wait
            it = iter(offsets)
            stamps: list[float] = []
            counts: list[int] = []
            start = time.perf_counter()
            first = min(depth, n)
            for j in range(first):
                prepare(fd, next(it), bufs[j], j)
            if first:
                commit()
            done = 0
            mark = WINDOW
            issued = first
            while done < n:
                fresh = 0
                completions = wait(1)
                for completion in completions:
                    if completion.result != block:
                        raise RuntimeError(
                            f"request returned {completion.result} ({completion.error!r})"
                        )
                    if issued < n:
                        j = completion.user_data
                        prepare(fd, next(it), bufs[j], j)
                        issued += 1
                        fresh += 1
                if fresh:
                    commit()
                done += len(completions)
                if done >= mark:
                    stamps.append(time.perf_counter())
                    counts.append(done - (mark - WINDOW))
                    mark = done + WINDOW
            elapsed = time.perf_counter() - start
    finally:
        for buf in bufs:
            buf.release()
        view.release()
        memory.close()
    return Timing(elapsed, n, _windows_from_stamps(start, stamps, counts))


# -- asyncio paths -------------------------------------------------------------------------
def _loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if kind == "uvloop":
        uvloop = _import("uvloop")
        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return factory
    return asyncio.new_event_loop


class _Sampler:
    """Samples how many offsets remain every 5 ms: per-op time per window, at no per-op cost."""

    def __init__(self, it: Iterator[int]) -> None:
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


async def _drive(
    offsets: Sequence[int],
    tasks: int,
    make_worker: Callable[[Iterator[int]], Coroutine[Any, Any, None]],
) -> Timing:
    it = iter(list(offsets))
    sampler = _Sampler(it)
    start = time.perf_counter()
    sampler.start()
    await asyncio.gather(*(make_worker(it) for _ in range(tasks)))
    end = time.perf_counter()
    return Timing(end - start, len(offsets), sampler.stop(end))


def _run_async(kind: str, coro: Coroutine[Any, Any, Timing]) -> Timing:
    try:
        factory = _loop_factory(kind)
    except Skip:
        coro.close()
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def aio_run(env: Env, n: int, *, provider: str, loop: str, method: str) -> Timing:
    offsets = env.offsets[:n]
    block = W1_BLOCK

    async def main() -> Timing:
        async with aio.open(env.path, "rb", provider=provider) as f:
            assert await f.read(block, offsets[0]) is not None
            if method == "read":
                read = f.read

                async def worker(it: Iterator[int]) -> None:
                    for off in it:
                        await read(block, off)

            else:
                read_into = f.read_into

                async def worker(it: Iterator[int]) -> None:
                    buf = bytearray(block)
                    for off in it:
                        await read_into(buf, off)

            return await _drive(offsets, env.tasks, worker)

    return _run_async(loop, main())


def executor_run(env: Env, n: int) -> Timing:
    offsets = env.offsets[:n]

    async def main() -> Timing:
        loop = asyncio.get_running_loop()
        fd = os.open(env.path, os.O_RDONLY)
        try:
            run_in_executor, pread = loop.run_in_executor, os.pread

            async def worker(it: Iterator[int]) -> None:
                for off in it:
                    await run_in_executor(None, pread, fd, W1_BLOCK, off)

            return await _drive(offsets, env.tasks, worker)
        finally:
            os.close(fd)

    return _run_async("asyncio", main())


def bare_run(env: Env, n: int, *, loop: str) -> Timing:
    """A future per request, all resolved by one callback per iteration; no I/O at all."""
    offsets = env.offsets[:n]

    async def main() -> Timing:
        ev = asyncio.get_running_loop()
        create_future, call_soon = ev.create_future, ev.call_soon
        pending: list[asyncio.Future[int]] = []
        scheduled = [False]

        def resolve() -> None:
            scheduled[0] = False
            batch = pending[:]
            pending.clear()
            for fut in batch:
                fut.set_result(W1_BLOCK)

        async def worker(it: Iterator[int]) -> None:
            for _off in it:
                fut = create_future()
                pending.append(fut)
                if not scheduled[0]:
                    scheduled[0] = True
                    call_soon(resolve)
                await fut

        return await _drive(offsets, env.tasks, worker)

    return _run_async(loop, main())


def caio_run(env: Env, n: int, *, backend: str) -> Timing:
    module = _import(f"caio.{backend}_asyncio")
    offsets = env.offsets[:n]

    async def main() -> Timing:
        fd = os.open(env.path, os.O_RDONLY)
        context = module.AsyncioContext()
        try:
            read = context.read

            async def worker(it: Iterator[int]) -> None:
                for off in it:
                    await read(W1_BLOCK, fd, off)

            return await _drive(offsets, env.tasks, worker)
        finally:
            context.close()
            os.close(fd)

    return _run_async("asyncio", main())


def aiofile_run(env: Env, n: int) -> Timing:
    aiofile = _import("aiofile")
    offsets = env.offsets[:n]

    async def main() -> Timing:
        async with aiofile.AIOFile(env.path, "rb") as afp:
            read = afp.read

            async def worker(it: Iterator[int]) -> None:
                for off in it:
                    await read(W1_BLOCK, off)

            return await _drive(offsets, env.tasks, worker)

    return _run_async("asyncio", main())


def aiofiles_run(env: Env, n: int) -> Timing:
    aiofiles = _import("aiofiles")
    offsets = env.offsets[:n]

    async def main() -> Timing:
        async with aiofiles.open(env.path, "rb") as f:

            async def worker(it: Iterator[int]) -> None:
                for off in it:
                    await f.seek(off)
                    await f.read(W1_BLOCK)

            return await _drive(offsets, 1, worker)

    return _run_async("asyncio", main())


# -- the C ceiling ---------------------------------------------------------------------------
def find_ceiling_source(explicit: str | None) -> Path | None:
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    if os.environ.get(CEILING_ENV):
        candidates.append(Path(os.environ[CEILING_ENV]))
    here = Path(__file__).resolve()
    for parent in list(here.parents)[:4]:
        candidates.append(parent / "shared" / "bench" / "uring_ceiling.c")
        candidates.append(parent.parent / "shared" / "bench" / "uring_ceiling.c")
    candidates.append(Path.cwd() / "uring_ceiling.c")
    return next((c for c in candidates if c.is_file()), None)


def build_ceiling(source: Path | None, workdir: str) -> tuple[str | None, str | None]:
    """Compile the C ceiling into ``workdir``: ``(binary, None)`` or ``(None, reason)``."""
    if source is None:
        return None, (f"uring_ceiling.c not found (pass --ceiling-src PATH or set {CEILING_ENV})")
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        return None, "no C compiler (cc) to build uring_ceiling.c"
    binary = os.path.join(workdir, "uring_ceiling")
    proc = subprocess.run(
        [compiler, "-O2", "-o", binary, str(source), "-luring"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        detail = proc.stderr.strip().splitlines()
        hint = (
            " (liburing.h missing: apt-get install liburing-dev)"
            if "liburing.h" in proc.stderr
            else ""
        )
        return None, f"building uring_ceiling.c failed{hint}: {detail[-1] if detail else '?'}"
    return binary, None


def _ceiling(env: Env, n: int, depth: int) -> dict[str, float]:
    """This round's run of the C ceiling at ``depth`` (its pread and io_uring figures)."""
    if env.ceiling is None:
        raise Skip(env.ceiling_reason or "C ceiling unavailable")
    key = (depth, env.round)
    cached = env.c_cache.get(key)
    if cached is not None:
        return cached
    proc = subprocess.run(
        [env.ceiling, env.path, str(n), str(depth), str(W1_BLOCK)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise Skip(f"uring_ceiling failed: {(proc.stderr or proc.stdout).strip()}")
    values = dict(re.findall(r"(\w+)=([\d.]+)", proc.stdout))
    run = {k: float(v) for k, v in values.items()}
    env.c_cache[key] = run
    return run


# -- the path table --------------------------------------------------------------------------
def _available(provider: str) -> str | None:
    try:
        info = uringq.get_provider(provider)
    except LookupError:
        return f"provider {provider} not registered"
    return None if info.available else f"provider {provider} unavailable: {info.reason}"


def _on_offsets(fn: Callable[..., Timing], block: int = W1_BLOCK, **kwargs: Any) -> Runner:
    """A runner calling ``fn(path, offsets[:n], block, **kwargs)`` on the W1 file and offsets."""
    return lambda e, n: fn(e.path, e.offsets[:n], block, **kwargs)


def _on_direct(fn: Callable[..., Timing], **kwargs: Any) -> Runner:
    """The same on the O_DIRECT offsets (set up by ``setup_direct``)."""

    def run(e: Env, n: int) -> Timing:
        if e.direct_path is None or e.direct_offsets is None:
            raise Skip("O_DIRECT not set up")
        return fn(e.direct_path, e.direct_offsets[:n], W1_BLOCK, **kwargs)

    return run


def _on_sequence(fn: Callable[..., Timing], **kwargs: Any) -> Runner:
    """The same on sequential 128 KiB offsets, wrapping at the end of the file."""

    def run(e: Env, n: int) -> Timing:
        blocks = max(1, e.size // SEQ_BLOCK)
        offsets = array("q", [(i % blocks) * SEQ_BLOCK for i in range(n)])
        return fn(e.path, offsets, SEQ_BLOCK, **kwargs)

    return run


def _w1_read_many(provider: str, depth: int) -> Runner:
    return lambda e, n: read_many_run(
        e.path, e.offsets[:n], W1_BLOCK, provider=provider, depth=depth, per_call=e.batch
    )


def _c_runner(depth: int, key: str) -> Runner:
    def run(e: Env, n: int) -> Timing:
        return Timing(n / _ceiling(e, n, depth)[key], n, [])

    return run


def w1_specs() -> list[Spec]:
    fallback = "pure-Python fallback"
    per_call = "io_uring, --batch requests per call"
    specs = [
        Spec(W1, "os.pread loop", "baseline", 1.0, _on_offsets(pread_loop), reference=True),
        Spec(W1, "uringq read_many depth 32", "uringq", 1.0,
             _w1_read_many("io_uring", 32), note=per_call, c_depth=32),
        Spec(W1, "uringq read_many depth 128", "uringq", 1.0,
             _w1_read_many("io_uring", 128), note=per_call, c_depth=128),
        Spec(W1, "uringq prepare/commit/wait depth 32", "uringq", 1.0,
             _on_offsets(per_request_file, provider="io_uring", depth=32), note="io_uring"),
    ]  # fmt: skip
    for loop in ("asyncio", "uvloop"):
        specs.append(
            Spec(W1, f"uringq.aio read 64 tasks ({loop})", "uringq", 0.4,
                 partial(aio_run, provider="io_uring", loop=loop, method="read"),
                 note="await f.read(4096, off) -> bytes")
        )  # fmt: skip
    specs += [
        Spec(W1, "uringq.aio read_into 64 tasks (asyncio)", "uringq", 0.4,
             partial(aio_run, provider="io_uring", loop="asyncio", method="read_into"),
             note="await f.read_into(buf, off) -> int"),
        Spec(W1, "threadpool prepare/commit/wait depth 32", "uringq", 0.5,
             _on_offsets(per_request_file, provider="threadpool", depth=32), note=fallback),
        Spec(W1, "threadpool read_many depth 32", "uringq", 0.5,
             _w1_read_many("threadpool", 32), note=fallback),
        Spec(W1, "uringq.aio read 64 tasks (asyncio, threadpool)", "uringq", 0.3,
             partial(aio_run, provider="threadpool", loop="asyncio", method="read"),
             note=fallback),
        Spec(W1, "run_in_executor(os.pread) 64 tasks", "baseline", 0.03, executor_run),
        Spec(W1, "bare asyncio future round trip 64 tasks (asyncio)", "baseline", 1.0,
             partial(bare_run, loop="asyncio"), note="no I/O: the asyncio ceiling"),
        Spec(W1, "bare asyncio future round trip 64 tasks (uvloop)", "baseline", 1.0,
             partial(bare_run, loop="uvloop"), note="no I/O: the uvloop ceiling"),
    ]  # fmt: skip
    for backend, weight in CAIO_BACKENDS:
        specs.append(
            Spec(W1, f"caio {backend} 64 tasks", "peer", weight,
                 partial(caio_run, backend=backend),
                 note="with its SQPOLL kernel thread"
                 if backend == "linux_uring" else None)
        )  # fmt: skip
    specs += [
        Spec(W1, "aiofile 64 tasks", "peer", 0.2, aiofile_run, note="caio's default backend"),
        Spec(W1, "aiofiles 1 task (seek + read)", "peer", 0.005, aiofiles_run),
        Spec(W1, "C pread loop", "ceiling", 1.0, _c_runner(32, "pread_ops_s"),
             note="uring_ceiling.c"),
        Spec(W1, "C io_uring depth 32", "ceiling", 1.0, _c_runner(32, "uring_ops_s"),
             note="registered file and buffers", c_depth=32),
        Spec(W1, "C io_uring depth 128", "ceiling", 1.0, _c_runner(128, "uring_ops_s"),
             note="registered file and buffers", c_depth=128),
    ]  # fmt: skip
    return specs


CAIO_BACKENDS = (
    ("linux_uring", 0.3),
    ("linux_aio", 0.3),
    ("thread_aio", 0.05),
    ("python_aio", 0.02),
)


def per_request_file(
    path: str,
    offsets: Sequence[int],
    block: int,
    *,
    provider: str,
    depth: int,
    flags: int = 0,
) -> Timing:
    fd = os.open(path, os.O_RDONLY | flags)
    try:
        return per_request_run(fd, offsets, block, provider=provider, depth=depth)
    finally:
        os.close(fd)


def direct_specs() -> list[Spec]:
    note = "O_DIRECT, aligned buffers"
    return [
        Spec(DIRECT, "os.preadv loop depth 1 (O_DIRECT)", "baseline", 0.02,
             _on_direct(preadv_direct_loop), reference=True, note=note),
        Spec(DIRECT, "uringq prepare/commit/wait depth 128 (O_DIRECT)", "uringq", 0.05,
             _on_direct(per_request_file, provider="io_uring", depth=128, flags=os.O_DIRECT),
             note=note),
        Spec(DIRECT, "uringq read_many depth 128 (O_DIRECT)", "uringq", 0.05,
             _on_direct(read_many_run, provider="io_uring", depth=128, flags=os.O_DIRECT),
             note=note),
        Spec(DIRECT, "threadpool prepare/commit/wait depth 128 (O_DIRECT)", "uringq", 0.02,
             _on_direct(per_request_file, provider="threadpool", depth=128, flags=os.O_DIRECT),
             note=note),
    ]  # fmt: skip


def seq_specs() -> list[Spec]:
    punted = "buffered writes are punted to io-wq workers"
    return [
        Spec(SEQ_READ, "os.pread loop 128K", "baseline", 0.02, _on_sequence(pread_loop),
             block=SEQ_BLOCK, reference=True),
        Spec(SEQ_READ, "uringq read_many depth 32 128K", "uringq", 0.02,
             _on_sequence(read_many_run, provider="io_uring", depth=32, per_call=64),
             block=SEQ_BLOCK),
        Spec(SEQ_READ, "uringq prepare/commit/wait depth 32 128K", "uringq", 0.02,
             _on_sequence(per_request_file, provider="io_uring", depth=32), block=SEQ_BLOCK),
        Spec(SEQ_READ, "threadpool read_many depth 32 128K", "uringq", 0.02,
             _on_sequence(read_many_run, provider="threadpool", depth=32, per_call=64),
             block=SEQ_BLOCK),
        Spec(SEQ_WRITE, "os.pwrite loop 128K", "baseline", 0.002,
             lambda e, n: pwrite_loop(e.workdir, n, SEQ_BLOCK), block=SEQ_BLOCK, reference=True),
        Spec(SEQ_WRITE, "uringq write_many depth 32 128K", "uringq", 0.002,
             lambda e, n: write_many_run(e.workdir, n, SEQ_BLOCK, provider="io_uring", depth=32),
             block=SEQ_BLOCK, note=punted),
        Spec(SEQ_WRITE, "uringq prepare/commit/wait write depth 32 128K", "uringq", 0.002,
             lambda e, n: write_per_request(e.workdir, n, provider="io_uring"),
             block=SEQ_BLOCK, note=punted),
        Spec(SEQ_WRITE, "threadpool prepare/commit/wait write depth 32 128K", "uringq", 0.002,
             lambda e, n: write_per_request(e.workdir, n, provider="threadpool"),
             block=SEQ_BLOCK),
    ]  # fmt: skip


def write_per_request(workdir: str, n: int, *, provider: str) -> Timing:
    fd, path = tempfile.mkstemp(prefix="uringq-bench-write-", dir=workdir)
    try:
        offsets = range(0, n * SEQ_BLOCK, SEQ_BLOCK)
        timing = per_request_run(fd, offsets, SEQ_BLOCK, provider=provider, depth=32, write=True)
        os.fsync(fd)
        return timing
    finally:
        os.close(fd)
        os.unlink(path)


def _provider_skip(spec: Spec) -> str | None:
    if "threadpool" in spec.path:
        return _available("threadpool")
    if spec.path.startswith("uringq"):
        return _available("io_uring")
    return None


# -- running -----------------------------------------------------------------------------
def run_all(
    specs: list[Spec],
    env: Env,
    base_ops: int,
    progress: Progress,
    direct_reason: str | None = None,
) -> list[Result]:
    """Runs every path ``env.repeat`` times, in rounds: round ``r`` runs each path once.

    Interleaving the repeats spreads slow phases of the machine over every path instead
    of one path's whole series, so the ratios of one run hold better. A path keeps its
    best run. ``direct_reason`` skips the O_DIRECT paths (why they could not be set up).
    """
    results = [Result(s.section, s.path, s.group, note=s.note) for s in specs]
    best: list[Timing | None] = [None] * len(specs)
    for i, spec in enumerate(specs):
        results[i].skipped = _provider_skip(spec)
        if spec.section == DIRECT and direct_reason is not None:
            results[i].skipped = direct_reason
    progress.total = env.repeat * sum(1 for r in results if not r.skipped)
    for round_no in range(env.repeat):
        env.round = round_no
        for i, spec in enumerate(specs):
            result = results[i]
            if result.skipped:
                continue
            n = max(200 if env.quick else 1000, int(base_ops * spec.weight))
            label = f"{spec.path} ({n} ops)"
            progress.step(
                label if env.repeat == 1 else f"{label} round {round_no + 1}/{env.repeat}"
            )
            try:
                timing = spec.run(env, n)
            except Skip as exc:
                result.skipped = str(exc)
                continue
            except Exception as exc:  # a broken peer must not end the whole run
                result.skipped = f"failed: {type(exc).__name__}: {exc}"
                continue
            result.runs_ops_s.append(timing.ops / timing.seconds)
            kept = best[i]
            if kept is None or timing.ops / timing.seconds > kept.ops / kept.seconds:
                best[i] = timing
    for spec, result, kept in zip(specs, results, best, strict=True):
        if result.skipped or kept is None:
            continue
        result.ops = kept.ops
        result.seconds = kept.seconds
        result.ops_s = kept.ops / kept.seconds
        result.mb_s = result.ops_s * spec.block / MIB
        if kept.windows:
            result.p50_us = _percentile(kept.windows, 0.50) * 1e6
            result.p99_us = _percentile(kept.windows, 0.99) * 1e6
    return results


def add_ratios(results: list[Result], specs: list[Spec]) -> None:
    references = {spec.section: spec.path for spec in specs if spec.reference}
    by_key = {(r.section, r.path): r for r in results}
    c_by_depth = {
        spec.c_depth: by_key[(spec.section, spec.path)].ops_s
        for spec in specs
        if spec.group == "ceiling"
        and spec.c_depth is not None
        and not by_key[(spec.section, spec.path)].skipped
    }
    c_best = max(c_by_depth.values()) if c_by_depth else None
    depth_of = {spec.path: spec.c_depth for spec in specs if spec.group != "ceiling"}
    for result in results:
        if result.skipped:
            continue
        ref = by_key.get((result.section, references.get(result.section, "")))
        if ref is not None and not ref.skipped and ref.ops_s:
            result.ratio_pread = result.ops_s / ref.ops_s
        if result.section == W1 and c_best:
            # The batch API against C at its own depth (the same work); the rest
            # against the better C figure.
            depth = depth_of.get(result.path)
            c_same = c_by_depth.get(depth) if depth is not None else None
            result.ratio_c = result.ops_s / (c_same or c_best)


def setup_direct(env: Env, directory: str, progress: Progress) -> str | None:
    """An O_DIRECT-capable copy target: the data file itself if its file system allows."""
    try:
        fd = os.open(env.path, os.O_RDONLY | os.O_DIRECT)
    except OSError as exc:
        return f"O_DIRECT refused by the file system of {directory}: {exc.strerror}"
    try:
        buf = mmap.mmap(-1, W1_BLOCK)
        try:
            os.preadv(fd, [buf], 0)
        except OSError as exc:
            return f"O_DIRECT reads fail on {directory}: {exc.strerror}"
        finally:
            buf.close()
    finally:
        os.close(fd)
    env.direct_path = env.path
    count = max(1000, int(env.offsets.buffer_info()[1] * 0.05))
    env.direct_offsets = random_offsets(env.size, W1_BLOCK, count, seed=7)
    progress.note("O_DIRECT: reads bypass the page cache; the rates depend on the device")
    return None


# -- output ------------------------------------------------------------------------------
def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def render_table(results: list[Result]) -> str:
    header = ("path", "ops/s", "MB/s", "p50 us", "p99 us", "x pread", "x C")
    rows: list[tuple[str, ...]] = []
    sections: list[str] = []
    for r in results:
        if r.section not in sections:
            sections.append(r.section)
    lines: list[str] = []
    width = max([len(r.path) for r in results] + [len(header[0])])
    fmt = f"{{:<{width}}}  {{:>11}}  {{:>8}}  {{:>7}}  {{:>7}}  {{:>7}}  {{:>6}}"
    for section in sections:
        lines.append("")
        lines.append(f"== {section}")
        lines.append(fmt.format(*header))
        lines.append(fmt.format(*("-" * len(h) for h in header)))
        for r in results:
            if r.section != section or r.skipped:
                continue
            rows.append(
                (
                    r.path,
                    _num(r.ops_s),
                    _num(r.mb_s, 1),
                    _num(r.p50_us, 2),
                    _num(r.p99_us, 2),
                    _num(r.ratio_pread, 2),
                    _num(r.ratio_c, 2),
                )
            )
            lines.append(fmt.format(*rows[-1]))
    skipped = [r for r in results if r.skipped]
    if skipped:
        lines.append("")
        lines.append("skipped:")
        for r in skipped:
            lines.append(f"  {r.path}: {r.skipped}")
    return "\n".join(lines)


FOOTNOTES = """\
ops/s, MB/s: best of the repeats. p50/p99: time per operation within windows (1024 ops for
loops and per-request paths, one call for read_many (--batch requests), 5 ms for asyncio);
a request at depth D is in flight about D times that. x pread: ratio to the os.pread (or
os.preadv / os.pwrite) loop of the same section; x C: ratio to C io_uring (uring_ceiling.c:
registered file and buffers, its own random offsets over the same file) at the same depth
for read_many, to the better C io_uring figure for every other path.
Repeats run in rounds (each path once per round), so slow phases hit every path alike.
Not pinned by default, like the SPEC's reference figures; with --cpu one, helper threads
(run_in_executor, caio's thread backends, the threadpool provider) and caio linux_uring's
SQPOLL kernel thread share the one CPU, which halves caio linux_uring and doubles
run_in_executor."""


def plot(results: list[Result], filename: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sections: list[str] = []
    for r in results:
        if r.section not in sections and not r.skipped and r.ratio_pread is not None:
            sections.append(r.section)
    heights = [sum(1 for r in results if r.section == s and r.ratio_pread) for s in sections]
    fig, axes = plt.subplots(
        len(sections),
        1,
        figsize=(10, 1.2 + 0.32 * sum(heights) + 0.8 * len(sections)),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    colors = {"uringq": "#1f77b4", "baseline": "#7f7f7f", "peer": "#ff7f0e", "ceiling": "#2ca02c"}
    for ax, section in zip(axes[:, 0], sections, strict=True):
        rows = [r for r in results if r.section == section and r.ratio_pread is not None]
        names = [r.path for r in rows][::-1]
        values = [r.ratio_pread or 0.0 for r in rows][::-1]
        ax.barh(names, values, color=[colors.get(r.group, "#333") for r in rows][::-1])
        ax.axvline(1.0, color="black", linewidth=0.8)
        for y, value in enumerate(values):
            ax.text(value, y, f" {value:.2f}", va="center", fontsize=8)
        ax.set_title(section, fontsize=10)
        ax.set_xlabel(
            "ratio to the reference loop of the section (gray, 1.0); higher is faster", fontsize=8
        )
        ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    fig.savefig(filename, dpi=120)
    plt.close(fig)


def meta(env: Env, args: argparse.Namespace, size_note: str | None) -> dict[str, Any]:
    return {
        "uringq": uringq.__version__,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "cpu": _cpu_model(),
        "file_size": env.size,
        "file": env.path,
        "base_ops": args.ops,
        "repeat": env.repeat,
        "tasks": env.tasks,
        "batch": env.batch,
        "quick": env.quick,
        "size_note": size_note,
        "ceiling": env.ceiling_reason or "built",
        "providers": {p.id: (p.available, p.reason) for p in uringq.providers()},
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


# -- entry point -------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m uringq bench",
        description="uringq against its baselines and peers; all claims are ratios in one run.",
        epilog=FOOTNOTES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--size",
        type=parse_size,
        help="data file size, e.g. 256M (default 1G, "
        "shrunk to fit half the free disk and memory; --quick: 64M)",
    )
    p.add_argument("--file", help="use this existing file instead of creating one")
    p.add_argument("--dir", default=None, help="where to create the data file (default: $TMPDIR)")
    p.add_argument(
        "--ops",
        type=int,
        default=None,
        help=f"base operation count per path (default {DEFAULT_OPS}; --quick {QUICK_OPS}); "
        "slow paths run a fraction of it",
    )
    p.add_argument(
        "--repeat", type=int, default=None, help="runs per path, best kept (default 3; --quick 1)"
    )
    p.add_argument(
        "--tasks", type=int, default=TASKS, help="concurrent tasks in asyncio paths (default 64)"
    )
    p.add_argument(
        "--batch", type=int, default=CALL, help=f"W1 read_many requests per call (default {CALL})"
    )
    p.add_argument(
        "--quick", action="store_true", help="a short run (small file, few ops, one repeat)"
    )
    p.add_argument(
        "--direct", action="store_true", help="add O_DIRECT random reads (depth 1 vs 128)"
    )
    p.add_argument("--seq", action="store_true", help="add sequential 128 KiB reads and writes")
    p.add_argument("--all", action="store_true", help="--direct and --seq")
    p.add_argument("--only", metavar="REGEX", help="run only the paths whose name matches")
    p.add_argument(
        "--ceiling-src",
        metavar="PATH",
        help=f"uring_ceiling.c (default: ../shared/bench/ near the source tree, or ${CEILING_ENV})",
    )
    p.add_argument("--no-ceiling", action="store_true", help="do not build or run the C ceiling")
    p.add_argument(
        "--json", metavar="FILE", help="write every result (and the run's settings) as JSON"
    )
    p.add_argument("--plot", metavar="FILE.png", help="draw the ratios (needs matplotlib)")
    p.add_argument(
        "--cpu",
        default="all",
        help="'all' (default: no pinning, as the SPEC's reference figures were taken), or pin "
        "the whole run (helper threads, SQPOLL threads and the C ceiling included) to one "
        "CPU: 'one' (the last CPU allowed) or a number",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    return p


def pin(choice: str) -> str:
    """Apply ``--cpu``; returns a description for the report."""
    if choice == "all" or not hasattr(os, "sched_setaffinity"):
        return "not pinned"
    allowed = sorted(os.sched_getaffinity(0))
    if choice == "one":
        cpu = allowed[-1]
    else:
        try:
            cpu = int(choice)
        except ValueError:
            message = f"uringq bench: --cpu wants a number, 'one' or 'all', not {choice!r}"
            raise SystemExit(message) from None
        if cpu not in allowed:
            raise SystemExit(f"uringq bench: CPU {cpu} is not available (allowed: {allowed})")
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu}"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    args = parser().parse_args(argv)
    if args.plot:
        try:
            importlib.import_module("matplotlib")
        except ImportError:
            print(
                "uringq bench: --plot needs matplotlib: pip install matplotlib "
                "(or pip install 'uringq[bench]')",
                file=sys.stderr,
            )
            return 2
    if args.ops is None:
        args.ops = QUICK_OPS if args.quick else DEFAULT_OPS
    if args.batch < 1 or args.tasks < 1:
        print("uringq bench: --batch and --tasks must be positive", file=sys.stderr)
        return 2
    if args.ops < 1:
        print("uringq bench: --ops must be positive", file=sys.stderr)
        return 2
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    if repeat < 1:
        print("uringq bench: --repeat must be positive", file=sys.stderr)
        return 2
    pinned = pin(args.cpu)
    progress = Progress(0, enabled=not args.no_progress)
    directory = args.dir or tempfile.gettempdir()
    workdir = tempfile.mkdtemp(prefix="uringq-bench-", dir=directory)
    created: str | None = None
    try:
        size_note = None
        if args.file:
            path = args.file
            size = os.path.getsize(path)
        else:
            size, size_note = choose_size(args.size, args.quick, directory)
            if size_note:
                progress.note(size_note)
            created = path = prepare_file(workdir, size, progress)
        warm(path, progress)
        env = Env(
            path=path,
            size=size,
            offsets=random_offsets(size, W1_BLOCK, args.ops, seed=42),
            tasks=args.tasks,
            repeat=repeat,
            batch=args.batch,
            quick=args.quick,
            workdir=workdir,
        )
        if args.no_ceiling:
            env.ceiling_reason = "--no-ceiling"
        else:
            env.ceiling, env.ceiling_reason = build_ceiling(
                find_ceiling_source(args.ceiling_src), workdir
            )
        specs = w1_specs()
        direct_reason = None
        if args.direct or args.all:
            direct_reason = setup_direct(env, directory, progress)
            specs += direct_specs()
        if args.seq or args.all:
            specs += seq_specs()
        if args.only:
            pattern = re.compile(args.only)
            specs = [s for s in specs if pattern.search(s.path) or s.reference]
        results = run_all(specs, env, args.ops, progress, direct_reason)
        progress.done()
        add_ratios(results, specs)
        print(
            f"uringq {uringq.__version__} bench: {_fmt_size(size)} file, Python "
            f"{sys.version.split()[0]}, kernel {platform.release()}, {os.cpu_count()} CPUs "
            f"({pinned}), best of {repeat}"
        )
        print(render_table(results))
        print()
        print(FOOTNOTES)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(
                    {
                        "meta": {**meta(env, args, size_note), "cpu_affinity": pinned},
                        "results": [asdict(r) for r in results],
                    },
                    f,
                    indent=2,
                )
        if args.plot:
            plot(results, args.plot)
            print(f"plot written to {args.plot}")
        return 0
    except KeyboardInterrupt:
        progress.done()
        print("uringq bench: interrupted", file=sys.stderr)
        return 130
    finally:
        if created is not None:
            with contextlib.suppress(OSError):
                os.unlink(created)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
