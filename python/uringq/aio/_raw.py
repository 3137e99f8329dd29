"""``AsyncFileIO``: the unbuffered binary file (``buffering=0``), ``io.FileIO`` as coroutines.

Every byte moves through the loop's queue as a positional request at the position this
object keeps in Python (the fd's own offset is not used while the file is open; it is
set to the final position when a file with ``closefd=False`` is closed or detached, so
the fd goes on where a builtin file would have left it). In ``a`` modes the kernel
appends every write (``O_APPEND``) and the position afterwards is the end of the file.

Files that cannot seek (pipes, terminals, sockets) have no position: there each read is
a queue request that waits for data (cancelling the awaiting task cancels it, so a read
not yet done consumes nothing), and each write a plain ``os.write`` on the package's
worker pool (a blocking write writes everything, as the builtin's does).

The positional API (SPEC section 5) lives here too, shared with the buffered files:
``read(n, offset)``, ``write(data, offset)``, ``read_into``, ``readv``, ``writev`` and
``fsync``. With an ``offset`` a call is one request at that offset, like ``os.pread`` /
``os.pwrite`` on :meth:`fileno`: it neither moves the position nor sees or flushes a
buffer (call :meth:`flush` first to order it after buffered writes).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import operator
import os
import stat
import warnings
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any, Final

from uringq.aio._base import (
    CLOSED,
    CLOSED_DOT,
    AsyncFile,
    Closing,
    Turn,
    done_future,
    failed,
    line_limit,
    uninterrupted,
    unsupported,
)

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from uringq.aio._driver import Driver

__all__ = ["AsyncFileIO", "FileStat", "Positional"]

_PROBE: Final = 8192  # the read past the expected end that confirms EOF in readall()
_ONE_READ: Final = 1 << 20  # readall() up to this size: one read (see _read_all)
_OFF_MAX: Final = (1 << 63) - 1  # off_t
_CHUNK: Final = 65536  # readall()'s reads when the size is unknown
_AHEAD_FIRST: Final = 32768  # read-ahead window of a buffered file's second sequential read
_AHEAD_MAX: Final = 262144  # ... doubling up to this


def _closed_future(driver: Driver) -> asyncio.Future[Any]:
    return failed(driver.loop, ValueError(CLOSED))


FileStat = tuple[int, int, int]
"""What a new file object needs of the ``fstat`` at its open: ``(st_mode, st_size,
st_blksize)``."""


class Positional:
    """The positional API on a file's fd (see the module docstring)."""

    __slots__ = ()

    _driver: Driver

    def _positional_fd(self) -> int:
        raise NotImplementedError

    def read_into(self, buf: Buffer, offset: int) -> asyncio.Future[int]:
        """Read into ``buf`` at ``offset``; resolves to the number of bytes read."""
        fd = self._positional_fd()
        if fd < 0:
            return _closed_future(self._driver)
        return self._driver.read_into(fd, offset, buf)

    def readv(self, bufs: Sequence[Buffer], offset: int) -> asyncio.Future[int]:
        """Scatter read into ``bufs`` at ``offset``; resolves to the number of bytes read."""
        fd = self._positional_fd()
        if fd < 0:
            return _closed_future(self._driver)
        return self._driver.readv(fd, offset, bufs)

    def writev(self, bufs: Sequence[Buffer], offset: int) -> asyncio.Future[int]:
        """Gather write of ``bufs`` at ``offset``; resolves to the number of bytes written."""
        fd = self._positional_fd()
        if fd < 0:
            return _closed_future(self._driver)
        self._drop_ahead()
        return self._driver.writev(fd, offset, bufs)

    def _drop_ahead(self) -> None:
        """Forget data read ahead (the file objects that keep some override this)."""

    async def fsync(self, *, datasync: bool = False) -> None:
        """Flush buffered writes, then the file to stable storage (``fdatasync`` with
        ``datasync=True``)."""
        await self.flush()
        fd = self._positional_fd()
        if fd < 0:
            raise ValueError(CLOSED)
        await self._driver.fsync(fd, datasync=datasync)

    async def flush(self) -> None:
        raise NotImplementedError


