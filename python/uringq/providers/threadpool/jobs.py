"""Jobs: what a request carries beyond a plain data request, and the operations' calls.

A :class:`Job` rides as the eighth field of a request tuple (see the requests module)
when the request links to the next one, has a deadline, or is an operation. It holds the
link, the deadline, the operation's system call and the names its errors carry, and,
while the request runs, the rest of its chain. The calls are the ``os`` functions with
the arguments checked and encoded at ``prepare_*`` time, so they behave as the io_uring
provider's opcodes do (``O_CLOEXEC`` added to every open, modes masked to ``0o7777``).
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable
from functools import partial
from typing import Any

from uringq.providers.threadpool.fifos import Opening
from uringq.providers.threadpool.requests import Request

__all__ = ["Job", "linkat", "stat_fd"]

AT_FDCWD = -100
_AT_SYMLINK_FOLLOW = 0x400
_libc: Any = None

Call = Callable[[], "int | os.stat_result | None"]


class Job:
    """The control block of a linked, timed or operation request (see the module)."""

    __slots__ = (
        "call",
        "cancelled",
        "closes",
        "deadline",
        "delay",
        "interrupted",
        "link",
        "names",
        "opening",
        "opens",
        "rest",
        "timer",
    )

    def __init__(
        self,
        link: int,
        deadline: float | None = None,
        call: Call | None = None,
        names: tuple[Any, Any] | None = None,
        *,
        opens: bool = False,
        closes: bool = False,
        delay: float = 0.0,
        opening: Opening | None = None,
    ) -> None:
        self.link = link  # UNLINKED, SOFT or HARD (see the requests module)
        self.deadline = deadline  # seconds from the request's start, or None
        self.call = call  # an operation's system call: None (0), an fd or a stat result
        self.names = names  # (filename, filename2) its errors carry, or None
        self.opens = opens  # an open: a result nobody receives must be closed
        self.closes = closes  # a close: it runs even if the queue closes first
        self.delay = delay  # a timer's seconds
        # While it runs: its chain and the index of the request behind it.
        self.rest: tuple[list[Any], int] | None = None
        self.cancelled = False  # cancel() reached it while it waited in its chain
        self.timer: list[Request] | None = None  # its timer heap entry's holder, if any
        self.opening = opening  # an open that may block on a FIFO (see the fifos module)
        self.interrupted = 0  # the errno it completes with once interrupted while running

    def error(self, code: int | None) -> OSError:
        """``OSError(errno, strerror[, filename[, None, filename2]])``, as ``os`` raises
        it for this request's path(s)."""
        code = code or errno.EIO
        text = os.strerror(code)
        if self.names is None:
            return OSError(code, text)
        name, name2 = self.names
        if name2 is None:
            return OSError(code, text, name)
        return OSError(code, text, name, None, name2)


def stat_fd(fd: int) -> Call:
    """``statx(fd, "", AT_EMPTY_PATH)``: ``os.stat(fd)``; ``AT_FDCWD`` is the current
    directory (as the kernel reads it) and any other negative number ``EBADF``."""
    if fd >= 0:
        return partial(os.stat, fd)
    if fd == AT_FDCWD:
        return partial(os.stat, ".")
    return partial(_bad_fd)


def _bad_fd() -> None:
    raise OSError(errno.EBADF, os.strerror(errno.EBADF))


def linkat(
    src: bytes, dst: bytes, src_dir_fd: int | None, dst_dir_fd: int | None, follow: bool
) -> Call:
    """``linkat(2)`` as the io_uring provider runs it: ``follow`` means
    ``AT_SYMLINK_FOLLOW``. ``os.link`` calls plain ``link(2)`` (which never follows a
    symlink on Linux) when neither dir fd is given, whatever ``follow_symlinks`` says;
    that one case goes to libc's ``linkat`` through ctypes."""
    if follow and src_dir_fd is None and dst_dir_fd is None:
        return partial(_linkat_following, src, dst)
    return partial(
        os.link, src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd, follow_symlinks=follow
    )


def _linkat_following(src: bytes, dst: bytes) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.linkat(AT_FDCWD, src, AT_FDCWD, dst, _AT_SYMLINK_FOLLOW) != 0:
        raise OSError(ctypes.get_errno(), "linkat")
