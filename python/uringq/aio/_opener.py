"""``uringq.aio.open``: mode parsing and the awaitable / async context manager it returns."""

from __future__ import annotations

import os
from collections.abc import Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from uringq.aio._driver import get_driver
from uringq.aio._file import AsyncFile

if TYPE_CHECKING:
    from uringq._registry import ProviderInfo

__all__ = ["open"]


def _mode_flags(mode: str) -> int:
    """``os.open`` flags for a binary ``open()`` mode (``"rb"``, ``"r+b"``, ``"wb"`` ...)."""
    if not isinstance(mode, str):
        raise TypeError(f"mode must be str, not {type(mode).__name__}")
    chars = set(mode)
    kinds = chars & set("rwax")
    if len(kinds) != 1 or len(chars) != len(mode) or not chars <= set("rwax+b"):
        if "t" in chars:
            raise ValueError("uringq.aio.open() is binary only: text mode is not supported")
        raise ValueError(f"invalid mode: {mode!r}")
    kind = kinds.pop()
    update = "+" in chars
    access = os.O_RDWR if update else (os.O_RDONLY if kind == "r" else os.O_WRONLY)
    extra = {
        "r": 0,
        "w": os.O_CREAT | os.O_TRUNC,
        "a": os.O_CREAT | os.O_APPEND,
        "x": os.O_CREAT | os.O_EXCL,
    }[kind]
    return access | extra | os.O_CLOEXEC


class _Opener:
    """What :func:`open` returns: awaitable, and an async context manager."""

    __slots__ = ("_file", "_flags", "_mode", "_path", "_perms", "_provider")

    def __init__(
        self,
        path: str | bytes | os.PathLike[str] | os.PathLike[bytes],
        mode: str,
        flags: int,
        perms: int,
        provider: str | ProviderInfo | None,
    ) -> None:
        self._path = path
        self._mode = mode
        self._flags = flags
        self._perms = perms
        self._provider = provider
        self._file: AsyncFile | None = None

    async def _open(self) -> AsyncFile:
        driver = get_driver(provider=self._provider)
        fd = os.open(self._path, self._flags, self._perms)
        try:
            driver.register(fd)
        except BaseException:
            os.close(fd)
            raise
        return AsyncFile(driver, fd, self._path, self._mode)

    def __await__(self) -> Generator[Any, None, AsyncFile]:
        return self._open().__await__()

    async def __aenter__(self) -> AsyncFile:
        self._file = await self._open()
        return self._file

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is not None:
            self._file.close()


def open(  # mirrors the builtin, like aiofiles.open
    path: str | bytes | os.PathLike[str] | os.PathLike[bytes],
    mode: str = "rb",
    *,
    direct: bool = False,
    perms: int = 0o666,
    provider: str | ProviderInfo | None = None,
) -> _Opener:
    """Open ``path`` for positional asynchronous I/O on the running loop's queue.

    ``async with uringq.aio.open(path, "rb") as f:`` or ``f = await uringq.aio.open(...)``
    (then ``f.close()``). Modes are those of the builtin ``open`` in binary form (``"b"``
    is implied): ``r``, ``w``, ``a``, ``x``, each optionally with ``+``. ``direct=True``
    adds ``O_DIRECT`` (buffers, offsets and sizes must then be aligned, see
    :func:`uringq.aligned_buffer`). ``perms`` is the mode of a created file (before the
    umask). ``provider`` applies if this creates the loop's driver.

    The file is opened with ``os.open`` (a local open does not block for long); a failure
    raises the builtin :class:`OSError` subclass, e.g. :class:`FileNotFoundError`.
    """
    flags = _mode_flags(mode)
    if direct:
        flags |= os.O_DIRECT
    return _Opener(path, mode, flags, perms, provider)
