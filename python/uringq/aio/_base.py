"""What the file objects share: one operation at a time, cancellation rules, errors.

* :class:`Turn`: the lock that keeps each file operation whole. A file's layers (text,
  buffer, raw) share one, so ``f.read()`` in one task and ``f.buffer.read()`` in another
  never interleave half-way (the builtin file takes a lock for the same reason).
* :func:`uninterrupted`: runs the steps that write to their end. Cancelling the
  awaiting task then waits for them to finish (the kernel may be writing already, and
  the position and buffer must follow what it did) and raises ``CancelledError`` after.
  Steps that only read are cancellable; the file objects put their position back.
* :class:`AsyncFile`: async iteration, the async context manager, ``readlines``,
  ``writelines``, ``close``/``aclose`` and the unclosed-file warning.
"""

from __future__ import annotations

import asyncio
import io
import operator
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable
from types import TracebackType
from typing import Any, Final, TypeVar

__all__ = [
    "CLOSED",
    "CLOSED_DOT",
    "AsyncFile",
    "LineIteration",
    "Pending",
    "Turn",
    "done_future",
    "failed",
    "line_limit",
    "uninterrupted",
    "unsupported",
]

T = TypeVar("T")

CLOSED: Final = "I/O operation on closed file"
CLOSED_DOT: Final = "I/O operation on closed file."


class Turn:
    """A FIFO lock without a coroutine on the uncontended path.

    ``if turn.busy: await turn.wait()`` else ``turn.busy = True``; ``turn.release()`` at
    the end (it hands the turn to the next waiter directly).
    """

    __slots__ = ("busy", "waiters")

    def __init__(self) -> None:
        self.busy = False
        self.waiters: deque[asyncio.Future[None]] | None = None

    def take(self) -> bool:
        """Take the turn if it is free (then True); else ``await turn.wait()``."""
        if self.busy:
            return False
        self.busy = True
        return True

    async def wait(self) -> None:
        """Wait until the turn is handed to this task (``busy`` stays True)."""
        waiters = self.waiters
        if waiters is None:
            waiters = self.waiters = deque()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # the turn was handed over: pass it on
                self.release()
            else:
                waiters.remove(fut)
            raise

    def release(self) -> None:
        waiters = self.waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the turn goes to that task; busy stays True
                return
        self.busy = False

    async def __aenter__(self) -> None:
        if not self.take():
            await self.wait()

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()


class Pending:
    """What ``open()`` and the ``tempfile`` functions return: awaitable (once: awaiting
    again gives the same object), and an async context manager that leaves through the
    object's own ``__aexit__`` (a file closes, a directory is removed)."""

    __slots__ = ("_factory", "_obj")

    def __init__(self, factory: Callable[[], Awaitable[Any]]) -> None:
        self._factory = factory
        self._obj: Any = None

    def __await__(self) -> Generator[Any, None, Any]:
        if self._obj is None:
            self._obj = yield from self._factory().__await__()
        return self._obj

    async def __aenter__(self) -> Any:
        return await self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        obj, self._obj = self._obj, None
        if obj is not None:
            await obj.__aexit__(exc_type, exc, tb)


class LineIteration:
    """``async for line in f``: ``readline()`` until it returns nothing (as aiofiles)."""

    __slots__ = ()

    def readline(self, size: Any = -1) -> Awaitable[Any]:
        raise NotImplementedError

    def __aiter__(self) -> Any:
        return self

    async def __anext__(self) -> Any:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line


