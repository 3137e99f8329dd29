"""The ``threadpool`` provider: pure Python, with the io_uring provider's semantics.

Reads are tried inline at ``commit()`` with ``os.preadv(..., os.RWF_NOWAIT)``, which
succeeds at ``os.preadv`` speed when the data is in the page cache; anything else (EAGAIN,
EOPNOTSUPP, a short result), every write and every sync goes to a small pool of daemon
worker threads that run the plain call. Completions, capacity, waiting, wakeups, closing
and fork behave exactly as with io_uring (SPEC sections 1-3).

Concurrency: one re-entrant lock guards the submission side and the counters; the ready
deque is appended to by workers without it (deque appends are atomic) and taken from only
under it. The eventfd is written when a completion or wakeup arrives and read by ``wait``
before it looks at the queue, so a waiter never sleeps through a completion and an
asyncio reader does not spin. The eventfd and the registered ``dup()``s are closed only
when no worker, waiter or batch call can still use them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import sys
import threading
import time
import weakref
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from itertools import islice
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

from uringq import _checks
from uringq._completion import Completion
from uringq._errors import (
    HandleNotRegistered,
    Interrupted,
    QueueBusy,
    QueueClosed,
    QueueEmpty,
    QueueFull,
)

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from uringq._checks import HasFileno

__all__ = ["ThreadPoolProvider", "ThreadPoolQueue"]

# Request kinds. A request is the tuple (kind, fd, dup, offset, views, nbytes, user_data);
# a batch chunk is (_CALL, callable).
_READ = 0  # os.preadv (read and readv)
_WRITE = 1  # os.pwritev (write and writev)
_FSYNC = 2
_FDATASYNC = 3
_CALL = 4

Request: TypeAlias = tuple[Any, ...]
Done: TypeAlias = tuple[Request, int, OSError | None]  # a finished request, not yet returned

_MAX_WORKERS = 8
_SLICE = 0.1  # longest sleep before Python's signal handlers get a chance to run
_RWF_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)
# errnos that say "this file never does RWF_NOWAIT", as opposed to "not right now"
_NOWAIT_UNSUPPORTED = frozenset({errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS})
_NEVER = object()
_preadv = os.preadv
_pwritev = os.pwritev
_fd = _checks.fd
_offset = _checks.offset
_read_target = _checks.read_target
_write_source = _checks.write_source
_MAX_OFFSET = _checks.MAX_OFFSET
_MAX_FD = _checks.MAX_FD


def _os_error(code: int | None) -> OSError:
    """A fresh ``OSError`` (mapped to its subclass), with no traceback keeping frames alive."""
    code = code or errno.EIO
    return OSError(code, os.strerror(code))


class _Shared:
    """What the queue shares with its worker threads (which must not keep the queue alive)."""

    __slots__ = (
        "__weakref__",
        "busy",
        "cancelled",
        "closed",
        "dispatched",
        "dups",
        "efd",
        "idle",
        "jobs",
        "lock",
        "max_workers",
        "nowait_off",
        "ready",
        "released",
        "users",
        "workers",
    )

    def __init__(self, efd: int, max_workers: int) -> None:
        self.lock = threading.RLock()
        self.idle = threading.Condition(self.lock)  # notified when dispatched drops to 0
        # (request, result, error): the Completion is built when it is returned, so that a
        # reference cycle through user_data stays visible to the garbage collector.
        self.ready: deque[Done] = deque()
        self.jobs: SimpleQueue[Request | None] = SimpleQueue()
        self.efd = efd
        self.dispatched = 0  # jobs handed to workers and not finished
        self.busy: dict[int, int] = {}  # fd -> requests in workers or batch calls using it
        self.users = 0  # threads inside wait() or read_many()/write_many()
        self.dups: dict[int, int] = {}  # registered fd -> our dup of it
        # dups where RWF_NOWAIT never works, for reads and for writes
        self.nowait_off: tuple[set[int], set[int]] = (set(), set())
        self.cancelled = False
        self.closed = False
        self.released = False
        self.workers = 0
        self.max_workers = max_workers

    def signal(self) -> None:
        """Make the eventfd readable. Callers append to ``ready`` (or set a flag) first.

        Every signal writes and every reset reads: a "written already" flag would be set
        apart from the write (both drop the GIL) and could go stale, losing a wakeup.
        """
        try:  # noqa: SIM105 - hot path: no contextlib overhead
            os.eventfd_write(self.efd, 1)
        except BlockingIOError:  # counter saturated: it is readable anyway
            pass

    def reset(self) -> None:
        """Drain the eventfd; callers look at ``ready`` and the flags afterwards."""
        try:  # noqa: SIM105 - hot path: no contextlib overhead
            os.eventfd_read(self.efd)
        except BlockingIOError:  # nothing written since the last reset
            pass

    def dispatch(self, jobs: list[Request]) -> None:
        """Hand ``jobs`` to the workers (lock held), starting them on first use."""
        self.start_workers()
        self.dispatched += len(jobs)
        busy = self.busy
        for job in jobs:
            if job[0] != _CALL:
                busy[job[1]] = busy.get(job[1], 0) + 1
        if not self.workers:  # no thread could be started: run the jobs here, never lose one
            for job in jobs:
                self.finish([job])
            return
        put = self.jobs.put
        for job in jobs:
            put(job)

    def start_workers(self) -> None:
        try:
            while self.workers < self.max_workers:
                threading.Thread(
                    target=_worker_main,
                    args=(self,),
                    name=f"uringq-threadpool-{self.efd}-{self.workers}",
                    daemon=True,
                ).start()
                self.workers += 1
        except RuntimeError:
            pass  # "can't start new thread": go on with the workers there are (see dispatch)

    def finish(self, box: list[Request]) -> None:
        """Run the job in ``box`` (its only holder) in a worker thread and account for it.

        The job is moved out of ``box`` and the result moved into ``ready`` under the
        lock, so once a waiter returns the completion no reference to its buffers or
        user_data is left behind in this thread.
        """
        kind, fd = box[0][0], box[0][1]
        done: list[Done] = []
        try:
            if kind == _CALL:
                box.pop()[1]()
            elif self.cancelled:
                box.clear()
            else:
                done.append(_execute(box.pop()))
        finally:
            with self.lock:
                if done and not self.cancelled:
                    self.ready.append(done.pop())
                    self.signal()  # before dispatched drops: the eventfd is still open
                done.clear()
                if kind != _CALL:
                    left = self.busy[fd] - 1
                    if left:
                        self.busy[fd] = left
                    else:
                        del self.busy[fd]
                self.dispatched -= 1
                if not self.dispatched:
                    self.idle.notify_all()
                    self.release_if_idle()

    def release_if_idle(self) -> None:
        """Once closed and unused, close the eventfd and the dups and stop the workers."""
        if not self.closed or self.released or self.dispatched or self.users:
            return
        self.released = True
        for _ in range(self.workers):
            self.jobs.put(None)
        self.workers = 0
        self.close_fds()

    def close_fds(self) -> None:
        for dup in self.dups.values():
            _close_quietly(dup)
        self.dups.clear()
        _close_quietly(self.efd)


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def _execute(req: Request) -> Done:
    """Run one request with the plain blocking call; errors become completion errors."""
    kind, _, dup, offset, views, _, _ = req
    try:
        if kind == _READ:
            result = _preadv(dup, views, offset)
        elif kind == _WRITE:
            result = _pwritev(dup, views, offset)
        elif kind == _FSYNC:
            os.fsync(dup)
            result = 0
        else:
            os.fdatasync(dup)
            result = 0
    except OSError as exc:
        return (req, 0, _os_error(exc.errno))
    except Exception:  # e.g. MemoryError: report it, never kill the worker
        return (req, 0, _os_error(errno.EIO))
    return (req, result, None)


def _worker_main(shared: _Shared) -> None:
    get = shared.jobs.get
    while True:
        box: list[Any] = [get()]  # the only reference to the job, handed over (see finish)
        if box[0] is None:
            return
        shared.finish(box)


class _Batch:
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
        self.call: Callable[..., int] = _preadv if kind == _READ else _pwritev
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
        nowait = _RWF_NOWAIT
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
                if exc.errno in _NOWAIT_UNSUPPORTED:
                    nowait_off[self.kind].add(dup)
                    break
                append(-1)
            start += size
        done.extend([-1] * (len(offsets) - len(done)))
        self.results = array("q", done)
        if done.count(size) == len(done):
            return []
        return [i for i, n in enumerate(done) if n != size]

    def run_in_workers(self, shared: _Shared, pending: list[int], workers: int) -> None:
        """Spread ``pending`` over up to ``workers`` worker jobs and wait for them."""
        chunks = min(workers, len(pending))
        self.remaining = chunks
        jobs = [
            (_CALL, partial(self._run_chunk, shared, pending[k::chunks])) for k in range(chunks)
        ]
        with shared.lock:
            shared.dispatch(jobs)
        del jobs
        try:
            while not self.done.wait(_SLICE):
                pass
        except BaseException:
            self.cancelled = True  # chunks stop after the request each one is running
            self.done.wait()
            raise

    def _run_chunk(self, shared: _Shared, indices: list[int]) -> None:
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


_live: weakref.WeakSet[ThreadPoolQueue] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for queue in list(_live):
        queue._forked_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class ThreadPoolQueue:
    """A queue run by worker threads; see the module docstring and ``uringq.IoQueue``."""

    provider_id = "threadpool"

    def __init__(self, sq_entries: int, cq_entries: int) -> None:
        self._sq_entries, self._cq_entries = _checks.queue_sizes(sq_entries, cq_entries)
        efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._shared = shared = _Shared(efd, min(_MAX_WORKERS, self._sq_entries))
        self._lock = shared.lock
        self._acquire = shared.lock.acquire
        self._release = shared.lock.release
        self._ready = shared.ready
        self._files = shared.dups
        self._prepared: list[Request] = []
        self._in_flight = 0
        self._batch_calls = 0
        self._wakeup_pending = False
        self._open = True
        self._forked = False
        _live.add(self)

    # -- state ------------------------------------------------------------------------
    def _raise_unusable(self) -> NoReturn:
        if self._forked:
            raise RuntimeError(
                "this queue belongs to the parent process: it cannot be used after fork()"
            )
        raise QueueClosed("queue is closed")

    def _forked_in_child(self) -> None:
        # Only this thread exists in the child; a lock some parent thread held would stay
        # held forever, so the child gets fresh ones (used by close() alone).
        self._forked = True
        self._open = False
        shared = self._shared
        shared.lock = self._lock = threading.RLock()
        self._acquire, self._release = shared.lock.acquire, shared.lock.release
        shared.idle = threading.Condition(shared.lock)

    @property
    def sq_entries(self) -> int:
        return self._sq_entries

    @property
    def cq_entries(self) -> int:
        return self._cq_entries

    @property
    def prepared(self) -> int:
        """Requests prepared, not yet committed."""
        if not self._open:
            self._raise_unusable()
        return len(self._prepared)

    @property
    def in_flight(self) -> int:
        """Requests committed whose completion was not returned yet."""
        if not self._open:
            self._raise_unusable()
        return self._in_flight

    @property
    def closed(self) -> bool:
        return self._shared.closed

    # -- files ------------------------------------------------------------------------
    def register(self, fd: int | HasFileno) -> None:
        """Pin the open file: requests on ``fd`` use a private ``dup`` until deregister."""
        number = _fd(fd)
        with self._lock:
            if not self._open:
                self._raise_unusable()
            if number in self._files:
                return
            dup = fcntl.fcntl(number, fcntl.F_DUPFD_CLOEXEC, 0)
            self._files[number] = dup
            if fcntl.fcntl(dup, fcntl.F_GETFL) & getattr(os, "O_DIRECT", 0):
                # An O_DIRECT read "without waiting" still waits for the device, inline.
                for dups in self._shared.nowait_off:
                    dups.add(dup)

    def deregister(self, fd: int | HasFileno) -> None:
        """Unpin ``fd``; ``QueueBusy`` while requests on it are prepared or in flight."""
        number = _fd(fd)
        with self._lock:
            if not self._open:
                self._raise_unusable()
            dup = self._files.get(number)
            if dup is None:
                raise HandleNotRegistered(f"fd {number} is not registered with this queue")
            # Prepared, running in a worker or batch, or completed and not yet returned.
            users = self._shared.busy.get(number, 0)
            users += sum(1 for req in self._prepared if req[1] == number)
            users += sum(1 for req, _, _ in tuple(self._ready) if req[1] == number)
            if users:
                raise QueueBusy(f"fd {number} is still used by {users} request(s)")
            del self._files[number]
            for dups in self._shared.nowait_off:
                dups.discard(dup)
            os.close(dup)

    # -- requests ---------------------------------------------------------------------
    def _refuse(self, fd: int) -> NoReturn:
        """Raise why no request on ``fd`` can be prepared now (lock held)."""
        if not self._open:
            self._raise_unusable()
        if fd not in self._files:
            raise HandleNotRegistered(f"fd {fd} is not registered with this queue")
        if len(self._prepared) >= self._sq_entries:
            raise QueueFull(
                f"every submission queue entry is prepared (sq_entries={self._sq_entries});"
                " commit() first"
            )
        raise QueueFull(
            f"prepared plus in-flight requests would exceed cq_entries={self._cq_entries};"
            " wait() for completions first"
        )

    def _queue(
        self, kind: int, fd: int, offset: int, views: Any, nbytes: int, *, user_data: Any
    ) -> None:
        """Append a checked request, or raise and queue nothing.

        prepare_read and prepare_write repeat this body inline: it is their hot path.
        """
        self._acquire()
        try:
            prepared = self._prepared
            dup = self._files.get(fd)
            n = len(prepared)
            if (
                dup is None
                or not self._open
                or n >= self._sq_entries
                or n + self._in_flight >= self._cq_entries
            ):
                self._refuse(fd)
            prepared.append((kind, fd, dup, offset, views, nbytes, user_data))
        finally:
            self._release()

    def prepare_read(
        self, fd: int | HasFileno, offset: int, buf: Buffer, user_data: Any = None
    ) -> None:
        """Queue a read of ``len(buf)`` bytes at ``offset`` into ``buf``."""
        if type(fd) is not int or not 0 <= fd <= _MAX_FD:
            fd = _fd(fd)
        if type(offset) is not int or not 0 <= offset <= _MAX_OFFSET:
            offset = _offset(offset)
        view = memoryview(buf)
        if view.readonly or not view.c_contiguous:
            view = _read_target(buf)  # raises the documented error
        self._acquire()
        try:
            prepared = self._prepared
            dup = self._files.get(fd)
            n = len(prepared)
            if (
                dup is None
                or not self._open
                or n >= self._sq_entries
                or n + self._in_flight >= self._cq_entries
            ):
                self._refuse(fd)
            prepared.append((_READ, fd, dup, offset, (view,), view.nbytes, user_data))
        finally:
            self._release()

    def prepare_write(
        self, fd: int | HasFileno, offset: int, buf: Buffer, user_data: Any = None
    ) -> None:
        """Queue a write of ``buf`` at ``offset``."""
        if type(fd) is not int or not 0 <= fd <= _MAX_FD:
            fd = _fd(fd)
        if type(offset) is not int or not 0 <= offset <= _MAX_OFFSET:
            offset = _offset(offset)
        view = memoryview(buf)
        if not view.c_contiguous:
            view = _write_source(buf)  # raises the documented error
        self._acquire()
        try:
            prepared = self._prepared
            dup = self._files.get(fd)
            n = len(prepared)
            if (
                dup is None
                or not self._open
                or n >= self._sq_entries
                or n + self._in_flight >= self._cq_entries
            ):
                self._refuse(fd)
            prepared.append((_WRITE, fd, dup, offset, (view,), view.nbytes, user_data))
        finally:
            self._release()

    def prepare_readv(
        self, fd: int | HasFileno, offset: int, bufs: Sequence[Buffer], user_data: Any = None
    ) -> None:
        """Queue a scatter read filling ``bufs`` in order from ``offset``."""
        fd = _fd(fd)
        offset = _offset(offset)
        views, nbytes = _checks.buffer_views(bufs, writable=True)
        self._queue(_READ, fd, offset, views, nbytes, user_data=user_data)

    def prepare_writev(
        self, fd: int | HasFileno, offset: int, bufs: Sequence[Buffer], user_data: Any = None
    ) -> None:
        """Queue a gather write of ``bufs`` in order from ``offset``."""
        fd = _fd(fd)
        offset = _offset(offset)
        views, nbytes = _checks.buffer_views(bufs, writable=False)
        self._queue(_WRITE, fd, offset, views, nbytes, user_data=user_data)

    def prepare_sync(
        self, fd: int | HasFileno, user_data: Any = None, *, datasync: bool = False
    ) -> None:
        """Queue an ``fsync`` (``fdatasync`` with ``datasync=True``)."""
        self._queue(_FDATASYNC if datasync else _FSYNC, _fd(fd), 0, (), 0, user_data=user_data)

    def commit(self) -> int:
        """Start every prepared request; return how many (``QueueEmpty`` if none)."""
        with self._lock:
            if not self._open:
                self._raise_unusable()
            batch = self._prepared
            if not batch:
                raise QueueEmpty("nothing prepared to commit")
            self._prepared = []
            self._in_flight += len(batch)
            slow: list[Request] = []
            try:
                self._run_inline(batch, slow)
            except BaseException:
                self._put_back(batch, slow)
                raise
            finally:
                if slow:
                    self._shared.dispatch(slow)
                if self._ready:
                    self._shared.signal()
            return len(batch)

    def _run_inline(self, batch: list[Request], slow: list[Request]) -> None:
        """Complete the reads the page cache can serve now; collect the rest in ``slow``."""
        nowait = _RWF_NOWAIT
        if nowait is None:
            slow.extend(batch)
            return
        preadv = _preadv
        nowait_off = self._shared.nowait_off[_READ]
        ready = self._ready.append
        to_slow = slow.append
        for req in batch:
            if req[0] == _READ and req[2] not in nowait_off:
                try:
                    n = preadv(req[2], req[4], req[3], nowait)
                except OSError as exc:
                    if exc.errno in _NOWAIT_UNSUPPORTED:
                        nowait_off.add(req[2])
                    to_slow(req)
                    continue
                if n == req[5]:
                    ready((req, n, None))
                    continue
            to_slow(req)

    def _put_back(self, batch: list[Request], slow: list[Request]) -> None:
        """After an exception mid-commit: un-commit what was neither completed nor dispatched."""
        handed = {id(req) for req in slow}
        handed.update(id(item[0]) for item in tuple(self._ready))
        rest = [req for req in batch if id(req) not in handed]
        self._prepared[:0] = rest
        self._in_flight -= len(rest)

    # -- completions ------------------------------------------------------------------
    def wait(
        self, min_events: int = 1, max_events: int | None = None, timeout: float | None = None
    ) -> list[Completion]:
        """Return between ``min_events`` and ``max_events`` completions (see SPEC)."""
        if type(min_events) is int and min_events >= 0 and max_events is None and timeout is None:
            low, high, seconds = min_events, None, None  # the common call, already valid
        else:
            low, high = _checks.wait_limits(min_events, max_events)
            seconds = _checks.timeout(timeout)
        shared = self._shared
        self._acquire()
        try:
            if not self._open:
                self._raise_unusable()
            if seconds is None and not self._wakeup_pending:
                if not self._in_flight:
                    raise QueueEmpty(
                        "nothing in flight to wait for (commit() first, or pass a timeout)"
                    )
                if low > self._in_flight:
                    raise ValueError(
                        f"min_events={low} can never be met: only {self._in_flight} request(s)"
                        " in flight (pass a timeout to wait anyway)"
                    )
            done = self._take_if_ready(low, high, seconds == 0)
            if done is not None:
                return done
            shared.users += 1
        finally:
            self._release()
        try:
            return self._sleep_until_ready(low, high, seconds)
        finally:
            with shared.lock:
                shared.users -= 1
                shared.release_if_idle()

    def _sleep_until_ready(
        self, low: int, high: int | None, seconds: float | None
    ) -> list[Completion]:
        shared = self._shared
        deadline = None if seconds is None else time.monotonic() + seconds
        poller = select.poll()
        poller.register(shared.efd, select.POLLIN)
        while True:
            if deadline is None:
                poller.poll(_SLICE * 1000)
            else:
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    poller.poll(min(remaining, _SLICE) * 1000 + 1)  # +1: never a busy 0 ms poll
            with shared.lock:
                if shared.closed:
                    if self._forked:
                        self._raise_unusable()
                    raise QueueClosed("queue closed while waiting", [])
                if deadline is None and low > self._in_flight:
                    # Another thread took completions this wait counted on.
                    if not self._in_flight:
                        raise QueueEmpty("nothing left in flight to wait for")
                    low = self._in_flight
                expired = deadline is not None and time.monotonic() >= deadline
                done = self._take_if_ready(low, high, expired)
                if done is not None:
                    return done

    def _take_if_ready(self, low: int, high: int | None, expired: bool) -> list[Completion] | None:
        """One look (lock held): a pending wakeup wins, then a met or expired wait takes."""
        self._shared.reset()
        ready = self._ready
        if self._wakeup_pending:
            self._wakeup_pending = False
            raise Interrupted("wait interrupted by wakeup()", self._take(high))
        if len(ready) >= low or expired:
            return self._take(high)
        return None

    def _take(self, high: int | None) -> list[Completion]:
        """Pop up to ``high`` ready completions (lock held); they now count as returned."""
        ready = self._ready
        n = len(ready)
        if high is not None and high < n:
            n = high
        if not n:
            return []
        taken: list[Done] = []
        try:
            # The pops run in C (no signal handler can run in between); if a handler raises
            # later on, the completions go back where they were.
            taken.extend(islice(iter(ready.popleft, _NEVER), n))
            done = [Completion(req[6], result, error) for req, result, error in taken]
            if ready:
                self._shared.signal()  # max_events left some behind: keep fileno() readable
        except BaseException:
            ready.extendleft(reversed(taken))
            raise
        self._in_flight -= n
        return done

    def wakeup(self) -> None:
        """Make a blocked (or the next) ``wait`` raise ``Interrupted``; thread-safe."""
        with self._lock:
            if not self._open:
                self._raise_unusable()
            self._wakeup_pending = True
            self._shared.signal()

    def fileno(self) -> int:
        """The eventfd: readable whenever completions may be ready or a wakeup is pending."""
        if not self._open:
            self._raise_unusable()
        return self._shared.efd

    # -- batches ----------------------------------------------------------------------
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
        return self._many(_READ, fd, offsets, size, out, depth=depth)

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
        return self._many(_WRITE, fd, offsets, size, data, depth=depth)

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
        offs = _checks.offsets(offsets)
        size = _checks.count(size, "size")
        view = _read_target(buf) if kind == _READ else _write_source(buf)
        _checks.batch_buffer(view, len(offs), size)
        shared = self._shared
        workers = shared.max_workers
        if depth is not None:
            workers = min(workers, _checks.count(depth, "depth", minimum=1))
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
            batch = _Batch(kind, dup, offs, size, view)
            pending = batch.run_inline(shared.nowait_off)
            if pending:
                batch.run_in_workers(shared, pending, workers)
            if shared.cancelled:
                raise QueueClosed("queue closed during the batch")
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

    # -- closing ----------------------------------------------------------------------
    def close(self, *, cancel: bool = False) -> None:
        """Free the queue (``QueueBusy`` unless idle); ``cancel=True`` drops what is pending.

        With ``cancel``, prepared and queued requests are dropped and the requests workers
        are running are waited for, so no buffer is still in use when this returns.
        """
        if self._forked:
            self._close_in_child()
            return
        shared = self._shared
        with self._lock:
            if shared.closed:
                return
            if not cancel and (self._prepared or self._in_flight or self._batch_calls):
                raise QueueBusy(
                    f"{len(self._prepared)} request(s) prepared, {self._in_flight} in flight or"
                    " unreaped; wait() for them or close(cancel=True)"
                )
            self._shut(shared)
            while shared.dispatched:
                shared.idle.wait(_SLICE)
            self._ready.clear()
            shared.release_if_idle()

    def _shut(self, shared: _Shared) -> None:
        """Mark closed (lock held): nothing new starts, workers drop what they have not run."""
        self._open = False
        shared.closed = True
        shared.cancelled = True
        self._prepared = []
        self._in_flight = 0
        self._wakeup_pending = False
        shared.signal()  # a waiter in another thread wakes up and sees the queue closed
        self._ready.clear()

    def _close_in_child(self) -> None:
        """In a forked child: drop the child's copies of the fds; never wait for workers."""
        shared = self._shared
        if shared.closed:
            return
        self._prepared = []
        self._in_flight = 0
        shared.closed = shared.released = True
        self._ready.clear()
        shared.close_fds()

    def __del__(self) -> None:
        # Garbage collection cancels like close(cancel=True) but never blocks for long and
        # never raises: workers finishing later release the fds (see release_if_idle).
        try:
            if self._forked:
                self._close_in_child()
                return
            shared = self._shared
            if shared.closed:
                return
            if not shared.lock.acquire(timeout=0 if sys.is_finalizing() else 1.0):
                return
            try:
                self._shut(shared)
                shared.release_if_idle()
            finally:
                shared.lock.release()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = (
            "closed"
            if self._shared.closed
            else f"prepared={len(self._prepared)} in_flight={self._in_flight}"
        )
        return (
            f"<ThreadPoolQueue sq_entries={self._sq_entries} cq_entries={self._cq_entries} {state}>"
        )


class ThreadPoolProvider:
    """The pure-Python fallback: inline page-cache reads plus worker threads."""

    id = "threadpool"
    handle_type = "file"
    native = False
    validates_arguments = True

    @classmethod
    def probe(cls) -> tuple[bool, str | None]:
        """Available wherever ``os.eventfd`` exists (Linux, Python 3.10+)."""
        if not hasattr(os, "eventfd"):
            return False, "os.eventfd is missing: the threadpool provider needs Linux"
        return True, None

    def __new__(cls, sq_entries: int, cq_entries: int) -> ThreadPoolQueue:  # type: ignore[misc]
        return ThreadPoolQueue(sq_entries, cq_entries)
