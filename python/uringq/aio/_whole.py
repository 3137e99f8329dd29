"""Whole files for asyncio: :func:`read_file`, :func:`write_file`, :func:`read_files`,
:func:`write_files` (SPEC section 9), on the loop's queue.

Routes, picked per call from the loop's driver:

* io_uring (direct descriptors): each file is one group in the kernel, prepared like any
  request of the driver (backlog included): OPENAT -> READ of :data:`FIRST_READ` bytes
  -> a 1-byte EOF probe -> CLOSE, or OPENAT -> WRITE -> [FSYNC] -> CLOSE. A read whose
  probe found more (a file larger than the first read, or a ``/proc`` file that comes a
  page per read) settles with ``None`` and the file is read again whole: openat, reads
  to EOF and close on the queue. A short write is finished the same way.
* any other queue: the pure-Python loop of :mod:`uringq._inline_files` (the sync
  ``read_files`` of the threadpool provider) on the package's worker pool, one hop per
  file (or per :data:`WINDOW` files for the plural forms): a chain of queue operations
  would pay a thread hand-off per step instead.

Arguments are checked (by the checks of :mod:`uringq.files`) before anything is queued.
Errors are the ``OSError`` subclass with ``filename`` the path as given. Cancelling the
awaiting task leaves no descriptor open: a group closes its file in the kernel whatever
happens to its future (and its buffer stays pinned until then), a follow-up's fd is
released through the driver (closed once no request uses it), and a worker call runs to
its end and closes its own.
"""

from __future__ import annotations

import asyncio
import os
import stat
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias, TypeVar, overload

from uringq import _checks, _inline_files
from uringq.aio._driver import Driver, get_driver
from uringq.files import dir_fd_argument, files_argument, mode_argument, paths_argument

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["FIRST_READ", "WINDOW", "read_file", "read_files", "write_file", "write_files"]

Path: TypeAlias = "str | bytes | os.PathLike[str] | os.PathLike[bytes]"
# A mapping's key type is invariant: Mapping[Path, Buffer] would refuse a dict[str, bytes]
# (and a TypeVar loses the values' context in a dict literal); keys are checked at run time.
PathKey: TypeAlias = Any
T = TypeVar("T")

FIRST_READ: Final = _inline_files.FIRST_READ
"""Bytes of a group's first read: a file up to this size costs one group."""
WINDOW: Final = 64
"""Files in flight at once in :func:`read_files` / :func:`write_files` (never one fd per
input at once)."""
FOLLOW_UPS: Final = 8
"""Follow-ups (a re-read or the rest of a write, on a plain fd) in flight at once per
loop: groups hold no fd of the process, these do, so many large files read at once
(64 tasks, or ``gather`` over thousands) stay far below ``RLIMIT_NOFILE``."""
_CHUNK: Final = 8 << 20  # the largest single write of a follow-up
_READ_KWARGS: Final[dict[str, Any]] = {"size": FIRST_READ}  # shared, never changed
_follow_ups: weakref.WeakKeyDictionary[Driver, asyncio.Semaphore] = weakref.WeakKeyDictionary()


# -- one file ----------------------------------------------------------------------------
async def read_file(path: Path, *, dir_fd: int | None = None) -> bytes:
    """The whole content of ``path``: ``open(path, "rb").read()`` on the loop's queue.

    ``path`` is ``str``, ``bytes`` or ``os.PathLike`` (relative to ``dir_fd``, a
    directory fd, if given). Any size; files whose ``st_size`` is wrong (``/proc``) are
    read to EOF. Errors: the ``OSError`` subclass (``FileNotFoundError``,
    ``IsADirectoryError``, ...) with ``filename`` the path as given.
    """
    _inline_files.check_paths([path])
    driver = get_driver()
    fd = None if dir_fd is None else dir_fd_argument(dir_fd)
    # _read_one, inline (the hot path: one coroutine frame less per file)
    queue = driver.queue
    prepare = getattr(queue, "_prepare_read_file", None)
    if prepare is None or not getattr(queue, "_whole_files", False):
        result: bytes = await driver.run_in_worker(_read_whole, path, fd)
        return result
    try:
        data = await driver.call(
            prepare, (path,), _READ_KWARGS if fd is None else {"dir_fd": fd, "size": FIRST_READ}
        )
        if data is None:  # the probe found more: read the file again, whole
            data = await _read_again(driver, path, fd)
    except OSError as exc:
        raise _as_given(exc, path) from None
    return data  # type: ignore[no-any-return]


