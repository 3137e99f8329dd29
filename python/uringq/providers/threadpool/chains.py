"""Chains, deadlines and cancel on the threadpool provider: the shared state complete.

A *chain* is the run of requests linked by ``link=True``/``hardlink=True``, ending at the
first request without a flag or at the end of a ``commit()``. Chains run by
continuation: ``commit`` starts the first request where it would run alone (a worker,
the stream thread, the timer thread) and marks the rest HELD; whichever thread completes
a request (under the queue lock) starts the next one the same way, or completes the
rest with ECANCELED when a ``link=True`` request failed or transferred fewer bytes than
asked. So no thread ever waits for a chain: a stream read in a chain waits in the stream
thread like any stream request, a timer in the timer thread, and requests of different
chains run concurrently. Continuations are queued and run in a loop, never recursively,
so a chain of any length costs no stack.

A *deadline* (``timeout=``) is an entry in the timer heap, armed when the request
starts. When it passes first, a request still waiting for a worker or in the stream
thread is taken back and completes with ``ETIMEDOUT``; one a worker is running a
blocking call for completes with its own result, as io_uring's kernel workers do,
except an open blocked on a FIFO without its peer, which is interrupted and completes
with ``ETIMEDOUT`` (``ECANCELED`` for ``cancel``; see the fifos module).

``cancel`` finds requests through ``active`` (see the shared module): one waiting for a
worker, in the stream thread or as a timer completes with ``ECANCELED`` at once; one
HELD in its chain is marked and completes with ``ECANCELED`` when its turn comes (and,
behind a ``link=True``, breaks its chain); one running (but an open blocked on a FIFO),
or complete, keeps its result.
(On io_uring a request in a kernel chain behind an unfinished one cannot be reached:
that is the one difference.)
"""

from __future__ import annotations

import errno
import time
from collections.abc import Sequence
from typing import Any

from uringq.providers.threadpool.requests import (
    SOFT,
    TIMER,
    UNLINKED,
    WRITE,
    Done,
    Request,
    close_quietly,
    os_error,
)
from uringq.providers.threadpool.shared import HELD, STREAM, TIMER_PLACE
from uringq.providers.threadpool.timers import TimerThread

__all__ = ["Shared"]


