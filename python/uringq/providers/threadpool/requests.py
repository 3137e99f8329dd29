"""Requests as the threadpool provider keeps them, and the plain blocking calls that run them.

A request is the tuple ``(kind, fd, dup, offset, views, nbytes, user_data)``: ``fd`` is
the number the caller registered, ``dup`` the queue's private ``dup()`` of it, ``views``
the byte views of the buffers. A batch chunk is ``(CALL, callable)``. A finished request
waits in the ready deque as ``(request, result, error)`` (``Done``) until ``wait``
returns it as a ``Completion``.
"""

from __future__ import annotations

import contextlib
import errno
import os
from typing import Any, TypeAlias

__all__ = [
    "CALL",
    "FDATASYNC",
    "FSYNC",
    "NOWAIT_UNSUPPORTED",
    "READ",
    "RWF_NOWAIT",
    "SLICE",
    "WRITE",
    "Done",
    "Request",
    "close_quietly",
    "execute",
    "os_error",
]

# Request kinds.
READ = 0  # os.preadv (read and readv); on a stream, the file position
WRITE = 1  # os.pwritev (write and writev); on a stream, the file position
FSYNC = 2
FDATASYNC = 3
CALL = 4

Request: TypeAlias = tuple[Any, ...]
Done: TypeAlias = tuple[Request, int, OSError | None]  # a finished request, not yet returned

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


def execute(req: Request) -> Done:
    """Run one request with the plain blocking call; errors become completion errors."""
    kind, _, dup, offset, views, _, _ = req
    try:
        if kind == READ:
            result = _preadv(dup, views, offset)
        elif kind == WRITE:
            result = _pwritev(dup, views, offset)
        elif kind == FSYNC:
            os.fsync(dup)
            result = 0
        else:
            os.fdatasync(dup)
            result = 0
    except OSError as exc:
        return (req, 0, os_error(exc.errno))
    except Exception:  # e.g. MemoryError: report it, never kill the worker
        return (req, 0, os_error(errno.EIO))
    return (req, result, None)
