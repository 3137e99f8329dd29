"""A threadpool queue's state and life cycle: creation, counters, closing, GC and fork.

Closing (``close``, ``__exit__``, garbage collection) cancels as io_uring does: nothing
new starts, workers drop what they have not run, waiting stream requests, timers and the
rest of chains are dropped, the timer thread ends, an open blocked on a FIFO is
interrupted (see the fifos module), an fd opened for a completion nobody
will receive is closed, and a waiter in another thread wakes up and raises
``QueueClosed``; the fds are closed once no thread can use them any more (see the
workers module). After ``fork()`` the
child's copy of a queue is unusable: it can only be closed, which releases the child's
own fds and never waits for the parent's threads.
"""

from __future__ import annotations

import errno
import os
import sys
import threading
import weakref
from typing import NoReturn

from uringq._checks import flag, queue_sizes
from uringq._errors import FORKED, QueueBusy, QueueClosed
from uringq.providers.threadpool.chains import Shared
from uringq.providers.threadpool.fifos import REPOKE
from uringq.providers.threadpool.requests import SLICE, Request, close_opened, close_quietly
from uringq.providers.threadpool.workers import MAX_WORKERS

__all__ = ["QueueLifecycle"]

_live: weakref.WeakSet[QueueLifecycle] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for queue in list(_live):
        queue._forked_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class QueueLifecycle:
    """The state of a ``ThreadPoolQueue`` and its life cycle (its base class)."""

    def __init__(self, sq_entries: int, cq_entries: int) -> None:
        self._sq_entries, self._cq_entries = queue_sizes(sq_entries, cq_entries)
        efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._shared = shared = Shared(efd, min(MAX_WORKERS, self._sq_entries))
        self._lock = shared.lock
        self._acquire = shared.lock.acquire
        self._release = shared.lock.release
        self._ready = shared.ready
        self._files = shared.dups
        self._prepared: list[Request] = []
        # What prepare_* checks capacity against: the sizes less the second entry of each
        # prepared request with a deadline (and, for the CQ, of each committed one not
        # complete: shared.timed, counted here as of the last refresh, see _full).
        self._sq_limit = self._sq_entries
        self._cq_limit = self._cq_entries
        self._special = False  # a prepared request links, has a deadline or is an operation
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
            raise RuntimeError(FORKED)
        raise QueueClosed("the queue is closed")

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

    # -- closing ----------------------------------------------------------------------
    def close(self, *, cancel: bool = False) -> None:
        """Free the queue (``QueueBusy`` unless idle); ``cancel=True`` drops what is pending.

        With ``cancel``, prepared and queued requests are dropped and the requests workers
        are running are waited for, so no buffer is still in use when this returns.
        """
        cancel = flag(cancel, "cancel")
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
                if shared.pokes:  # opens blocked on a FIFO: poke until they return
                    shared.repoke()
                    shared.idle.wait(REPOKE)
                else:
                    shared.idle.wait(SLICE)
            self._ready.clear()
            shared.release_if_idle()
        timers = shared.timer_thread
        if timers is not None and timers is not threading.current_thread():
            timers.join(5.0)  # woken by _shut: it ends as soon as it gets the lock

    def _shut(self, shared: Shared) -> None:
        """Mark closed (lock held): nothing new starts, workers drop what they have not run."""
        self._open = False
        shared.closed = True
        shared.cancelled = True
        self._prepared = []
        self._special = False
        self._in_flight = 0
        self._wakeup_pending = False
        self._registered_buffer = None
        shared.signal()  # a waiter in another thread wakes up and sees the queue closed
        shared.drop_streams()  # and the stream thread ends
        shared.end_timers()  # and the timer thread
        for req, place in shared.active.values():
            if len(req) > 7:
                req[7].rest = None  # the rest of its chain: dropped now, not at a GC
                running = isinstance(place, list) and not place  # a worker took it
                if running and req[7].opening is not None:  # an open that may block
                    shared.interrupt(req, errno.ECANCELED)
        shared.active.clear()  # chains held, timers and queued jobs: dropped
        shared.chain_steps.clear()
        shared.timed = 0
        close_opened(self._ready)
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
        close_opened(self._ready)  # the child's copies of fds opened for the parent
        self._ready.clear()
        shared.active.clear()
        shared.timer_heap.clear()
        shared.stream_waiting.clear()
        shared.stream_kick.clear()
        if shared.stream_efd >= 0:  # the parent's stream thread shares it: close, no wake
            close_quietly(shared.stream_efd)
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
