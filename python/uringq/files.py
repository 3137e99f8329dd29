"""Whole files: :func:`read_files` and :func:`write_files` (SPEC section 9).

Both check their arguments, pick a provider as :class:`~uringq.IoQueue` does (the
``provider`` argument, then ``URINGQ_PROVIDER``, then the best available) and hand the
files to it. A provider class may bring its own static ``read_files(paths, *, dir_fd,
return_exceptions)`` and ``write_files(paths, data, *, mode, fsync, dir_fd,
return_exceptions)``; io_uring does (one linked chain per file in the kernel), every
other provider gets the pure-Python loop of :mod:`uringq._inline_files`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, overload

from uringq import _checks, _inline_files
from uringq._registry import ProviderInfo, resolve_provider

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["read_files", "write_files"]

Path: TypeAlias = "str | bytes | os.PathLike[str] | os.PathLike[bytes]"
# A mapping's key type is invariant: Mapping[Path, Buffer] would refuse a dict[str, bytes]
# (and a TypeVar loses the values' context in a dict literal); keys are checked at run time.
PathKey: TypeAlias = Any
_MAX_MODE = 0o7777


@overload
def read_files(
    paths: Iterable[Path],
    *,
    dir_fd: int | None = ...,
    return_exceptions: Literal[False] = ...,
    provider: str | ProviderInfo | None = ...,
) -> list[bytes]: ...
@overload
def read_files(
    paths: Iterable[Path],
    *,
    dir_fd: int | None = ...,
    return_exceptions: bool,
    provider: str | ProviderInfo | None = ...,
) -> list[bytes | OSError]: ...
def read_files(
    paths: Iterable[Path],
    *,
    dir_fd: int | None = None,
    return_exceptions: bool = False,
    provider: str | ProviderInfo | None = None,
) -> list[Any]:
    """The whole content of each file, in input order: ``[open(p, "rb").read() for p in
    paths]``, many files at once.

    Paths are ``str``, ``bytes`` or ``os.PathLike`` (relative ones against ``dir_fd``,
    a directory fd, default the current directory). Any size works, and files whose
    ``st_size`` is wrong (``/proc``, ``/sys``, growing files) are read to EOF. A path that
    is not a path raises ``TypeError``, an embedded NUL ``ValueError``, before any file is
    opened. Once every file is done, the ``OSError`` of the first failed path in input
    order is raised (``filename`` is the path as given), or with ``return_exceptions``
    each failed file's exception takes its slot. Ctrl-C stops it within about 100 ms;
    no descriptor is ever left open. On io_uring a long list is spread over one private
    ring per CPU (at most 4, one thread each, 512 files or more a ring).
    """
    names = paths_argument(paths)
    fd = dir_fd_argument(dir_fd)
    reader = getattr(resolve_provider(provider).provider_class, "read_files", None)
    if reader is None:
        reader = _inline_files.read_files
    result: list[Any] = reader(names, dir_fd=fd, return_exceptions=bool(return_exceptions))
    return result


@overload
def write_files(
    files: Mapping[PathKey, Buffer] | Iterable[tuple[Path, Buffer]],
    *,
    mode: int = ...,
    fsync: bool = ...,
    dir_fd: int | None = ...,
    return_exceptions: Literal[False] = ...,
    provider: str | ProviderInfo | None = ...,
) -> list[int]: ...
@overload
def write_files(
    files: Mapping[PathKey, Buffer] | Iterable[tuple[Path, Buffer]],
    *,
    mode: int = ...,
    fsync: bool = ...,
    dir_fd: int | None = ...,
    return_exceptions: bool,
    provider: str | ProviderInfo | None = ...,
) -> list[int | OSError]: ...
def write_files(
    files: Mapping[PathKey, Buffer] | Iterable[tuple[Path, Buffer]],
    *,
    mode: int = 0o666,
    fsync: bool = False,
    dir_fd: int | None = None,
    return_exceptions: bool = False,
    provider: str | ProviderInfo | None = None,
) -> list[Any]:
    """Create or truncate each file and write its data whole; the bytes written per file.

    ``files`` is a mapping or an iterable of ``(path, data)`` pairs; ``data`` is any
    C-contiguous buffer, held (so a ``bytearray`` cannot be resized) until the call
    returns. Each file is opened ``O_WRONLY | O_CREAT | O_TRUNC`` with ``mode`` (before
    the umask), written whole, fsynced if ``fsync``, and closed. Errors as for
    :func:`read_files`.
    """
    names, data = files_argument(files)
    checked_mode = mode_argument(mode)
    fd = dir_fd_argument(dir_fd)
    writer = getattr(resolve_provider(provider).provider_class, "write_files", None)
    if writer is None:
        writer = _inline_files.write_files
    result: list[Any] = writer(
        names,
        data,
        mode=checked_mode,
        fsync=bool(fsync),
        dir_fd=fd,
        return_exceptions=bool(return_exceptions),
    )
    return result


# The argument checks, shared with uringq.aio's read_files / write_files (one voice).
def paths_argument(paths: Iterable[Path]) -> list[Any]:
    """Our own list of ``paths`` (the caller's may change meanwhile); one path alone is a
    ``TypeError``."""
    if isinstance(paths, str | bytes | os.PathLike):
        raise TypeError(
            f"paths must be an iterable of paths, not one {type(paths).__name__} path"
            " (wrap it in a list)"
        )
    return list(paths)


def files_argument(
    files: Mapping[PathKey, Buffer] | Iterable[tuple[Path, Buffer]],
) -> tuple[list[Any], list[Any]]:
    """The paths and the data of ``files`` (a mapping or ``(path, data)`` pairs)."""
    pairs = files.items() if isinstance(files, Mapping) else files
    names: list[Any] = []
    data: list[Any] = []
    for path, buf in pairs:
        names.append(path)
        data.append(buf)
    return names, data


def mode_argument(mode: object) -> int:
    """A created file's mode: an int in ``0..0o7777``."""
    checked = _checks.count(mode, "mode")
    if checked > _MAX_MODE:
        raise ValueError(f"mode must be in 0..0o7777, got {checked:#o}")
    return checked


def dir_fd_argument(dir_fd: object) -> int | None:
    """``None`` or a directory fd (an int or an object with ``fileno()``)."""
    if dir_fd is None:
        return None
    return _checks.fd(dir_fd)  # type: ignore[arg-type]
