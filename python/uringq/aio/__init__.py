"""asyncio file I/O on the loop's queue: the builtin ``open`` as coroutines, a drop-in
for aiofiles, plus positional requests.

::

    async with uringq.aio.open("notes.txt") as f:            # like aiofiles.open
        async for line in f:
            ...
    async with uringq.aio.open("data.bin", "rb") as f:
        block = await f.read(4096, 8192)                     # positional: 4 KiB at 8192
        n = await f.read_into(buffer, 0)

The package, one module per concern:

* ``_driver``: :class:`Driver`, the per-loop glue (commit once per loop iteration,
  settle futures, backlog), and :func:`get_driver`; ``_ops``: its file and path
  operations (open, close, stat, rename, ...), kernel opcodes where the queue has them,
  else ``_workers``, the package's one worker thread pool.
* ``_positional``: the module-level requests on registered fds (:func:`read`,
  :func:`write`, :func:`readv`, :func:`writev`, :func:`fsync`, :func:`register`,
  :func:`deregister`).
* ``_whole``: whole files, :func:`read_file`, :func:`write_file`, :func:`read_files`,
  :func:`write_files` (one kernel group per file on io_uring).
* ``_raw``, ``_buffered``, ``_text``: the file objects (``io.FileIO``,
  ``io.Buffered*``, ``io.TextIOWrapper`` with coroutine methods); ``_opener``: :func:`open`.
* :mod:`uringq.aio.os` (with ``os.path``), :mod:`uringq.aio.tempfile`, and the stdio
  objects :data:`stdin`, :data:`stdout`, :data:`stderr` (``_stdio``).

Fast paths: the positional methods of the file objects and the methods of
:class:`Driver` return a plain :class:`asyncio.Future` (no coroutine per call). The
module-level :func:`read`, :func:`write`, ... look the driver up per call and need the
fd registered first with :func:`register`.
"""

from __future__ import annotations

import importlib
from typing import Any

from uringq.aio._base import AsyncFile
from uringq.aio._buffered import AsyncBufferedRandom, AsyncBufferedReader, AsyncBufferedWriter
from uringq.aio._driver import DEFAULT_SQ_ENTRIES, Driver, get_driver
from uringq.aio._opener import open
from uringq.aio._positional import deregister, fsync, read, readv, register, write, writev
from uringq.aio._raw import AsyncFileIO
from uringq.aio._stdio import stderr, stderr_bytes, stdin, stdin_bytes, stdout, stdout_bytes
from uringq.aio._text import AsyncTextIOWrapper
from uringq.aio._whole import read_file, read_files, write_file, write_files

__all__ = [
    "DEFAULT_SQ_ENTRIES",
    "AsyncBufferedRandom",
    "AsyncBufferedReader",
    "AsyncBufferedWriter",
    "AsyncFile",
    "AsyncFileIO",
    "AsyncTextIOWrapper",
    "Driver",
    "deregister",
    "fsync",
    "get_driver",
    "open",
    "read",
    "read_file",
    "read_files",
    "readv",
    "register",
    "stderr",
    "stderr_bytes",
    "stdin",
    "stdin_bytes",
    "stdout",
    "stdout_bytes",
    "write",
    "write_file",
    "write_files",
    "writev",
]

_SUBMODULES = ("os", "ospath", "tempfile")


def __getattr__(name: str) -> Any:
    """``uringq.aio.os``, ``.ospath`` and ``.tempfile`` without importing them first."""
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
