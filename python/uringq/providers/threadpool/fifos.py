"""Interrupting an open that blocks on a FIFO without its peer (the threadpool provider).

``open(2)`` of a FIFO for reading waits for a writer, for writing waits for a reader, and
a worker thread inside it cannot be stopped. So when a deadline passes, ``cancel()``
matches or ``close(cancel=True)`` finds such an open running, the open is *interrupted*:
its job is marked with the errno it completes with (ETIMEDOUT or ECANCELED) and the FIFO
is *poked*, its other end opened with ``O_NONBLOCK`` and closed at once, which makes the
blocked ``open`` return. The worker then closes the fd it got and completes the request
with the mark's error (see ``WorkerPool.finish``). A poke can land before the worker
enters ``open`` (it then waits again), so it is repeated every ``REPOKE`` seconds until
the job has finished (by the timer thread, or the close loop once the queue closes).

Only FIFOs are poked (``os.stat`` following symlinks, as the open does, at the first
poke only): nothing is added to the normal open path. Other opens that can block (a tty
waiting for carrier, a hung NFS server) keep their worker until they return by
themselves; their deadline and cancel then behave as for any running request.

A poke is seen by every opener of that FIFO waiting at that moment, as a peer that came
and went: another open waiting on it (in this queue or elsewhere) returns as well, and
its first read finds EOF (its first write EPIPE), as with any peer that closes at once.
"""

from __future__ import annotations

import os
import stat

from uringq.providers.threadpool.requests import close_quietly

__all__ = ["REPOKE", "Opening", "may_block"]

REPOKE = 0.03  # seconds between two pokes of an open still blocked

_NEVER_BLOCKS = os.O_NONBLOCK | getattr(os, "O_PATH", 0)


def may_block(flags: int) -> bool:
    """True for open flags that wait on a FIFO: read-only or write-only, blocking
    (``O_RDWR`` never waits on Linux)."""
    return flags & os.O_ACCMODE != os.O_RDWR and not flags & _NEVER_BLOCKS


class Opening:
    """What a poke needs to know of an open that may block on a FIFO."""

    __slots__ = ("dir_fd", "fifo", "flags", "path")

    def __init__(self, path: bytes, flags: int, dir_fd: int | None) -> None:
        self.path = path
        self.flags = flags
        self.dir_fd = dir_fd
        self.fifo: bool | None = None  # unknown until the first poke

    def poke(self) -> bool:
        """Open the other end of the FIFO without blocking and close it; False when the
        path is no FIFO (nothing to poke, ever)."""
        if self.fifo is None:
            try:
                self.fifo = stat.S_ISFIFO(os.stat(self.path, dir_fd=self.dir_fd).st_mode)
            except OSError:
                self.fifo = False  # gone or unreachable: the open fails by itself
        if not self.fifo:
            return False
        other = os.O_WRONLY if self.flags & os.O_ACCMODE == os.O_RDONLY else os.O_RDONLY
        try:
            fd = os.open(self.path, other | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=self.dir_fd)
        except OSError:
            return True  # ENXIO: the reader is not in open() yet; the next poke finds it
        close_quietly(fd)
        return True
