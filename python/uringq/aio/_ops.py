"""The driver's file and path operations: open, close, stat, rename, unlink, mkdir, ...

Each returns a future. When the loop's queue has the operation (SPEC section 8:
``prepare_openat``, ``prepare_close``, ``prepare_statx``, ...), it is a request like any
read: prepared at once or queued in the backlog, committed once per loop iteration. When
the queue lacks it (``AttributeError``, or ``NotImplementedError`` from a provider
without it) the plain ``os`` call runs on the package's worker pool instead; the same
fallback serves every ``os`` name that has no opcode. Results and errors are the same
either way: the new fd, ``0``, an ``os.stat_result``, or the ``OSError`` ``os`` raises.

An fd opened for a future that was cancelled meanwhile is closed, whichever route ran
the open: the native reap closes it, the Python settle path and the worker do it here.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from uringq.aio import _workers

if TYPE_CHECKING:
    from uringq._completion import Completion
    from uringq._queue import IoQueue

__all__ = ["OP", "OPERATIONS", "Operation", "Operations"]

# Result kinds: how a completion becomes the future's result.
COUNT: Final = 0  # completion.result (0 for the path operations)
NEW_FD: Final = 1  # completion.result, an fd that must be closed if nobody takes it
STAT: Final = 2  # completion.stat

OP: Final = 6  # the driver's backlog kind of an operation (after its read/write kinds)
_NO_KWARGS: Final[dict[str, Any]] = {}  # shared, never changed

# The queue operations the driver uses, when the queue has them.
OPERATIONS: Final = (
    "prepare_openat",
    "prepare_close",
    "prepare_statx",
    "prepare_renameat",
    "prepare_unlinkat",
    "prepare_mkdirat",
    "prepare_symlinkat",
    "prepare_linkat",
    "prepare_ftruncate",
)


class Operation:
    """The ``user_data`` of an operation on the Python settle path (no native reap).

    It answers ``done``/``cancel``/``set_exception`` like the future it wraps, so the
    driver's backlog and error paths treat it as one, and equals it, so the queue's
    ``cancel(fut)`` finds its request.
    """

    __slots__ = ("fut", "kind")

    def __init__(self, fut: asyncio.Future[Any], kind: int) -> None:
        self.fut = fut
        self.kind = kind

    def __eq__(self, other: object) -> bool:
        return other is self or other is self.fut

    __hash__ = object.__hash__

    def done(self) -> bool:
        return self.fut.done()

    def cancel(self) -> bool:
        return self.fut.cancel()

    def set_exception(self, exc: BaseException) -> None:
        self.fut.set_exception(exc)

    def settle(self, completion: Completion) -> None:
        fut, error = self.fut, completion.error
        if fut.done():  # cancelled: only a new fd needs undoing
            if error is None and self.kind == NEW_FD:
                _workers.close_fd(completion.result)
        elif error is not None:
            fut.set_exception(error)
        elif self.kind == STAT:
            fut.set_result(getattr(completion, "stat", None))
        else:
            fut.set_result(completion.result)


def _drop_for(kind: int) -> Callable[[Any], None] | None:
    return _workers.close_fd if kind == NEW_FD else None


class Operations:
    """Mixin of :class:`~uringq.aio.Driver`: the operations, each returning a future."""

    __slots__ = ()

    loop: asyncio.AbstractEventLoop
    queue: IoQueue
    _ops: set[str]
    _settle_futures: Callable[..., int] | None

    def _submit(self, request: Any) -> Any:
        raise NotImplementedError  # the driver's general request path

    def cancel_request(self, fut: asyncio.Future[Any]) -> None:
        raise NotImplementedError  # the driver's: cancel the request of ``fut``

    def _cancel_if_cancelled(self, fut: asyncio.Future[Any]) -> None:
        """A done callback: the request of a future cancelled by its awaiter is cancelled
        in the queue too (an open blocked on a FIFO would hold its worker)."""
        if fut.cancelled():
            self.cancel_request(fut)

    def call(
        self, method: Callable[..., None], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> asyncio.Future[Any]:
        raise NotImplementedError  # the driver's request path for a queue method

    @property
    def _fast_open(self) -> bool:
        """True where :meth:`openat` can skip the operation layers: the native reap
        settles its future (and closes an fd nobody takes), and the queue has OPENAT
        (whole-file groups need it)."""
        return self._settle_futures is not None and bool(getattr(self.queue, "_whole_files", False))

    def _operation(
        self,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        kind: int,
        fallback: Callable[..., Any],
        fallback_args: tuple[Any, ...],
    ) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = self.loop.create_future()
        if name in self._ops:
            target = fut if self._settle_futures is not None else Operation(fut, kind)
            self._submit((OP, 0, 0, (name, args, kwargs, kind, fallback, fallback_args), target))
        else:
            self._to_worker(fut, name, kind, fallback, fallback_args)
        return fut

    def _to_worker(
        self,
        fut: asyncio.Future[Any],
        name: str,
        kind: int,
        fallback: Callable[..., Any],
        fallback_args: tuple[Any, ...],
    ) -> None:
        # A close runs even if nobody waits for it any more (else the fd would leak).
        cancellable = name != "prepare_close"
        _workers.start(
            self.loop, fut, fallback, fallback_args, drop=_drop_for(kind), cancellable=cancellable
        )

    def _prepare_operation(self, arg: tuple[Any, ...], target: Any) -> None:
        """Prepare an operation on the queue, or hand it to a worker if the queue lacks it.

        ``QueueFull`` and argument errors propagate (the driver's ``_prepare`` decides).
        """
        name, args, kwargs, kind, fallback, fallback_args = arg
        method = getattr(self.queue, name, None)
        if method is not None:
            try:
                method(*args, user_data=target, **kwargs)
                return
            except NotImplementedError:  # a provider without this operation
                pass
        self._ops.discard(name)
        fut = target.fut if isinstance(target, Operation) else target
        self._to_worker(fut, name, kind, fallback, fallback_args)

    # -- the operations -------------------------------------------------------------------
    def openat(
        self, path: Any, flags: int = os.O_RDONLY, mode: int = 0o666, *, dir_fd: int | None = None
    ) -> asyncio.Future[int]:
        """``os.open(path, flags, mode, dir_fd=dir_fd)``: the new fd (``O_CLOEXEC`` added)."""
        flags |= os.O_CLOEXEC
        if self._fast_open:  # the native queue: a plain request (aiofiles-style hot path)
            kwargs = _NO_KWARGS if dir_fd is None else {"dir_fd": dir_fd}
            fut = self.call(self.queue.prepare_openat, (path, flags, mode), kwargs)
        else:
            fut = self._operation(
                "prepare_openat",
                (path, flags, mode),
                {"dir_fd": dir_fd},
                kind=NEW_FD,
                fallback=_open,
                fallback_args=(path, flags, mode, dir_fd),
            )
        # An open may wait (a FIFO without its peer): cancelled with its awaiter.
        fut.add_done_callback(self._cancel_if_cancelled)
        return fut

    def close_fd(self, fd: int) -> asyncio.Future[int]:
        """``os.close(fd)``; the result is 0."""
        return self._operation(
            "prepare_close", (fd,), {}, kind=COUNT, fallback=_close, fallback_args=(fd,)
        )

    def statx(
        self, path: Any, *, dir_fd: int | None = None, follow_symlinks: bool = True
    ) -> asyncio.Future[os.stat_result]:
        """``os.stat(path, dir_fd=..., follow_symlinks=...)`` (an int ``path`` is an fd)."""
        return self._operation(
            "prepare_statx",
            (path,),
            {"dir_fd": dir_fd, "follow_symlinks": follow_symlinks},
            kind=STAT,
            fallback=_stat,
            fallback_args=(path, dir_fd, follow_symlinks),
        )

    def renameat(
        self,
        src: Any,
        dst: Any,
        *,
        src_dir_fd: int | None = None,
        dst_dir_fd: int | None = None,
    ) -> asyncio.Future[int]:
        """``os.rename(src, dst, src_dir_fd=..., dst_dir_fd=...)`` (replaces ``dst``)."""
        return self._operation(
            "prepare_renameat",
            (src, dst),
            {"src_dir_fd": src_dir_fd, "dst_dir_fd": dst_dir_fd},
            kind=COUNT,
            fallback=_rename,
            fallback_args=(src, dst, src_dir_fd, dst_dir_fd),
        )

    def unlinkat(
        self, path: Any, *, dir_fd: int | None = None, rmdir: bool = False
    ) -> asyncio.Future[int]:
        """``os.unlink(path, dir_fd=...)``, or ``os.rmdir`` with ``rmdir=True``."""
        return self._operation(
            "prepare_unlinkat",
            (path,),
            {"dir_fd": dir_fd, "rmdir": rmdir},
            kind=COUNT,
            fallback=_unlink,
            fallback_args=(path, dir_fd, rmdir),
        )

    def mkdirat(
        self, path: Any, mode: int = 0o777, *, dir_fd: int | None = None
    ) -> asyncio.Future[int]:
        """``os.mkdir(path, mode, dir_fd=...)``."""
        return self._operation(
            "prepare_mkdirat",
            (path, mode),
            {"dir_fd": dir_fd},
            kind=COUNT,
            fallback=_mkdir,
            fallback_args=(path, mode, dir_fd),
        )

    def symlinkat(
        self, target: Any, linkpath: Any, *, dir_fd: int | None = None
    ) -> asyncio.Future[int]:
        """``os.symlink(target, linkpath, dir_fd=...)``."""
        return self._operation(
            "prepare_symlinkat",
            (target, linkpath),
            {"dir_fd": dir_fd},
            kind=COUNT,
            fallback=_symlink,
            fallback_args=(target, linkpath, dir_fd),
        )

    def linkat(
        self,
        src: Any,
        dst: Any,
        *,
        src_dir_fd: int | None = None,
        dst_dir_fd: int | None = None,
        follow_symlinks: bool = True,
    ) -> asyncio.Future[int]:
        """``os.link(src, dst, src_dir_fd=..., dst_dir_fd=..., follow_symlinks=...)``."""
        kwargs = {
            "src_dir_fd": src_dir_fd,
            "dst_dir_fd": dst_dir_fd,
            "follow_symlinks": follow_symlinks,
        }
        return self._operation(
            "prepare_linkat",
            (src, dst),
            kwargs,
            kind=COUNT,
            fallback=_link,
            fallback_args=(src, dst, src_dir_fd, dst_dir_fd, follow_symlinks),
        )

    def ftruncate(self, fd: int, length: int) -> asyncio.Future[int]:
        """``os.ftruncate(fd, length)``; the result is 0."""
        return self._operation(
            "prepare_ftruncate",
            (fd, length),
            {},
            kind=COUNT,
            fallback=_ftruncate,
            fallback_args=(fd, length),
        )

    def run_in_worker(
        self, fn: Callable[..., Any], *args: Any, drop: Callable[[Any], None] | None = None
    ) -> asyncio.Future[Any]:
        """``fn(*args)`` on the package's worker pool (for calls without an opcode)."""
        return _workers.submit(self.loop, fn, *args, drop=drop)


# The fallbacks: the os call, with the queue operation's result (0 where os gives None).
def _open(path: Any, flags: int, mode: int, dir_fd: int | None) -> int:
    return os.open(path, flags, mode, dir_fd=dir_fd)


def _close(fd: int) -> int:
    os.close(fd)
    return 0


def _stat(path: Any, dir_fd: int | None, follow_symlinks: bool) -> os.stat_result:
    return os.stat(path, dir_fd=dir_fd, follow_symlinks=follow_symlinks)


def _rename(src: Any, dst: Any, src_dir_fd: int | None, dst_dir_fd: int | None) -> int:
    os.rename(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
    return 0


def _unlink(path: Any, dir_fd: int | None, rmdir: bool) -> int:
    if rmdir:
        os.rmdir(path, dir_fd=dir_fd)
    else:
        os.unlink(path, dir_fd=dir_fd)
    return 0


def _mkdir(path: Any, mode: int, dir_fd: int | None) -> int:
    os.mkdir(path, mode, dir_fd=dir_fd)
    return 0


def _symlink(target: Any, linkpath: Any, dir_fd: int | None) -> int:
    os.symlink(target, linkpath, dir_fd=dir_fd)
    return 0


def _link(
    src: Any, dst: Any, src_dir_fd: int | None, dst_dir_fd: int | None, follow_symlinks: bool
) -> int:
    os.link(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd, follow_symlinks=follow_symlinks)
    return 0


def _ftruncate(fd: int, length: int) -> int:
    os.ftruncate(fd, length)
    return 0
