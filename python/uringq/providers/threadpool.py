"""The ``threadpool`` provider: pure Python, with the io_uring provider's semantics.

Reads are tried inline at ``commit()`` with ``os.preadv(..., os.RWF_NOWAIT)``, which
succeeds at ``os.preadv`` speed when the data is in the page cache; anything else (EAGAIN,
EOPNOTSUPP, a short result), every write and every sync goes to a small pool of daemon
worker threads that run the plain call. Completions, capacity, waiting, wakeups, closing
and fork behave exactly as with io_uring (SPEC sections 1-3).

Streams. A registered fd that does not take ``pread`` (a pipe, FIFO, socket, tty,
eventfd...: a zero-length ``preadv`` fails with ESPIPE) is recognised once, by
``register``. Its reads and writes behave as on io_uring: the offset is ignored (a
socket refuses a non-zero one with ESPIPE, as the kernel does under io_uring) and a
request stays in flight until the fd is ready, for as long as that takes. Such requests
never occupy the file workers: on its first stream request a queue starts one more
daemon thread, the *stream thread*, which serves every stream request of that queue. It
tries each new request at once without blocking (``preadv``/``pwritev`` at the file
position with ``RWF_NOWAIT``), then sleeps in ``poll()`` on the fds with requests
waiting plus a private eventfd, written by ``commit()`` for new requests and by
``close()``/``__exit__``/GC to cancel, and retries the requests of the fds that became
ready, oldest first. So any number of pending stream requests (up to ``cq_entries``)
costs one thread, cannot starve file requests, and no thread ever sits in a ``read()``
that nothing can interrupt. The stream thread makes its non-blocking calls with the
queue lock held, so whoever holds the lock knows no stream buffer is in use: cancelling
drops the waiting requests (internally they complete as ECANCELED) and releases their
buffers before ``close`` or ``__del__`` returns. Where the kernel or the device refuses
``RWF_NOWAIT`` (a tty; pipes and sockets on old kernels), the plain call runs only once
``poll`` with timeout 0 says the fd is ready, a read asks for no more than ``FIONREAD``
reports and a write goes out ``PIPE_BUF`` bytes per ready check (unless the fd is
``O_NONBLOCK``): a tty write may then complete short where io_uring's kernel worker
would have waited, and only a reader outside the queue taking the data in between could
still make such a read wait. ``read_many``/``write_many`` keep using
``pread``/``pwrite``: on a stream fd each request gets ``-ESPIPE`` at once (where the
io_uring provider's batch waits for the data).

Concurrency: one re-entrant lock guards the submission side and the counters; the ready
deque is appended to by workers without it (deque appends are atomic) and taken from only
under it. The eventfd is written when a completion or wakeup arrives and read by ``wait``
before it looks at the queue, so a waiter never sleeps through a completion and an
asyncio reader does not spin. The eventfd and the registered ``dup()``s are closed only
when no worker, waiter or batch call can still use them; the stream thread's eventfd is
closed by ``close``/GC itself, after waking the thread to end. ``wait`` takes completions
from the ready deque in one C call and, should a signal handler raise (KeyboardInterrupt)
anywhere before they are handed over, puts them back at the front, so a Ctrl-C loses no
completion: the next ``wait`` returns them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import stat
import sys
import termios
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
_READ = 0  # os.preadv (read and readv); on a stream, the file position
_WRITE = 1  # os.pwritev (write and writev); on a stream, the file position
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
# the same for a stream, where EINVAL is the call's own answer (too many parts, an eventfd
# read of fewer than 8 bytes) and reported as such, as io_uring does
_STREAM_NOWAIT_UNSUPPORTED = frozenset({errno.EOPNOTSUPP, errno.ENOSYS})
_NEVER = object()
_STREAM_EVENTS = (select.POLLIN, select.POLLOUT)  # by kind: what a stream request waits for
_STREAM_POLL_MS = 1000  # the stream thread re-checks the queue at least this often
_PIPE_BUF = select.PIPE_BUF  # what a blocking write without RWF_NOWAIT sends per ready check
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


def _stream_kind(fd: int) -> int | None:
    """``None`` for a file that takes ``pread``, else 1 for a socket and 0 for another
    stream (a pipe, FIFO, tty, eventfd...)."""
    mode = os.fstat(fd).st_mode
    if stat.S_ISSOCK(mode):
        return 1
    if stat.S_ISFIFO(mode):
        return 0
    try:
        # A read of nothing: the kernel answers ESPIPE for a file without pread before it
        # looks at anything else, and never calls the driver for zero bytes. (lseek is not
        # enough: an eventfd seeks, yet refuses pread.)
        _preadv(fd, [], 0)
    except OSError as exc:
        return 0 if exc.errno == errno.ESPIPE else None
    return None


class _Shared:
    """What the queue shares with its worker threads (which must not keep the queue alive).

    The threads hold it only weakly while they wait for work: its ready deque and waiting
    requests hold user_data, which may refer back to the queue, and a thread's frame is
    a root for the garbage collector, so a strong reference there would keep such a
    cycle alive for ever (as an unreaped completion whose user_data holds its queue).
    """

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
        "ref",
        "released",
        "stream_count",
        "stream_efd",
        "stream_kick",
        "stream_plain",
        "stream_waiting",
        "streaming",
        "streams",
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
        # What the threads hold; once the queue is collected, idle workers are told to end.
        self.ref = weakref.ref(self, partial(_end_workers, self.jobs, max_workers))
        # Streams (see the module docstring), all guarded by the lock.
        self.streams: dict[int, int] = {}  # registered dup that cannot seek -> 1 if a socket
        self.stream_plain: set[int] = set()  # stream dups without RWF_NOWAIT
        # (dup, kind) -> the requests waiting for that fd to be ready, oldest first
        self.stream_waiting: dict[tuple[int, int], deque[Request]] = {}
        self.stream_kick: set[tuple[int, int]] = set()  # keys with requests not tried yet
        self.stream_count = 0  # requests in stream_waiting
        self.stream_efd = -1  # wakes the stream thread; -1 while it does not run
        self.streaming = False  # the stream thread is in run_streams (it holds the lock)

    def __del__(self) -> None:
        # Collected before the last request finished (a worker found it gone and dropped
        # its job, see _worker_main): nothing can use the fds any more.
        if not self.released:
            self.released = True
            self.close_fds()

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
        """Hand ``jobs`` to the workers (lock held), starting them on first use.

        Reads and writes on streams go to the stream thread instead.
        """
        streams = self.streams
        if streams:
            files = [job for job in jobs if job[0] > _WRITE or job[2] not in streams]
            if len(files) < len(jobs):
                self.submit_streams([job for job in jobs if job[0] <= _WRITE and job[2] in streams])
                jobs = files
                if not jobs:
                    return
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
                    args=(self.ref, self.jobs),
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
        self.end_stream_thread()

    # -- streams (lock held throughout) ---------------------------------------------------
    def submit_streams(self, jobs: list[Request]) -> None:
        """Hand reads and writes on streams to the stream thread, starting it if needed."""
        waiting, kick, busy = self.stream_waiting, self.stream_kick, self.busy
        for job in jobs:
            if job[3] and self.streams[job[2]]:  # a socket refuses a file position
                self.ready.append((job, 0, _os_error(errno.ESPIPE)))
                self.signal()
                continue
            key = (job[2], job[0])
            pending = waiting.get(key)
            if pending is None:
                waiting[key] = pending = deque()
            pending.append(job)
            kick.add(key)
            busy[job[1]] = busy.get(job[1], 0) + 1
            self.dispatched += 1
            self.stream_count += 1
        if self.stream_efd < 0 and self.stream_count and not self.start_stream_thread():
            # No thread: fail the requests now rather than block or keep them forever.
            for pending in waiting.values():
                while pending:
                    self.stream_done(pending.popleft(), 0, _os_error(errno.EAGAIN))
            waiting.clear()
            kick.clear()
        self.wake_stream_thread()

    def start_stream_thread(self) -> bool:
        try:
            efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        except OSError:
            return False
        try:
            threading.Thread(
                target=_stream_main,
                args=(self.ref, efd),
                name=f"uringq-threadpool-{self.efd}-streams",
                daemon=True,
            ).start()
        except RuntimeError:  # "can't start new thread"
            _close_quietly(efd)
            return False
        self.stream_efd = efd
        return True

    def wake_stream_thread(self) -> None:
        if self.stream_efd >= 0:
            try:  # noqa: SIM105 - as in signal()
                os.eventfd_write(self.stream_efd, 1)
            except BlockingIOError:
                pass

    def stream_done(self, req: Request, result: int, error: OSError | None) -> None:
        """Make a finished stream request's completion ready and account for it."""
        if not self.closed:
            self.ready.append((req, result, error))
            self.signal()
        fd = req[1]
        left = self.busy[fd] - 1
        if left:
            self.busy[fd] = left
        else:
            del self.busy[fd]
        self.stream_count -= 1
        self.dispatched -= 1
        if not self.dispatched:
            self.idle.notify_all()

    def drop_streams(self) -> None:
        """Cancel every waiting stream request: their buffers are released on return.

        Called by the stream thread itself from inside ``run_streams`` (the garbage
        collector ran the queue's ``__del__`` there), it leaves the requests to that
        thread, which drops them as soon as ``run_streams`` returns.
        """
        if self.streaming:
            return
        if self.stream_count:
            busy = self.busy
            for pending in self.stream_waiting.values():
                for fd in [req[1] for req in pending]:
                    left = busy[fd] - 1
                    if left:
                        busy[fd] = left
                    else:
                        del busy[fd]
            self.dispatched -= self.stream_count
            self.stream_count = 0
            if not self.dispatched:
                self.idle.notify_all()
        self.stream_waiting.clear()
        self.stream_kick.clear()
        self.end_stream_thread()

    def end_stream_thread(self) -> None:
        """Wake the stream thread to end and close its eventfd now, so that no fd outlives
        ``close()``; the thread never touches the number again (see ``_stream_main``)."""
        efd = self.stream_efd
        if efd >= 0:
            self.wake_stream_thread()
            self.stream_efd = -1
            _close_quietly(efd)

    def run_streams(self, ready_fds: list[int]) -> dict[int, int]:
        """Retry the requests on ``ready_fds`` and try the new ones, oldest first per fd,
        each until one would block; return the poll events to wait for, by fd."""
        waiting = self.stream_waiting
        keys = self.stream_kick
        self.stream_kick = set()
        for fd in ready_fds:
            keys.add((fd, _READ))
            keys.add((fd, _WRITE))
        for key in keys:
            pending = waiting.get(key)
            if pending is None:
                continue
            while pending and not self.closed:
                outcome = self.stream_try(pending[0])
                if outcome is None:
                    break
                self.stream_done(pending.popleft(), *outcome)
            if not pending:
                waiting.pop(key, None)
        watch: dict[int, int] = {}
        for dup, kind in waiting:
            watch[dup] = watch.get(dup, 0) | _STREAM_EVENTS[kind]
        return watch

    def stream_try(self, req: Request) -> tuple[int, OSError | None] | None:
        """One non-blocking attempt: ``(result, error)``, or ``None`` if it would block."""
        kind, _, dup, _, views, nbytes, _ = req
        nowait = _RWF_NOWAIT
        if nowait is not None and dup not in self.stream_plain:
            try:
                result = (_preadv if kind == _READ else _pwritev)(dup, views, -1, nowait)
            except BlockingIOError:
                return None
            except OSError as exc:
                if exc.errno not in _STREAM_NOWAIT_UNSUPPORTED:
                    return (0, _os_error(exc.errno))
                self.stream_plain.add(dup)  # e.g. a tty: EOPNOTSUPP
            except Exception:  # e.g. MemoryError: report it, never kill the thread
                return (0, _os_error(errno.EIO))
            else:
                return (result, None)
        try:
            return _plain_stream_call(kind, dup, views, nbytes)
        except Exception:
            return (0, _os_error(errno.EIO))


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


