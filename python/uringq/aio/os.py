"""``os`` for asyncio: ``await uringq.aio.os.stat(path)`` and friends (aiofiles.os).

Same arguments, results and exceptions as the ``os`` functions of the same name. The
ones the kernel can do run as requests on the loop's queue (STATX, RENAMEAT, UNLINKAT,
MKDIRAT, SYMLINKAT, LINKAT); the rest (``listdir``, ``scandir``, ``access``, ``readlink``,
``makedirs``, ``sendfile``, ...) and every operation the running queue lacks run on the
package's worker pool. ``uringq.aio.os.path`` is :mod:`uringq.aio.ospath`.

Each function also takes aiofiles' keyword arguments ``loop`` (whose queue to use; by
default the running loop's) and ``executor`` (an executor for the calls that run on
threads; by default the package's pool).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import operator
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from uringq.aio import _workers
from uringq.aio import ospath as path
from uringq.aio._driver import Driver, get_driver

__all__ = [
    "access",
    "getcwd",
    "link",
    "listdir",
    "lstat",
    "makedirs",
    "mkdir",
    "path",
    "readlink",
    "remove",
    "removedirs",
    "rename",
    "renames",
    "replace",
    "rmdir",
    "scandir",
    "sendfile",
    "stat",
    "statvfs",
    "symlink",
    "unlink",
    "wrap",
]

P = ParamSpec("P")
T = TypeVar("T")

sys.modules[__name__ + ".path"] = path  # ``import uringq.aio.os.path`` works, as for os


def _driver(loop: asyncio.AbstractEventLoop | None) -> Driver:
    return get_driver(loop)


def check_path(function: str, argument: str, value: Any, *, fd_ok: bool = False) -> Any:
    """``value`` as ``os`` takes it (str, bytes, or an int if ``fd_ok``), with os's errors."""
    if fd_ok and isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str | bytes):
        if not hasattr(type(value), "__fspath__"):
            kinds = (
                "string, bytes, os.PathLike or integer" if fd_ok else "string, bytes or os.PathLike"
            )
            raise TypeError(f"{function}: {argument} should be {kinds}, not {type(value).__name__}")
        value = os.fspath(value)
    if isinstance(value, str):
        if "\0" in value:
            raise ValueError("embedded null byte")
    elif b"\0" in value:
        raise ValueError(f"{function}: embedded null character in path")
    return value


def check_dir_fd(value: Any) -> int | None:
    if value is None:
        return None
    if not hasattr(value, "__index__"):
        raise TypeError(f"argument should be integer or None, not {type(value).__name__}")
    return int(value.__index__())


def wrap(func: Callable[P, T]) -> Callable[..., Awaitable[T]]:
    """An async version of ``func`` that runs it on the worker pool (aiofiles' ``wrap``)."""

    @functools.wraps(func)
    async def run(
        *args: Any,
        loop: asyncio.AbstractEventLoop | None = None,
        executor: concurrent.futures.Executor | None = None,
        **kwargs: Any,
    ) -> T:
        loop = loop or asyncio.get_running_loop()
        call = functools.partial(func, *args, **kwargs)
        return await _workers.submit(loop, call, executor=executor)

    return run


# -- on the queue where it has the operation -------------------------------------------------
async def stat(
    path: Any,
    *,
    dir_fd: int | None = None,
    follow_symlinks: bool = True,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> os.stat_result:
    """``os.stat``: an ``os.stat_result`` (``path`` may be an fd)."""
    path = check_path("stat", "path", path, fd_ok=True)
    return await _driver(loop).statx(
        path, dir_fd=check_dir_fd(dir_fd), follow_symlinks=bool(follow_symlinks)
    )


async def lstat(
    path: Any,
    *,
    dir_fd: int | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> os.stat_result:
    """``os.lstat``: ``stat`` of a symlink itself."""
    path = check_path("lstat", "path", path)
    return await _driver(loop).statx(path, dir_fd=check_dir_fd(dir_fd), follow_symlinks=False)


def _renamer(name: str) -> Callable[..., Awaitable[None]]:
    async def call(
        src: Any,
        dst: Any,
        *,
        src_dir_fd: int | None = None,
        dst_dir_fd: int | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        executor: concurrent.futures.Executor | None = None,
    ) -> None:
        src = check_path(name, "src", src)
        dst = check_path(name, "dst", dst)
        await _driver(loop).renameat(
            src, dst, src_dir_fd=check_dir_fd(src_dir_fd), dst_dir_fd=check_dir_fd(dst_dir_fd)
        )

    return _named(call, name, "RENAMEAT")


def _unlinker(name: str, *, rmdir: bool) -> Callable[..., Awaitable[None]]:
    async def call(
        path: Any,
        *,
        dir_fd: int | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        executor: concurrent.futures.Executor | None = None,
    ) -> None:
        path = check_path(name, "path", path)
        await _driver(loop).unlinkat(path, dir_fd=check_dir_fd(dir_fd), rmdir=rmdir)

    return _named(call, name, "UNLINKAT")


def _named(
    call: Callable[..., Awaitable[None]], name: str, opcode: str
) -> Callable[..., Awaitable[None]]:
    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"``os.{name}`` ({opcode} on the queue)."
    return call


rename = _renamer("rename")
replace = _renamer("replace")  # on POSIX the same call as rename
remove = _unlinker("remove", rmdir=False)
unlink = _unlinker("unlink", rmdir=False)
rmdir = _unlinker("rmdir", rmdir=True)


async def mkdir(
    path: Any,
    mode: int = 0o777,
    *,
    dir_fd: int | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> None:
    """``os.mkdir``."""
    path = check_path("mkdir", "path", path)
    await _driver(loop).mkdirat(path, operator.index(mode), dir_fd=check_dir_fd(dir_fd))


async def symlink(
    src: Any,
    dst: Any,
    target_is_directory: bool = False,
    *,
    dir_fd: int | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> None:
    """``os.symlink`` (``target_is_directory`` matters on Windows only)."""
    src = check_path("symlink", "src", src)
    dst = check_path("symlink", "dst", dst)
    await _driver(loop).symlinkat(src, dst, dir_fd=check_dir_fd(dir_fd))


async def link(
    src: Any,
    dst: Any,
    *,
    src_dir_fd: int | None = None,
    dst_dir_fd: int | None = None,
    follow_symlinks: bool = True,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> None:
    """``os.link``."""
    src = check_path("link", "src", src)
    dst = check_path("link", "dst", dst)
    await _driver(loop).linkat(
        src,
        dst,
        src_dir_fd=check_dir_fd(src_dir_fd),
        dst_dir_fd=check_dir_fd(dst_dir_fd),
        follow_symlinks=bool(follow_symlinks),
    )


# -- on the worker pool (no opcode) ----------------------------------------------------------
_readlink: Callable[..., Any] = os.readlink
renames = wrap(os.renames)
makedirs = wrap(os.makedirs)
removedirs = wrap(os.removedirs)
readlink = wrap(_readlink)
listdir = wrap(os.listdir)
scandir = wrap(os.scandir)
access = wrap(os.access)
getcwd = wrap(os.getcwd)
sendfile = wrap(os.sendfile)
statvfs = wrap(os.statvfs)
