"""``ThreadPoolQueue``: prepare, commit and wait on the threadpool provider.

Reads are tried inline at ``commit()`` with ``os.preadv(..., os.RWF_NOWAIT)``, which
succeeds at ``os.preadv`` speed when the data is in the page cache; anything else
(EAGAIN, EOPNOTSUPP, a short result), every write and every sync goes to the worker pool
(reads and writes on streams to the stream thread). A request that links to the next
one, has a deadline or is an operation takes the operations module's path instead, and
a commit holding one starts the chains (``_commit_chains``, the chains module).
``wait`` takes completions from the ready deque in one C call and, should a signal
handler raise (KeyboardInterrupt) anywhere before they are handed over, puts them back
at the front, so a Ctrl-C loses no completion: the next ``wait`` returns them.

The per-request paths (``prepare_read``, ``prepare_write``, the inline reads of
``commit`` and ``wait``) are written out in place rather than shared through helpers: a
Python call per request costs measurably at these rates (see ``python -m uringq bench``).
"""

from __future__ import annotations

import fcntl
import os
import select
import time
from collections.abc import Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any

from uringq._checks import MAX_FD as _MAX_FD
from uringq._checks import MAX_OFFSET as _MAX_OFFSET
from uringq._checks import buffer_views, flag, wait_limits
from uringq._checks import fd as _fd
from uringq._checks import offset as _offset
from uringq._checks import read_target as _read_target
from uringq._checks import write_source as _write_source
from uringq._completion import Completion
from uringq._errors import (
    HandleNotRegistered,
    Interrupted,
    QueueBusy,
    QueueClosed,
    QueueEmpty,
)
from uringq.providers.threadpool.operations import OperationCalls, split_chains
from uringq.providers.threadpool.requests import (
    CALL,
    FDATASYNC,
    FSYNC,
    NOWAIT_UNSUPPORTED,
    READ,
    RWF_NOWAIT,
    SLICE,
    WRITE,
    Done,
    Request,
    close_opened,
)
from uringq.providers.threadpool.shared import HELD
from uringq.providers.threadpool.streams import stream_kind

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from uringq._checks import HasFileno

__all__ = ["ThreadPoolQueue"]

_NEVER = object()
_preadv = os.preadv


