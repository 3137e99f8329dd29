"""Buffered binary files: ``io.BufferedReader``, ``BufferedWriter`` and ``BufferedRandom``
with coroutine methods, over an :class:`~uringq.aio._raw.AsyncFileIO`.

The buffer follows the builtin's (CPython's C implementation) bookkeeping step for step
(:mod:`uringq.aio._bufcore`): one buffer shared by reads and writes, the same raw reads
and writes at the same sizes (reads of whole buffer-size blocks, a fill for the rest),
so ``peek``, ``read1``, ``tell`` and everything else give the builtin's results, and data
reach the file at the same moments (a write that fits the buffer waits for ``flush``).
One deliberate difference: ``read1`` on a read-write file flushes pending writes first,
as CPython 3.13 does (gh-115059; 3.11 and 3.12 read stale bytes there).
"""

from __future__ import annotations

import asyncio
import operator
import os
from typing import TYPE_CHECKING, Any

from uringq._checks import write_source
from uringq.aio._base import CLOSED, line_limit, uninterrupted, unsupported
from uringq.aio._bufcore import DETACHED, BufferCore

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from typing_extensions import Buffer

__all__ = ["AsyncBufferedRandom", "AsyncBufferedReader", "AsyncBufferedWriter"]


class _Buffered(BufferCore):
    """Reading and writing (the builtin's ``_Buffered`` methods)."""

    __slots__ = ()

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
        raw = self._raw
        if (
            raw is not None
            and raw._first  # a small file's first read (a reader's raw file only)
            and (size is None or (type(size) is int and size == -1))
            and self._read_end == -1  # nothing buffered
            and not self._turn.busy
            and not raw._closing
            and (data := raw._read_all_now()) is not None
        ):
            return data  # the aiofiles-style small-file path: no request, no loop turn
        n = -1 if size is None else operator.index(size)
        if not self._readable:  # io.BufferedIOBase.read: no other checks
            raise unsupported("read")
        if raw is None:
            raise ValueError(DETACHED)
        if n < -1:
            raise ValueError("read length must be non-negative or -1")
        if raw._fd < 0 or raw._closing:
            raise ValueError("read of closed file")
        turn = self._turn
        if n >= 0 and not turn.busy and (data := self._read_fast(n)) is not None:
            return data
        # _locked_read, inline (the turn's take and release too): the hot path
        if turn.busy:
            await turn.wait()
        else:
            turn.busy = True
        if n < 0 and self._read_end == -1 and not self._writable:
            # Nothing buffered: the raw file's readall, without a frame of ours around it.
            start = None if raw._stream else raw._pos
            coro = raw._read_all()
        else:
            start = self._start_position()
            coro = self._read_generic(n) if n >= 0 else self._read_all()
        try:
            return await coro
        except asyncio.CancelledError:
            self._rewind(start)
            raise
        finally:
            if turn.waiters:
                turn.release()
            else:
                turn.busy = False

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
            piece = await raw._read_ahead(want)
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
        return await self._attached()._read_ahead(n)

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
                piece = await raw._read_ahead(remaining)
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
        limit = line_limit(size)
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
            self._drop_ahead()
            return self._driver.write(fd, offset, data)
        return self._write(data)

    async def _write(self, data: Buffer) -> int:
        if not self._writable:  # io.BufferedIOBase.write: no other checks
            raise unsupported("write")
        self._attached()
        view = write_source(data)  # BufferError for a non-contiguous one, as the builtin
        raw = self._raw
        assert raw is not None
        if raw._fd < 0 or raw._closing:
            raise ValueError("write to closed file")
        if not self._turn.busy and (n := self._write_buffered(view)) >= 0:
            return n
        if not self._turn.take():
            await self._turn.wait()
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
        self._buffer()[pos : pos + length] = view
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
            self._buffer()[:remaining] = view[written:]
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
        if not self._turn.take():
            await self._turn.wait()
        try:
            await self._flush_and_rewind()
        finally:
            self._turn.release()

    async def _flush_public_unlocked(self) -> None:
        """``flush()`` without checks or turn (for the text layer)."""
        if self._writable:
            await self._flush_and_rewind()


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
