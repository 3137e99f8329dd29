"""The file objects of :func:`uringq.aio.open`."""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from uringq.aio._driver import Driver

__all__ = ["AsyncFile"]


class AsyncFile:
    """A file opened by :func:`open`, registered with its loop's queue.

    Every operation is positional (``offset`` is required); there is no file position.
    Methods return futures: ``await f.read(n, offset)``.
    """

    __slots__ = ("_driver", "_fd", "mode", "name")

    def __init__(self, driver: Driver, fd: int, name: Any, mode: str) -> None:
        self._driver = driver
        self._fd = fd
        self.name = name
        self.mode = mode

    @property
    def closed(self) -> bool:
        return self._fd < 0

    @property
    def driver(self) -> Driver:
        """The driver (and so the loop and queue) this file belongs to."""
        return self._driver

    def fileno(self) -> int:
        if self._fd < 0:
            raise ValueError("I/O operation on closed file")
        return self._fd

    def read(self, size: int, offset: int) -> asyncio.Future[bytes]:
        """Read up to ``size`` bytes at ``offset``: ``bytes``, short at EOF, ``b""`` past it."""
        fd = self._fd
        if fd < 0:
            return _failed(self._driver, ValueError("I/O operation on closed file"))
        return self._driver.read(fd, size, offset)

    def read_into(self, buf: Buffer, offset: int) -> asyncio.Future[int]:
        """Read into ``buf`` at ``offset``; resolves to the number of bytes read."""
        fd = self._fd
        if fd < 0:
            return _failed(self._driver, ValueError("I/O operation on closed file"))
        return self._driver.read_into(fd, offset, buf)

    def readv(self, bufs: Sequence[Buffer], offset: int) -> asyncio.Future[int]:
        """Scatter read into ``bufs`` at ``offset``; resolves to the number of bytes read."""
        fd = self._fd
        if fd < 0:
            return _failed(self._driver, ValueError("I/O operation on closed file"))
        return self._driver.readv(fd, offset, bufs)

    def write(self, data: Buffer, offset: int) -> asyncio.Future[int]:
        """Write ``data`` at ``offset``; resolves to the number of bytes written.

        As with ``os.pwrite``, a write may be short (a full disk, a file size limit).
        In append mode the kernel writes at the end of the file whatever ``offset`` says.
        """
        fd = self._fd
        if fd < 0:
            return _failed(self._driver, ValueError("I/O operation on closed file"))
        return self._driver.write(fd, offset, data)

    def writev(self, bufs: Sequence[Buffer], offset: int) -> asyncio.Future[int]:
        """Gather write of ``bufs`` at ``offset``; resolves to the number of bytes written."""
        fd = self._fd
        if fd < 0:
            return _failed(self._driver, ValueError("I/O operation on closed file"))
        return self._driver.writev(fd, offset, bufs)

    async def fsync(self, *, datasync: bool = False) -> None:
        """Flush the file to stable storage (``fdatasync`` with ``datasync=True``)."""
        fd = self._fd
        if fd < 0:
            raise ValueError("I/O operation on closed file")
        await self._driver.fsync(fd, datasync=datasync)

    def close(self) -> None:
        """Close the file. Closing twice does nothing.

        Requests still in flight (e.g. cancelled ones) keep the fd number reserved until
        they complete; the fd is closed then.
        """
        fd = self._fd
        if fd < 0:
            return
        self._fd = -1
        self._driver.deregister(fd, close=True)

    async def aclose(self) -> None:
        """Close the file (an awaitable form of :meth:`close`)."""
        self.close()

    async def __aenter__(self) -> AsyncFile:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=2)
            with contextlib.suppress(Exception):  # best effort at collection time
                self.close()

    def __repr__(self) -> str:
        state = "closed" if self._fd < 0 else f"fd={self._fd}"
        return f"<uringq.aio.AsyncFile name={self.name!r} mode={self.mode!r} {state}>"


def _failed(driver: Driver, exc: BaseException) -> asyncio.Future[Any]:
    fut: asyncio.Future[Any] = driver.loop.create_future()
    fut.set_exception(exc)
    return fut