async def write_file(
    path: Path,
    data: Buffer,
    *,
    mode: int = 0o666,
    fsync: bool = False,
    dir_fd: int | None = None,
) -> int:
    """Create or truncate ``path`` and write ``data`` whole (``fsync`` it if asked);
    returns the bytes written, ``len(data)``.

    ``mode`` applies to a created file (before the umask). ``data`` is any C-contiguous
    buffer, held (a ``bytearray`` cannot be resized) until the file is written. Errors
    as for :func:`read_file`.
    """
    _inline_files.check_paths([path])
    view = _checks.write_source(data)
    checked_mode = mode_argument(mode)
    fd = dir_fd_argument(dir_fd)
    return await _write_one(
        get_driver(), path, view, mode=checked_mode, fsync=bool(fsync), dir_fd=fd
    )


# -- many files ----------------------------------------------------------------------------
@overload
async def read_files(
    paths: Iterable[Path], *, dir_fd: int | None = ..., return_exceptions: Literal[False] = ...
) -> list[bytes]: ...
@overload
async def read_files(
    paths: Iterable[Path], *, dir_fd: int | None = ..., return_exceptions: bool
) -> list[bytes | OSError]: ...
async def read_files(
    paths: Iterable[Path], *, dir_fd: int | None = None, return_exceptions: bool = False
) -> list[Any]:
    """The whole content of each file, in input order, :data:`WINDOW` files at a time.

    The rules of :func:`uringq.read_files`: arguments checked before any file is opened;
    once every file is done the first failure in input order is raised, or with
    ``return_exceptions`` each failed file's ``OSError`` takes its slot.
    """
    names = paths_argument(paths)
    _inline_files.check_paths(names)
    fd = dir_fd_argument(dir_fd)
    driver = get_driver()
    if _groups(driver):
        out = await _windowed(names, lambda i: _read_one(driver, names[i], fd))
    else:
        out = await _in_worker_chunks(
            driver,
            names,
            lambda lo, hi: (_read_chunk, names[lo:hi], fd),
        )
    return _outcome(out, return_exceptions)


@overload
async def write_files(
    files: Mapping[PathKey, Buffer] | Iterable[tuple[Path, Buffer]],
    *,
    mode: int = ...,
    fsync: bool = ...,
    dir_fd: int | None = ...,
    return_exceptions: Literal[False] = ...,
) -> list[int]: ...
@overload
async def write_files(
    files: Mapping[PathKey, Buffer] | Iterable[tuple[Path, Buffer]],
    *,
    mode: int = ...,
    fsync: bool = ...,
    dir_fd: int | None = ...,
    return_exceptions: bool,
) -> list[int | OSError]: ...
async def write_files(
    files: Mapping[PathKey, Buffer] | Iterable[tuple[Path, Buffer]],
    *,
    mode: int = 0o666,
    fsync: bool = False,
    dir_fd: int | None = None,
    return_exceptions: bool = False,
) -> list[Any]:
    """Write each ``(path, data)`` whole, :data:`WINDOW` files at a time; the bytes
    written per file. A path given twice is written in input order (the last data
    wins). Rules as for :func:`read_files` and :func:`write_file`.
    """
    names, data = files_argument(files)
    _inline_files.check_paths(names)
    views = [_checks.write_source(buf) for buf in data]
    checked_mode = mode_argument(mode)
    fd = dir_fd_argument(dir_fd)
    sync = bool(fsync)
    driver = get_driver()
    if _groups(driver):
        keys = [os.fsencode(name) for name in names]  # as the sync engine compares them
        busy: dict[Any, asyncio.Future[None]] = {}

        async def one(i: int) -> int:
            # Writes of one path never overlap: the last one given wins, as in a loop.
            key = keys[i]
            ahead = busy.get(key)
            mine: asyncio.Future[None] = driver.loop.create_future()
            busy[key] = mine
            try:
                if ahead is not None:
                    await asyncio.shield(ahead)
                return await _write_one(
                    driver, names[i], views[i], mode=checked_mode, fsync=sync, dir_fd=fd
                )
            finally:
                mine.set_result(None)
                if busy.get(key) is mine:
                    del busy[key]

        out = await _windowed(names, one)
    else:
        out = await _in_worker_chunks(
            driver,
            names,
            lambda lo, hi: (_write_chunk, names[lo:hi], views[lo:hi], checked_mode, sync, fd),
        )
    return _outcome(out, return_exceptions)