def _ready_now(fd: int, events: int) -> bool:
    poller = select.poll()
    poller.register(fd, events)
    return bool(poller.poll(0))


def _readable_bytes(fd: int) -> int:
    """What ``FIONREAD`` reports (0 when the device does not say)."""
    count = array("i", [0])
    try:
        fcntl.ioctl(fd, termios.FIONREAD, count, True)
    except OSError:
        return 0
    return max(count[0], 0)


def _window(views: Sequence[memoryview], start: int, length: int) -> list[memoryview]:
    """The parts of ``views`` that cover bytes ``start .. start + length`` of their sum."""
    parts: list[memoryview] = []
    for whole in views:
        size = whole.nbytes
        if start >= size:
            start -= size
            continue
        view = whole
        if view.ndim != 1 or view.format != "B":  # prepare_read/write keep any C layout
            view = _write_source(view)  # raw bytes, as writable as the view was
        part = view[start : start + length]
        parts.append(part)
        length -= part.nbytes
        start = 0
        if length <= 0:
            break
    return parts


def _plain_stream_call(
    kind: int, dup: int, views: Sequence[memoryview], nbytes: int
) -> tuple[int, OSError | None] | None:
    """A stream call where ``RWF_NOWAIT`` is refused: only as much as cannot block.

    ``None`` when the fd is not ready. Without ``O_NONBLOCK``, a read asks for at most
    what ``FIONREAD`` reports (everything at EOF or when it reports nothing) and a write
    sends ``PIPE_BUF`` bytes at a time while the fd stays writable.
    """
    events = _STREAM_EVENTS[kind]
    try:
        if nbytes and not _ready_now(dup, events):
            return None
        if not nbytes:
            done = 0
        elif not os.get_blocking(dup):
            done = (os.readv if kind == _READ else os.writev)(dup, views)
        elif kind == _READ:
            limit = _readable_bytes(dup)
            done = os.readv(dup, _window(views, 0, limit) if 0 < limit < nbytes else views)
        else:
            done = _write_while_ready(dup, views, nbytes)
    except BlockingIOError:
        return None
    except OSError as exc:
        return (0, _os_error(exc.errno))
    return (done, None)


