"""The per-loop driver: one :class:`~uringq.IoQueue` per event loop, a future per request.

How it works (SPEC section 5):

* Each event loop gets one :class:`Driver` (created on first use, found again through a
  weak mapping). The driver owns an ``IoQueue`` whose ``fileno()`` is registered with
  ``loop.add_reader``.
* A request is prepared on the queue at once, with its future as ``user_data``; the
  first request of a loop iteration schedules one ``loop.call_soon`` that commits every
  request of that iteration with a single ``commit()`` and then takes whatever is
  already complete (reads served from the page cache complete during the commit), so a
  cached read costs no extra trip through the selector. Completions that arrive later
  wake the reader callback. Both settle every ready completion in one pass: on io_uring
  natively (``_settle_futures``: no ``Completion`` objects), elsewhere in one loop over
  ``wait(0, None, 0)``.
* On io_uring, ``read`` and ``read_into`` are the native queue's ``_aio_read`` and
  ``_aio_read_into``, and the flush is ``_aio_flush`` (issue 11: one native call per
  request, no Python frame of the driver's): the queue makes the future, prepares the
  request or appends it to the driver's backlog, sets an argument error on the future,
  and schedules the flush itself (``_aio_bind`` lends it the loop's ``call_soon``, the
  backlog and how to make futures). ``read()`` there reads straight into the ``bytes``
  object it resolves to (the queue allocates it and only the bytes the kernel wrote are
  ever visible); other providers read into a ``bytearray`` and copy.
* Requests beyond the queue's capacity wait in a FIFO backlog inside the driver and are
  prepared as capacity frees up: callers never see ``QueueFull``.
* Cancelling a future (or the task awaiting it) never releases a buffer the kernel may
  still write: the request stays in the queue, its buffer pinned, until its completion
  arrives; the result is then dropped. A request still in the backlog is simply dropped.
* Errors the kernel reports arrive as the completion's :class:`OSError` (mapped to its
  subclass, e.g. ``IsADirectoryError``), raised from the ``await``; so do argument
  errors (``TypeError``, ``ValueError``, ``HandleNotRegistered``).
* Closing the loop closes its driver: the queue is closed with ``cancel=True`` (the
  kernel releases every buffer first), futures still pending are cancelled and files
  whose close was waiting for their requests are closed. :meth:`Driver.close` does the
  same at any time.

The driver belongs to its loop's thread, like the loop itself. It works on the default
loop and on uvloop, with either provider (``provider=`` on first use per loop, or
``URINGQ_PROVIDER``). Its request methods return a plain :class:`asyncio.Future` (no
coroutine per call).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from uringq import _checks
from uringq._errors import Interrupted, QueueBusy, QueueClosed, QueueEmpty, QueueFull
from uringq._queue import IoQueue
from uringq.aio._loopglue import future_factory, hook_loop_close, unhook_loop_close
from uringq.aio._ops import OP, OPERATIONS, Operation, Operations

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from uringq._checks import HasFileno
    from uringq._completion import Completion
    from uringq._registry import ProviderInfo

__all__ = ["DEFAULT_SQ_ENTRIES", "Driver", "get_driver"]

DEFAULT_SQ_ENTRIES: Final = 256
"""Submission queue size of a loop's queue (the CQ is twice that); more requests wait in
the driver's backlog."""

# What the queue holds as ``user_data``: a future (its result is the completion's int) or,
# for reads that return bytes, the tuple ``(future, buffer)``.
_Target: TypeAlias = "asyncio.Future[Any] | tuple[asyncio.Future[bytes], bytearray]"

# Backlog entry kinds.
_READ: Final = 0
_WRITE: Final = 1
_SYNC: Final = 2
_READV: Final = 3
_WRITEV: Final = 4
_READ_BYTES: Final = 5  # the provider allocates the result (``_prepare_read_bytes``)
_CALL: Final = 7  # ``method(*args, user_data=..., **kwargs)`` of the queue (Driver.call)

# (kind, fd, offset, buffer(s) or datasync flag, user_data)
_Pending: TypeAlias = tuple[int, int, int, Any, _Target]

_drivers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, weakref.ref[Driver]] = (
    weakref.WeakKeyDictionary()
)


def _no_driver() -> Driver | None:
    return None


