"""asyncio integration: one :class:`~uringq.IoQueue` per event loop, a future per request.

::

    async with uringq.aio.open("data.bin", "rb") as f:
        block = await f.read(4096, offset=0)          # bytes; b"" past EOF, short at EOF
        n = await f.read_into(buffer, offset=8192)     # int
    async with uringq.aio.open("out.bin", "wb") as f:
        await f.write(b"hello", 0)
        await f.fsync()

The package, one module per concern:

* ``_driver``: :class:`Driver`, the per-loop glue (commit once per loop iteration,
  settle futures, backlog), and :func:`get_driver`.
* ``_positional``: the module-level requests on registered fds (:func:`read`,
  :func:`write`, :func:`readv`, :func:`writev`, :func:`fsync`, :func:`register`,
  :func:`deregister`).
* ``_file``: the file objects; ``_opener``: :func:`open`.

Fast paths: the methods of :class:`AsyncFile` and :class:`Driver` return a plain
:class:`asyncio.Future` (no coroutine per call). The module-level :func:`read`,
:func:`write`, ... look the driver up per call and need the fd registered first with
:func:`register`.
"""

from __future__ import annotations

from uringq.aio._driver import DEFAULT_SQ_ENTRIES, Driver, get_driver
from uringq.aio._file import AsyncFile
from uringq.aio._opener import open
from uringq.aio._positional import deregister, fsync, read, readv, register, write, writev

__all__ = [
    "DEFAULT_SQ_ENTRIES",
    "AsyncFile",
    "Driver",
    "deregister",
    "fsync",
    "get_driver",
    "open",
    "read",
    "readv",
    "register",
    "write",
    "writev",
]
