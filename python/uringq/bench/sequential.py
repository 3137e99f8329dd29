"""Sequential 128 KiB reads of the cached W1 file and buffered writes to a new file
(``--sections seq``). Buffered writes through io_uring are punted to io-wq worker threads:
per request they are slower than ``pwrite``, and the table shows it."""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import Any

from uringq.bench.env import Env
from uringq.bench.loops import pread_loop, pwrite_loop
from uringq.bench.queue_paths import (
    per_request_file,
    read_many_run,
    write_many_run,
    write_per_request,
)
from uringq.bench.sections import SEQ_READ, SEQ_WRITE
from uringq.bench.timing import KIB, Runner, Spec, Timing

__all__ = ["SEQ_BLOCK", "seq_specs"]

SEQ_BLOCK = 128 * KIB


def _on_sequence(fn: Callable[..., Timing], **kwargs: Any) -> Runner:
    """A runner reading sequential 128 KiB blocks of the W1 file, wrapping at its end."""

    def run(e: Env, n: int) -> Timing:
        blocks = max(1, e.size // SEQ_BLOCK)
        offsets = array("q", [(i % blocks) * SEQ_BLOCK for i in range(n)])
        return fn(e.path, offsets, SEQ_BLOCK, **kwargs)

    return run


def _writes(fn: Callable[..., Timing], **kwargs: Any) -> Runner:
    """A runner writing ``n`` sequential 128 KiB blocks to a new file in the work dir."""
    return lambda e, n: fn(e.workdir, n, SEQ_BLOCK, **kwargs)


def seq_specs() -> list[Spec]:
    punted = "buffered writes are punted to io-wq workers"
    io_uring = {"provider": "io_uring", "depth": 32}
    return [
        Spec(SEQ_READ, "os.pread loop 128K", "baseline", 0.02, _on_sequence(pread_loop),
             block=SEQ_BLOCK, reference=True),
        Spec(SEQ_READ, "uringq read_many depth 32 128K", "uringq", 0.02,
             _on_sequence(read_many_run, **io_uring, per_call=64), block=SEQ_BLOCK,
             provider="io_uring"),
        Spec(SEQ_READ, "uringq prepare/commit/wait depth 32 128K", "uringq", 0.02,
             _on_sequence(per_request_file, **io_uring), block=SEQ_BLOCK, provider="io_uring"),
        Spec(SEQ_READ, "threadpool read_many depth 32 128K", "uringq", 0.02,
             _on_sequence(read_many_run, provider="threadpool", depth=32, per_call=64),
             block=SEQ_BLOCK, provider="threadpool"),
        Spec(SEQ_WRITE, "os.pwrite loop 128K", "baseline", 0.002, _writes(pwrite_loop),
             block=SEQ_BLOCK, reference=True),
        Spec(SEQ_WRITE, "uringq write_many depth 32 128K", "uringq", 0.002,
             _writes(write_many_run, **io_uring), block=SEQ_BLOCK, note=punted,
             provider="io_uring"),
        Spec(SEQ_WRITE, "uringq prepare/commit/wait write depth 32 128K", "uringq", 0.002,
             _writes(write_per_request, provider="io_uring"), block=SEQ_BLOCK, note=punted,
             provider="io_uring"),
        Spec(SEQ_WRITE, "threadpool prepare/commit/wait write depth 32 128K", "uringq", 0.002,
             _writes(write_per_request, provider="threadpool"), block=SEQ_BLOCK,
             provider="threadpool"),
    ]  # fmt: skip
