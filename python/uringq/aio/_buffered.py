"""Buffered binary files: ``io.BufferedReader``, ``BufferedWriter`` and ``BufferedRandom``
with coroutine methods, over an :class:`~uringq.aio._raw.AsyncFileIO`.

The buffer follows the builtin's (CPython's C implementation) bookkeeping step for step:
one buffer shared by reads and writes, the same raw reads and writes at the same sizes
(reads of whole buffer-size blocks, a fill for the rest), so ``peek``, ``read1``, ``tell``
and everything else give the builtin's results, and data reach the file at the same
moments (a write that fits the buffer waits for ``flush``). One deliberate difference:
``read1`` on a read-write file flushes pending writes first, as CPython 3.13 does
(gh-115059; 3.11 and 3.12 read stale bytes there).

Cancellation: steps that write run to their end (the kernel may be writing already);
a read that is cancelled consumes nothing: the position goes back to where the read
began, and the next read starts there.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import operator
import os
import warnings
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from uringq.aio._base import CLOSED, CLOSED_DOT, AsyncFile, done_future, uninterrupted, unsupported
from uringq.aio._raw import AsyncFileIO, Positional, _line_limit

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from typing_extensions import Buffer

    from uringq.aio._driver import Driver

__all__ = ["AsyncBufferedRandom", "AsyncBufferedReader", "AsyncBufferedWriter"]

T = TypeVar("T")

_DETACHED = "raw stream has been detached"
_WHENCES = (os.SEEK_SET, os.SEEK_CUR, os.SEEK_END, os.SEEK_DATA, os.SEEK_HOLE)


class _Buffered(Positional, AsyncFile):
    __slots__ = (
        "__weakref__",
        "_buf",
        "_driver",
        "_mask",
        "_pos",
        "_raw",
        "_raw_pos",
        "_read_end",
        "_size",
        "_turn",
        "_write_end",
        "_write_pos",
    )

    _readable = False
    _writable = False

    def __init__(self, raw: AsyncFileIO, buffer_size: int = io.DEFAULT_BUFFER_SIZE) -> None:
        buffer_size = operator.index(buffer_size)
        if buffer_size <= 0:
            raise ValueError("buffer size must be strictly positive")
        self._raw: AsyncFileIO | None = raw
        self._driver = raw._driver
        self._turn = raw._turn
        self._buf = bytearray(buffer_size)
        self._size = buffer_size
        self._mask = buffer_size - 1 if buffer_size & (buffer_size - 1) == 0 else 0
        self._pos = 0  # the logical position inside the buffer
        self._raw_pos = 0  # where the raw position is inside the buffer (-1: unknown)
        self._read_end = -1  # end of the readable bytes, -1: no read buffer
        self._write_pos = 0  # first byte not yet written out
        self._write_end = -1  # end of the bytes to write, -1: no write buffer

    # -- the bookkeeping (CPython's macros) ------------------------------------------------
    def _readahead(self) -> int:
        return self._read_end - self._pos if self._readable and self._read_end != -1 else 0

    def _raw_offset(self) -> int:
        valid = (self._readable and self._read_end != -1) or (
            self._writable and self._write_end != -1
        )
        return self._raw_pos - self._pos if valid and self._raw_pos >= 0 else 0

    def _adjust_position(self, pos: int) -> None:
        self._pos = pos
        if self._readable and self._read_end != -1 and self._read_end < pos:
            self._read_end = pos

    def _reset_write_buf(self) -> None:
        self._write_pos = 0
        self._write_end = -1

    def _minus_last_block(self, size: int) -> int:
        mask = self._mask
        return size & ~mask if mask else self._size * (size // self._size)

    def _tell_now(self) -> int:
        raw = self._attached()
        return raw._tell() - self._raw_offset()

    # -- checks ---------------------------------------------------------------------------
    def _attached(self) -> AsyncFileIO:
        raw = self._raw
        if raw is None:
            raise ValueError(_DETACHED)
        return raw

    def _check(self, message: str) -> AsyncFileIO:
        """The raw file, if attached and open (``message`` if closed)."""
        raw = self._attached()
        if raw._fd < 0 or raw._closing:
            raise ValueError(message)
        return raw

    def _check_open_dot(self) -> None:
        self._check(CLOSED_DOT)

    async def _begin(self) -> None:
        turn = self._turn
        if turn.busy:
            await turn.wait()
        else:
            turn.busy = True

    # -- attributes -----------------------------------------------------------------------
    @property
    def raw(self) -> AsyncFileIO | None:
        """The unbuffered file underneath (``None`` once detached)."""
        return self._raw

    @property
    def name(self) -> Any:
        return self._attached().name

    @property
    def mode(self) -> str:
        return self._attached().mode

    @property
    def closed(self) -> bool:
        return self._attached().closed

    @property
    def driver(self) -> Driver:
        """The driver (and so the loop and queue) this file belongs to."""
        return self._driver

    def _positional_fd(self) -> int:
        raw = self._raw
        return -1 if raw is None or raw._closing else raw._fd

    def fileno(self) -> int:
        return self._attached().fileno()

    def readable(self) -> bool:
        if not self._readable:  # io.IOBase.readable: no checks
            return False
        return self._attached().readable()

    async def writable(self) -> bool:
        if not self._writable:  # io.IOBase.writable: no checks
            return False
        return await self._attached().writable()

    async def seekable(self) -> bool:
        return await self._attached().seekable()

    async def isatty(self) -> bool:
        return await self._attached().isatty()

    # -- raw steps --------------------------------------------------------------------------
    async def _fill_buffer(self) -> int:
        start = self._read_end if self._readable and self._read_end != -1 else 0
        data = await self._attached()._read_some(self._size - start)
        n = len(data)
        if n:
            self._buf[start : start + n] = data
            self._read_end = self._raw_pos = start + n
        return n

    async def _flush_unlocked(self) -> None:
        """Write out the write buffer (uninterrupted), then drop it."""
        if self._writable and self._write_end not in (-1, self._write_pos):
            await uninterrupted(self._write_out())
        self._reset_write_buf()

    async def _write_out(self) -> None:
        raw = self._attached()
        rewind = self._raw_offset() + (self._pos - self._write_pos)
        if rewind:
            raw._seek(-rewind, os.SEEK_CUR)
            self._raw_pos -= rewind
        while self._write_pos < self._write_end:
            chunk = bytes(self._buf[self._write_pos : self._write_end])
            self._write_pos += await raw._write_some(chunk)
            self._raw_pos = self._write_pos

    async def _flush_and_rewind(self) -> None:
        await self._flush_unlocked()
        if self._readable:
            offset = self._raw_offset()
            self._read_end = -1
            if offset:
                self._attached()._seek(-offset, os.SEEK_CUR)

    def _rewind(self, position: int | None) -> None:
        """Put the logical position back to ``position`` (a cancelled read), dropping the
        read buffer; the write buffer is empty whenever a read awaits."""
        raw = self._raw
        if position is None or raw is None or raw._fd < 0:
            return
        if self._writable and self._write_end not in (-1, self._write_pos):
            return  # cancelled before anything moved
        self._read_end = -1
        self._reset_write_buf()
        self._raw_pos = -1
        raw._pos = position

    async def _locked_read(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a read step with the turn held; a cancellation puts the position back."""
        await self._begin()
        start = self._start_position()
        try:
            return await coro
        except asyncio.CancelledError:
            self._rewind(start)
            raise
        finally:
            self._turn.release()

    def _start_position(self) -> int | None:
        try:
            return self._tell_now()
        except OSError:  # a stream: nothing to put back
            return None

    # -- reading --------------------------------------------------------------------------
    def _read_fast(self, n: int) -> bytes | None:
        if n <= self._readahead():
            pos = self._pos
            self._pos = pos + n
            return bytes(self._buf[pos : pos + n])
        return None

    def read(self, size: int | None = -1, offset: int | None = None) -> Any:
        """``await f.read(size)``: up to ``size`` bytes (all to EOF if ``size`` < 0), short
        only at EOF. ``f.read(size, offset)``: a positional read (a future)."""
        if offset is not None:
            fd = self._positional_fd()
            if fd < 0:
                return self._closed_future()
            return self._driver.read(fd, size, offset)  # type: ignore[arg-type]
        return self._read(size)

    def _closed_future(self) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = self._driver.loop.create_future()
        fut.set_exception(ValueError(CLOSED))
        return fut

    async def _read(self, size: int | None) -> bytes:
        n = -1 if size is None else operator.index(size)
        if not self._readable:  # io.BufferedIOBase.read: no other checks
            raise unsupported("read")
        self._attached()
        if n < -1:
            raise ValueError("read length must be non-negative or -1")
        self._check("read of closed file")
        if n >= 0 and not self._turn.busy and (data := self._read_fast(n)) is not None:
            return data
        return await self._locked_read(self._read_unlocked(n))

    def _read_unlocked(self, n: int) -> Coroutine[Any, Any, bytes]:
        return self._read_all() if n < 0 else self._read_generic(n)

    async def _read_all(self) -> bytes:
        current = self._readahead()
        data = bytes(self._buf[self._pos : self._pos + current]) if current else b""
        self._pos += current
        if self._writable:
            await self._flush_and_rewind()
        self._read_end = -1
        rest = await self._attached()._read_all()
        return data + rest if current else rest

    async def _read_generic(self, n: int) -> bytes:
        data = self._read_fast(n)
        if data is not None:
            return data
        current = self._readahead()
        chunks = [bytes(self._buf[self._pos : self._pos + current])] if current else []
        remaining = n - current
        self._pos += current
        if self._writable:
            await self._flush_and_rewind()
        self._read_end = -1
        raw = self._attached()
        while remaining > 0:
            want = self._minus_last_block(remaining)
            if not want:
                break
            piece = await raw._read_some(want)
            if not piece:
                return b"".join(chunks)
            chunks.append(piece)
            remaining -= len(piece)
        self._pos = self._raw_pos = self._read_end = 0
        while remaining > 0 and self._read_end < self._size:
            got = await self._fill_buffer()
            if not got:
                break
            take = min(got, remaining)
            chunks.append(bytes(self._buf[self._pos : self._pos + take]))
            self._pos += take
            remaining -= take
        return b"".join(chunks)

    async def read1(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes with at most one raw read (buffered bytes first)."""
        n = operator.index(size)
        if not self._readable:
            raise unsupported("read1")
        self._attached()
        if n < 0:
            n = self._size
        self._check("read of closed file")
        if n == 0:
            return b""
        have = self._readahead()
        if have > 0 and not self._turn.busy:
            return self._read_fast(min(have, n)) or b""
        return await self._locked_read(self._read1_unlocked(n))

    async def _read1_unlocked(self, n: int) -> bytes:
        have = self._readahead()
        if have > 0:
            return self._read_fast(min(have, n)) or b""
        if self._writable:
            await self._flush_and_rewind()
        self._read_end = -1
        return await self._attached()._read_some(n)

    async def readinto(self, buffer: Buffer) -> int:
        """Fill ``buffer`` (short only at EOF); the number of bytes read."""
        return await self._readinto(buffer, False)

    async def readinto1(self, buffer: Buffer) -> int:
        """Read into ``buffer`` with at most one raw read; the number of bytes read."""
        return await self._readinto(buffer, True)

    async def _readinto(self, buffer: Buffer, one: bool) -> int:
        if not self._readable:
            raise unsupported("read1" if one else "read")
        self._attached()
        self._check("readinto of closed file")
        with memoryview(buffer) as outer, outer.cast("B") as view:
            if view.readonly:
                kind = type(buffer).__name__
                raise TypeError(
                    f"readinto() argument must be read-write bytes-like object, not {kind}"
                )
            return await self._locked_read(self._readinto_unlocked(view, one))

    async def _readinto_unlocked(self, view: memoryview, one: bool) -> int:
        length = len(view)
        have = self._readahead()
        written = 0
        if have > 0:
            take = min(have, length)
            view[:take] = self._buf[self._pos : self._pos + take]
            self._pos += take
            if take == length:
                return length
            written = take
        if self._writable:
            await self._flush_and_rewind()
        self._read_end = -1
        self._pos = 0
        raw = self._attached()
        while written < length:
            remaining = length - written
            if remaining > self._size:
                piece = await raw._read_some(remaining)
                n = len(piece)
                view[written : written + n] = piece
            elif not (one and written):
                n = await self._fill_buffer()
                if n > 0:
                    n = min(n, remaining)
                    view[written : written + n] = self._buf[self._pos : self._pos + n]
                    self._pos += n
                    written += n
                    continue
            else:
                n = 0
            if n == 0:
                break
            written += n
            if one:
                break
        return written

    async def readline(self, size: int | None = -1) -> bytes:
        """Read up to and including the next ``b"\\n"`` (at most ``size`` bytes if >= 0)."""
        limit = _line_limit(size)
        if not self._readable:  # io.IOBase.readline, which reads nothing for size 0
            if limit == 0:
                return b""
            raise unsupported("read")
        self._attached()
        self._check("readline of closed file")
        # The whole line in the buffer: no turn, no await.
        have = self._readahead() if not self._turn.busy else 0
        n = min(have, limit) if limit >= 0 else have
        pos = self._pos
        end = self._buf.find(b"\n", pos, pos + n) + 1
        if end or n == limit:
            end = end or pos + n
            self._pos = end
            return bytes(self._buf[pos:end])
        return await self._locked_read(self._readline_unlocked(limit))

    async def _readline_unlocked(self, limit: int) -> bytes:
        have = self._readahead()
        n = min(have, limit) if limit >= 0 else have
        chunks = []
        if n > 0:
            chunks.append(bytes(self._buf[self._pos : self._pos + n]))
            self._pos += n
            if limit >= 0:
                limit -= n
        if self._writable:
            await self._flush_and_rewind()
        while True:
            self._read_end = -1
            got = await self._fill_buffer()
            if got <= 0:
                break
            if limit >= 0:
                got = min(got, limit)
            end = self._buf.find(b"\n", 0, got) + 1
            if end:
                chunks.append(bytes(self._buf[:end]))
                self._pos = end
                break
            chunks.append(bytes(self._buf[:got]))
            if got == limit:
                self._pos = got
                break
            if limit >= 0:
                limit -= got
        return b"".join(chunks)

    # -- writing --------------------------------------------------------------------------
    def write(self, data: Buffer, offset: int | None = None) -> Any:
        """``await f.write(data)``: buffer ``data`` (written out when the buffer fills, on
        ``flush`` and on ``close``); returns ``len(data)``.
        ``f.write(data, offset)``: a positional write (a future)."""
        if offset is not None:
            fd = self._positional_fd()
            if fd < 0:
                return self._closed_future()
            return self._driver.write(fd, offset, data)
        return self._write(data)

    async def _write(self, data: Buffer) -> int:
        if not self._writable:  # io.BufferedIOBase.write: no other checks
            raise unsupported("write")
        self._attached()
        view = memoryview(data).cast("B")
        raw = self._raw
        assert raw is not None
        if raw._fd < 0 or raw._closing:
            raise ValueError("write to closed file")
        if not self._turn.busy and (n := self._write_buffered(view)) >= 0:
            return n
        await self._begin()
        try:
            return await self._write_unlocked(view)
        finally:
            self._turn.release()

    async def _write_unlocked(self, view: memoryview) -> int:
        n = self._write_buffered(view)
        return n if n >= 0 else await uninterrupted(self._write_through(view))

    def _write_buffered(self, view: memoryview) -> int:
        """Copy ``view`` into the buffer if it fits: its length, else -1."""
        if not (self._readable and self._read_end != -1) and self._write_end == -1:
            self._pos = self._raw_pos = 0
        length = len(view)
        pos = self._pos
        if length > self._size - pos:
            return -1
        self._buf[pos : pos + length] = view
        if self._write_end == -1 or self._write_pos > pos:
            self._write_pos = pos
        self._adjust_position(pos + length)
        self._write_end = max(self._write_end, self._pos)
        return length

    async def _write_through(self, view: memoryview) -> int:
        """The buffer is too full for ``view``: flush it, write whole blocks straight
        to the raw file, keep the rest buffered."""
        await self._flush_unlocked()
        raw = self._attached()
        offset = self._raw_offset()
        if offset:
            raw._seek(-offset, os.SEEK_CUR)
            self._raw_pos -= offset
        length = len(view)
        written = 0
        while length - written > self._size:
            written += await raw._write_some(view[written:])
        if self._readable:
            self._read_end = -1
        remaining = length - written
        if remaining > 0:
            self._buf[:remaining] = view[written:]
        self._write_pos = 0
        self._write_end = remaining
        self._adjust_position(remaining)
        self._raw_pos = 0
        return length

    async def flush(self) -> None:
        """Write out the buffer (a read-only file has nothing to flush)."""
        raw = self._attached()
        if not self._writable:
            await raw.flush()
            return
        self._check("flush of closed file")
        await self._begin()
        try:
            await self._flush_and_rewind()
        finally:
            self._turn.release()

    async def _flush_public_unlocked(self) -> None:
        """``flush()`` without checks or turn (for the text layer)."""
        if self._writable:
            await self._flush_and_rewind()

    # -- position ---------------------------------------------------------------------------
    async def tell(self) -> int:
        raw = self._attached()
        if raw._fd < 0:
            raise ValueError(CLOSED)
        return self._tell_now()

    async def seek(self, target: int, whence: int = os.SEEK_SET) -> int:
        """Move the position; inside the read buffer without any I/O."""
        whence = operator.index(whence)
        if whence not in _WHENCES:
            self._attached()
            raise ValueError(f"whence value {whence} unsupported")
        raw = self._check("seek of closed file")
        if raw._stream:
            raise unsupported("File or stream is not seekable.")
        target = operator.index(target)
        if not self._turn.busy and (result := self._seek_in_buffer(target, whence)) is not None:
            return result
        await self._begin()
        try:
            return await self._seek_unlocked(target, whence)
        finally:
            self._turn.release()

    def _seek_in_buffer(self, target: int, whence: int) -> int | None:
        """A seek that stays inside the read buffer: the new position, else None."""
        if whence in (os.SEEK_SET, os.SEEK_CUR) and self._readable:
            current = self._attached()._pos
            avail = self._readahead()
            if avail > 0:
                offset = target - (current - self._raw_offset()) if whence == 0 else target
                if -self._pos <= offset <= avail:
                    self._pos += offset
                    return current - avail + offset
        return None

    async def _seek_unlocked(self, target: int, whence: int) -> int:
        result = self._seek_in_buffer(target, whence)
        if result is not None:
            return result
        if self._writable:
            await self._flush_unlocked()
        if whence == os.SEEK_CUR:
            target -= self._raw_offset()
        result = self._attached()._seek(target, whence)
        self._raw_pos = -1
        if self._readable:
            self._read_end = -1
        return result

    async def truncate(self, pos: int | None = None) -> int:
        """Resize the file to ``pos`` (default: the position) after a flush."""
        self._check("truncate of closed file")
        if not self._writable:
            raise unsupported("truncate")
        await self._begin()
        try:
            return await self._truncate_unlocked(pos)
        finally:
            self._turn.release()

    async def _truncate_unlocked(self, pos: int | None) -> int:
        await self._flush_and_rewind()
        return await uninterrupted(self._attached()._truncate(pos))

    # -- closing, detaching -----------------------------------------------------------------
    def close(self) -> Awaitable[None]:
        """Flush and close; awaiting the result waits for both (and raises a flush
        error). Closing twice does nothing."""
        raw = self._attached()
        if raw._fd < 0 or raw._closing:
            return done_future()
        if not self._turn.busy and not self._pending_writes():
            self._free_buffer()
            return raw._close_now()
        raw._closing = True  # no new operations from here on
        return asyncio.ensure_future(self._close_after_flush(raw))

    def _pending_writes(self) -> bool:
        return self._writable and self._write_end not in (-1, self._write_pos)

    def _free_buffer(self) -> None:
        self._read_end = self._pos = 0
        self._reset_write_buf()

    async def _close_after_flush(self, raw: AsyncFileIO) -> None:
        await self._begin()
        try:
            try:
                if self._writable:
                    await self._flush_and_rewind()
            finally:
                self._free_buffer()
                await raw._close_now()
        finally:
            self._turn.release()

    def _flush_sync(self) -> None:
        """Write out the buffer with plain ``os`` calls (``detach()``, collection time)."""
        raw = self._attached()
        if self._pending_writes():
            rewind = self._raw_offset() + (self._pos - self._write_pos)
            if rewind:
                raw._seek(-rewind, os.SEEK_CUR)
                self._raw_pos -= rewind
            while self._write_pos < self._write_end:
                chunk = bytes(self._buf[self._write_pos : self._write_end])
                self._write_pos += raw._write_sync(chunk)
                self._raw_pos = self._write_pos
        self._reset_write_buf()
        if self._readable:
            offset = self._raw_offset()
            self._read_end = -1
            if offset:
                raw._seek(-offset, os.SEEK_CUR)

    def _write_sync(self, data: bytes) -> None:
        """Flush, then write ``data`` with plain ``os`` calls (collection time)."""
        self._flush_sync()
        raw = self._attached()
        view = memoryview(data)
        while view:
            view = view[raw._write_sync(view) :]

    def detach(self) -> io.FileIO:
        """Flush, then hand over the fd as a builtin ``io.FileIO`` at the position (what
        aiofiles returns); this object is unusable afterwards."""
        raw = self._attached()
        if raw._fd < 0:
            raise ValueError(CLOSED_DOT if not self._writable else "flush of closed file")
        self._flush_sync()
        self._raw = None
        return raw._detach_to_fileio()

    def _close_sync(self) -> None:
        raw = self._raw
        if raw is None or raw._fd < 0:
            return
        try:
            self._flush_sync()
        finally:
            raw._close_sync()

    def __del__(self) -> None:
        raw = getattr(self, "_raw", None)
        if raw is not None and raw._fd >= 0:
            warnings.warn(f"unclosed file {self!r}", ResourceWarning, stacklevel=2)
            with contextlib.suppress(Exception):  # best effort at collection time
                self._close_sync()

    def __repr__(self) -> str:
        kind = type(self).__name__
        raw = self._raw
        if raw is None:
            return f"<uringq.aio.{kind} [detached]>"
        return f"<uringq.aio.{kind} name={raw._name!r}>"


class _Peekable(_Buffered):
    """``peek``: readers and read-write files have it, a ``BufferedWriter`` has not."""

    __slots__ = ()

    async def peek(self, size: int = 0) -> bytes:
        """The buffered bytes from the position on (at least one unless at EOF), without
        moving the position; ``size`` is ignored, as by the builtin."""
        operator.index(size)
        self._check("peek of closed file")
        return await self._locked_read(self._peek_unlocked())

    async def _peek_unlocked(self) -> bytes:
        if self._writable:
            await self._flush_and_rewind()
        have = self._readahead()
        if have > 0:
            return bytes(self._buf[self._pos : self._pos + have])
        self._read_end = -1
        got = await self._fill_buffer()
        self._pos = 0
        return bytes(self._buf[:got])


class AsyncBufferedReader(_Peekable):
    """``io.BufferedReader`` as coroutines (mode ``rb``)."""

    __slots__ = ()
    _readable = True


class AsyncBufferedWriter(_Buffered):
    """``io.BufferedWriter`` as coroutines (modes ``wb``, ``ab``, ``xb``)."""

    __slots__ = ()
    _writable = True


class AsyncBufferedRandom(_Peekable):
    """``io.BufferedRandom`` as coroutines (the ``+`` modes)."""

    __slots__ = ()
    _readable = True
    _writable = True
