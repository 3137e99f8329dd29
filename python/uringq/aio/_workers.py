"""The one worker thread pool of ``uringq.aio``, for calls that have no queue operation.

``os.listdir``, ``os.access``, ``shutil.rmtree``, ... and every operation the running
queue lacks (an older provider, a kernel without the opcode) run here. The pool is
created on first use and shared by every event loop; a child process after ``fork()``
gets a fresh one (the parent's threads do not exist there).

Results travel back with ``loop.call_soon_threadsafe``. A result nobody can receive
any more (the awaiting future was cancelled, or its loop closed) is handed to the
call's ``drop`` function: an opened fd is closed there, so a cancelled open never leaks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["close_fd", "pool", "start", "submit", "take_fd"]

T = TypeVar("T")

_lock = threading.Lock()
_pool: concurrent.futures.ThreadPoolExecutor | None = None


def pool() -> concurrent.futures.ThreadPoolExecutor:
    """The shared pool (``ThreadPoolExecutor``'s default size), created on first use."""
    global _pool
    current = _pool
    if current is None:
        with _lock:
            current = _pool
            if current is None:
                current = _pool = concurrent.futures.ThreadPoolExecutor(
                    thread_name_prefix="uringq-aio"
                )
    return current


def _forget_pool_after_fork() -> None:
    global _lock, _pool
    _lock = threading.Lock()
    _pool = None


os.register_at_fork(after_in_child=_forget_pool_after_fork)


def close_fd(fd: Any) -> None:
    """``drop`` for calls that return a new fd."""
    with contextlib.suppress(OSError):
        os.close(fd)


async def take_fd(fut: asyncio.Future[int]) -> int:
    """Await a future of a new fd. If the awaiting task is cancelled after the open
    finished (the result is there, the task never resumed to take it), the fd is closed
    before the cancellation goes on."""
    try:
        return await fut
    except asyncio.CancelledError:
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            close_fd(fut.result())
        raise


def submit(
    loop: asyncio.AbstractEventLoop,
    fn: Callable[..., T],
    *args: Any,
    drop: Callable[[T], None] | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> asyncio.Future[T]:
    """Run ``fn(*args)`` on the pool (or ``executor``); a future of ``loop`` gets the result.

    Cancelling the future cancels the call if it has not started; a call that already
    started runs to its end and its result goes to ``drop`` (if given).
    """
    fut: asyncio.Future[T] = loop.create_future()
    start(loop, fut, fn, args, drop=drop, executor=executor)
    return fut


def start(
    loop: asyncio.AbstractEventLoop,
    fut: asyncio.Future[T],
    fn: Callable[..., T],
    args: tuple[Any, ...],
    *,
    drop: Callable[[T], None] | None = None,
    executor: concurrent.futures.Executor | None = None,
    cancellable: bool = True,
) -> None:
    """:func:`submit` for a future that already exists (settled on ``loop``).

    ``cancellable=False``: cancelling the future does not stop the call (a close must
    happen whoever stops waiting for it)."""
    work = (executor or pool()).submit(fn, *args)

    def deliver() -> None:  # on the loop's thread
        if fut.done():  # cancelled meanwhile
            _dispose(work, drop)
            return
        exc = work.exception()
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(work.result())

    def finished(_: concurrent.futures.Future[T]) -> None:  # on the worker's thread
        if work.cancelled():
            return
        try:
            loop.call_soon_threadsafe(deliver)
        except RuntimeError:  # the loop is closed: nobody will ever take the result
            _dispose(work, drop)

    def cancelled(_: asyncio.Future[T]) -> None:
        if fut.cancelled():
            work.cancel()

    if cancellable:
        fut.add_done_callback(cancelled)
    work.add_done_callback(finished)


def _dispose(work: concurrent.futures.Future[T], drop: Callable[[T], None] | None) -> None:
    if drop is not None and not work.cancelled() and work.exception() is None:
        drop(work.result())
