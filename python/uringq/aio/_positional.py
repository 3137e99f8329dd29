"""Module-level positional requests on registered fds (SPEC section 5).

Each call looks up the running loop's driver; the fd must be registered first with
:func:`register`. All return a plain :class:`asyncio.Future`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from uringq.aio._driver import get_driver

if TYPE_CHECKING:
    import asyncio

    from typing_extensions import Buffer

    from uringq._checks import HasFileno

__all__ = ["deregister", "fsync", "read", "readv", "register", "write", "writev"]


def register(fd: int | HasFileno) -> None:
    """Register ``fd`` with the running loop's queue (needed by :func:`read` etc.)."""
    get_driver().register(fd)


def deregister(fd: int | HasFileno, *, close: bool = False) -> None:
    """Deregister ``fd`` from the running loop's queue; see :meth:`Driver.deregister`."""
    get_driver().deregister(fd, close=close)


def read(fd: int, offset: int, buf: Buffer) -> asyncio.Future[int]:
    """Read into ``buf`` at ``offset`` from the registered ``fd``; resolves to bytes read."""
    return get_driver().read_into(fd, offset, buf)


def write(fd: int, offset: int, data: Buffer) -> asyncio.Future[int]:
    """Write ``data`` at ``offset`` to the registered ``fd``; resolves to bytes written."""
    return get_driver().write(fd, offset, data)


def readv(fd: int, offset: int, bufs: Sequence[Buffer]) -> asyncio.Future[int]:
    """Scatter read at ``offset`` from the registered ``fd``; resolves to bytes read."""
    return get_driver().readv(fd, offset, bufs)


def writev(fd: int, offset: int, bufs: Sequence[Buffer]) -> asyncio.Future[int]:
    """Gather write at ``offset`` to the registered ``fd``; resolves to bytes written."""
    return get_driver().writev(fd, offset, bufs)


def fsync(fd: int, *, datasync: bool = False) -> asyncio.Future[int]:
    """``fsync`` the registered ``fd`` (``fdatasync`` with ``datasync=True``)."""
    return get_driver().fsync(fd, datasync=datasync)
