"""uringq's synchronous paths: the batch API (``read_many``/``write_many``) and the
per-request API (prepare/commit/wait), on any provider."""

from __future__ import annotations

import mmap
import os
import random
import time
from array import array
from collections.abc import Sequence

import uringq
from uringq.bench.loops import check_full, scratch_file
from uringq.bench.timing import WINDOW, Timing, windows_from_stamps

__all__ = [
    "CALL",
    "per_request_file",
    "per_request_run",
    "read_many_run",
    "write_many_run",
    "write_per_request",
]

CALL = 1024  # requests per read_many call


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
            check_full(
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
                    check_full(results, block, "read_many")
            elapsed = time.perf_counter() - start
    finally:
        os.close(fd)
        out.close()
    return Timing(elapsed, n, windows_from_stamps(start, stamps, counts))


def write_many_run(workdir: str, n: int, block: int, *, provider: str, depth: int) -> Timing:
    per_call = 64
    data = random.Random(3).randbytes(block) * per_call
    with scratch_file(workdir) as fd:
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
                check_full(results, block, "write_many")
            elapsed = time.perf_counter() - start
        os.fsync(fd)
    return Timing(elapsed, n, windows_from_stamps(start, stamps, counts))


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
    return Timing(elapsed, n, windows_from_stamps(start, stamps, counts))


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


def write_per_request(workdir: str, n: int, block: int, *, provider: str) -> Timing:
    """prepare/commit/wait writes of ``block`` bytes at depth 32, sequentially into a new file."""
    with scratch_file(workdir) as fd:
        offsets = range(0, n * block, block)
        timing = per_request_run(fd, offsets, block, provider=provider, depth=32, write=True)
        os.fsync(fd)
        return timing