# The driver get_driver() returned last: the module-level functions (aio.read(fd, ...))
# look their loop's driver up per call, and WeakKeyDictionary.get costs Python frames.
_last: Callable[[], Driver | None] = _no_driver


class Driver(Operations):
    """The queue of one event loop and the glue between its completions and futures.

    Get it with :func:`get_driver`; every request method returns an
    :class:`asyncio.Future` whose result is the completion's result (bytes transferred)
    and whose exception is the completion's error. fds must be registered with
    :meth:`register` for the data requests (:func:`open` does it for its files); the
    file and path operations (:meth:`openat`, :meth:`statx`, ...; see
    :class:`~uringq.aio._ops.Operations`) take any path or fd.
    """

    __slots__ = (
        "__weakref__",
        "_backlog",
        "_call_soon",
        "_close_hook",
        "_closing_fds",
        "_commit",
        "_create_future",
        "_fileno",
        "_flush_native",
        "_flush_scheduled",
        "_ops",
        "_prepare_read",
        "_prepare_read_bytes",
        "_prepare_write",
        "_retry_handle",
        "_schedule",
        "_settle_futures",
        "_wait",
        "adopt",
        "closed",
        "loop",
        "open_file",
        "queue",
        "read",
        "read_into",
        "read_rest",
    )

    read: Callable[[int, int, int], asyncio.Future[bytes]]
    """``read(fd, size, offset)``: read up to ``size`` bytes at ``offset``; the result is
    ``bytes`` (``b""`` at EOF)."""
    read_into: Callable[[int, int, Buffer], asyncio.Future[int]]
    """``read_into(fd, offset, buf)``: read ``len(buf)`` bytes at ``offset`` into ``buf``;
    the result is bytes read."""
    open_file: Callable[[Any, int, int], asyncio.Future[tuple[int, int, int, int]]] | None
    """Native queue only: ``open_file(path, flags, mode)``, a future of ``(fd, st_mode,
    st_size, st_blksize)``."""
    read_rest: Callable[[int, int, int], bytes | None] | None
    """With ``open_file``: ``read_rest(fd, offset, size)``, a small file's rest read now
    without blocking, or ``None`` (``uringq._native._read_rest``)."""
    adopt: Callable[[int], None]  # registers an fd its file object owns (no dup)

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        provider: str | ProviderInfo | None = None,
        sq_entries: int = DEFAULT_SQ_ENTRIES,
        cq_entries: int | None = None,
    ) -> None:
        if loop.is_closed():
            raise RuntimeError("the event loop is closed")
        self.loop = loop
        self.queue = queue = IoQueue(sq_entries, cq_entries, provider=provider)
        self.closed = False
        # Bound once: the request path makes no attribute lookups it can avoid.
        self._prepare_read = queue.prepare_read
        self._prepare_write = queue.prepare_write
        self._commit = queue.commit
        self._wait = queue.wait
        # The native provider's hooks: reads land in a bytes object it allocates, and
        # completions settle their futures without Completion objects. Other providers
        # go through read_into's path and _settle.
        read_bytes = getattr(queue, "_prepare_read_bytes", None)
        settle = getattr(queue, "_settle_futures", None)
        native = read_bytes is not None and settle is not None
        self._prepare_read_bytes: Callable[[int, int, int, Any], None] | None = (
            read_bytes if native else None
        )
        self._settle_futures: Callable[..., int] | None = settle if native else None
        self._create_future = loop.create_future
        self._call_soon = loop.call_soon
        self._backlog: deque[_Pending] = deque()
        self._flush_scheduled = False
        self._closing_fds: dict[int, bool] = {}  # fd -> os.close() it once deregistered
        self._retry_handle: asyncio.TimerHandle | None = None
        self._ops = {name for name in OPERATIONS if hasattr(queue, name)}
        self.adopt = getattr(queue, "_adopt", queue.register)
        # The hot methods: on the native queue one native call per request and per flush
        # (issue 11), else the Python versions below.
        bind = getattr(queue, "_aio_bind", None)
        if native and bind is not None:
            factory, kwargs = future_factory(loop)
            bind(factory, kwargs, loop.call_soon, self._flush_bound, self._backlog)
            self.read = queue._aio_read  # type: ignore[attr-defined]
            self.read_into = queue._aio_read_into  # type: ignore[attr-defined]
            self._schedule: Callable[[], None] = queue._aio_schedule  # type: ignore[attr-defined]
            self._flush_native: Callable[[], int] | None = queue._aio_flush  # type: ignore[attr-defined]
            # uringq.aio.open's open: the fd with its fstat, and a small file's first read.
            self.open_file = getattr(queue, "_aio_open_file", None) if self._fast_open else None
            self.read_rest = None
            if self.open_file is not None:
                from .. import _native

                self.read_rest = _native._read_rest
        else:
            self.read = self._read
            self.read_into = self._read_into
            self._schedule = self._schedule_flush
            self._flush_native = None
            self.open_file = self.read_rest = None
        self._fileno = queue.fileno()
        try:
            loop.add_reader(self._fileno, self._reap)
        except BaseException:
            queue.close(cancel=True)
            raise
        self._close_hook = hook_loop_close(loop, self)

    # -- introspection ----------------------------------------------------------------
    @property
    def provider_id(self) -> str:
        """The provider running the queue (``"io_uring"`` or ``"threadpool"``)."""
        return self.queue.provider_id

    @property
    def backlog(self) -> int:
        """Requests waiting for room in the queue (not yet prepared)."""
        return len(self._backlog)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"backlog={len(self._backlog)}"
        return f"<uringq.aio.Driver provider={self.queue.provider_id!r} {state}>"

    # -- registration -----------------------------------------------------------------
    def register(self, fd: int | HasFileno) -> None:
        """Register ``fd`` with the queue (see :meth:`uringq.IoQueue.register`)."""
        self.queue.register(fd)

    def deregister(self, fd: int | HasFileno, *, close: bool = False) -> None:
        """Deregister ``fd`` (and ``os.close`` it with ``close=True``).

        If requests still use it (cancelled ones whose completion has not arrived), both
        happen as soon as the last of them completes; the fd number stays taken until
        then, so it cannot be reused while the kernel might still act on the old file.
        """
        number = _checks.fd(fd)
        if self.closed:
            if close:
                os.close(number)
            return
        try:
            self.queue.deregister(number)
        except QueueBusy:
            self._closing_fds[number] = close or self._closing_fds.get(number, False)
            self._schedule_retry()
            return
        if close:
            os.close(number)

    def release_fd(self, fd: int) -> bool:
        """Deregister ``fd`` before its owner closes it: True if that may happen now.

        False if requests still use it (cancelled ones whose completion has not
        arrived): the driver then closes it itself (``os.close``) once they are done.
        """
        if self.closed:
            return True
        try:
            self.queue.deregister(fd)
        except QueueBusy:
            self._closing_fds[fd] = True
            self._schedule_retry()
            return False
        return True

    def cancel_request(self, fut: asyncio.Future[Any]) -> None:
        """Cancel the request whose future is ``fut`` (one made with ``fut`` as its
        ``user_data``: ``read_into``), as nobody awaits it any more: it completes with
        ECANCELED unless it finished first, its buffer pinned until then. One still in the
        backlog never reaches the queue (its future is done)."""
        if not self.closed:
            self.queue.cancel(fut)

    # -- requests ---------------------------------------------------------------------
    # The Python versions of ``read_into`` and ``read`` (providers without ``_aio_bind``);
    # they schedule the flush inline: a frame less per request.
    def _read_into(self, fd: int, offset: int, buf: Buffer) -> asyncio.Future[int]:
        fut: asyncio.Future[int] = self._create_future()
        if self._backlog:
            self._backlog.append((_READ, fd, offset, buf, fut))
        else:
            try:
                self._prepare_read(fd, offset, buf, fut)
            except QueueFull:
                self._backlog.append((_READ, fd, offset, buf, fut))
            except Exception as exc:
                fut.set_exception(exc)
                return fut
        self._schedule()  # the native flush where the queue has one, as for reads
        return fut

    def _read(self, fd: int, size: int, offset: int) -> asyncio.Future[bytes]:
        fut: asyncio.Future[bytes] = self._create_future()
        read_bytes = self._prepare_read_bytes
        arg: Any
        target: _Target
        prepare: Callable[[int, int, Any, Any], None]
        if read_bytes is not None:  # the kernel fills the result bytes in place
            kind, prepare, arg, target = _READ_BYTES, read_bytes, size, fut
        else:  # into a bytearray, copied to bytes when it completes
            try:
                arg = bytearray(size)
            except Exception as exc:
                fut.set_exception(exc)
                return fut
            kind, prepare, target = _READ, self._prepare_read, (fut, arg)
        if self._backlog:
            self._backlog.append((kind, fd, offset, arg, target))
        else:
            try:
                prepare(fd, offset, arg, target)
            except QueueFull:
                self._backlog.append((kind, fd, offset, arg, target))
            except Exception as exc:
                fut.set_exception(exc)
                return fut
        self._schedule()  # the native flush where the queue has one, as for reads
        return fut

    def write(self, fd: int, offset: int, data: Buffer) -> asyncio.Future[int]:
        """Write ``data`` at ``offset``; the result is bytes written."""
        fut: asyncio.Future[int] = self._create_future()
        if self._backlog:
            self._backlog.append((_WRITE, fd, offset, data, fut))
        else:
            try:
                self._prepare_write(fd, offset, data, fut)
            except QueueFull:
                self._backlog.append((_WRITE, fd, offset, data, fut))
            except Exception as exc:
                fut.set_exception(exc)
                return fut
        self._schedule()
        return fut

    def fsync(self, fd: int, *, datasync: bool = False) -> asyncio.Future[int]:
        """``fsync`` (``fdatasync`` with ``datasync=True``) ``fd``; the result is 0."""
        return self._submit((_SYNC, fd, 0, bool(datasync), self._create_future()))

    def readv(self, fd: int, offset: int, bufs: Sequence[Buffer]) -> asyncio.Future[int]:
        """Scatter read into ``bufs`` from ``offset``; the result is bytes read."""
        return self._submit((_READV, fd, offset, bufs, self._create_future()))

    def writev(self, fd: int, offset: int, bufs: Sequence[Buffer]) -> asyncio.Future[int]:
        """Gather write of ``bufs`` at ``offset``; the result is bytes written."""
        return self._submit((_WRITEV, fd, offset, bufs, self._create_future()))

    def call(
        self, method: Callable[..., None], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> asyncio.Future[Any]:
        """Prepare ``method(*args, user_data=fut, **kwargs)``, a ``prepare_*`` method of
        this queue, as a request like :meth:`read`; the future's result is whatever the
        queue settles it with (the native reap: the content of ``_prepare_read_file``,
        the fd of ``prepare_openat``, ...)."""
        fut: asyncio.Future[Any] = self._create_future()
        if self._backlog:
            self._backlog.append((_CALL, 0, 0, (method, args, kwargs), fut))
        else:
            try:
                method(*args, user_data=fut, **kwargs)
            except QueueFull:
                self._backlog.append((_CALL, 0, 0, (method, args, kwargs), fut))
            except Exception as exc:
                fut.set_exception(exc)
                return fut
        self._schedule()  # the native flush where the queue has one, as for reads
        return fut

    def _submit(self, request: _Pending) -> asyncio.Future[Any]:
        """The general (not hot) request path: prepare now or join the backlog."""
        target = request[4]
        fut = target[0] if isinstance(target, tuple) else target
        if self._backlog or not self._prepare(request):
            self._backlog.append(request)
        self._schedule()
        return fut

    def _prepare(self, request: _Pending) -> bool:
        """Prepare one request; False if the queue is full. Other errors go to its future."""
        kind, fd, offset, arg, target = request
        fut = target[0] if isinstance(target, tuple) else target
        queue = self.queue
        try:
            if kind == _READ_BYTES:
                assert self._prepare_read_bytes is not None
                self._prepare_read_bytes(fd, offset, arg, target)
            elif kind == _READ:
                queue.prepare_read(fd, offset, arg, target)
            elif kind == _WRITE:
                queue.prepare_write(fd, offset, arg, target)
            elif kind == _SYNC:
                queue.prepare_sync(fd, target, datasync=arg)
            elif kind == _READV:
                queue.prepare_readv(fd, offset, arg, target)
            elif kind == _WRITEV:
                queue.prepare_writev(fd, offset, arg, target)
            elif kind == _CALL:
                method, args, kwargs = arg
                method(*args, user_data=target, **kwargs)
            else:  # _ops.OP
                self._prepare_operation(arg, target)
        except QueueFull:
            return False
        except Exception as exc:
            if not fut.done():
                fut.set_exception(exc)
            return True
        return True

    # -- the loop's side --------------------------------------------------------------
    def _schedule_flush(self) -> None:
        """Schedule :meth:`_flush` for this loop iteration unless it already is."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._call_soon(self._flush)

    def _flush_bound(self) -> None:
        """The native queue's flush (``_aio_flush``: commit, settle, schedule the next one,
        as :meth:`_flush`), then the backlog and deferred deregistrations."""
        if self.closed:
            return
        assert self._flush_native is not None
        try:
            self._flush_native()
        except QueueClosed:  # closed behind the driver's back
            self.close()
            return
        if self._backlog:
            self._refill()
        if self._closing_fds:
            self._retry_deregister()

    def _flush(self) -> None:
        """Once per loop iteration: commit what was prepared, settle what completed.

        When it settles futures it schedules itself again: the ``call_soon`` lands behind
        the wake-ups of the tasks it just resumed, so the requests those tasks make in the
        next iteration are committed in that same iteration (one selector call per round
        instead of two).
        """
        self._flush_scheduled = False
        if self.closed:
            return
        try:
            self._commit()
        except QueueEmpty:  # nothing new: the tasks woken last time went elsewhere
            self._reap()
            return
        if self._reap() and not self._flush_scheduled:
            self._flush_scheduled = True
            self._call_soon(self._flush)

    def _reap(self) -> int:
        """Settle the futures of every ready completion (also the reader callback).

        Returns how many completions it took.
        """
        if self.closed:
            return 0
        settle = self._settle_futures
        if settle is not None:
            try:
                count = settle()
            except QueueClosed:  # closed behind the driver's back
                self.close()
                return 0
        else:
            try:
                done = self._wait(0, None, 0)
            except Interrupted as exc:  # nobody calls wakeup() on this queue, but be safe
                done = exc.completions
            except QueueClosed:
                self.close()
                return 0
            if done:
                self._settle(done)
            count = len(done)
        if self._backlog:
            self._refill()
        if self._closing_fds:
            self._retry_deregister()
        return count

    def _settle(self, done: list[Completion]) -> None:
        for completion in done:
            target = completion.user_data
            if type(target) is tuple:
                fut, buf = target
                if not fut.done():  # else cancelled: the buffer was pinned until now
                    error = completion.error
                    if error is None:
                        n = completion.result
                        fut.set_result(bytes(buf) if n == len(buf) else bytes(buf[:n]))
                    else:
                        fut.set_exception(error)
            elif type(target) is Operation:
                target.settle(completion)
            else:
                if target.done():
                    continue
                error = completion.error
                if error is None:
                    target.set_result(completion.result)
                else:
                    target.set_exception(error)

    def _refill(self) -> None:
        """Move backlog requests into the queue while it has room; schedule their commit."""
        backlog = self._backlog
        prepare = self._prepare
        moved = False
        while backlog:
            request = backlog[0]
            target = request[4]
            fut = target[0] if isinstance(target, tuple) else target
            if fut.done():  # cancelled before it reached the queue: nothing to release
                backlog.popleft()
                continue
            if not prepare(request):
                break
            backlog.popleft()
            moved = True
        if moved:
            self._schedule()

    def _schedule_retry(self) -> None:
        """Retry deferred deregistrations every 50 ms too, in case no completion comes.

        A completion normally triggers the retry (``_reap``); the timer covers a
        provider that still counts a request as using the fd for a moment after its
        completion was returned.
        """
        if self._retry_handle is None and not self.closed:
            self._retry_handle = self.loop.call_later(0.05, self._retry_timer)

    def _retry_timer(self) -> None:
        self._retry_handle = None
        if self.closed:
            return
        self._retry_deregister()
        if self._closing_fds:
            self._schedule_retry()

    def _retry_deregister(self) -> None:
        for fd, close in list(self._closing_fds.items()):
            try:
                self.queue.deregister(fd)
            except QueueBusy:
                continue
            except Exception:  # deregistered meanwhile, or the queue is gone
                pass
            del self._closing_fds[fd]
            if close:
                os.close(fd)

    # -- life cycle -------------------------------------------------------------------
    def close(self, *, timeout: float = 1.0) -> None:
        """Close the driver and its queue; closing a closed driver does nothing.

        Requests still in the backlog never started: their futures are cancelled.
        Requests in the queue get up to ``timeout`` seconds (the loop blocks meanwhile)
        to complete, and their futures are settled as usual. Then the queue is closed
        with ``cancel=True``: the kernel cancels whatever is left and releases every
        buffer before the queue is freed; the futures of those leftovers are never
        settled. File requests complete long before the timeout; only requests that wait
        for another party (a read on an empty pipe) can be left over.

        Closing the loop calls this with ``timeout=0`` (nobody can await any more).
        Requests made after ``close()`` fail with :class:`~uringq.QueueClosed`.
        """
        if self.closed:
            return
        loop = self.loop
        loop_open = not loop.is_closed()
        self.closed = True  # from here on: no reader callbacks, no flushes, no refills
        ref = _drivers.get(loop)
        if ref is not None and ref() is self:
            del _drivers[loop]
        unhook_loop_close(loop, self._close_hook)
        if self._retry_handle is not None:
            self._retry_handle.cancel()
            self._retry_handle = None
        backlog = list(self._backlog)
        self._backlog.clear()
        try:
            if loop_open:
                with contextlib.suppress(Exception):  # the selector may already be gone
                    loop.remove_reader(self._fileno)
                self._drain(timeout)
        finally:
            try:
                self.queue.close(cancel=True)
            finally:
                for request in backlog:
                    target = request[4]
                    fut = target[0] if isinstance(target, tuple) else target
                    if loop_open and not fut.done():
                        fut.cancel()
                    if request[0] == OP and request[3][0] == "prepare_close":
                        with contextlib.suppress(OSError):  # a close is never dropped
                            os.close(request[3][1][0])
                closing, self._closing_fds = self._closing_fds, {}
                for fd, close_fd in closing.items():
                    if close_fd:
                        with contextlib.suppress(OSError):
                            os.close(fd)

    def _drain(self, timeout: float) -> None:
        """Settle what completes within ``timeout`` seconds (the queue stays open).

        What was prepared is submitted first, also with ``timeout=0``: a file's close
        prepared in the loop's last iteration must still happen.
        """
        queue = self.queue
        deadline = time.monotonic() + timeout
        with contextlib.suppress(QueueEmpty, QueueClosed):
            self._commit()
        settle = self._settle_futures
        if settle is not None:
            with contextlib.suppress(QueueClosed):  # closed behind the driver's back
                settle()
                while queue.in_flight:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return
                    settle(remaining)
            return
        try:
            done = self._wait(0, None, 0)
            while True:
                self._settle(done)
                if not queue.in_flight:
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                done = self._wait(1, None, remaining)
        except Interrupted as exc:
            self._settle(exc.completions)
        except QueueClosed as exc:  # closed behind the driver's back
            self._settle(exc.completions)


def get_driver(
    loop: asyncio.AbstractEventLoop | None = None,
    *,
    provider: str | ProviderInfo | None = None,
    sq_entries: int = DEFAULT_SQ_ENTRIES,
    cq_entries: int | None = None,
) -> Driver:
    """The driver of ``loop`` (default: the running loop), created on first use.

    ``provider``, ``sq_entries`` and ``cq_entries`` apply when the driver is created; a
    ``provider`` that differs from the existing driver's raises ``ValueError`` (one queue
    per loop: close the driver first to switch).
    """
    global _last
    if loop is None:
        loop = asyncio.get_running_loop()
    last = _last()
    if last is not None and last.loop is loop and provider is None and not last.closed:
        return last
    ref = _drivers.get(loop)
    driver = ref() if ref is not None else None
    if driver is not None and not driver.closed:
        if provider is not None:
            wanted = provider if isinstance(provider, str) else provider.id
            if wanted != driver.provider_id:
                raise ValueError(
                    f"this event loop's driver runs provider {driver.provider_id!r}, not "
                    f"{wanted!r}; close it (get_driver().close()) before switching"
                )
        _last = weakref.ref(driver)
        return driver
    driver = Driver(loop, provider=provider, sq_entries=sq_entries, cq_entries=cq_entries)
    _drivers[loop] = _last = weakref.ref(driver)
    return driver
