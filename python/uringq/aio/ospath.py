"""``os.path`` for asyncio (aiofiles.ospath); also ``uringq.aio.os.path``.

The checks built on ``stat`` (``exists``, ``isfile``, ``isdir``, ``islink``, the sizes
and times, ``samefile``, ``sameopenfile``) are STATX requests on the loop's queue and
answer exactly as ``os.path`` does (``exists`` is False for a path ``os.stat`` rejects
with ``OSError`` or ``ValueError``, ...). ``ismount`` and ``abspath`` (a ``realpath`` /
``getcwd`` away from a plain stat) run on the worker pool.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import stat
from typing import Any

from uringq.aio import _workers
from uringq.aio._driver import get_driver

__all__ = [
    "abspath",
    "exists",
    "getatime",
    "getctime",
    "getmtime",
    "getsize",
    "isdir",
    "isfile",
    "islink",
    "ismount",
    "lexists",
    "samefile",
    "sameopenfile",
]


async def _stat_of(path: Any, loop: Any, *, follow_symlinks: bool = True) -> os.stat_result:
    from uringq.aio.os import check_path  # the module imports this one

    function = "stat" if follow_symlinks else "lstat"
    path = check_path(function, "path", path, fd_ok=follow_symlinks)
    return await get_driver(loop).statx(path, follow_symlinks=follow_symlinks)


async def exists(
    path: Any,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> bool:
    """``os.path.exists``."""
    try:
        await _stat_of(path, loop)
    except (OSError, ValueError):
        return False
    return True


async def lexists(
    path: Any,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> bool:
    """``os.path.lexists`` (True for a broken symlink)."""
    try:
        await _stat_of(path, loop, follow_symlinks=False)
    except (OSError, ValueError):
        return False
    return True


async def _mode_is(path: Any, loop: Any, test: Any, *, follow_symlinks: bool = True) -> bool:
    try:
        st = await _stat_of(path, loop, follow_symlinks=follow_symlinks)
    except (OSError, ValueError):
        return False
    return bool(test(st.st_mode))


async def isfile(
    path: Any,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> bool:
    """``os.path.isfile``."""
    return await _mode_is(path, loop, stat.S_ISREG)


async def isdir(
    s: Any,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> bool:
    """``os.path.isdir``."""
    return await _mode_is(s, loop, stat.S_ISDIR)


async def islink(
    path: Any,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> bool:
    """``os.path.islink``."""
    try:
        return await _mode_is(path, loop, stat.S_ISLNK, follow_symlinks=False)
    except AttributeError:
        return False


async def getsize(
    filename: Any,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> int:
    """``os.path.getsize``."""
    st = await _stat_of(filename, loop)
    return st.st_size


async def getmtime(
    filename: Any,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> float:
    """``os.path.getmtime``."""
    st = await _stat_of(filename, loop)
    return st.st_mtime


async def getatime(
    filename: Any,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> float:
    """``os.path.getatime``."""
    st = await _stat_of(filename, loop)
    return st.st_atime


async def getctime(
    filename: Any,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> float:
    """``os.path.getctime``."""
    st = await _stat_of(filename, loop)
    return st.st_ctime


async def samefile(
    f1: Any,
    f2: Any,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> bool:
    """``os.path.samefile``: both stats in one loop iteration."""
    s1, s2 = await asyncio.gather(_stat_of(f1, loop), _stat_of(f2, loop))
    return os.path.samestat(s1, s2)


async def sameopenfile(
    fp1: int,
    fp2: int,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> bool:
    """``os.path.sameopenfile`` (two fds)."""
    driver = get_driver(loop)
    s1, s2 = await asyncio.gather(driver.statx(_fd(fp1)), driver.statx(_fd(fp2)))
    return os.path.samestat(s1, s2)


def _fd(value: Any) -> int:
    if not hasattr(value, "__index__"):
        raise TypeError(f"'{type(value).__name__}' object cannot be interpreted as an integer")
    return int(value.__index__())


async def ismount(
    path: Any,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> bool:
    """``os.path.ismount`` (on the worker pool: it resolves the parent)."""
    loop = loop or asyncio.get_running_loop()
    return await _workers.submit(loop, os.path.ismount, path, executor=executor)


async def abspath(
    path: Any,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> Any:
    """``os.path.abspath`` (on the worker pool: it may ask for the working directory)."""
    loop = loop or asyncio.get_running_loop()
    return await _workers.submit(loop, os.path.abspath, path, executor=executor)
