"""Whole files in pure Python: the ``threadpool`` provider's ``read_files`` and ``write_files``
(and any provider's that brings none of its own).

One inline loop of ``os.open`` / ``os.read`` / ``os.close`` per file, on the calling
thread: for files in the page cache that is the fastest Python can go (a worker thread
per file pays a GIL hand-off each, several times the system calls' cost; measured in
the README). The rules are the io_uring provider's:

* a file is read with one read of :data:`FIRST_READ` bytes, then a 1-byte probe: a
  short read alone does not prove EOF (``/proc`` seq files return a page per read).
  A file with more than that is read again whole from offset 0 of the same open file,
  at its ``fstat`` size (a stream that cannot seek goes on where it is);
* a write is one ``os.write`` per 8 MiB until done, then ``os.fsync`` if asked;
* a failure becomes ``OSError(errno, strerror, path)`` with the path as given; the first
  one in input order is raised once every file is done, or each takes its file's slot
  with ``return_exceptions``.

Ctrl-C: the descriptor of ``os.open`` reaches the ``try`` whose ``finally`` closes it with
no pending-signal check in between. It comes out of ``map`` through ``FOR_ITER`` and
``STORE_FAST``, and CPython runs signal handlers only at calls, backward jumps and
function entry; a ``fd = os.open(...)`` statement would run them right after the call
returns, before the assignment, and a KeyboardInterrupt there would strand the fd.
After a failed open the loop goes on with a new ``map`` over the same iterator.
"""

from __future__ import annotations

import errno
import io
import os
from collections.abc import Callable, Iterator
from functools import partial
from itertools import repeat
from typing import TYPE_CHECKING, Any

from uringq import _checks

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["FIRST_READ", "check_paths", "read_files", "write_files"]

#: Bytes of the first read of each file (the io_uring provider's slot size too).
FIRST_READ = 64 * 1024
_CHUNK = 8 << 20  # largest single write: keeps Ctrl-C prompt on huge files


def check_paths(paths: list[Any]) -> None:
    """TypeError for a path that is not str, bytes or os.PathLike, ValueError for an
    embedded NUL (as ``open`` does), before any file is touched."""
    for path in paths:
        name = os.fspath(path)
        if (name.find("\0") if isinstance(name, str) else name.find(b"\0")) >= 0:
            raise ValueError("embedded null byte")


def read_files(paths: list[Any], *, dir_fd: int | None, return_exceptions: bool) -> list[Any]:
    """The content of each file (or its OSError); see :func:`uringq.read_files`."""
    check_paths(paths)
    opener = _opener(os.O_RDONLY, None, dir_fd)
    return _each_file(paths, opener, _read_open_file, return_exceptions)


def write_files(
    paths: list[Any],
    data: list[Buffer],
    *,
    mode: int,
    fsync: bool,
    dir_fd: int | None,
    return_exceptions: bool,
) -> list[Any]:
    """Bytes written per file (or its OSError); see :func:`uringq.write_files`."""
    check_paths(paths)
    views = [_checks.write_source(buf) for buf in data]

    def write(fd: int, index: int) -> int:
        return _write_open_file(fd, views[index], fsync)

    opener = _opener(os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode, dir_fd)
    return _each_file(paths, opener, write, return_exceptions)


def _opener(
    flags: int, mode: int | None, dir_fd: int | None
) -> Callable[[Iterator[Any]], Iterator[int]]:
    """``os.open`` over the names, as a C-level ``map`` (no bytecode runs between the call
    and the loop variable), with positional arguments: keyword ones cost a fifth of the
    loop."""
    flags |= os.O_CLOEXEC
    call: Callable[..., int] = os.open if dir_fd is None else partial(os.open, dir_fd=dir_fd)
    if mode is None:
        return lambda names: map(call, names, repeat(flags))
    return lambda names: map(call, names, repeat(flags), repeat(mode))


def _each_file(
    paths: list[Any],
    opener: Callable[[Iterator[Any]], Iterator[int]],
    use: Callable[[int, int], Any],
    return_exceptions: bool,
) -> list[Any]:
    """``use(fd, index)`` on each opened file, which is closed whatever happens; each
    OSError is recorded in its file's slot, with the path as given."""
    out: list[Any] = []
    append = out.append
    close = os.close
    names: Iterator[Any] = iter(paths)
    errors: list[int] = []
    while True:
        try:
            # No signal check between os.open returning and `fd` being bound (see the
            # module docstring): the finally below always sees the descriptor.
            for fd in opener(names):
                try:
                    result = use(fd, len(out))
                finally:
                    close(fd)
                append(result)
            break
        except OSError as exc:  # the next file failed; go on after it
            errors.append(len(out))
            append(OSError(exc.errno, exc.strerror, paths[len(out)]))
    if errors and not return_exceptions:
        error: OSError = out[errors[0]]
        raise error
    return out


def _read_open_file(fd: int, _index: int) -> bytes:
    data = os.read(fd, FIRST_READ)
    probe = os.read(fd, 1)
    return _read_on(fd, data, probe) if probe else data


def _read_on(fd: int, head: bytes, probe: bytes) -> bytes:
    """The whole file, which holds more than ``head + probe``: read again from offset 0
    at its fstat size (one open file, one result), or, for a stream, read on to EOF."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:  # a stream: keep what it gave and read on
        chunks = [head, probe]
        while chunk := os.read(fd, FIRST_READ):
            chunks.append(chunk)
        return b"".join(chunks)
    # readall sizes its buffer from fstat and reads to EOF (growing if the file did).
    with io.FileIO(fd, "rb", closefd=False) as whole:
        return whole.readall()


def _write_open_file(fd: int, view: memoryview, fsync: bool) -> int:
    size = view.nbytes
    done = os.write(fd, view if size <= _CHUNK else view[:_CHUNK])
    while done < size:
        written = os.write(fd, view[done : done + _CHUNK])
        if written == 0:  # never for a regular file; do not spin
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        done += written
    if fsync:
        os.fsync(fd)
    return size
