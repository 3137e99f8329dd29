"""``stdin``, ``stdout``, ``stderr`` and their ``_bytes`` variants, as aiofiles has them.

They stand for whatever ``sys.stdin``/``sys.stdout``/``sys.stderr`` is at the time of
each call (a test's capture, a replaced stream), and the stream keeps its own buffer,
shared with ``print()``. So their methods call the stream object's own methods, on the
package's worker pool (a terminal or pipe may block): the one place in ``uringq.aio``
where bytes do not go through the loop's queue, because the stream is a Python object,
not an fd the queue could own.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Callable
from typing import Any

from uringq.aio import _workers
from uringq.aio._base import LineIteration

__all__ = ["stderr", "stderr_bytes", "stdin", "stdin_bytes", "stdout", "stdout_bytes"]


def _on_worker(name: str) -> Callable[..., Any]:
    async def method(self: _Stream, *args: Any, **kwargs: Any) -> Any:
        call = functools.partial(getattr(self._get(), name), *args, **kwargs)
        return await _workers.submit(asyncio.get_running_loop(), call)

    method.__name__ = name
    method.__qualname__ = f"_Stream.{name}"
    method.__doc__ = f"The stream's ``{name}()``, on the worker pool."
    return method


def _direct(name: str) -> Callable[..., Any]:
    def method(self: _Stream, *args: Any, **kwargs: Any) -> Any:
        return getattr(self._get(), name)(*args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"The stream's ``{name}()`` (no I/O)."
    return method


def _attribute(name: str) -> property:
    return property(lambda self: getattr(self._get(), name), doc=f"The stream's ``{name}``.")


class _Stream(LineIteration):
    """One of the standard streams, looked up in ``sys`` at every call."""

    __slots__ = ("_get", "_name")

    def __init__(self, name: str, get: Callable[[], Any]) -> None:
        self._name = name
        self._get = get

    def __repr__(self) -> str:
        return f"<uringq.aio {self._name}>"


_SHARED = (
    *("close", "flush", "isatty", "read", "readline", "readlines", "seek", "seekable"),
    *("tell", "truncate", "writable", "write", "writelines"),
)


class _TextStream(_Stream):
    """``sys.stdin``/``stdout``/``stderr`` with coroutine methods."""

    __slots__ = ()


class _BinaryStream(_Stream):
    """The ``buffer`` of a standard stream with coroutine methods."""

    __slots__ = ()


for _name in (*_SHARED, "readable"):
    setattr(_TextStream, _name, _on_worker(_name))
for _name in (*_SHARED, "read1", "readinto"):
    setattr(_BinaryStream, _name, _on_worker(_name))
for _cls, _names in (
    (_TextStream, ("detach", "fileno")),
    (_BinaryStream, ("detach", "fileno", "readable")),
):
    for _name in _names:
        setattr(_cls, _name, _direct(_name))
_TEXT_ATTRIBUTES = ("buffer", "closed", "encoding", "errors", "line_buffering", "newlines")
for _name in (*_TEXT_ATTRIBUTES, "name", "mode"):
    setattr(_TextStream, _name, _attribute(_name))
for _name in ("closed", "raw", "name", "mode"):
    setattr(_BinaryStream, _name, _attribute(_name))

stdin = _TextStream("sys.stdin", lambda: sys.stdin)
stdout = _TextStream("sys.stdout", lambda: sys.stdout)
stderr = _TextStream("sys.stderr", lambda: sys.stderr)
stdin_bytes = _BinaryStream("sys.stdin.buffer", lambda: sys.stdin.buffer)
stdout_bytes = _BinaryStream("sys.stdout.buffer", lambda: sys.stdout.buffer)
stderr_bytes = _BinaryStream("sys.stderr.buffer", lambda: sys.stderr.buffer)
