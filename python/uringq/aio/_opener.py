"""``uringq.aio.open``: the builtin ``open`` for asyncio.

The arguments are checked at the call, with the builtin's exceptions and messages; the
file is opened when the result is awaited (``f = await open(...)``) or entered
(``async with open(...) as f``). The open itself is an ``openat`` on the loop's queue
(the worker pool where the queue lacks it), or the ``opener`` given. Then, as the
builtin does, one ``fstat`` (a directory raises ``IsADirectoryError``; ``st_blksize`` is
the default buffer size) and, in ``a`` modes, one ``lseek`` to the end: plain calls on an
fd opened a moment ago, which never wait for the disk. The layers follow the builtin:
``AsyncFileIO`` (``buffering=0``), ``AsyncBufferedReader`` / ``Writer`` / ``Random``,
``AsyncTextIOWrapper``.

If anything fails after the open (a bad encoding, ``buffering=0`` in text mode: the
builtin checks those after opening too), the fd is closed before the error propagates.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import io
import operator
import os
import stat
import warnings
from collections.abc import Awaitable, Callable, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

from uringq.aio._base import Ready, done_future
from uringq.aio._buffered import AsyncBufferedRandom, AsyncBufferedReader, AsyncBufferedWriter
from uringq.aio._driver import get_driver
from uringq.aio._raw import AsyncFileIO, FileStat
from uringq.aio._text import AsyncTextIOWrapper, check_newline
from uringq.aio._workers import take_fd

if TYPE_CHECKING:
    from uringq._registry import ProviderInfo
    from uringq.aio._base import AsyncFile
    from uringq.aio._driver import Driver

__all__ = ["Mode", "Opening", "open", "parse_mode"]

_ACCESS = os.O_RDONLY | os.O_WRONLY | os.O_RDWR
SMALL_FILE_MAX = 65536
"""The largest file (at the open) whose first read, when the file is opened only to be
read, takes its rest at once from the page cache (``AsyncFileIO._first``: one loop turn
for ``async with open(p) as f: await f.read()`` instead of two)."""
_READER = (True, False, False, False)  # AsyncFileIO's flags for "r": readable only


class Mode(NamedTuple):
    """A parsed ``open()`` mode."""

    reading: bool
    writing: bool
    appending: bool
    creating: bool
    updating: bool
    text: bool

    @property
    def flags(self) -> int:
        """The ``os.open`` flags (``O_CLOEXEC`` included)."""
        if self.updating:
            access = os.O_RDWR
        elif self.reading:
            access = os.O_RDONLY
        else:
            access = os.O_WRONLY
        if self.writing:
            access |= os.O_CREAT | os.O_TRUNC
        elif self.appending:
            access |= os.O_CREAT | os.O_APPEND
        elif self.creating:
            access |= os.O_CREAT | os.O_EXCL
        return access | os.O_CLOEXEC


def _typecheck(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"open() argument '{name}' must be str or None, not {type(value).__name__}")


_PARSED: dict[str, Mode] = {}  # valid modes seen so far (a few dozen at most)


def parse_mode(mode: Any) -> Mode:
    """Check ``mode`` as the builtin ``open`` does (same exceptions, same messages)."""
    parsed = _PARSED.get(mode) if type(mode) is str else None
    if parsed is None:
        parsed = _PARSED[mode] = _parse_mode(mode)
    return parsed


_FLAGS: dict[str, tuple[Mode, int]] = {}  # mode string -> (parsed, os.open flags), valid ones


def _mode_and_flags(mode: Any) -> tuple[Mode, int]:
    """``parse_mode(mode)`` and its ``os.open`` flags, cached by the mode string (hashing
    a ``str`` is cached by Python; hashing a ``Mode`` is not)."""
    cached = _FLAGS.get(mode) if type(mode) is str else None
    if cached is None:
        parsed = parse_mode(mode)
        cached = (parsed, parsed.flags)
        if type(mode) is str:
            _FLAGS[mode] = cached
    return cached


def _parse_mode(mode: Any) -> Mode:
    if not isinstance(mode, str):
        raise TypeError(f"open() argument 'mode' must be str, not {type(mode).__name__}")
    chars = set(mode)
    if len(chars) != len(mode) or not chars <= set("rwxa+bt"):
        raise ValueError(f"invalid mode: {mode!r}")
    text, binary = "t" in chars, "b" in chars
    if text and binary:
        raise ValueError("can't have text and binary mode at once")
    kinds = chars & set("rwxa")
    if len(kinds) > 1:
        raise ValueError("must have exactly one of create/read/write/append mode")
    if not kinds:
        raise ValueError(
            "Must have exactly one of create/read/write/append mode and at most one plus"
        )
    return Mode(
        reading="r" in chars,
        writing="w" in chars,
        appending="a" in chars,
        creating="x" in chars,
        updating="+" in chars,
        text=not binary,
    )


class Opening:
    """What :func:`open` returns: the checked arguments, and the open when awaited.

    Awaitable (once: awaiting again gives the same file) and an async context manager
    whose ``__aenter__`` is the open itself and whose ``__aexit__`` is the file's (it
    closes the file): ``async with`` runs no coroutine frame of its own around them
    (the aiofiles-style hot path, issue 10).
    """

    __slots__ = ("buffering", "closefd", "encoding", "errors", "file", "flags", "loop",
                 "mode", "newline", "obj", "opener", "parsed", "perms", "provider")  # fmt: skip

    def __init__(  # noqa: PLR0917 - the builtin's arguments, checked by open()
        self,
        file: Any,
        mode: str,
        parsed: Mode,
        flags: int,
        buffering: int,
        encoding: str | None,
        errors: str | None,
        newline: str | None,
        closefd: bool,
        opener: Callable[[Any, int], int] | None,
        perms: int,
        provider: str | ProviderInfo | None,
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self.file = file
        self.mode = mode
        self.parsed = parsed
        self.flags = flags
        self.buffering = buffering
        self.encoding = encoding
        self.errors = errors
        self.newline = newline
        self.closefd = closefd
        self.opener = opener
        self.perms = perms
        self.provider = provider
        self.loop = loop
        self.obj: AsyncFile | None = None

    def __await__(self) -> Generator[Any, None, AsyncFile]:
        obj = self.obj
        if obj is None:
            obj = yield from _open(self).__await__()
        return obj

    def __aenter__(self) -> Awaitable[AsyncFile]:
        obj = self.obj
        return _open(self) if obj is None else Ready(obj)

    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[None]:
        obj, self.obj = self.obj, None
        return done_future() if obj is None else obj.__aexit__(exc_type, exc, tb)


def open(  # noqa: PLR0917 - the builtin's signature
    file: Any,
    mode: str = "r",
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    closefd: bool = True,
    opener: Callable[[Any, int], int] | None = None,
    *,
    direct: bool = False,
    perms: int = 0o666,
    provider: str | ProviderInfo | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> Any:
    """Open ``file`` for asyncio: the builtin ``open`` with coroutine methods.

    ``async with uringq.aio.open(path, "rb") as f:`` or ``f = await uringq.aio.open(...)``
    (then ``await f.close()``). ``file``, ``mode``, ``buffering``, ``encoding``,
    ``errors``, ``newline``, ``closefd`` and ``opener`` are the builtin's, with its
    defaults, checks and errors. Keyword-only extras: ``direct=True`` adds ``O_DIRECT``
    (buffers, offsets and sizes of the positional API must then be aligned, see
    :func:`uringq.aligned_buffer`); ``perms`` is the mode of a created file (before the
    umask); ``provider`` applies if this creates the loop's driver; ``loop`` and
    ``executor`` are accepted for aiofiles' signature (``loop``: whose driver to use;
    ``executor`` is not used: no file operation runs on an executor here).
    """
    del executor
    if type(file) is not str and not isinstance(file, int):
        file = os.fspath(file)  # its TypeErrors are the builtin open's, word for word
    cached = _FLAGS.get(mode) if type(mode) is str else None  # _mode_and_flags, inline
    parsed, flags = cached if cached is not None else _mode_and_flags(mode)
    buffering = operator.index(buffering)
    if encoding is not None or errors is not None or newline is not None:
        _typecheck("encoding", encoding)
        _typecheck("errors", errors)
        _typecheck("newline", newline)
        if not parsed.text:
            _no_text_arguments(encoding, errors)
    if buffering == 1 and not parsed.text:
        warnings.warn(
            "line buffering (buffering=1) isn't supported in binary mode, the default "
            "buffer size will be used",
            RuntimeWarning,
            stacklevel=2,
        )
    if isinstance(file, int):
        if file < 0:
            raise ValueError("negative file descriptor")
    elif not closefd:
        raise ValueError("Cannot use closefd=False with file name")
    if direct:
        flags |= os.O_DIRECT
    return Opening(file, mode, parsed, flags, buffering, encoding, errors, newline, closefd,
                   opener, perms, provider, loop)  # fmt: skip


def _no_text_arguments(encoding: str | None, errors: str | None) -> NoReturn:
    """The builtin's error for a text argument in binary mode; called only when one was
    given, so with neither ``encoding`` nor ``errors`` it was ``newline``."""
    for name, value in (("an encoding", encoding), ("an errors", errors)):
        if value is not None:
            raise ValueError(f"binary mode doesn't take {name} argument")
    raise ValueError("binary mode doesn't take a newline argument")


async def _open(request: Opening) -> AsyncFile:
    """Open the file of ``request`` and build its layers; ``request.obj`` is the file."""
    loop, provider = request.loop, request.provider
    driver = get_driver(loop) if provider is None else get_driver(loop, provider=provider)
    file, opener = request.file, request.opener
    open_file = driver.open_file
    if open_file is not None and opener is None and not isinstance(file, int):
        # The native open (the aiofiles-style hot path): the fstat comes with the fd,
        # which this file object owns, so it is adopted rather than registered.
        flags = request.flags
        opening = open_file(file, flags, request.perms)
        try:
            fd, mode, size, blksize = await opening
        except asyncio.CancelledError:  # _workers.take_fd, inline: the hot path
            if opening.done() and not opening.cancelled() and opening.exception() is None:
                os.close(opening.result()[0])
            else:  # an open may wait (a FIFO without its peer): cancel it in the queue
                driver.cancel_request(opening)
            raise
        register = driver.adopt
        small = flags & _ACCESS == os.O_RDONLY and stat.S_ISREG(mode) and 0 < size <= SMALL_FILE_MAX
    else:
        if isinstance(file, int):
            fd = file
        elif opener is not None:
            fd = opener(file, request.flags)
            if not isinstance(fd, int):
                raise TypeError("expected integer from opener")
            if fd < 0:
                raise ValueError(f"opener returned {fd}")
        else:
            fd = await take_fd(driver.openat(file, request.flags, request.perms))
        try:
            st = os.fstat(fd)
        except BaseException:
            if not isinstance(file, int):  # a caller's fd stays the caller's
                os.close(fd)
            raise
        mode, size, blksize = st.st_mode, st.st_size, st.st_blksize
        # A caller's fd is pinned with a dup (the caller may close it); one opened here
        # is the file object's own, adopted as on the native path.
        register = driver.queue.register if isinstance(file, int) else driver.adopt
        small = False
    owned = not isinstance(file, int)  # a caller's fd stays the caller's if FileIO fails
    if stat.S_ISDIR(mode):
        if owned:
            os.close(fd)
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), file)
    registered = False
    try:
        register(fd)
        registered = True
        obj = request.obj = _layers(driver, fd, (mode, size, blksize), request, small)
        return obj
    except BaseException:
        if registered:
            driver.deregister(fd)
        if owned or request.closefd:
            os.close(fd)
        raise


def _position(fd: int, mode: int, appending: bool, *, fresh: bool) -> int | None:
    """Where a new file object starts: the fd's offset (the end in ``a`` modes); None for
    a file that cannot seek. A regular file opened a moment ago is at 0 (no call)."""
    if fresh and not appending and stat.S_ISREG(mode):
        return 0
    try:
        return os.lseek(fd, 0, os.SEEK_END if appending else os.SEEK_CUR)
    except OSError:
        return None


def _layers(driver: Driver, fd: int, st: FileStat, request: Opening, small: bool) -> AsyncFile:
    """Build the raw, buffered and text layers as the builtin does; ``small``: a small
    regular file opened by path only to be read (see ``AsyncFileIO._first``)."""
    parsed, buffering, file = request.parsed, request.buffering, request.file
    mode, _, blksize = st
    if small and buffering < 0 and not parsed.text:
        # The aiofiles-style hot path: "rb" of a small regular file, default buffering:
        # a reader at 0.
        raw = AsyncFileIO(
            driver, fd, file, flags=_READER, closefd=True, st=st, position=0, small=True
        )
        return AsyncBufferedReader(raw, blksize if blksize > 1 else io.DEFAULT_BUFFER_SIZE)
    readable = parsed.reading or parsed.updating
    writable = not parsed.reading or parsed.updating
    if parsed.reading and stat.S_ISREG(mode) and not isinstance(file, int):
        position: int | None = 0  # _position's answer for the common case, without a call
    else:
        position = _position(fd, mode, parsed.appending, fresh=not isinstance(file, int))
    raw = AsyncFileIO(
        driver,
        fd,
        file,
        flags=(readable, writable, parsed.appending, parsed.creating),
        closefd=request.closefd,
        st=st,
        position=position,
        small=small,
    )
    try:
        line_buffering = False
        if buffering == 1 or (buffering < 0 and stat.S_ISCHR(mode) and os.isatty(fd)):
            buffering = -1
            line_buffering = True
        if buffering < 0:
            buffering = blksize if blksize > 1 else io.DEFAULT_BUFFER_SIZE
        if buffering == 0:
            if not parsed.text:
                return raw
            raise ValueError("can't have unbuffered text I/O")
        kind: type[AsyncBufferedReader | AsyncBufferedWriter | AsyncBufferedRandom]
        if parsed.updating:
            kind = AsyncBufferedRandom
        elif parsed.reading:
            kind = AsyncBufferedReader
        else:
            kind = AsyncBufferedWriter
        buffer = kind(raw, buffering)
        if not parsed.text:
            return buffer
        check_newline(request.newline)
        encoding = io.text_encoding(request.encoding)
        text = AsyncTextIOWrapper(buffer, encoding, request.errors, request.newline, line_buffering)
        text.mode = request.mode
        return text
    except BaseException:
        raw._fd = -1  # the caller closes the fd; no warning for this half-built file
        raise
