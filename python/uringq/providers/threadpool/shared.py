"""The state a threadpool queue shares with its threads: lock, ready deque, eventfd.

One re-entrant lock guards the submission side and the counters; the ready deque is
appended to by workers without it (deque appends are atomic) and taken from only under
it. The eventfd is written when a completion or wakeup arrives and read by ``wait``
before it looks at the queue, so a waiter never sleeps through a completion and an
asyncio reader does not spin.

The state is built in layers, one module each: :class:`SharedState` here (the fields
and the eventfd), :class:`~.streams.StreamPoller` on it (the stream thread) and
:class:`~.workers.Shared` on that (the worker pool), which is what a queue creates.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import deque
from queue import SimpleQueue
from typing import TYPE_CHECKING

from uringq.providers.threadpool.requests import Done, Request

if TYPE_CHECKING:
    from uringq.providers.threadpool.workers import Shared

__all__ = ["SharedState"]


class SharedState:
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

    # What the threads hold; set by Shared, whose collection tells idle workers to end.
    ref: weakref.ref[Shared]

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
        # Streams (see the streams module), all guarded by the lock.
        self.streams: dict[int, int] = {}  # registered dup that cannot seek -> 1 if a socket
        self.stream_plain: set[int] = set()  # stream dups without RWF_NOWAIT
        # (dup, kind) -> the requests waiting for that fd to be ready, oldest first
        self.stream_waiting: dict[tuple[int, int], deque[Request]] = {}
        self.stream_kick: set[tuple[int, int]] = set()  # keys with requests not tried yet
        self.stream_count = 0  # requests in stream_waiting
        self.stream_efd = -1  # wakes the stream thread; -1 while it does not run
        self.streaming = False  # the stream thread is in run_streams (it holds the lock)

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
