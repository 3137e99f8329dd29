"""O_DIRECT 4 KiB random reads (``--sections direct``): an ``os.preadv`` loop at depth 1
against uringq at depth 128; the rates depend on the device, not the page cache."""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable
from typing import Any

from uringq.bench.data import random_offsets
from uringq.bench.env import Env
from uringq.bench.loops import preadv_direct_loop
from uringq.bench.queue_paths import per_request_file, read_many_run
from uringq.bench.sections import DIRECT
from uringq.bench.skips import Skip
from uringq.bench.timing import W1_BLOCK, Progress, Runner, Spec, Timing

__all__ = ["direct_specs", "setup_direct"]


def setup_direct(env: Env, directory: str, progress: Progress) -> str | None:
    """Use the W1 file for O_DIRECT if its file system allows; else the reason it does not."""
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
    count = max(1000, int(len(env.offsets) * 0.05))
    env.direct_offsets = random_offsets(env.size, W1_BLOCK, count, seed=7)
    progress.note("O_DIRECT: reads bypass the page cache; the rates depend on the device")
    return None


def _on_direct(fn: Callable[..., Timing], **kwargs: Any) -> Runner:
    """A runner calling ``fn(path, offsets[:n], 4096, **kwargs)`` on the O_DIRECT offsets."""

    def run(e: Env, n: int) -> Timing:
        if e.direct_path is None or e.direct_offsets is None:
            raise Skip("O_DIRECT not set up")
        return fn(e.direct_path, e.direct_offsets[:n], W1_BLOCK, **kwargs)

    return run


def direct_specs() -> list[Spec]:
    note = "O_DIRECT, aligned buffers"
    flags = os.O_DIRECT
    return [
        Spec(DIRECT, "os.preadv loop depth 1 (O_DIRECT)", "baseline", 0.02,
             _on_direct(preadv_direct_loop), reference=True, note=note),
        Spec(DIRECT, "uringq prepare/commit/wait depth 128 (O_DIRECT)", "uringq", 0.05,
             _on_direct(per_request_file, provider="io_uring", depth=128, flags=flags),
             note=note, provider="io_uring"),
        Spec(DIRECT, "uringq read_many depth 128 (O_DIRECT)", "uringq", 0.05,
             _on_direct(read_many_run, provider="io_uring", depth=128, flags=flags),
             note=note, provider="io_uring"),
        Spec(DIRECT, "threadpool prepare/commit/wait depth 128 (O_DIRECT)", "uringq", 0.02,
             _on_direct(per_request_file, provider="threadpool", depth=128, flags=flags),
             note=note, provider="threadpool"),
    ]  # fmt: skip