class ThreadPoolQueue(OperationCalls):
    """A queue run by worker threads; see the package docstring and ``uringq.IoQueue``."""

    provider_id = "threadpool"

    # -- files ------------------------------------------------------------------------
    def register(self, fd: int | HasFileno) -> None:
        """Pin the open file: requests on ``fd`` use a private ``dup`` until deregister."""
        self._register(fd, adopt=False)

    def _adopt(self, fd: int | HasFileno) -> None:
        """``register(fd)`` without the ``dup``: requests use ``fd`` itself, which its owner
        (a ``uringq.aio`` file object) deregisters before it closes it."""
        self._register(fd, adopt=True)

    def _register(self, fd: int | HasFileno, *, adopt: bool) -> None:
        if not self._open:
            self._raise_unusable()
        number = _fd(fd)
        with self._lock:
            if not self._open:
                self._raise_unusable()
            if number in self._files:
                return
            shared = self._shared
            dup = number if adopt else fcntl.fcntl(number, fcntl.F_DUPFD_CLOEXEC, 0)
            try:
                stream = stream_kind(dup)  # its fstat raises EBADF for an adopted bad fd
            except BaseException:
                if not adopt:
                    os.close(dup)
                raise
            self._files[number] = dup
            if adopt:
                shared.adopted.add(dup)
            if stream is not None:
                # Reads and writes go to the stream thread; commit's inline pread (and a
                # batch's) would only fail with ESPIPE.
                shared.streams[dup] = stream
                shared.nowait_off[READ].add(dup)
                if RWF_NOWAIT is None:
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
            # Prepared, running in a worker, stream thread or batch, held in a chain, or
            # completed and not yet returned.
            shared = self._shared
            users = shared.busy.get(number, 0)
            users += sum(1 for req in self._prepared if req[1] == number)
            users += sum(1 for item in tuple(self._ready) if item[0][1] == number)
            users += sum(
                1
                for req, place in shared.active.values()
                if place is HELD and req[0] < CALL and req[1] == number
            )
            if users:
                raise QueueBusy(f"{users} request(s) on fd {number} are prepared or in flight")
            del self._files[number]
            for dups in shared.nowait_off:
                dups.discard(dup)
            shared.streams.pop(dup, None)
            shared.stream_plain.discard(dup)
            if dup in shared.adopted:
                shared.adopted.discard(dup)
            else:
                os.close(dup)

    # -- requests ---------------------------------------------------------------------
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
                or n >= self._sq_limit
                or n + self._in_flight >= self._cq_limit
            ) and self._full(fd, 1):
                # A caller may keep the exception: its traceback must not keep the
                # prepared requests (and their buffers) alive through this frame.
                del prepared, views
                self._refuse(fd)
            prepared.append((kind, fd, dup, offset, views, nbytes, user_data))
        finally:
            self._release()

    def prepare_read(
        self,
        fd: int | HasFileno,
        offset: int,
        buf: Buffer,
        user_data: Any = None,
        *,
        link: bool = False,
        hardlink: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Queue a read of ``len(buf)`` bytes at ``offset`` into ``buf``."""
        if link is not False or hardlink is not False or timeout is not None:
            extras = (link, hardlink, timeout)
            return self._prepare_linked(READ, fd, offset, buf, user_data, extras=extras)
        if not self._open:
            self._raise_unusable()
        if type(fd) is not int or not 0 <= fd <= _MAX_FD:
            fd = _fd(fd)
        if type(offset) is not int or not 0 <= offset <= _MAX_OFFSET:
            offset = _offset(offset)
        try:
            view = memoryview(buf)
        except TypeError:
            view = _read_target(buf)  # raises the documented error
        if view.readonly or not view.c_contiguous:
            view = _read_target(buf)  # raises the documented error
        # _queue's body written out: a Python call per request costs measurably here.
        self._acquire()
        try:
            prepared = self._prepared
            dup = self._files.get(fd)
            n = len(prepared)
            if (
                dup is None
                or not self._open
                or n >= self._sq_limit
                or n + self._in_flight >= self._cq_limit
            ) and self._full(fd, 1):
                del prepared, view  # see _queue: a kept traceback must pin nothing
                self._refuse(fd)
            prepared.append((READ, fd, dup, offset, (view,), view.nbytes, user_data))
        finally:
            self._release()

    def prepare_write(
        self,
        fd: int | HasFileno,
        offset: int,
        buf: Buffer,
        user_data: Any = None,
        *,
        link: bool = False,
        hardlink: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Queue a write of ``buf`` at ``offset``."""
        if link is not False or hardlink is not False or timeout is not None:
            extras = (link, hardlink, timeout)
            return self._prepare_linked(WRITE, fd, offset, buf, user_data, extras=extras)
        if not self._open:
            self._raise_unusable()
        if type(fd) is not int or not 0 <= fd <= _MAX_FD:
            fd = _fd(fd)
        if type(offset) is not int or not 0 <= offset <= _MAX_OFFSET:
            offset = _offset(offset)
        try:
            view = memoryview(buf)
        except TypeError:
            view = _write_source(buf)  # raises the documented error
        if not view.c_contiguous:
            view = _write_source(buf)  # raises the documented error
        # _queue's body written out: a Python call per request costs measurably here.
        self._acquire()
        try:
            prepared = self._prepared
            dup = self._files.get(fd)
            n = len(prepared)
            if (
                dup is None
                or not self._open
                or n >= self._sq_limit
                or n + self._in_flight >= self._cq_limit
            ) and self._full(fd, 1):
                del prepared, view  # see _queue: a kept traceback must pin nothing
                self._refuse(fd)
            prepared.append((WRITE, fd, dup, offset, (view,), view.nbytes, user_data))
        finally:
            self._release()

    def prepare_readv(
        self,
        fd: int | HasFileno,
        offset: int,
        bufs: Sequence[Buffer],
        user_data: Any = None,
        *,
        link: bool = False,
        hardlink: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Queue a scatter read filling ``bufs`` in order from ``offset``."""
        self._prepare_vectored(READ, fd, offset, bufs, user_data, extras=(link, hardlink, timeout))

    def prepare_writev(
        self,
        fd: int | HasFileno,
        offset: int,
        bufs: Sequence[Buffer],
        user_data: Any = None,
        *,
        link: bool = False,
        hardlink: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Queue a gather write of ``bufs`` in order from ``offset``."""
        self._prepare_vectored(WRITE, fd, offset, bufs, user_data, extras=(link, hardlink, timeout))

    def _prepare_vectored(
        self,
        kind: int,
        fd: int | HasFileno,
        offset: int,
        bufs: Sequence[Buffer],
        user_data: Any,
        *,
        extras: tuple[bool, bool, float | None],
    ) -> None:
        if extras[0] is not False or extras[1] is not False or extras[2] is not None:
            self._prepare_linked(kind, fd, offset, bufs, user_data, extras=extras, vectored=True)
            return
        if not self._open:
            self._raise_unusable()
        fd = _fd(fd)
        offset = _offset(offset)
        views, nbytes = buffer_views(bufs, writable=kind == READ)
        self._queue(kind, fd, offset, views, nbytes, user_data=user_data)

    def prepare_sync(
        self,
        fd: int | HasFileno,
        user_data: Any = None,
        *,
        datasync: bool = False,
        link: bool = False,
        hardlink: bool = False,
    ) -> None:
        """Queue an ``fsync`` (``fdatasync`` with ``datasync=True``)."""
        datasync = flag(datasync, "datasync")
        if link is not False or hardlink is not False:
            return self._prepare_linked_sync(fd, user_data, datasync, link, hardlink)
        if not self._open:
            self._raise_unusable()
        self._queue(FDATASYNC if datasync else FSYNC, _fd(fd), 0, (), 0, user_data=user_data)

    def commit(self) -> int:
        """Start every prepared request; return how many (``QueueEmpty`` if none)."""
        with self._lock:
            if not self._open:
                self._raise_unusable()
            batch = self._prepared
            if not batch:
                raise QueueEmpty("nothing prepared to commit")
            if self._special:
                return self._commit_chains(batch)
            self._prepared = []
            self._in_flight += len(batch)
            slow: list[Request] = []
            try:
                self._run_inline(batch, slow)  # one call per commit, never one per request
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
        nowait = RWF_NOWAIT
        if nowait is None:
            slow.extend(batch)
            return
        preadv = _preadv
        nowait_off = self._shared.nowait_off[READ]
        ready = self._ready.append
        to_slow = slow.append
        # preadv called here, not through execute(): a Python call per read costs measurably.
        for req in batch:
            if req[0] == READ and req[2] not in nowait_off:
                try:
                    n = preadv(req[2], req[4], req[3], nowait)
                except OSError as exc:
                    if exc.errno in NOWAIT_UNSUPPORTED:
                        nowait_off.add(req[2])
                    to_slow(req)
                    continue
                if n == req[5]:
                    ready((req, n, None))
                    continue
            to_slow(req)

    def _commit_chains(self, batch: list[Request]) -> int:
        """``commit`` of a batch where some request has a job (lock held): plain requests
        as usual, then the chains started (see the chains module)."""
        plain, chains, members = split_chains(batch)
        self._prepared = []
        self._special = False
        self._sq_limit = self._sq_entries
        self._in_flight += len(batch)
        shared = self._shared
        slow: list[Request] = []
        started: list[list[Request]] = []
        try:
            self._run_inline(plain, slow)
            started = chains
        except BaseException:
            self._put_back(batch, slow, members if started else set())
            raise
        finally:
            if slow:
                shared.dispatch(slow)
            if started:
                shared.start_chains(started)
            extra = self._sq_entries - self._sq_limit  # of requests put back
            self._cq_limit = self._cq_entries - extra - shared.timed
            if self._ready:
                shared.signal()
        return len(batch)

    def _put_back(
        self, batch: list[Request], slow: list[Request], chained: set[int] | None = None
    ) -> None:
        """After an exception mid-commit: un-commit what was neither completed nor
        dispatched nor started in a chain (``chained``: ids of the batch in chains)."""
        handed = {id(req) for req in slow}
        handed.update(id(item[0]) for item in tuple(self._ready))
        if chained:
            handed |= chained
        rest = [req for req in batch if id(req) not in handed]
        self._prepared[:0] = rest
        self._in_flight -= len(rest)
        jobs = [req[7] for req in self._prepared if len(req) > 7]
        self._special = bool(jobs)
        self._sq_limit = self._sq_entries - sum(1 for job in jobs if job.deadline is not None)

    # -- completions ------------------------------------------------------------------
    def wait(
        self, min_events: int = 1, max_events: int | None = None, timeout: float | None = None
    ) -> list[Completion]:
        """Return between ``min_events`` and ``max_events`` completions (see SPEC)."""
        if not self._open:
            self._raise_unusable()
        # The common call skips wait_limits(): a Python call per wait costs measurably.
        if (
            type(min_events) is int
            and 0 <= min_events <= _MAX_OFFSET
            and max_events is None
            and timeout is None
        ):
            low, high, seconds = min_events, None, None  # the common call, already valid
        else:
            low, high, seconds = wait_limits(min_events, max_events, timeout)
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
            try:
                done = [Completion(req[6], result, error) for req, result, error in taken]
            except ValueError:  # a statx's completion carries a fourth field, its stat
                done = [Completion(item[0][6], *item[1:]) for item in taken]
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
            elif shared.closed:
                close_opened(taken)  # closed meanwhile: nobody will receive these fds
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
                    poller.poll(SLICE * 1000)
                else:
                    remaining = deadline - time.monotonic()
                    if remaining > 0:
                        poller.poll(min(remaining, SLICE) * 1000 + 1)  # +1: never a busy 0 ms
            finally:
                acquire()
            if shared.closed:
                if self._forked:
                    self._raise_unusable()
                raise QueueClosed("the queue was closed during wait()", [])
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