# -- the io_uring route --------------------------------------------------------------------
def _groups(driver: Driver) -> bool:
    """True if the loop's queue runs whole-file groups (io_uring with direct descriptors)."""
    queue = driver.queue
    return hasattr(queue, "_prepare_read_file") and bool(getattr(queue, "_whole_files", False))


async def _read_one(driver: Driver, path: Any, dir_fd: int | None) -> bytes:
    if not _groups(driver):
        result: bytes = await driver.run_in_worker(_read_whole, path, dir_fd)
        return result
    prepare = driver.queue._prepare_read_file  # type: ignore[attr-defined]
    try:
        data = await driver.call(prepare, (path,), {"dir_fd": dir_fd, "size": FIRST_READ})
        if data is None:  # the probe found more: read the file again, whole
            data = await _read_again(driver, path, dir_fd)
    except OSError as exc:
        raise _as_given(exc, path) from None
    return data  # type: ignore[no-any-return]


async def _write_one(
    driver: Driver, path: Any, view: memoryview, *, mode: int, fsync: bool, dir_fd: int | None
) -> int:
    if not _groups(driver):
        result: int = await driver.run_in_worker(_write_whole, path, view, mode, fsync, dir_fd)
        return result
    prepare = driver.queue._prepare_write_file  # type: ignore[attr-defined]
    try:
        done = await driver.call(
            prepare, (path, view), {"mode": mode, "fsync": fsync, "dir_fd": dir_fd}
        )
        if done < view.nbytes:  # a short write (a huge buffer): write the rest
            await _write_rest(driver, path, view, done, fsync=fsync, dir_fd=dir_fd)
    except OSError as exc:
        raise _as_given(exc, path) from None
    return view.nbytes


def _follow_up_slots(driver: Driver) -> asyncio.Semaphore:
    slots = _follow_ups.get(driver)
    if slots is None:
        slots = _follow_ups[driver] = asyncio.Semaphore(FOLLOW_UPS)
    return slots


async def _read_again(driver: Driver, path: Any, dir_fd: int | None) -> bytes:
    """The file read whole on the queue: openat, reads to EOF (sized by ``fstat``), close."""
    async with _follow_up_slots(driver):
        return await _read_to_eof(driver, path, dir_fd)


