"""``tempfile`` for asyncio, as aiofiles.tempfile has it.

``TemporaryFile``, ``NamedTemporaryFile``, ``SpooledTemporaryFile`` and
``TemporaryDirectory`` take the stdlib's parameters (plus aiofiles' ``loop`` and
``executor``) and are awaitable and async context managers. Their files are
:func:`uringq.aio.open` file objects: created with ``openat`` on the loop's queue
(``O_TMPFILE`` for ``TemporaryFile`` where the file system has it, else a new name with
``O_EXCL`` and ``0o600``, as the stdlib does), deleted with ``unlinkat``; a temporary
directory is a ``mkdirat`` (``0o700``) and its cleanup a ``shutil.rmtree`` on the worker
pool. ``SpooledTemporaryFile`` keeps the data in memory (``io.BytesIO``, or an
``io.TextIOWrapper`` over one) until it outgrows ``max_size`` or ``fileno()`` is asked
for, then moves it to a ``TemporaryFile``, as aiofiles' does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import os
import random
import shutil
import tempfile as _stdlib
from collections.abc import Generator
from typing import Any

from uringq.aio import _workers
from uringq.aio._base import Pending
from uringq.aio._driver import get_driver
from uringq.aio._opener import open as aio_open
from uringq.aio._spooled import AsyncSpooledTemporaryFile

__all__ = [
    "AsyncSpooledTemporaryFile",
    "AsyncTemporaryDirectory",
    "AsyncTemporaryFileWrapper",
    "NamedTemporaryFile",
    "SpooledTemporaryFile",
    "TemporaryDirectory",
    "TemporaryFile",
]

_CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789_"
_random = random.Random()
os.register_at_fork(after_in_child=_random.seed)
_CREATE = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class _PendingDirectory(Pending):
    """``async with TemporaryDirectory() as name`` gives the name, as the stdlib's."""

    __slots__ = ()

    async def __aenter__(self) -> Any:
        return (await self).name


def _names(prefix: Any, suffix: Any, directory: Any) -> Generator[Any, None, None]:
    """Candidate paths, as the stdlib makes them (8 random characters)."""
    for _ in range(_stdlib.TMP_MAX):
        letters = "".join(_random.choices(_CHARACTERS, k=8))
        if isinstance(directory, bytes):
            yield os.path.join(directory, prefix + os.fsencode(letters) + suffix)
        else:
            yield os.path.join(directory, prefix + letters + suffix)


async def _params(prefix: Any, suffix: Any, directory: Any, loop: Any) -> tuple[Any, Any, Any]:
    """The stdlib's defaults and str/bytes rules for ``prefix``, ``suffix``, ``dir``."""
    kinds = {type(x) for x in (prefix, suffix, directory) if x is not None}
    kinds = {bytes if issubclass(k, bytes) else str for k in kinds}
    if len(kinds) > 1:
        raise TypeError("Can't mix bytes and non-bytes in path components.")
    binary = kinds == {bytes}
    if suffix is None:
        suffix = b"" if binary else ""
    if prefix is None:
        prefix = os.fsencode(_stdlib.template) if binary else _stdlib.template
    if directory is None:
        cached = _stdlib.tempdir
        if cached is None:  # the first call probes directories: not on the loop
            cached = await _workers.submit(loop, _stdlib.gettempdir)
        directory = os.fsencode(cached) if binary else cached
    return prefix, suffix, directory


async def _mkstemp(prefix: Any, suffix: Any, directory: Any, loop: Any) -> tuple[int, Any]:
    """``tempfile.mkstemp`` on the queue: (fd, absolute path)."""
    prefix, suffix, directory = await _params(prefix, suffix, directory, loop)
    driver = get_driver(loop)
    for name in _names(prefix, suffix, directory):
        try:
            fd = await _workers.take_fd(driver.openat(name, _CREATE, 0o600))
        except FileExistsError:
            continue
        return fd, os.path.abspath(name)
    raise FileExistsError(errno.EEXIST, "No usable temporary file name found")


async def _tmpfile(directory: Any, loop: Any) -> int:
    """An unnamed file in ``directory``: ``O_TMPFILE`` where it works, else a name that is
    unlinked at once."""
    _, _, directory = await _params(None, None, directory, loop)
    driver = get_driver(loop)
    flags = (_CREATE & ~os.O_CREAT) | getattr(os, "O_TMPFILE", 0)
    if flags & os.O_DIRECTORY:
        try:
            return await _workers.take_fd(driver.openat(directory, flags, 0o600))
        except IsADirectoryError:  # the kernel or file system has no O_TMPFILE
            pass
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
    fd, name = await _mkstemp(None, None, directory, loop)
    try:
        await driver.unlinkat(name)
    except BaseException:
        os.close(fd)
        raise
    return fd


