"""``read_many``/``write_many`` on the threadpool provider.

A batch first runs inline what completes without blocking (``preadv``/``pwritev`` with
``RWF_NOWAIT``, at ``os.preadv`` speed for page-cache hits), then spreads the rest over
up to ``depth`` worker jobs and waits for them. The buffer is released before the call
returns, even when Ctrl-C ends it: chunks stop after the request each one is running.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from array import array
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from uringq._checks import batch_buffer
from uringq._checks import count as _count
from uringq._checks import fd as _fd
from uringq._checks import offsets as _offsets
from uringq._checks import read_target as _read_target
from uringq._checks import write_source as _write_source
from uringq._errors import HandleNotRegistered, QueueClosed
from uringq.providers.threadpool.lifecycle import QueueLifecycle
from uringq.providers.threadpool.requests import (
    CALL,
    NOWAIT_UNSUPPORTED,
    READ,
    RWF_NOWAIT,
    SLICE,
    WRITE,
)

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from uringq._checks import HasFileno
    from uringq.providers.threadpool.chains import Shared

__all__ = ["Batch", "BatchCalls"]

_preadv = os.preadv
_pwritev = os.pwritev


class BatchCalls(QueueLifecycle):
    """The batch methods of ``ThreadPoolQueue`` (and the buffer it keeps registered)."""

    def register_buffer(self, buf: Buffer) -> None:
        """Hold ``buf`` registered, as io_uring does: its export is kept (it cannot be
        resized) until ``deregister_buffer()`` or close. Batches work the same either way;
        here registration changes nothing else."""
        if not self._open:
            self._raise_unusable()
        self._registered_buffer = _read_target(buf)

    def deregister_buffer(self) -> None:
        """Release the registered buffer (a no-op when there is none)."""
        if not self._open:
            self._raise_unusable()
        self._registered_buffer = None

    def read_many(
        self,
        fd: int | HasFileno,
        offsets: Any,
        size: int,
        out: Buffer,
        *,
        depth: int | None = None,
    ) -> array[int]:
        """Read ``size`` bytes at each offset into ``out[i*size:(i+1)*size]``.

        Returns ``array('q')``: bytes read or ``-errno`` per request. ``depth`` caps how
        many worker threads serve the requests the page cache cannot serve at once.
        """
        return self._many(READ, fd, offsets, size, out, depth=depth)

    def write_many(
        self,
        fd: int | HasFileno,
        offsets: Any,
        size: int,
        data: Buffer,
        *,
        depth: int | None = None,
    ) -> array[int]:
        """Write ``data[i*size:(i+1)*size]`` at each offset; the mirror of ``read_many``."""
        return self._many(WRITE, fd, offsets, size, data, depth=depth)

    def _many(
        self,
        kind: int,
        fd: int | HasFileno,
        offsets: Any,
        size: int,
        buf: Buffer,
        *,
        depth: int | None,
    ) -> array[int]:
        if not self._open:
            self._raise_unusable()
        number = _fd(fd)
        offs = _offsets(offsets)
        size = _count(size, "size")
        shared = self._shared
        workers = shared.max_workers
        if depth is not None:
            workers = min(workers, _count(depth, "depth", minimum=1))
        view = _read_target(buf) if kind == READ else _write_source(buf)
        batch_buffer(view, len(offs), size)
        with self._lock:
            if not self._open:
                self._raise_unusable()
            dup = self._files.get(number)
            if dup is None:
                raise HandleNotRegistered(f"fd {number} is not registered with this queue")
            self._batch_calls += 1
            shared.users += 1
            shared.busy[number] = shared.busy.get(number, 0) + 1
        try:
            batch = Batch(kind, dup, offs, size, view)
            pending = batch.run_inline(shared.nowait_off)
            if pending:
                batch.run_in_workers(shared, pending, workers)
            if shared.cancelled:
                raise QueueClosed("the queue was closed during the batch")
            return batch.results
        finally:
            # Every chunk has finished, but a worker may still hold the batch a moment:
            # release the buffer now, so it is unpinned when this call returns.
            with contextlib.suppress(BufferError):  # a view derived from it still alive
                view.release()
            with shared.lock:
                self._batch_calls -= 1
                shared.users -= 1
                left = shared.busy[number] - 1
                if left:
                    shared.busy[number] = left
                else:
                    del shared.busy[number]
                shared.release_if_idle()


class Batch:
    """One read_many/write_many call: request ``i`` moves ``size`` bytes at ``offsets[i]``
    to or from ``view[i*size:(i+1)*size]``; ``results[i]`` gets bytes or ``-errno``."""

    __slots__ = (
        "call",
        "cancelled",
        "done",
        "dup",
        "kind",
        "lock",
        "offsets",
        "remaining",
        "results",
        "size",
        "view",
    )

    def __init__(
        self, kind: int, dup: int, offsets: list[int], size: int, view: memoryview
    ) -> None:
        self.kind = kind
        self.call: Callable[..., int] = _preadv if kind == READ else _pwritev
        self.dup = dup
        self.offsets = offsets
        self.size = size
        self.view = view
        self.results = array("q")  # filled by run_inline
        self.cancelled = False
        self.remaining = 0  # worker chunks not finished
        self.lock = threading.Lock()
        self.done = threading.Event()

    def run_inline(self, nowait_off: tuple[set[int], set[int]]) -> list[int]:
        """Run what completes without blocking; return the indices left for the workers."""
        offsets, size, dup, view = self.offsets, self.size, self.dup, self.view
        nowait = RWF_NOWAIT
        if nowait is None or dup in nowait_off[self.kind]:
            self.results = array("q", bytes(8 * len(offsets)))
            return list(range(len(offsets)))
        call = self.call
        done: list[int] = []  # a list grows faster than array item assignment
        append = done.append
        start = 0
        for offset in offsets:
            try:
                append(call(dup, (view[start : start + size],), offset, nowait))
            except OSError as exc:
                if exc.errno in NOWAIT_UNSUPPORTED:
                    nowait_off[self.kind].add(dup)
                    break
                append(-1)
            start += size
        done.extend([-1] * (len(offsets) - len(done)))
        self.results = array("q", done)
        if done.count(size) == len(done):
            return []
        return [i for i, n in enumerate(done) if n != size]

    def run_in_workers(self, shared: Shared, pending: list[int], workers: int) -> None:
        """Spread ``pending`` over up to ``workers`` worker jobs and wait for them."""
        chunks = min(workers, len(pending))
        self.remaining = chunks
        jobs = [(CALL, partial(self._run_chunk, shared, pending[k::chunks])) for k in range(chunks)]
        with shared.lock:
            shared.dispatch(jobs)
        del jobs
        try:
            while not self.done.wait(SLICE):
                pass
        except BaseException:
            self.cancelled = True  # chunks stop after the request each one is running
            self.done.wait()
            raise

    def _run_chunk(self, shared: Shared, indices: list[int]) -> None:
        call, dup, view, size, offsets, results = (
            self.call,
            self.dup,
            self.view,
            self.size,
            self.offsets,
            self.results,
        )
        try:
            for i in indices:
                if self.cancelled or shared.cancelled:
                    break
                start = i * size
                try:
                    results[i] = call(dup, (view[start : start + size],), offsets[i])
                except OSError as exc:
                    results[i] = -(exc.errno or errno.EIO)
                except Exception:  # e.g. MemoryError: report it, never kill the worker
                    results[i] = -errno.EIO
        finally:
            with self.lock:
                self.remaining -= 1
                if not self.remaining:
                    self.done.set()