def _write_while_ready(dup: int, views: Sequence[memoryview], nbytes: int) -> int:
    """Write ``PIPE_BUF`` bytes at a time to a blocking fd while it stays writable."""
    done = 0
    while done < nbytes and (not done or _ready_now(dup, select.POLLOUT)):
        try:
            sent = os.writev(dup, _window(views, done, _PIPE_BUF))
        except OSError:
            if done:
                break  # the error comes back on the next request
            raise
        if not sent:
            break
        done += sent
    return done


def _stream_main(ref: weakref.ref[_Shared], efd: int) -> None:
    """The stream thread (see the module docstring) of one queue; ``efd`` wakes it.

    Closing the queue drops the waiting requests, writes to ``efd`` and closes it, all
    under the lock: from then on this thread only ends. A ``poll`` already under way may
    still look at the old numbers (POLLNVAL, or a file that took the number): that is
    harmless, and the timeout bounds how long such a poll can outlive the queue. While it
    polls, the thread holds nothing that keeps the queue alive (see ``_Shared``).
    """
    ready_fds: list[int] = []
    while True:
        shared = ref()
        if shared is None:
            return
        with shared.lock:
            if shared.closed or shared.stream_efd != efd:
                return
            try:  # noqa: SIM105 - drain before looking: a later write wakes the poll
                os.eventfd_read(efd)
            except BlockingIOError:
                pass
            shared.streaming = True
            try:
                watch = shared.run_streams(ready_fds)
            finally:
                shared.streaming = False
            if shared.closed:  # collected meanwhile, by a collection in this thread
                shared.drop_streams()
                shared.release_if_idle()
                return
        del shared
        poller = select.poll()
        poller.register(efd, select.POLLIN)
        for fd, events in watch.items():
            poller.register(fd, events)
        del watch
        ready_fds = [fd for fd, _ in poller.poll(_STREAM_POLL_MS) if fd != efd]