def TemporaryFile(  # noqa: PLR0917 - the stdlib's signature
    mode: str = "w+b",
    buffering: int = -1,
    encoding: str | None = None,
    newline: str | None = None,
    suffix: Any = None,
    prefix: Any = None,
    dir: Any = None,
    *,
    errors: str | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> Any:
    """An unnamed temporary file (``await``, or ``async with ... as f``)."""

    async def make() -> Any:
        fd = await _tmpfile(dir, loop or asyncio.get_running_loop())
        return await _open_fd(fd, mode, buffering, (encoding, newline, errors), loop)

    return Pending(make)


async def _open_fd(
    fd: int, mode: str, buffering: int, text: tuple[Any, Any, Any], loop: Any
) -> Any:
    """Our file object for ``fd`` (``text``: encoding, newline, errors); closes ``fd`` if
    the arguments are refused."""
    encoding, newline, errors = text
    try:
        opener = aio_open(fd, mode, buffering, encoding, errors, newline, loop=loop)
    except BaseException:
        os.close(fd)
        raise
    return await opener


class AsyncTemporaryFileWrapper:
    """A named temporary file: the :func:`uringq.aio.open` file (``.file``) under its
    path (``.name``), deleted on close (``delete`` and ``delete_on_close``) or at the
    end of the ``async with`` block (``delete`` only); every other attribute is the
    file's."""

    def __init__(self, file: Any, name: Any, delete: bool, delete_on_close: bool) -> None:
        self.file = file
        self.name = name
        self.delete = delete
        self._delete_on_close = delete_on_close
        self._close_called = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["file"], name)

    def __aiter__(self) -> Any:
        return self.file.__aiter__()

    async def _unlink(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            await get_driver().unlinkat(self.name)

    async def close(self) -> None:
        """Close the file (and delete it with ``delete`` and ``delete_on_close``)."""
        if self._close_called:
            return
        self._close_called = True
        try:
            await self.file.close()
        finally:
            if self.delete and self._delete_on_close:
                await self._unlink()

    async def __aenter__(self) -> AsyncTemporaryFileWrapper:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            await self.close()
        finally:
            if self.delete and not self._delete_on_close:
                await self._unlink()

    def __repr__(self) -> str:
        return f"<uringq.aio.tempfile.AsyncTemporaryFileWrapper name={self.name!r}>"


def NamedTemporaryFile(  # noqa: PLR0917 - the stdlib's signature
    mode: str = "w+b",
    buffering: int = -1,
    encoding: str | None = None,
    newline: str | None = None,
    suffix: Any = None,
    prefix: Any = None,
    dir: Any = None,
    delete: bool = True,
    *,
    errors: str | None = None,
    delete_on_close: bool = True,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> Any:
    """A temporary file with a name in the file system (``await`` or ``async with``)."""

    async def make() -> AsyncTemporaryFileWrapper:
        fd, name = await _mkstemp(prefix, suffix, dir, loop or asyncio.get_running_loop())
        try:
            file = await _open_fd(fd, mode, buffering, (encoding, newline, errors), loop)
        except BaseException:
            await get_driver(loop).unlinkat(name)
            raise
        return AsyncTemporaryFileWrapper(file, name, delete, delete_on_close)

    return Pending(make)


def SpooledTemporaryFile(  # noqa: PLR0917 - the stdlib's signature
    max_size: int = 0,
    mode: str = "w+b",
    buffering: int = -1,
    encoding: str | None = None,
    newline: str | None = None,
    suffix: Any = None,
    prefix: Any = None,
    dir: Any = None,
    *,
    errors: str | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> Any:
    """A temporary file in memory until it outgrows ``max_size`` (then a real one)."""

    async def make() -> AsyncSpooledTemporaryFile:
        def rollover_file() -> Any:
            return TemporaryFile(
                mode, buffering, encoding, newline, suffix, prefix, dir, errors=errors, loop=loop
            )

        return AsyncSpooledTemporaryFile(max_size, mode, encoding, newline, errors, rollover_file)

    return Pending(make)


class AsyncTemporaryDirectory:
    """A temporary directory: ``name``, and ``cleanup()`` (on the worker pool)."""

    def __init__(self, name: Any, ignore_cleanup_errors: bool, delete: bool) -> None:
        self.name = name
        self._ignore_cleanup_errors = ignore_cleanup_errors
        self._delete = delete
        self._done = False

    async def cleanup(self) -> None:
        """Remove the directory and everything in it."""
        if self._done:
            return
        self._done = True
        loop = asyncio.get_running_loop()
        if not await _workers.submit(loop, os.path.lexists, self.name):
            return
        await _workers.submit(
            loop,
            shutil.rmtree,
            self.name,
            self._ignore_cleanup_errors,
        )

    async def close(self) -> None:
        await self.cleanup()

    async def __aexit__(self, *exc_info: Any) -> None:
        if self._delete:
            await self.cleanup()

    def __repr__(self) -> str:
        return f"<uringq.aio.tempfile.AsyncTemporaryDirectory {self.name!r}>"


def TemporaryDirectory(
    suffix: Any = None,
    prefix: Any = None,
    dir: Any = None,
    ignore_cleanup_errors: bool = False,
    *,
    delete: bool = True,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> Any:
    """A temporary directory (``async with TemporaryDirectory() as name``)."""

    async def make() -> AsyncTemporaryDirectory:
        running = loop or asyncio.get_running_loop()
        prefix_, suffix_, directory = await _params(prefix, suffix, dir, running)
        driver = get_driver(loop)
        for name in _names(prefix_, suffix_, directory):
            try:
                await driver.mkdirat(name, 0o700)
            except FileExistsError:
                continue
            return AsyncTemporaryDirectory(os.path.abspath(name), ignore_cleanup_errors, delete)
        raise FileExistsError(errno.EEXIST, "No usable temporary directory name found")

    return _PendingDirectory(make)
