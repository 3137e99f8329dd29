"""Requests as the threadpool provider keeps them, and the plain blocking calls that run them.

A request is the tuple ``(kind, fd, dup, offset, views, nbytes, user_data)``: ``fd`` is
the number the caller registered, ``dup`` the queue's private ``dup()`` of it, ``views``
the byte views of the buffers. A request that links to the next one, has a deadline or
is an operation (open, close, statx, a timer, a path operation) carries an eighth field,
its :class:`~.jobs.Job`; an operation has ``fd`` and ``dup`` -1. A batch chunk is
``(CALL, callable)``. A finished request waits in the ready deque as
``(request, result, error)`` (``Done``; a statx adds its ``os.stat_result``) until
``wait`` returns it as a ``Completion``.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterable
from typing import Any, TypeAlias

__all__ = [
    "CALL",
    "FDATASYNC",
    "FSYNC",
    "HARD",
    "NOWAIT_UNSUPPORTED",
    "OPERATION",
    "READ",
    "RWF_NOWAIT",
    "SLICE",
    "SOFT",
    "TIMER",
    "UNLINKED",
    "WRITE",
    "Done",
    "Request",
    "close_opened",
    "close_quietly",
    "execute",
    "os_error",
]

# Request kinds. Below CALL: data requests on a registered fd.
READ = 0  # os.preadv (read and readv); on a stream, the file position
WRITE = 1  # os.pwritev (write and writev); on a stream, the file position
FSYNC = 2
FDATASYNC = 3
CALL = 4  # a chunk of a batch
OPERATION = 5  # a system call on paths or any fd: the job's call
TIMER = 6  # completes after the job's delay

# How a request joins the next one of its chain (Job.link).
UNLINKED = 0
SOFT = 1  # link=True: the next one starts once this one completed in full
HARD = 2  # hardlink=True: the next one starts once this one completed

Request: TypeAlias = tuple[Any, ...]
Done: TypeAlias = tuple[Any, ...]  # (request, result, error[, stat]), not yet returned

SLICE = 0.1  # longest sleep before Python's signal handlers get a chance to run
RWF_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)
# errnos that say "this file never does RWF_NOWAIT", as opposed to "not right now"
NOWAIT_UNSUPPORTED = frozenset({errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS})
_preadv = os.preadv
_pwritev = os.pwritev


def os_error(code: int | None) -> OSError:
    """A fresh ``OSError`` (mapped to its subclass), with no traceback keeping frames alive."""
    code = code or errno.EIO
    return OSError(code, os.strerror(code))


def close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def close_opened(items: Iterable[Done]) -> None:
    """Close the fds that successful opens among ``items`` produced: nobody will get them."""
    for item in items:
        req = item[0]
        if len(req) > 7 and req[7].opens and item[2] is None:
            close_quietly(item[1])


def execute(req: Request) -> Done:
    """Run one request with the plain blocking call; errors become completion errors."""
    kind = req[0]
    try:
        if kind == READ:
            result = _preadv(req[2], req[4], req[3])
        elif kind == WRITE:
            result = _pwritev(req[2], req[4], req[3])
        elif kind == FSYNC:
            os.fsync(req[2])
            result = 0
        elif kind == FDATASYNC:
            os.fdatasync(req[2])
            result = 0
        else:
            value = req[7].call()
            if value is None:
                result = 0
            elif type(value) is int:
                result = value  # the fd an open produced
            else:
                return (req, 0, None, value)  # the os.stat_result of a statx
    except OSError as exc:
        return (req, 0, req[7].error(exc.errno) if len(req) > 7 else os_error(exc.errno))
    except Exception:  # e.g. MemoryError: report it, never kill the worker
        return (req, 0, req[7].error(errno.EIO) if len(req) > 7 else os_error(errno.EIO))
    return (req, result, None)