def _worker_main(ref: weakref.ref[_Shared], jobs: SimpleQueue[Request | None]) -> None:
    get = jobs.get
    while True:
        box: list[Any] = [get()]  # the only reference to the job, handed over (see finish)
        if box[0] is None:
            return
        shared = ref()
        if shared is None:  # collected (its __del__ cancelled the job)
            return
        shared.finish(box)
        del shared  # hold the queue only while running a job


def _end_workers(jobs: SimpleQueue[Request | None], workers: int, _: object) -> None:
    """Once the shared state is collected: tell the workers waiting for jobs to end."""
    for _ in range(workers):
        jobs.put(None)


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
        self._registered_buffer: memoryview | None = None
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
        """Requests prepared, not yet committed (0 once closed, as on io_uring)."""
        if not self._open:
            return self._closed_count()
        return len(self._prepared)

    @property
    def in_flight(self) -> int:
        """Requests committed whose completion was not returned yet (0 once closed)."""
        if not self._open:
            return self._closed_count()
        return self._in_flight

    def _closed_count(self) -> int:
        if self._forked:
            self._raise_unusable()
        return 0

    @property
    def closed(self) -> bool:
        return self._shared.closed

    # -- files ------------------------------------------------------------------------
    def register(self, fd: int | HasFileno) -> None:
        """Pin the open file: requests on ``fd`` use a private ``dup`` until deregister."""
        if not self._open:
            self._raise_unusable()
        number = _fd(fd)
        with self._lock:
            if not self._open:
                self._raise_unusable()
            if number in self._files:
                return
            dup = fcntl.fcntl(number, fcntl.F_DUPFD_CLOEXEC, 0)
            shared = self._shared
            try:
                stream = _stream_kind(dup)
            except BaseException:
                os.close(dup)
                raise
            self._files[number] = dup
            if stream is not None:
                # Reads and writes go to the stream thread; commit's inline pread (and a
                # batch's) would only fail with ESPIPE.
                shared.streams[dup] = stream
                shared.nowait_off[_READ].add(dup)
                if _RWF_NOWAIT is None:
                    shared.stream_plain.add(dup)
            elif fcntl.fcntl(dup, fcntl.F_GETFL) & getattr(os, "O_DIRECT", 0):
                # An O_DIRECT read "without waiting" still waits for the device, inline.
                for dups in shared.nowait_off:
                    dups.add(dup)

    def deregister(self, fd: int | HasFileno) -> None:
        """Unpin ``fd``; ``QueueBusy`` while requests on it are prepared or in flight."""
        if not self._open:
            self._raise_unusable()
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
            shared = self._shared
            for dups in shared.nowait_off:
                dups.discard(dup)
            shared.streams.pop(dup, None)
            shared.stream_plain.discard(dup)
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
                # A caller may keep the exception: its traceback must not keep the
                # prepared requests (and their buffers) alive through this frame.
                del prepared, views
                self._refuse(fd)
            prepared.append((kind, fd, dup, offset, views, nbytes, user_data))
        finally:
            self._release()

    def prepare_read(
        self, fd: int | HasFileno, offset: int, buf: Buffer, user_data: Any = None
    ) -> None:
        """Queue a read of ``len(buf)`` bytes at ``offset`` into ``buf``."""
        if not self._open:
            self._raise_unusable()
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
                del prepared, view  # see _queue: a kept traceback must pin nothing
                self._refuse(fd)
            prepared.append((_READ, fd, dup, offset, (view,), view.nbytes, user_data))
        finally:
            self._release()

    def prepare_write(
        self, fd: int | HasFileno, offset: int, buf: Buffer, user_data: Any = None
    ) -> None:
        """Queue a write of ``buf`` at ``offset``."""
        if not self._open:
            self._raise_unusable()
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
                del prepared, view  # see _queue: a kept traceback must pin nothing
                self._refuse(fd)
            prepared.append((_WRITE, fd, dup, offset, (view,), view.nbytes, user_data))
        finally:
            self._release()

    def prepare_readv(
        self, fd: int | HasFileno, offset: int, bufs: Sequence[Buffer], user_data: Any = None
    ) -> None:
        """Queue a scatter read filling ``bufs`` in order from ``offset``."""
        if not self._open:
            self._raise_unusable()
        fd = _fd(fd)
        offset = _offset(offset)
        views, nbytes = _checks.buffer_views(bufs, writable=True)
        self._queue(_READ, fd, offset, views, nbytes, user_data=user_data)

    def prepare_writev(
        self, fd: int | HasFileno, offset: int, bufs: Sequence[Buffer], user_data: Any = None
    ) -> None:
        """Queue a gather write of ``bufs`` in order from ``offset``."""
        if not self._open:
            self._raise_unusable()
        fd = _fd(fd)
        offset = _offset(offset)
        views, nbytes = _checks.buffer_views(bufs, writable=False)
        self._queue(_WRITE, fd, offset, views, nbytes, user_data=user_data)

    def prepare_sync(
        self, fd: int | HasFileno, user_data: Any = None, *, datasync: bool = False
    ) -> None:
        """Queue an ``fsync`` (``fdatasync`` with ``datasync=True``)."""
        if not self._open:
            self._raise_unusable()
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
        if not self._open:
            self._raise_unusable()
        if type(min_events) is int and min_events >= 0 and max_events is None and timeout is None:
            low, high, seconds = min_events, None, None  # the common call, already valid
        else:
            low, high = _checks.wait_limits(min_events, max_events)
            seconds = _checks.timeout(timeout)
        shared = self._shared
        ready = self._ready
        sleeping = took = wakeup = False
        taken: list[Done] = []
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
            shared.reset()
            if len(ready) < low and seconds != 0 and not self._wakeup_pending:
                shared.users += 1
                sleeping = True
                self._sleep(low, seconds)
                shared.users -= 1
                sleeping = False
            # A pending wakeup wins; otherwise the wait is met or has expired. The pops run
            # in one C call; should a signal handler raise (KeyboardInterrupt) any time
            # before the lock is released and only the return is left, the handler below
            # puts the completions back at the front, so the next wait returns them.
            n = len(ready)
            if high is not None and high < n:
                n = high
            wakeup = self._wakeup_pending
            taken.extend(islice(iter(ready.popleft, _NEVER), n))
            done = [Completion(req[6], result, error) for req, result, error in taken]
            interrupted = Interrupted("wait interrupted by wakeup()", done) if wakeup else None
            self._in_flight -= n
            self._wakeup_pending = False
            took = True  # no call since the line above: these three change together
            if ready:
                shared.signal()  # max_events left some behind: keep fileno() readable
            self._release()
        except BaseException:
            self._undo_wait(sleeping, taken, took, wakeup)
            raise
        del taken  # the traceback of Interrupted keeps this frame: let go of the buffers
        if interrupted is not None:
            raise interrupted
        return done

    def _undo_wait(self, sleeping: bool, taken: list[Done], took: bool, wakeup: bool) -> None:
        """``wait`` is raising: put back what it took and release the lock."""
        lock: Any = self._lock
        if not lock._is_owned():  # the exception came after the release, or while polling
            lock.acquire()
        try:
            shared = self._shared
            if sleeping:
                shared.users -= 1
            if not shared.closed and (taken or took):
                self._ready.extendleft(reversed(taken))
                if took:
                    self._in_flight += len(taken)
                    self._wakeup_pending = self._wakeup_pending or wakeup
                shared.signal()
            taken.clear()  # the traceback keeps wait's frame, which holds this list
            shared.release_if_idle()
        finally:
            lock.release()

    def _sleep(self, low: int, seconds: float | None) -> None:
        """Sleep until a wakeup, ``low`` completions or the timeout (lock held, released
        meanwhile); raise when the queue is closed or can no longer meet the wait."""
        shared = self._shared
        ready = self._ready
        deadline = None if seconds is None else time.monotonic() + seconds
        poller = select.poll()
        poller.register(shared.efd, select.POLLIN)
        release, acquire = self._release, self._acquire
        while True:
            release()
            try:
                if deadline is None:
                    poller.poll(_SLICE * 1000)
                else:
                    remaining = deadline - time.monotonic()
                    if remaining > 0:
                        poller.poll(min(remaining, _SLICE) * 1000 + 1)  # +1: never a busy 0 ms
            finally:
                acquire()
            if shared.closed:
                if self._forked:
                    self._raise_unusable()
                raise QueueClosed("queue closed while waiting", [])
            if deadline is None and low > self._in_flight:
                # Another thread took completions this wait counted on.
                if not self._in_flight:
                    raise QueueEmpty("nothing left in flight to wait for")
                low = self._in_flight
            shared.reset()
            if self._wakeup_pending or len(ready) >= low:
                return
            if deadline is not None and time.monotonic() >= deadline:
                return

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
        self._registered_buffer = None
        shared.signal()  # a waiter in another thread wakes up and sees the queue closed
        shared.drop_streams()  # and the stream thread ends
        self._ready.clear()

    def _close_in_child(self) -> None:
        """In a forked child: drop the child's copies of the fds; never wait for workers."""
        shared = self._shared
        if shared.closed:
            return
        self._prepared = []
        self._in_flight = 0
        self._registered_buffer = None
        shared.closed = shared.released = True
        self._ready.clear()
        shared.stream_waiting.clear()
        shared.stream_kick.clear()
        if shared.stream_efd >= 0:  # the parent's stream thread shares it: close, no wake
            _close_quietly(shared.stream_efd)
            shared.stream_efd = -1
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