class Shared(TimerThread):
    """The shared state complete (streams, workers, timers, chains): what a queue creates.

    Every method runs with the lock held.
    """

    __slots__ = ()

    # -- starting -------------------------------------------------------------------------
    def start_chains(self, chains: Sequence[list[Request]]) -> None:
        """Start committed chains (every request carries a job): the first request runs,
        the rest is HELD behind it. A chain ends with its commit."""
        active = self.active
        for chain in chains:
            chain[-1][7].link = UNLINKED
            for req in chain:
                if req[7].deadline is not None:
                    self.timed += 1
                active[id(req)] = (req, HELD)
            self.advance(chain, 0, False)

    def start(self, req: Request) -> None:
        """Start one request of a chain where it runs alone, arming its deadline."""
        job = req[7]
        if req[0] == TIMER:
            self.active[id(req)] = (req, TIMER_PLACE)
            if not self.schedule(time.monotonic() + job.delay, req):
                self.job_done((req, 0, os_error(errno.EAGAIN)))  # no timer thread
            return
        self.dispatch([req])
        # Not armed if it completed at once, or if no timer thread can start (it then
        # runs to its end: nothing is lost).
        if job.deadline is not None and id(req) in self.active:
            self.schedule(time.monotonic() + job.deadline, req)

    # -- completing ------------------------------------------------------------------------
    def job_done(self, done: Done) -> None:
        """A request with a job finished: its completion is ready, its chain goes on."""
        req = done[0]
        job = req[7]
        self.active.pop(id(req), None)
        if job.deadline is not None:
            self.timed -= 1
        if job.timer is not None:
            self.unschedule(job.timer)
            job.timer = None
        if self.closed:
            if job.opens and done[2] is None:
                close_quietly(done[1])  # nobody will receive this fd
            return
        self.ready.append(done)
        self.signal()
        rest = job.rest
        if rest is not None:
            job.rest = None
            chain, index = rest
            error = done[2]
            short = req[0] <= WRITE and error is None and done[1] != req[5]
            self.advance(chain, index, job.link == SOFT and (error is not None or short))

    def advance(self, chain: list[Any], index: int, broken: bool) -> None:
        """Go on with a chain from ``chain[index]``: start that request, or complete the
        rest with ECANCELED (``broken``: a ``link=True`` request before it failed or was
        short). Re-entered from a request that completes at once, it queues the work for
        the loop already running, so a long chain never recurses."""
        self.chain_steps.append((chain, index, broken))
        if self.advancing:
            return
        self.advancing = True
        try:
            while self.chain_steps:
                self.next_step(*self.chain_steps.popleft())
        finally:
            self.advancing = False

    def next_step(self, chain: list[Any], index: int, broken: bool) -> None:
        for i in range(index, len(chain)):
            req = chain[i]
            chain[i] = None  # the chain keeps only what has not started (see job_done)
            job = req[7]
            if broken or job.cancelled:
                # Never runs. Cancelled while HELD, it breaks the chain as a failure does.
                self.job_done((req, 0, job.error(errno.ECANCELED)))
                broken = broken or job.link == SOFT
                continue
            if i + 1 < len(chain):
                job.rest = (chain, i + 1)
            self.start(req)
            return

    # -- deadlines and cancel -----------------------------------------------------------------
    def expire(self, req: Request) -> None:
        """From the timer thread: a timer is due (it completes with 0), or a deadline
        passed (the request completes with ETIMEDOUT unless it already runs)."""
        entry = self.active.get(id(req))
        if entry is None:
            return  # completed meanwhile
        if req[0] == TIMER:
            self.job_done((req, 0, None))  # an expired timer is a success
        else:
            self.take_back(req, entry[1], errno.ETIMEDOUT)

    def cancel_request(self, req: Request) -> None:
        """``cancel`` matched ``req`` (see the module docstring)."""
        entry = self.active.get(id(req))
        if entry is None:
            return  # complete already: it keeps its result
        place = entry[1]
        if place is HELD:
            req[7].cancelled = True
        elif place is TIMER_PLACE:
            self.job_done((req, 0, os_error(errno.ECANCELED)))
        else:
            self.take_back(req, place, errno.ECANCELED)

    def take_back(self, req: Request, place: object, code: int) -> None:
        """Complete ``req`` with ``code`` if it is still waiting for a worker (``place``
        is its box) or in the stream thread; one already running keeps its result."""
        error = req[7].error(code) if len(req) > 7 else os_error(code)
        if place is STREAM:
            if self.take_back_stream(req):
                self.stream_done(req, 0, error)
        elif isinstance(place, list):
            if self.take_back_job(req, place):
                self.deliver((req, 0, error))
            elif len(req) > 7 and req[7].opening is not None:
                self.interrupt(req, code)

    def interrupt(self, req: Request, code: int) -> None:
        """A worker runs the open ``req``, which may block on a FIFO: make it complete
        with ``code`` and poke the FIFO until it does (see the fifos module)."""
        job = req[7]
        if job.interrupted:
            return  # a deadline or cancel got there first
        job.interrupted = code
        if not job.opening.poke():
            job.interrupted = 0  # no FIFO: it runs to its own result, as any request
            return
        self.pokes[id(req)] = req
        if self.closed:
            return  # the close loop pokes again
        if self.timer_thread is None:
            self.start_timer_thread()  # or one poke only: no thread can start
        self.timer_wake.set()

    def repoke(self) -> None:
        """Poke again every interrupted open not finished (lock held)."""
        for req in list(self.pokes.values()):
            req[7].opening.poke()

    def in_flight_requests(self) -> list[Request]:
        """Every request committed whose completion was not returned: the candidates of
        ``cancel``."""
        found = [entry[0] for entry in self.active.values()]
        found.extend(item[0] for item in self.ready)
        return found