async def _read_to_eof(driver: Driver, path: Any, dir_fd: int | None) -> bytes:
    fd = await _open(driver, path, os.O_RDONLY, 0, dir_fd)
    try:
        st = os.fstat(fd)
        size = st.st_size if stat.S_ISREG(st.st_mode) and st.st_size > 0 else -1
        chunks: list[bytes] = []
        offset = 0
        while True:
            # As the builtin's readall: one byte beyond the size, then on until EOF
            # (growing the request for a file that grew or whose size is unknown).
            want = size - offset + 1 if offset <= size else max(FIRST_READ, offset // 4)
            chunk = await driver.read(fd, want, offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
    except BaseException:
        _release(driver, fd)
        raise
    await _close(driver, fd)
    return b"".join(chunks)


async def _write_rest(
    driver: Driver, path: Any, view: memoryview, done: int, *, fsync: bool, dir_fd: int | None
) -> None:
    """Write ``view[done:]`` at ``done`` to the file just created (no truncation)."""
    async with _follow_up_slots(driver):
        await _write_on(driver, path, view, done, fsync=fsync, dir_fd=dir_fd)


async def _write_on(
    driver: Driver, path: Any, view: memoryview, done: int, *, fsync: bool, dir_fd: int | None
) -> None:
    fd = await _open(driver, path, os.O_WRONLY, 0, dir_fd)
    try:
        size = view.nbytes
        while done < size:
            written = await driver.write(fd, done, view[done : done + _CHUNK])
            if written == 0:  # never for a regular file; do not spin
                raise OSError(5, os.strerror(5))  # EIO
            done += written
        if fsync:
            await driver.fsync(fd)
    except BaseException:
        _release(driver, fd)
        raise
    await _close(driver, fd)


async def _open(driver: Driver, path: Any, flags: int, mode: int, dir_fd: int | None) -> int:
    """An fd of ``path`` on the queue, registered with it for reads and writes."""
    opening = driver.openat(path, flags, mode, dir_fd=dir_fd)
    try:
        fd = await opening
    except asyncio.CancelledError:  # opened, but the task never resumed to take it
        if opening.done() and not opening.cancelled() and opening.exception() is None:
            os.close(opening.result())
        raise
    try:
        driver.register(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _release(driver: Driver, fd: int) -> None:
    """Deregister and close ``fd`` now, or once the requests still using it complete."""
    if driver.release_fd(fd):
        os.close(fd)


async def _close(driver: Driver, fd: int) -> None:
    """Deregister ``fd`` and close it on the queue (the close happens even if cancelled)."""
    if driver.release_fd(fd):
        await driver.close_fd(fd)


def _as_given(exc: OSError, path: Any) -> OSError:
    """``exc`` with ``filename`` the path as the caller gave it."""
    if exc.filename is path or exc.errno is None:
        return exc
    return OSError(exc.errno, exc.strerror, path)


# -- the worker route (and the fallback of a queue without groups) ------------------------
def _read_whole(path: Any, dir_fd: int | None) -> bytes:
    data: bytes = _inline_files.read_files([path], dir_fd=dir_fd, return_exceptions=False)[0]
    return data


def _write_whole(path: Any, view: memoryview, mode: int, fsync: bool, dir_fd: int | None) -> int:
    written: int = _inline_files.write_files(
        [path], [view], mode=mode, fsync=fsync, dir_fd=dir_fd, return_exceptions=False
    )[0]
    return written


def _read_chunk(paths: list[Any], dir_fd: int | None) -> list[Any]:
    return _inline_files.read_files(paths, dir_fd=dir_fd, return_exceptions=True)


def _write_chunk(
    paths: list[Any], views: list[Any], mode: int, fsync: bool, dir_fd: int | None
) -> list[Any]:
    return _inline_files.write_files(
        paths, views, mode=mode, fsync=fsync, dir_fd=dir_fd, return_exceptions=True
    )


# -- windows -------------------------------------------------------------------------------
async def _windowed(names: list[Any], one: Callable[[int], Awaitable[Any]]) -> list[Any]:
    """``one(i)`` for every index, :data:`WINDOW` at a time; each OSError in its slot.

    Anything else (a ``MemoryError``, the caller's cancellation) stops the rest: the
    running ones are cancelled and awaited (each leaves nothing open) before it
    propagates.
    """
    out: list[Any] = [None] * len(names)
    indices = iter(range(len(names)))

    async def worker() -> None:
        for i in indices:
            try:
                out[i] = await one(i)
            except OSError as exc:
                out[i] = exc

    tasks = [asyncio.ensure_future(worker()) for _ in range(min(WINDOW, len(names)))]
    if not tasks:
        return out
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        errors = [task.exception() for task in done]  # every one retrieved
        for error in errors:
            if error is not None:
                raise error
    finally:
        running = [task for task in tasks if not task.done()]
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running)
    return out


async def _in_worker_chunks(
    driver: Driver,
    names: list[Any],
    job: Callable[[int, int], tuple[Any, ...]],
) -> list[Any]:
    """The inline loop over :data:`WINDOW` files at a time, one worker call per chunk."""
    out: list[Any] = []
    for lo in range(0, len(names), WINDOW):
        fn, *args = job(lo, min(lo + WINDOW, len(names)))
        out.extend(await driver.run_in_worker(fn, *args))
    return out


def _outcome(out: list[Any], return_exceptions: bool) -> list[Any]:
    """``out``, or the first failure in input order raised."""
    if not return_exceptions:
        for item in out:
            if isinstance(item, BaseException):
                raise item
    return out
