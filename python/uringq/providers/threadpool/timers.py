"""Timers and deadlines on the threadpool provider: one timer thread per queue.

``prepare_timeout`` requests and the deadlines of timed requests (``timeout=``) go into
one heap of ``(when, seq, holder)`` per queue (``holder``: a list holding the request),
served by one daemon thread, the *timer thread*, started by the first entry and ended by
``close()``/``__exit__``/GC: never a thread per timer. It sleeps on a
:class:`threading.Event` until the earliest entry is due (at most a second at a time,
to notice a collected queue), then, under the queue lock, hands each due entry's request
to ``expire`` (see the chains module). A request that completes first empties its
holder (``Job.timer``), so the heap never keeps its buffers or user_data alive; the
empty entry is skipped when it comes up, and when such stale entries make up most of
the heap it is rebuilt without them, so deadlines far in the future on requests that
finished early cost no memory for long. While opens interrupted on a FIFO have not
finished, it wakes every ``REPOKE`` seconds to poke them again. While it sleeps the
thread holds nothing that keeps the queue alive (see ``SharedState``).
"""

from __future__ import annotations

import heapq
import threading
import time
from typing import TYPE_CHECKING

from uringq.providers.threadpool.fifos import REPOKE
from uringq.providers.threadpool.requests import Request
from uringq.providers.threadpool.workers import WorkerPool

if TYPE_CHECKING:
    import weakref

    from uringq.providers.threadpool.chains import Shared

__all__ = ["TimerThread"]

_POLL = 1.0  # the timer thread re-checks the queue at least this often (seconds)
_COMPACT_AT = 64  # stale entries tolerated before the heap may be rebuilt


class TimerThread(WorkerPool):
    """The timer thread's part of the shared state; every method runs with the lock held."""

    __slots__ = ()

    def schedule(self, when: float, req: Request) -> bool:
        """Have ``expire(req)`` called at ``when`` (``time.monotonic()``) unless ``req``
        completes first (``unschedule``); False if no timer thread can be started."""
        if self.timer_thread is None and not self.start_timer_thread():
            return False
        holder = [req]
        req[7].timer = holder
        entry = (when, next(self.timer_seq), holder)
        heap = self.timer_heap
        heapq.heappush(heap, entry)
        if heap[0] is entry:  # earlier than what the thread sleeps for
            self.timer_wake.set()
        return True

    def start_timer_thread(self) -> bool:
        thread = threading.Thread(
            target=_timer_main,
            args=(self.ref, self.timer_wake),
            name=f"uringq-threadpool-{self.efd}-timers",
            daemon=True,
        )
        try:
            thread.start()
        except RuntimeError:  # "can't start new thread"
            return False
        self.timer_thread = thread
        return True

    def unschedule(self, holder: list[Request]) -> None:
        """A request completed before its entry came up: let go of it (the entry stays,
        empty), and rebuild the heap once empty entries make up most of it."""
        if not holder:
            return  # its entry came up already
        holder.clear()
        self.timer_stale += 1
        heap = self.timer_heap
        if self.timer_stale > _COMPACT_AT and 2 * self.timer_stale > len(heap):
            heap[:] = [entry for entry in heap if entry[2]]
            heapq.heapify(heap)
            self.timer_stale = 0

    def run_timers(self) -> float | None:
        """Expire every due entry; return the seconds until the next one (None: none)."""
        heap = self.timer_heap
        now = time.monotonic()
        while heap and heap[0][0] <= now:
            holder = heapq.heappop(heap)[2]
            if holder:
                self.expire(holder.pop())
            else:
                self.timer_stale -= 1
        return heap[0][0] - now if heap else None

    def expire(self, req: Request) -> None:
        """A timer is due, or a deadline passed: see ``chains.Shared``."""
        raise NotImplementedError

    def repoke(self) -> None:
        """Poke the FIFOs of interrupted opens again: see ``chains.Shared``."""
        raise NotImplementedError

    def end_timers(self) -> None:
        """Drop every entry and wake the timer thread to end (the queue is closing)."""
        for entry in self.timer_heap:
            entry[2].clear()  # its request's job refers to it: no cycle may pin buffers
        self.timer_heap.clear()
        self.timer_stale = 0
        self.timer_wake.set()


def _timer_main(ref: weakref.ref[Shared], wake: threading.Event) -> None:
    """The timer thread of one queue (see the module docstring); ``wake`` wakes it."""
    while True:
        shared = ref()
        if shared is None:
            return
        with shared.lock:
            if shared.closed:
                return
            wake.clear()  # under the lock: a later schedule() sets it again
            delay = shared.run_timers()
            if shared.pokes:
                shared.repoke()
                delay = REPOKE if delay is None else min(delay, REPOKE)
        del shared
        wake.wait(_POLL if delay is None else min(delay, _POLL))