class AsyncFileIO(Positional, AsyncFile):
    """An unbuffered binary file: ``io.FileIO`` whose I/O methods are coroutines."""

    __slots__ = (
        "__weakref__",
        "_ahead",
        "_ahead_at",
        "_ahead_size",
        "_appending",
        "_closefd",
        "_closing",
        "_created",
        "_driver",
        "_fd",
        "_first",
        "_name",
        "_next",
        "_pos",
        "_quiet_close",
        "_readable",
        "_size",
        "_stream",
        "_turn",
        "_writable",
        "blksize",
    )

    def __init__(
        self,
        driver: Driver,
        fd: int,
        name: Any,
        *,
        flags: tuple[bool, bool, bool, bool],
        closefd: bool,
        st: FileStat,
        position: int | None,
        small: bool = False,
    ) -> None:
        self._driver = driver
        self._fd = fd
        self._name = name
        self._readable, self._writable, self._appending, self._created = flags
        self._closefd = closefd
        self._closing = False
        self._stream = position is None
        self._pos = position or 0
        mode, self._size, self.blksize = st  # _size: a hint for readall(), then what we saw
        # A read-only regular file: close(2) has nothing to flush and no error that could
        # matter, and returns at once; it is closed on the loop's thread (no queue turn).
        self._quiet_close = not self._writable and stat.S_ISREG(mode)
        self._turn = Turn()
        self._ahead = b""  # read ahead for the buffered layer: the bytes from _ahead_at on
        self._ahead_at = 0
        self._ahead_size = 0
        self._next = -1  # where the last read-ahead read ended
        # A small regular file opened to be read (1 B to 64 KiB at the open, by the native
        # open): its first read takes the rest of it at once if that is in the page cache
        # (Driver.read_rest), with no request and no loop turn, as a cached read on the
        # queue would complete inline. Made when asked, it sees every change made before.
        self._first = small

    # -- attributes -----------------------------------------------------------------------
    @property
    def name(self) -> Any:
        return self._name

    @property
    def mode(self) -> str:
        plus = "+" if self._readable and self._writable else ""
        if self._created:
            return "xb" + ("+" if self._readable else "")
        if self._appending:
            return "ab" + ("+" if self._readable else "")
        return ("rb" + plus) if self._readable else "wb"

    @property
    def closed(self) -> bool:
        return self._fd < 0 or self._closing

    @property
    def closefd(self) -> bool:
        return self._closefd

    @property
    def driver(self) -> Driver:
        """The driver (and so the loop and queue) this file belongs to."""
        return self._driver

    def _positional_fd(self) -> int:
        return -1 if self._closing else self._fd

    def _check_open(self) -> int:
        fd = self._fd
        if fd < 0 or self._closing:
            raise ValueError(CLOSED)
        return fd

    def _check_open_dot(self) -> None:
        if self._fd < 0 or self._closing:
            raise ValueError(CLOSED_DOT)

    def fileno(self) -> int:
        return self._check_open()

    def readable(self) -> bool:
        self._check_open()
        return self._readable

    async def writable(self) -> bool:
        self._check_open()
        return self._writable

    async def seekable(self) -> bool:
        self._check_open()
        return not self._stream

    async def isatty(self) -> bool:
        return os.isatty(self._check_open())

    # -- position (no I/O) ----------------------------------------------------------------
    def _tell(self) -> int:
        if self._stream:
            raise OSError(errno.ESPIPE, os.strerror(errno.ESPIPE))
        return self._pos

    def _seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        """``lseek`` on the position kept here (the kernel answers for the end, holes
        and data)."""
        pos = operator.index(pos)
        whence = operator.index(whence)
        if self._stream:
            raise OSError(errno.ESPIPE, os.strerror(errno.ESPIPE))
        if whence == os.SEEK_SET:
            target = pos
        elif whence == os.SEEK_CUR:
            target = self._pos + pos
        else:
            target = os.lseek(self._fd, pos, whence)
        if target < 0:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        if target >= 1 << 63:
            raise OverflowError("Python int too large to convert to C long")
        self._pos = target
        return target

    async def tell(self) -> int:
        self._check_open()
        return self._tell()

    async def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        self._check_open()
        return self._seek(pos, whence)

    # -- the raw operations the buffered layer builds on (no checks, no turn) --------------
    async def _read_some(self, size: int) -> bytes:
        """One read of up to ``size`` bytes at the position, which moves past them."""
        fd = self._fd
        if self._stream:
            return await self._stream_read(size)
        data = await self._driver.read(fd, size, self._pos)
        self._pos += len(data)
        return data

    async def _read_ahead(self, size: int) -> bytes:
        """:meth:`_read_some` for the buffered layer, served from a window read ahead.

        The buffered layer makes exactly the builtin's raw reads; here sequential ones are
        answered from one larger read (32 KiB, doubling to 256 KiB), so reading a file
        4 KiB at a time costs one request per window instead of one per call. A read the
        window cannot answer whole is a real read (never a short one: the buffered layer
        must see the sizes the builtin sees). Writes, truncation and positional writes on
        this file drop the window; like any buffer it does not see other writers.
        """
        pos = self._pos
        if self._first and (rest := self._read_rest()) is not None:
            # The file to its end: the window, whose end is EOF as of now.
            self._ahead, self._ahead_at, self._next = rest, pos, pos + len(rest)
            data = rest[:size]
            self._pos = pos + len(data)
            return data
        ahead = self._ahead
        start = pos - self._ahead_at
        if start >= 0 and start + size <= len(ahead):
            self._pos = pos + size
            return ahead[start : start + size]
        if self._stream or pos != self._next:  # not sequential: a plain read
            self._ahead_size = 0
            data = await self._read_some(size)
            self._next = self._pos
            return data
        window = min(max(2 * self._ahead_size, _AHEAD_FIRST), _AHEAD_MAX)
        data = await self._driver.read(self._fd, max(size, window), pos)
        self._ahead_size = window
        self._next = pos + len(data)  # where the next window starts
        if len(data) > size:
            self._ahead, self._ahead_at = data, pos
            data = data[:size]
        self._pos = pos + len(data)
        return data

    async def _stream_read(self, size: int) -> bytes:
        """One read of up to ``size`` bytes from a stream (pipe, FIFO, socket, tty): a
        request on the loop's queue, in flight until the stream has data. Cancelling the
        awaiting task cancels the request, so a read the kernel has not done consumes
        nothing."""
        driver = self._driver
        buf = bytearray(size)
        fut = driver.read_into(self._fd, 0, buf)
        try:
            n = await fut
        except asyncio.CancelledError:
            driver.cancel_request(fut)
            raise
        del buf[n:]
        return bytes(buf)

    def _drop_ahead(self) -> None:
        self._ahead = b""
        self._next = -1

    def _read_rest(self) -> bytes | None:
        """The first read of a small file (see ``_first``): the file from the position to
        its end, read now without blocking; None if it cannot be (not all in the page
        cache, or not the size the open saw: a real read follows). The caller moves the
        position."""
        self._first = False
        read_rest, pos = self._driver.read_rest, self._pos
        want = self._size - pos
        if read_rest is None or want <= 0 or self._fd < 0:
            return None
        return read_rest(self._fd, pos, want)

    def _read_all_now(self) -> bytes | None:
        """:meth:`_read_rest`, the position moved to EOF."""
        rest = self._read_rest()
        if rest is not None:
            self._pos += len(rest)
        return rest

    async def _read_all(self) -> bytes:
        """Read to EOF from the position: the size from ``fstat``, then one read of it and
        one past it that confirms EOF, both in the same loop iteration. Up to
        :data:`_ONE_READ` it is one request of the size plus :data:`_PROBE`: a file that
        gives exactly its ``fstat`` size when asked for more is at EOF (the result is
        copied to its size, cheap for small files only)."""
        fd, read = self._fd, self._driver.read
        if self._stream:
            chunks = []
            while data := await self._stream_read(_CHUNK):
                chunks.append(data)
            return b"".join(chunks)
        start = self._pos
        if self._first and (rest := self._read_all_now()) is not None:
            return rest
        want = self._size - start  # a hint only: the read past it confirms EOF
        if 0 < want <= _ONE_READ:
            data = await read(fd, want + _PROBE, start)
            if len(data) == want:
                self._pos = self._size = start + want
                return data
            chunks = [data]  # it grew (read on), or shrank (read on to a 0-byte read)
        elif want > 0:
            first = read(fd, want, start)
            probe = read(fd, _PROBE, start + want)
            try:
                data = await first
            except BaseException:
                probe.cancel()
                raise
            if len(data) == want:
                tail = await probe
                if not tail:
                    self._pos = self._size = start + want
                    return data
                chunks = [data, tail]
            else:  # shorter than fstat said (it shrank, or a read capped at 2 GiB)
                probe.cancel()
                chunks = [data]
        else:
            chunks = []
        offset = start + sum(map(len, chunks))
        while True:
            piece = await read(fd, max(_CHUNK, want - (offset - start)), offset)
            if not piece:
                break
            chunks.append(piece)
            offset += len(piece)
        self._pos = self._size = offset
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _write_some(self, data: Buffer) -> int:
        """One write of ``data`` at the position (at the end in append mode). Callers run
        it :func:`uninterrupted`."""
        fd = self._fd
        self._ahead = b""
        if self._stream:
            n: int = await self._driver.run_in_worker(os.write, fd, data)
            return n
        n = await self._driver.write(fd, self._pos, data)
        if self._appending and n:  # O_APPEND: the data went to the end, and so did we
            self._pos = os.lseek(fd, 0, os.SEEK_END)
        else:
            self._pos += n
        self._size = max(self._size, self._pos)
        return n

    async def _truncate(self, size: int | None) -> int:
        self._ahead = b""
        size = self._tell() if size is None else operator.index(size)
        if size < 0:  # the builtin hands it to ftruncate(2), which says EINVAL
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        if size > _OFF_MAX:
            raise OverflowError("Python int too large to convert to C long")
        await self._driver.ftruncate(self._fd, size)
        self._size = size
        return size

    # -- the file's methods ---------------------------------------------------------------
    def read(self, size: int | None = -1, offset: int | None = None) -> Any:
        """``await f.read(size)``: one read at the position (``size`` < 0: to EOF).

        ``f.read(size, offset)``: a positional read (a future; see the module docstring).
        """
        if offset is not None:
            fd = self._positional_fd()
            if fd < 0:
                return _closed_future(self._driver)
            return self._driver.read(fd, size, offset)  # type: ignore[arg-type]
        return self._read(size)

    async def _read(self, size: int | None) -> bytes:
        size = -1 if size is None else operator.index(size)
        self._check_open()
        if not self._readable:
            raise unsupported("File not open for reading")
        async with self._turn:
            if size < 0:
                return await self._read_all()
            return await self._read_some(size)

    async def readall(self) -> bytes:
        """Read to EOF."""
        self._check_open()
        async with self._turn:
            return await self._read_all()

    async def readinto(self, buffer: Buffer) -> int:
        """One read into ``buffer`` at the position; the number of bytes read."""
        fd = self._check_open()
        if not self._readable:
            raise unsupported("File not open for reading")
        async with self._turn:
            if self._stream:  # into a buffer of ours: a cancelled read never pins theirs
                with memoryview(buffer) as view:
                    size = view.nbytes
                data = await self._stream_read(size)
                with memoryview(buffer) as view, view.cast("B") as target:
                    target[: len(data)] = data
                return len(data)
            n = await self._driver.read_into(fd, self._pos, buffer)
            self._pos += n
            return n

    async def readline(self, size: int | None = -1) -> bytes:
        """Read up to and including the next ``b"\\n"`` (at most ``size`` bytes if >= 0)."""
        limit = line_limit(size)
        if limit == 0:  # io.IOBase.readline: nothing to read, no checks
            return b""
        self._check_open()
        if not self._readable:
            raise unsupported("File not open for reading")
        async with self._turn:
            if self._stream:  # one byte at a time: never read past the line
                out = bytearray()
                while (limit < 0 or len(out) < limit) and (byte := await self._read_some(1)):
                    out += byte
                    if byte == b"\n":
                        break
                return bytes(out)
            start = self._pos
            try:
                return await self._readline_seekable(limit)
            except asyncio.CancelledError:
                self._pos = start  # a cancelled read consumes nothing
                raise

    async def _readline_seekable(self, limit: int) -> bytes:
        """Read ahead in chunks and keep only the line: the position decides what is read."""
        chunks: list[bytes] = []
        total = 0
        fd, read = self._fd, self._driver.read
        while limit < 0 or total < limit:
            want = _CHUNK if limit < 0 else min(_CHUNK, limit - total)
            data = await read(fd, want, self._pos)
            if not data:
                break
            end = data.find(b"\n") + 1
            if end:
                data = data[:end]
            chunks.append(data)
            total += len(data)
            self._pos += len(data)
            if end:
                break
        return b"".join(chunks)

    def write(self, data: Buffer, offset: int | None = None) -> Any:
        """``await f.write(data)``: one write at the position (the end in append mode); the
        number of bytes written (short only on a full disk and the like).

        ``f.write(data, offset)``: a positional write (a future; see the module docstring).
        """
        if offset is not None:
            fd = self._positional_fd()
            if fd < 0:
                return _closed_future(self._driver)
            self._ahead = b""
            return self._driver.write(fd, offset, data)
        return self._write(data)

    async def _write(self, data: Buffer) -> int:
        self._check_open()
        if not self._writable:
            raise unsupported("File not open for writing")
        memoryview(data)  # TypeError for str & co. before anything is queued
        async with self._turn:
            return await uninterrupted(self._write_some(data))

    async def truncate(self, size: int | None = None) -> int:
        """Resize the file to ``size`` (default: the position); the position stays."""
        self._check_open()
        if not self._writable:
            raise unsupported("File not open for writing")
        async with self._turn:
            return await uninterrupted(self._truncate(size))

    async def flush(self) -> None:
        """Nothing to flush (no buffer); raises on a closed file like the builtin."""
        self._check_open_dot()

    # -- closing --------------------------------------------------------------------------
    def close(self) -> Awaitable[None]:
        """Close the file; awaiting the result waits for the close itself. Closing twice
        does nothing."""
        if self._fd < 0 or self._closing:
            return done_future()
        if self._turn.busy:  # an operation is running: close after it
            self._closing = True
            return asyncio.ensure_future(self._close_after_turn())
        return self._close_now()

    async def _close_after_turn(self) -> None:
        await self._turn.wait()
        try:
            await self._close_now()
        finally:
            self._turn.release()

    def _close_now(self) -> Awaitable[None]:
        """Release the fd: deregister it, then close it on the queue (or keep it open for
        ``closefd=False``, its offset set to the position)."""
        fd = self._fd
        self._fd = -1
        self._ahead = b""
        self._closing = False
        driver = self._driver
        if not self._closefd:
            self._sync_offset(fd)
            driver.deregister(fd)
            return done_future()
        if driver.closed or driver.loop.is_closed():
            os.close(fd)
            return done_future()
        if not driver.release_fd(fd):  # still in use by cancelled requests: closed later
            return done_future()
        if self._quiet_close:  # as the builtin: closed when close() returns
            os.close(fd)
            return done_future()
        return Closing(driver.close_fd(fd))

    def _sync_offset(self, fd: int) -> None:
        if not self._stream:
            with contextlib.suppress(OSError):
                os.lseek(fd, self._pos, os.SEEK_SET)

    def _detach_fd(self) -> int:
        """Hand the fd over (for ``detach()``): deregistered, its offset at the position."""
        fd = self._fd
        self._fd = -1
        self._sync_offset(fd)
        self._driver.deregister(fd)
        return fd

    def _write_sync(self, data: Buffer) -> int:
        """A plain ``os`` write at the position (``detach()`` and collection time only)."""
        fd = self._fd
        self._ahead = b""
        if self._stream:
            return os.write(fd, data)
        if self._appending:
            n = os.write(fd, data)
            if n:
                self._pos = os.lseek(fd, 0, os.SEEK_END)
            return n
        n = os.pwrite(fd, data, self._pos)
        self._pos += n
        return n

    def _detach_to_fileio(self) -> io.FileIO:
        """Hand the fd over as a builtin ``io.FileIO`` at the position; this object is
        closed afterwards (it no longer owns the fd)."""
        name, closefd, mode = self._name, self._closefd, self.mode
        fd = self._detach_fd()
        raw = io.FileIO(fd, mode, closefd=closefd)
        raw.name = name
        return raw

    def _close_sync(self) -> None:
        """Close without awaiting (collection time)."""
        fd = self._fd
        if fd < 0:
            return
        self._fd = -1
        if self._closefd:
            if self._driver.closed:
                with contextlib.suppress(OSError):
                    os.close(fd)
            else:
                self._driver.deregister(fd, close=True)
        else:
            self._sync_offset(fd)
            with contextlib.suppress(Exception):
                self._driver.deregister(fd)

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            warnings.warn(f"unclosed file {self!r}", ResourceWarning, stacklevel=2)
            with contextlib.suppress(Exception):  # best effort at collection time
                self._close_sync()

    def __repr__(self) -> str:
        if self._fd < 0:
            return "<uringq.aio.AsyncFileIO [closed]>"
        return (
            f"<uringq.aio.AsyncFileIO name={self._name!r} mode={self.mode!r} "
            f"closefd={self._closefd}>"
        )


def is_directory(st: os.stat_result) -> bool:
    return stat.S_ISDIR(st.st_mode)
