"""Streams on the threadpool provider: one poller thread per queue.

A registered fd that does not take ``pread`` (a pipe, FIFO, socket, tty, eventfd...: a
zero-length ``preadv`` fails with ESPIPE) is recognised once, by ``register``. Its reads
and writes behave as on io_uring: the offset is ignored (a socket refuses a non-zero one
with ESPIPE, as the kernel does under io_uring) and a request stays in flight until the
fd is ready, for as long as that takes. Such requests never occupy the file workers: on
its first stream request a queue starts one more daemon thread, the *stream thread*,
which serves every stream request of that queue. It tries each new request at once
without blocking (``preadv``/``pwritev`` at the file position with ``RWF_NOWAIT``), then
sleeps in ``poll()`` on the fds with requests waiting plus a private eventfd, written by
``commit()`` for new requests and by ``close()``/``__exit__``/GC to cancel, and retries
the requests of the fds that became ready, oldest first. So any number of pending stream
requests (up to ``cq_entries``) costs one thread, cannot starve file requests, and no
thread ever sits in a ``read()`` that nothing can interrupt.

The stream thread makes its non-blocking calls with the queue lock held, so whoever
holds the lock knows no stream buffer is in use: cancelling drops the waiting requests
(internally they complete as ECANCELED) and releases their buffers before ``close`` or
``__del__`` returns; the stream thread's eventfd is closed by ``close``/GC itself, after
waking the thread to end. Where the kernel or the device refuses ``RWF_NOWAIT`` (a tty;
pipes and sockets on old kernels), the plain call runs only once ``poll`` with timeout 0
says the fd is ready, a read asks for no more than ``FIONREAD`` reports and a write goes
out ``PIPE_BUF`` bytes per ready check (unless the fd is ``O_NONBLOCK``): a tty write may
then complete short where io_uring's kernel worker would have waited, and only a reader
outside the queue taking the data in between could still make such a read wait.
``read_many``/``write_many`` keep using ``pread``/``pwrite``: on a stream fd each request
gets ``-ESPIPE`` at once (where the io_uring provider's batch waits for the data).
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import stat
import termios
import threading
from array import array
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from uringq._checks import write_source as _write_source
from uringq.providers.threadpool.requests import (
    READ,
    RWF_NOWAIT,
    WRITE,
    Request,
    close_quietly,
    os_error,
)
from uringq.providers.threadpool.shared import STREAM, SharedState

if TYPE_CHECKING:
    import weakref

    from uringq.providers.threadpool.chains import Shared

__all__ = ["StreamPoller", "stream_kind"]

# errnos that say "this stream never does RWF_NOWAIT"; unlike for a file, EINVAL is the
# call's own answer (too many parts, an eventfd read of fewer than 8 bytes) and reported
# as such, as io_uring does
_STREAM_NOWAIT_UNSUPPORTED = frozenset({errno.EOPNOTSUPP, errno.ENOSYS})
_STREAM_EVENTS = (select.POLLIN, select.POLLOUT)  # by kind: what a stream request waits for
_STREAM_POLL_MS = 1000  # the stream thread re-checks the queue at least this often
_PIPE_BUF = select.PIPE_BUF  # what a blocking write without RWF_NOWAIT sends per ready check
_preadv = os.preadv
_pwritev = os.pwritev


def stream_kind(fd: int) -> int | None:
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


class StreamPoller(SharedState):
    """The stream thread's part of the shared state; every method runs with the lock held."""

    __slots__ = ()

    def submit_streams(self, jobs: list[Request]) -> None:
        """Hand reads and writes on streams to the stream thread, starting it if needed."""
        waiting, kick, busy = self.stream_waiting, self.stream_kick, self.busy
        for job in jobs:
            if job[3] and self.streams[job[2]]:  # a socket refuses a file position
                self.deliver((job, 0, os_error(errno.ESPIPE)))
                continue
            key = (job[2], job[0])
            pending = waiting.get(key)
            if pending is None:
                waiting[key] = pending = deque()
            pending.append(job)
            kick.add(key)
            busy[job[1]] = busy.get(job[1], 0) + 1
            self.active[id(job)] = (job, STREAM)
            self.dispatched += 1
            self.stream_count += 1
        if self.stream_efd < 0 and self.stream_count and not self.start_stream_thread():
            # No thread: fail the requests now rather than block or keep them forever.
            for pending in waiting.values():
                while pending:
                    self.stream_done(pending.popleft(), 0, os_error(errno.EAGAIN))
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
            close_quietly(efd)
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
        self.active.pop(id(req), None)
        self.deliver((req, result, error))
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

    def take_back_stream(self, req: Request) -> bool:
        """Take a waiting stream request out of the stream thread's hands (lock held: no
        call on it is under way), for ``cancel`` or its deadline; False if it is not
        waiting. The caller completes it with ``stream_done``."""
        key = (req[2], req[0])
        pending = self.stream_waiting.get(key)
        if pending is None:
            return False
        for i, other in enumerate(pending):
            if other is req:  # by identity: == would compare buffers and user_data
                del pending[i]
                break
        else:
            return False
        if not pending:
            del self.stream_waiting[key]
        self.wake_stream_thread()  # to poll without it
        return True

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
            close_quietly(efd)

    def run_streams(self, ready_fds: list[int]) -> dict[int, int]:
        """Retry the requests on ``ready_fds`` and try the new ones, oldest first per fd,
        each until one would block; return the poll events to wait for, by fd."""
        waiting = self.stream_waiting
        keys = self.stream_kick
        self.stream_kick = set()
        for fd in ready_fds:
            keys.add((fd, READ))
            keys.add((fd, WRITE))
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
        kind, dup, views, nbytes = req[0], req[2], req[4], req[5]
        nowait = RWF_NOWAIT
        if nowait is not None and dup not in self.stream_plain:
            try:
                result = (_preadv if kind == READ else _pwritev)(dup, views, -1, nowait)
            except BlockingIOError:
                return None
            except OSError as exc:
                if exc.errno not in _STREAM_NOWAIT_UNSUPPORTED:
                    return (0, os_error(exc.errno))
                self.stream_plain.add(dup)  # e.g. a tty: EOPNOTSUPP
            except Exception:  # e.g. MemoryError: report it, never kill the thread
                return (0, os_error(errno.EIO))
            else:
                return (result, None)
        try:
            return _plain_stream_call(kind, dup, views, nbytes)
        except Exception:
            return (0, os_error(errno.EIO))


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

    ``None`` when the fd is not ready. An ``O_NONBLOCK`` fd takes the call itself (it
    cannot wait; and a FIFO that never had a writer is at EOF though ``poll`` never says
    so, as io_uring's read finds). Otherwise only once ``poll`` says the fd is ready: a
    read asks for at most what ``FIONREAD`` reports (everything at EOF or when it reports
    nothing) and a write sends ``PIPE_BUF`` bytes at a time while the fd stays writable.
    """
    try:
        if not nbytes:
            done = 0
        elif not os.get_blocking(dup):
            done = (os.readv if kind == READ else os.writev)(dup, views)
        elif not _ready_now(dup, _STREAM_EVENTS[kind]):
            return None
        elif kind == READ:
            limit = _readable_bytes(dup)
            done = os.readv(dup, _window(views, 0, limit) if 0 < limit < nbytes else views)
        else:
            done = _write_while_ready(dup, views, nbytes)
    except BlockingIOError:
        return None
    except OSError as exc:
        return (0, os_error(exc.errno))
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


def _stream_main(ref: weakref.ref[Shared], efd: int) -> None:
    """The stream thread (see the module docstring) of one queue; ``efd`` wakes it.

    Closing the queue drops the waiting requests, writes to ``efd`` and closes it, all
    under the lock: from then on this thread only ends. A ``poll`` already under way may
    still look at the old numbers (POLLNVAL, or a file that took the number): that is
    harmless, and the timeout bounds how long such a poll can outlive the queue. While it
    polls, the thread holds nothing that keeps the queue alive (see ``SharedState``).
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
