"""The worker pool of a threadpool queue: daemon threads that run the plain blocking calls.

Every request that cannot complete inline at ``commit()`` (a read the page cache cannot
serve now, every write and sync) and every chunk of a batch goes to a small pool of
worker threads, started on first use and never more than ``max_workers``; reads and
writes on streams go to the stream thread instead (see the streams module). The eventfd
and the registered ``dup()``s are closed only when no worker, waiter or batch call can
still use them (``release_if_idle``).

A job travels to the workers in a *box*, a one-element list: the worker that gets it
takes the request out with ``list.pop`` before running it, and ``cancel`` or a deadline
takes a request that has not started back the same way, so exactly one of them wins
(``pop`` is atomic) and the loser finds the box empty.
"""

from __future__ import annotations

import threading
import weakref
from functools import partial
from queue import SimpleQueue
from typing import TYPE_CHECKING

from uringq.providers.threadpool.requests import (
    CALL,
    WRITE,
    Done,
    Request,
    close_opened,
    close_quietly,
    execute,
)
from uringq.providers.threadpool.streams import StreamPoller

if TYPE_CHECKING:
    from uringq.providers.threadpool.chains import Shared

__all__ = ["MAX_WORKERS", "WorkerPool"]

MAX_WORKERS = 8


class WorkerPool(StreamPoller):
    """The worker pool's part of the shared state."""

    __slots__ = ()

    def __init__(self, efd: int, max_workers: int) -> None:
        super().__init__(efd, max_workers)
        # What the threads hold; once the queue is collected, idle workers (and the timer
        # thread) are told to end.
        self.ref = weakref.ref(
            self,  # type: ignore[arg-type]  # a Shared: only Shared is ever created
            partial(_end_threads, self.jobs, max_workers, self.timer_wake),
        )

    def __del__(self) -> None:
        # Collected before the last request finished (a worker found it gone and dropped
        # its job, see _worker_main): nothing can use the fds any more.
        if not self.released:
            self.released = True
            self.close_fds()
        close_opened(self.ready)  # completions nobody can take any more
        self.ready.clear()

    def dispatch(self, jobs: list[Request]) -> None:
        """Hand ``jobs`` to the workers (lock held), starting them on first use.

        Reads and writes on streams go to the stream thread instead. ``jobs`` are all
        requests or all batch chunks (a batch dispatches its chunks alone).
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
        boxes = [[job] for job in jobs]
        if jobs[0][0] != CALL:
            # Registered for cancel and deadlines in C loops: per job, Python costs.
            self.active.update(zip(map(id, jobs), zip(jobs, boxes, strict=True), strict=True))
            busy = self.busy
            for job in jobs:
                if job[0] < CALL:
                    busy[job[1]] = busy.get(job[1], 0) + 1
        if not self.workers:  # no thread could be started: run the jobs here, never lose one
            for box in boxes:
                self.finish(box)
            return
        put = self.jobs.put
        for box in boxes:
            put(box)

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
        """Run the job in ``box`` in a worker thread and account for it, unless ``cancel``
        or a deadline took it back first (then the box is empty and they accounted).

        The job is taken out of ``box`` and the result moved into ``ready`` under the
        lock, so once a waiter returns the completion no reference to its buffers or
        user_data is left behind in this thread. ``deliver`` and ``worker_done`` are
        written out here: a Python call per job costs measurably (and holds the lock).
        """
        try:
            job = box.pop()
        except IndexError:
            return
        kind = job[0]
        done: list[Done] = []
        try:
            if kind == CALL:
                job[1]()
            elif not self.cancelled:
                done.append(execute(job))
            elif len(job) > 7 and job[7].closes:
                execute(job)  # committed, as a close in the kernel is: the fd never leaks
        finally:
            with self.lock:
                if done:  # before dispatched drops: the eventfd is still open
                    if len(job) > 7:
                        item = done.pop()
                        if job[7].interrupted:
                            item = self.interrupted_done(item)
                        self.job_done(item)
                    elif not self.closed:
                        self.ready.append(done.pop())
                        self.signal()
                if kind != CALL:
                    if kind < CALL:
                        fd = job[1]
                        left = self.busy[fd] - 1
                        if left:
                            self.busy[fd] = left
                        else:
                            del self.busy[fd]
                    self.active.pop(id(job), None)
                del job
                self.dispatched -= 1
                if not self.dispatched:
                    self.idle.notify_all()
                    self.release_if_idle()

    def interrupted_done(self, item: Done) -> Done:
        """The completion of an open interrupted while it ran (see the fifos module): the
        fd it got is closed, the error is the interruption's (lock held)."""
        req = item[0]
        self.pokes.pop(id(req), None)
        if item[2] is None:
            close_quietly(item[1])
        return (req, 0, req[7].error(req[7].interrupted))

    def worker_done(self, job: Request) -> None:
        """The books of a job taken back from the workers (lock held; ``finish`` does
        the same in place)."""
        kind = job[0]
        if kind != CALL:
            if kind < CALL:
                fd = job[1]
                left = self.busy[fd] - 1
                if left:
                    self.busy[fd] = left
                else:
                    del self.busy[fd]
            self.active.pop(id(job), None)
        self.dispatched -= 1
        if not self.dispatched:
            self.idle.notify_all()
            self.release_if_idle()

    def take_back_job(self, job: Request, box: list[Request]) -> bool:
        """Take a job that has not started out of its box (lock held), for ``cancel`` or
        its deadline; False if a worker has it already. The caller completes it."""
        try:
            box.pop()
        except IndexError:
            return False
        self.worker_done(job)
        return True

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
            if dup not in self.adopted:
                close_quietly(dup)
        self.dups.clear()
        self.adopted.clear()
        close_quietly(self.efd)
        self.end_stream_thread()


def _worker_main(ref: weakref.ref[Shared], jobs: SimpleQueue[list[Request] | None]) -> None:
    get = jobs.get
    while True:
        box = get()  # a job, handed over (see finish), or None: end
        if box is None:
            return
        shared = ref()
        if shared is None:  # collected (its __del__ cancelled the job)
            return
        shared.finish(box)
        del shared, box  # hold the queue only while running a job


def _end_threads(
    jobs: SimpleQueue[list[Request] | None], workers: int, timer: threading.Event, _: object
) -> None:
    """Once the shared state is collected: tell the workers waiting for jobs, and the
    timer thread, to end."""
    for _ in range(workers):
        jobs.put(None)
    timer.set()
