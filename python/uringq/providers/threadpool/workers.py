"""The worker pool of a threadpool queue: daemon threads that run the plain blocking calls.

Every request that cannot complete inline at ``commit()`` (a read the page cache cannot
serve now, every write and sync) and every chunk of a batch goes to a small pool of
worker threads, started on first use and never more than ``max_workers``; reads and
writes on streams go to the stream thread instead (see the streams module). The eventfd
and the registered ``dup()``s are closed only when no worker, waiter or batch call can
still use them (``release_if_idle``).
"""

from __future__ import annotations

import threading
import weakref
from functools import partial
from queue import SimpleQueue
from typing import Any

from uringq.providers.threadpool.requests import (
    CALL,
    WRITE,
    Done,
    Request,
    close_quietly,
    execute,
)
from uringq.providers.threadpool.streams import StreamPoller

__all__ = ["MAX_WORKERS", "Shared"]

MAX_WORKERS = 8


class Shared(StreamPoller):
    """The shared state complete, worker pool included: what a queue creates."""

    __slots__ = ()

    def __init__(self, efd: int, max_workers: int) -> None:
        super().__init__(efd, max_workers)
        # What the threads hold; once the queue is collected, idle workers are told to end.
        self.ref = weakref.ref(self, partial(_end_workers, self.jobs, max_workers))

    def __del__(self) -> None:
        # Collected before the last request finished (a worker found it gone and dropped
        # its job, see _worker_main): nothing can use the fds any more.
        if not self.released:
            self.released = True
            self.close_fds()

    def dispatch(self, jobs: list[Request]) -> None:
        """Hand ``jobs`` to the workers (lock held), starting them on first use.

        Reads and writes on streams go to the stream thread instead.
        """
        streams = self.streams
        if streams:
            files = [job for job in jobs if job[0] > WRITE or job[2] not in streams]
            if len(files) < len(jobs):
                self.submit_streams([job for job in jobs if job[0] <= WRITE and job[2] in streams])
                jobs = files
                if not jobs:
                    return
        self.start_workers()
        self.dispatched += len(jobs)
        busy = self.busy
        for job in jobs:
            if job[0] != CALL:
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
            if kind == CALL:
                box.pop()[1]()
            elif self.cancelled:
                box.clear()
            else:
                done.append(execute(box.pop()))
        finally:
            with self.lock:
                if done and not self.cancelled:
                    self.ready.append(done.pop())
                    self.signal()  # before dispatched drops: the eventfd is still open
                done.clear()
                if kind != CALL:
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
            close_quietly(dup)
        self.dups.clear()
        close_quietly(self.efd)
        self.end_stream_thread()


def _worker_main(ref: weakref.ref[Shared], jobs: SimpleQueue[Request | None]) -> None:
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
