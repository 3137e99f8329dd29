"""The plain Python loops that W1, O_DIRECT and the sequential sections compare against."""

from __future__ import annotations

import contextlib
import mmap
import os
import random
import tempfile
from array import array
from collections.abc import Iterator

from uringq.bench.timing import Timing, windowed

__all__ = ["check_full", "pread_loop", "preadv_direct_loop", "pwrite_loop", "scratch_file"]


def check_full(results: array[int], block: int, what: str) -> None:
    """Every request of a batch moved ``block`` bytes, or RuntimeError."""
    if results.count(block) != len(results):
        bad = next(r for r in results if r != block)
        raise RuntimeError(f"{what}: a request returned {bad} instead of {block}")


def pread_loop(path: str, offsets: array[int], block: int, flags: int = 0) -> Timing:
    fd = os.open(path, os.O_RDONLY | flags)
    try:
        pread = os.pread

        def chunk(i: int, j: int) -> None:
            for off in offsets[i:j]:
                pread(fd, block, off)

        return windowed(len(offsets), chunk)
    finally:
        os.close(fd)


def preadv_direct_loop(path: str, offsets: array[int], block: int) -> Timing:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, block)  # page-aligned
    try:
        preadv = os.preadv
        bufs = [buf]

        def chunk(i: int, j: int) -> None:
            for off in offsets[i:j]:
                if preadv(fd, bufs, off) != block:
                    raise RuntimeError(f"O_DIRECT preadv at {off} was short")

        return windowed(len(offsets), chunk)
    finally:
        os.close(fd)
        buf.close()


@contextlib.contextmanager
def scratch_file(workdir: str) -> Iterator[int]:
    """A new empty file in ``workdir``, open for writing; closed and removed afterwards."""
    fd, path = tempfile.mkstemp(prefix="uringq-bench-write-", dir=workdir)
    try:
        yield fd
    finally:
        os.close(fd)
        os.unlink(path)


def pwrite_loop(workdir: str, n: int, block: int) -> Timing:
    data = random.Random(3).randbytes(block)
    with scratch_file(workdir) as fd:
        pwrite = os.pwrite

        def chunk(i: int, j: int) -> None:
            for k in range(i, j):
                pwrite(fd, data, k * block)

        timing = windowed(n, chunk)
        os.fsync(fd)
        return timing
