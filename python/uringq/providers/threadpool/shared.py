"""The state a threadpool queue shares with its threads: lock, ready deque, eventfd.

One re-entrant lock guards the submission side and the counters; the ready deque is
appended to by workers without it (deque appends are atomic) and taken from only under
it. The eventfd is written when a completion or wakeup arrives and read by ``wait``
before it looks at the queue, so a waiter never sleeps through a completion and an
asyncio reader does not spin.

The state is built in layers, one module each: :class:`SharedState` here (the fields,
the eventfd and the delivery of completions), :class:`~.streams.StreamPoller` on it
(the stream thread), :class:`~.workers.WorkerPool` on that (the worker pool),
:class:`~.timers.TimerThread` (timers and deadlines) and :class:`~.chains.Shared`
(chains, deadlines and cancel), which is what a queue creates.

Every committed request that is not ready yet is in ``active`` (by ``id``) with its
place: the box a worker will take it from, or STREAM, TIMER or HELD (waiting behind an
earlier request of its chain), so that ``cancel`` can find it and a deadline can take it
back; requests completed inline at ``commit()`` never enter it.
"""

from __future__ import annotations

import itertools
import os
import threading
import weakref
from collections import deque
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any

from uringq.providers.threadpool.requests import Done, Request

if TYPE_CHECKING:
    from uringq.providers.threadpool.chains import Shared

__all__ = ["HELD", "STREAM", "TIMER_PLACE", "SharedState"]

# Where an active request is, besides a worker's box (a one-element list).
STREAM = "stream"  # waiting in the stream thread
TIMER_PLACE = "timer"  # a timer waiting for its time
HELD = "held"  # waiting behind an earlier request of its chain


class SharedState:
    """What the queue shares with its worker threads (which must not keep the queue alive).

    The threads hold it only weakly while they wait for work: its ready deque and waiting
    requests hold user_data, which may refer back to the queue, and a thread's frame is
    a root for the garbage collector, so a strong reference there would keep such a
    cycle alive for ever (as an unreaped completion whose user_data holds its queue).
    """

    __slots__ = (
        "__weakref__",
        "active",
        "adopted",
        "advancing",
        "busy",
        "cancelled",
        "chain_steps",
        "closed",
        "dispatched",
        "dups",
        "efd",
        "idle",
        "jobs",
        "lock",
        "max_workers",
        "nowait_off",
        "pokes",
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
        "timed",
        "timer_heap",
        "timer_seq",
        "timer_stale",
        "timer_thread",
        "timer_wake",
        "users",
        "workers",
    )

    # What the threads hold; set by Shared, whose collection tells idle workers to end.
    ref: weakref.ref[Shared]

    def __init__(self, efd: int, max_workers: int) -> None:
        self.lock = threading.RLock()
        self.idle = threading.Condition(self.lock)  # notified when dispatched drops to 0
        # (request, result, error): the Completion is built when it is returned, so that a
        # reference cycle through user_data stays visible to the garbage collector.
        self.ready: deque[Done] = deque()
        self.jobs: SimpleQueue[list[Request] | None] = SimpleQueue()  # boxes, see dispatch
        self.efd = efd
        self.dispatched = 0  # jobs handed to workers and not finished
        self.busy: dict[int, int] = {}  # fd -> requests in workers or batch calls using it
        self.users = 0  # threads inside wait() or read_many()/write_many()
        self.dups: dict[int, int] = {}  # registered fd -> our dup of it
        self.adopted: set[int] = set()  # registered fds used as their own dup (_adopt)
        # dups where RWF_NOWAIT never works, for reads and for writes
        self.nowait_off: tuple[set[int], set[int]] = (set(), set())
        self.cancelled = False
        self.closed = False
        self.released = False
        self.workers = 0
        self.max_workers = max_workers
        # Streams (see the streams module), all guarded by the lock.
        self.streams: dict[int, int] = {}  # registered dup that cannot seek -> 1 if a socket
        self.stream_plain: set[int] = set()  # stream dups without RWF_NOWAIT
        # (dup, kind) -> the requests waiting for that fd to be ready, oldest first
        self.stream_waiting: dict[tuple[int, int], deque[Request]] = {}
        self.stream_kick: set[tuple[int, int]] = set()  # keys with requests not tried yet
        self.stream_count = 0  # requests in stream_waiting
        self.stream_efd = -1  # wakes the stream thread; -1 while it does not run
        self.streaming = False  # the stream thread is in run_streams (it holds the lock)
        # Requests committed and not ready yet, by id: (request, place); see the module.
        self.active: dict[int, tuple[Request, Any]] = {}
        self.timed = 0  # of those, the ones with a deadline (two CQ entries each)
        # Timers (see the timers module): (when, seq, [request]) for timers and deadlines.
        self.timer_heap: list[tuple[float, int, list[Request]]] = []
        self.timer_seq = itertools.count()
        self.timer_stale = 0  # heap entries emptied by their request completing first
        self.timer_wake = threading.Event()  # wakes the timer thread
        self.timer_thread: threading.Thread | None = None
        # Chains to go on (see the chains module): (chain, from index, broken).
        self.chain_steps: deque[tuple[list[Any], int, bool]] = deque()
        self.advancing = False
        # Opens interrupted while blocked on a FIFO, by id, poked until they finish (see
        # the fifos module).
        self.pokes: dict[int, Request] = {}

    def signal(self) -> None:
        """Make the eventfd readable. Callers append to ``ready`` (or set a flag) first.

        Every signal writes and every reset reads: a "written already" flag would be set
        apart from the write (both drop the GIL) and could go stale, losing a wakeup.
        """
        try:  # noqa: SIM105 - hot path: no contextlib overhead
            os.eventfd_write(self.efd, 1)
        except BlockingIOError:  # counter saturated: it is readable anyway
            pass

    def deliver(self, done: Done) -> None:
        """A finished request (lock held): ready for ``wait``, and a linked, timed or
        operation request's chain goes on (see the chains module)."""
        if len(done[0]) > 7:
            self.job_done(done)
        elif not self.closed:
            self.ready.append(done)
            self.signal()

    def job_done(self, done: Done) -> None:
        """A request with a job finished (lock held): see ``chains.Shared``."""
        raise NotImplementedError

    def reset(self) -> None:
        """Drain the eventfd; callers look at ``ready`` and the flags afterwards."""
        try:  # noqa: SIM105 - hot path: no contextlib overhead
            os.eventfd_read(self.efd)
        except BlockingIOError:  # nothing written since the last reset
            pass
