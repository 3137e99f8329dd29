"""The bookkeeping of the buffered binary files (CPython's C ``_Buffered``): the shared
buffer and its positions, the raw steps (fill, write out, rewind), position, closing and
detaching. :mod:`uringq.aio._buffered` adds the reading and writing methods.

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
from typing import TYPE_CHECKING, Any, TypeVar, cast

from uringq.aio._base import CLOSED, CLOSED_DOT, AsyncFile, done_future, uninterrupted, unsupported
from uringq.aio._raw import AsyncFileIO, Positional

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from uringq.aio._driver import Driver

__all__ = ["DETACHED", "BufferCore"]

T = TypeVar("T")

DETACHED = "raw stream has been detached"
_UNALLOCATED: bytearray = cast(bytearray, b"")  # BufferCore._buf before its first use
_WHENCES = (os.SEEK_SET, os.SEEK_CUR, os.SEEK_END, os.SEEK_DATA, os.SEEK_HOLE)


class BufferCore(Positional, AsyncFile):
    """State and the steps every buffered file shares (see the module docstring)."""

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
        # Allocated by the first fill or buffered write (_buffer()): a file read whole
        # with one read() never needs it. bytes until then: a slice assignment into it
        # raises rather than grow it.
        self._buf: bytearray = _UNALLOCATED
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

    def _buffer(self) -> bytearray:
        """The buffer, allocated on first use (see ``__init__``)."""
        buf = self._buf
        if buf is _UNALLOCATED:
            buf = self._buf = bytearray(self._size)
        return buf

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
            raise ValueError(DETACHED)
        return raw

    def _check(self, message: str) -> AsyncFileIO:
        """The raw file, if attached and open (``message`` if closed)."""
        raw = self._attached()
        if raw._fd < 0 or raw._closing:
            raise ValueError(message)
        return raw

    def _check_open_dot(self) -> None:
        self._check(CLOSED_DOT)

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

    def _drop_ahead(self) -> None:
        if self._raw is not None:
            self._raw._drop_ahead()

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
        data = await self._attached()._read_ahead(self._size - start)
        n = len(data)
        if n:
            self._buffer()[start : start + n] = data
            self._read_end = self._raw_pos = start + n
        return n

    async def _flush_unlocked(self) -> None:
        """Write out the write buffer (uninterrupted), then drop it."""
        if self._writable and self._write_end not in (-1, self._write_pos):
            await uninterrupted(self._write_out())
        self._reset_write_buf()

    async def _write_out(self) -> None:
        raw = self._rewind_to_write()
        while (chunk := self._pending_chunk()) is not None:
            self._wrote(await raw._write_some(chunk))

    def _rewind_to_write(self) -> AsyncFileIO:
        """Move the raw position to the first byte to write out."""
        raw = self._attached()
        rewind = self._raw_offset() + (self._pos - self._write_pos)
        if rewind:
            raw._seek(-rewind, os.SEEK_CUR)
            self._raw_pos -= rewind
        return raw

    def _pending_chunk(self) -> bytes | None:
        if self._write_pos < self._write_end:
            return bytes(self._buf[self._write_pos : self._write_end])
        return None

    def _wrote(self, n: int) -> None:
        self._write_pos += n
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
        if not self._turn.take():
            await self._turn.wait()
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
        if not self._turn.take():
            await self._turn.wait()
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
        if not self._turn.take():
            await self._turn.wait()
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
        raw = self._raw
        if raw is None:
            raise ValueError(DETACHED)
        if raw._fd < 0 or raw._closing:
            return done_future()
        if not self._turn.busy and not (self._writable and self._pending_writes()):
            self._read_end = self._pos = self._write_pos = 0  # _free_buffer, inline
            self._write_end = -1
            return raw._close_now()
        raw._closing = True  # no new operations from here on
        return asyncio.ensure_future(self._close_after_flush(raw))

    def _pending_writes(self) -> bool:
        return self._writable and self._write_end not in (-1, self._write_pos)

    def _free_buffer(self) -> None:
        self._read_end = self._pos = 0
        self._reset_write_buf()

    async def _close_after_flush(self, raw: AsyncFileIO) -> None:
        if not self._turn.take():
            await self._turn.wait()
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
            self._rewind_to_write()
            while (chunk := self._pending_chunk()) is not None:
                self._wrote(raw._write_sync(chunk))
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