async def uninterrupted(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to its end even if the caller is cancelled meanwhile.

    For every step that writes: the kernel may be writing already, and the file's books
    (position, buffer) must follow what it did. A cancellation of the caller waits for
    ``coro`` to finish, then raises ``CancelledError``.
    """
    task = asyncio.ensure_future(coro)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.cancelled():  # cancelled from elsewhere (the loop shutting down)
                raise
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return result


class Ready:
    """An awaitable that is done already (no loop needed: ``close()`` outside a loop).

    It is also a coroutine as ``asyncio`` sees one (``send``/``throw``/``close``,
    registered as ``collections.abc.Coroutine``), so ``asyncio.create_task(f.close())``
    works as with aiofiles, whose methods are coroutines."""

    __slots__ = ("value",)

    def __init__(self, value: Any = None) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, Any]:
        return self.value
        yield  # a generator: awaiting it returns at once

    def send(self, value: object) -> Any:
        raise StopIteration(self.value)

    def throw(self, typ: Any, val: Any = None, tb: TracebackType | None = None) -> Any:
        raise _exception(typ, val, tb)

    def close(self) -> None:
        pass

    def done(self) -> bool:
        return True

    def result(self) -> Any:
        return self.value


class Closing:
    """Awaits the close of an fd (a future of the queue's close) and returns None.

    The future is shielded: a cancelled waiter must not cancel the close itself (a
    close still in the driver's backlog would be dropped, and the fd leak). A coroutine
    as ``asyncio`` sees one, as :class:`Ready`."""

    __slots__ = ("_steps", "fut")

    def __init__(self, fut: asyncio.Future[Any]) -> None:
        self.fut = fut
        self._steps: Generator[Any, None, None] | None = None

    def __await__(self) -> Generator[Any, None, None]:
        yield from asyncio.shield(self.fut).__await__()

    def _started(self) -> Generator[Any, None, None]:
        steps = self._steps
        if steps is None:
            steps = self._steps = self.__await__()
        return steps

    def send(self, value: None) -> Any:
        return self._started().send(value)

    def throw(self, typ: Any, val: Any = None, tb: TracebackType | None = None) -> Any:
        return self._started().throw(_exception(typ, val, tb))

    def close(self) -> None:
        if self._steps is not None:
            self._steps.close()

    def done(self) -> bool:
        return self.fut.done()


def _exception(typ: Any, val: Any, tb: TracebackType | None) -> BaseException:
    """What ``coroutine.throw(typ[, val[, tb]])`` raises."""
    if isinstance(val, BaseException):
        exc = val
    elif isinstance(typ, BaseException):
        exc = typ
    else:
        exc = typ() if val is None else typ(val)
    return exc.with_traceback(tb) if tb is not None else exc


Coroutine.register(Ready)
Coroutine.register(Closing)


_DONE: Final = Ready()  # immutable in practice: nothing assigns .value after __init__


def done_future() -> Ready:
    """An awaitable holding ``None``, for a close that finished at once (one shared
    object: no allocation per close)."""
    return _DONE


def failed(loop: asyncio.AbstractEventLoop, exc: BaseException) -> asyncio.Future[Any]:
    """A future of ``loop`` that already holds ``exc``."""
    fut: asyncio.Future[Any] = loop.create_future()
    fut.set_exception(exc)
    return fut


def unsupported(message: str) -> io.UnsupportedOperation:
    return io.UnsupportedOperation(message)


class AsyncFile(LineIteration):
    """The base of every file object of ``uringq.aio`` (raw, buffered and text).

    It gives async iteration over lines, ``async with``, ``readlines``, ``writelines``
    and ``aclose``; subclasses provide ``readline``, ``write``, ``close`` and
    ``_check_open_dot``.
    """

    __slots__ = ()

    def _check_open_dot(self) -> None:
        raise NotImplementedError

    def write(self, data: Any) -> Awaitable[int]:
        raise NotImplementedError

    def close(self) -> Awaitable[None]:
        raise NotImplementedError

    def __aiter__(self) -> AsyncFile:
        self._check_open_dot()
        return self

    async def readlines(self, hint: int | None = -1) -> list[Any]:
        """Read lines until EOF, or until their total size reaches ``hint`` (if > 0)."""
        self._check_open_dot()
        if hint is None:
            hint = -1
        lines: list[Any] = []
        total = 0
        while True:
            line = await self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < hint < total:  # as the builtin: stop once past the hint
                return lines

    async def writelines(self, lines: Iterable[Any]) -> None:
        """Write each item of ``lines`` (no separators are added)."""
        self._check_open_dot()
        for line in lines:
            await self.write(line)

    async def aclose(self) -> None:
        """Close the file (``await f.close()`` does the same)."""
        await self.close()

    async def __aenter__(self) -> Any:
        self._check_open_dot()
        return self

    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[None]:
        # A plain function returning close()'s awaitable: no coroutine frame per file.
        return self.close()


def line_limit(size: Any) -> int:
    """A ``readline`` size as the builtin takes it: an int, or None for no limit."""
    if size is None:
        return -1
    if not hasattr(size, "__index__"):
        raise TypeError(f"argument should be integer or None, not '{type(size).__name__}'")
    return operator.index(size)
