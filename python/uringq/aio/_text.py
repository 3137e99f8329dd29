"""``AsyncTextIOWrapper``: ``io.TextIOWrapper`` with coroutine methods, over a buffered file.

Decoding and encoding use the codec's incremental decoder and encoder (wrapped in
``io.IncrementalNewlineDecoder`` for universal newlines), exactly as the builtin does;
the algorithm follows CPython's C implementation step for step: chunked reads of
``max(8192, bytes-per-char * wanted)`` through ``read1``, the decoder snapshot kept for
``tell()``, the same opaque ``tell()`` cookies (so a cookie of the builtin file works
here and the other way round), pending encoded writes flushed past 8192 bytes, on
newlines with line buffering, and before every read, seek and tell.

A cancelled read leaves the file as it was before the read (decoder state, decoded
characters and position restored); steps that write run to their end.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import io
import locale
import operator
import os
import sys
import warnings
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Final

from uringq.aio._base import CLOSED_DOT, AsyncFile, done_future, line_limit, unsupported
from uringq.aio._textpos import (
    decoder_setstate,
    find_line_end,
    tell_cookie,
    unpack_cookie,
)

if TYPE_CHECKING:
    from uringq.aio._buffered import _Buffered
    from uringq.aio._driver import Driver

__all__ = ["AsyncTextIOWrapper", "check_newline", "lookup_text_encoding"]

_DETACHED = "underlying buffer has been detached"
_POSITIONAL = (
    "positional I/O is binary: use f.buffer.read(n, offset), f.buffer.write(data, offset), ..."
)
_CHUNK_SIZE: Final = 8192
_NEWLINES = (None, "", "\n", "\r", "\r\n")


def check_newline(newline: Any) -> None:
    """The builtin's ``newline`` checks."""
    if newline is not None and not isinstance(newline, str):
        raise TypeError(f"illegal newline type: {type(newline).__name__!r}")
    if newline not in _NEWLINES:
        raise ValueError(f"illegal newline value: {newline}")


def lookup_text_encoding(encoding: str) -> codecs.CodecInfo:
    """``codecs.lookup`` for text encodings only, with the builtin's error."""
    info = codecs.lookup(encoding)
    if not getattr(info, "_is_text_encoding", True):
        raise LookupError(
            f"{encoding!r} is not a text encoding; use codecs.open() to handle arbitrary codecs"
        )
    return info


class AsyncTextIOWrapper(AsyncFile):
    """A text file: ``io.TextIOWrapper`` whose I/O methods are coroutines."""

    __slots__ = (
        "__weakref__",
        "_b2cratio",
        "_buffer",
        "_decoded_chars",
        "_decoded_chars_used",
        "_decoder",
        "_encoder",
        "_encoding",
        "_errors",
        "_line_buffering",
        "_pending",
        "_pending_count",
        "_readnl",
        "_readtranslate",
        "_readuniversal",
        "_seekable",
        "_snapshot",
        "_telling",
        "_write_through",
        "_writenl",
        "_writetranslate",
        "mode",
    )

    def __init__(  # noqa: PLR0917 - io.TextIOWrapper's signature
        self,
        buffer: _Buffered,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
        line_buffering: bool = False,
        write_through: bool = False,
    ) -> None:
        check_newline(newline)
        if encoding is None or encoding == "locale":
            encoding = "utf-8" if sys.flags.utf8_mode else locale.getencoding()
        errors = "strict" if errors is None else errors
        info = lookup_text_encoding(encoding)
        self._buffer: _Buffered | None = buffer
        self._encoding = encoding
        self._errors = errors
        self._line_buffering = bool(line_buffering)
        self._write_through = bool(write_through)
        self._readuniversal = not newline
        self._readtranslate = newline is None
        self._readnl = newline
        self._writetranslate = newline != ""
        self._writenl = newline if newline and newline != "\n" else None
        self._decoder: Any = None
        self._encoder: Any = None
        if buffer._readable:
            decoder: Any = info.incrementaldecoder(errors)
            if self._readuniversal:
                decoder = io.IncrementalNewlineDecoder(decoder, self._readtranslate)
            self._decoder = decoder
        if buffer._writable:
            self._encoder = info.incrementalencoder(errors)
        self._decoded_chars = ""
        self._decoded_chars_used = 0
        self._snapshot: tuple[int, bytes] | None = None
        self._b2cratio = 0.0
        self._pending: list[bytes] = []
        self._pending_count = 0
        raw = buffer._attached()
        self._seekable = self._telling = not raw._stream
        self.mode = ""
        if self._seekable and self._encoder is not None and buffer._tell_now() != 0:
            self._encoder.setstate(0)  # not at the start: no BOM

    # -- attributes -----------------------------------------------------------------------
    def _attached(self) -> _Buffered:
        buffer = self._buffer
        if buffer is None:
            raise ValueError(_DETACHED)
        return buffer

    def _check(self) -> _Buffered:
        buffer = self._attached()
        raw = buffer._raw
        if raw is None or raw._fd < 0 or raw._closing:
            raise ValueError(CLOSED_DOT)
        return buffer

    def _check_open_dot(self) -> None:
        self._check()

    @property
    def buffer(self) -> _Buffered | None:
        """The buffered binary file underneath (``None`` once detached)."""
        return self._buffer

    @property
    def encoding(self) -> str:
        return self._encoding

    @property
    def errors(self) -> str:
        return self._errors

    @property
    def line_buffering(self) -> bool:
        return self._line_buffering

    @property
    def write_through(self) -> bool:
        return self._write_through

    @property
    def newlines(self) -> Any:
        self._attached()
        return getattr(self._decoder, "newlines", None)

    @property
    def name(self) -> Any:
        return self._attached().name

    @property
    def closed(self) -> bool:
        return self._attached().closed

    @property
    def driver(self) -> Driver:
        """The driver (and so the loop and queue) this file belongs to."""
        return self._attached()._driver

    def fileno(self) -> int:
        return self._attached().fileno()

    async def readable(self) -> bool:
        return self._attached().readable()

    async def writable(self) -> bool:
        return await self._attached().writable()

    async def seekable(self) -> bool:
        return await self._attached().seekable()

    async def isatty(self) -> bool:
        return await self._attached().isatty()

    async def _begin(self) -> None:
        turn = self._attached()._turn
        if not turn.take():
            await turn.wait()

    def _release(self) -> None:
        self._attached()._turn.release()

    # -- decoded characters ---------------------------------------------------------------
    def _set_decoded_chars(self, chars: str) -> None:
        self._decoded_chars = chars
        self._decoded_chars_used = 0

    def _get_decoded_chars(self, n: int = -1) -> str:
        chars, used = self._decoded_chars, self._decoded_chars_used
        avail = len(chars) - used
        if n < 0 or n > avail:
            n = avail
        self._decoded_chars_used = used + n
        return chars[used : used + n] if used or n < avail else chars

    async def _read_chunk(self, size_hint: int) -> bool:
        """Read and decode the next chunk; False at EOF."""
        decoder = self._decoder
        if decoder is None:
            raise unsupported("not readable")
        if self._telling:  # a snapshot point where the decoder's input is empty
            dec_buffer, dec_flags = decoder.getstate()
        if size_hint > 0:
            size_hint = int(max(self._b2cratio, 1.0) * size_hint)
        chunk = await self._attached()._read1_unlocked(max(_CHUNK_SIZE, size_hint))
        eof = not chunk
        decoded = decoder.decode(chunk, eof)
        self._set_decoded_chars(decoded)
        self._b2cratio = len(chunk) / len(decoded) if decoded else 0.0
        if decoded:
            eof = False
        if self._telling:
            self._snapshot = (dec_flags, dec_buffer + chunk)
        return not eof

    def _save(self) -> tuple[Any, ...]:
        """Everything a read changes, for putting it back when the read is cancelled."""
        decoder = self._decoder
        buffer = self._attached()
        return (
            self._decoded_chars,
            self._decoded_chars_used,
            self._snapshot,
            self._b2cratio,
            decoder.getstate() if decoder is not None else None,
            buffer._start_position(),
        )

    def _restore(self, saved: tuple[Any, ...]) -> None:
        chars, used, snapshot, ratio, state, position = saved
        self._decoded_chars, self._decoded_chars_used = chars, used
        self._snapshot, self._b2cratio = snapshot, ratio
        if state is not None:
            self._decoder.setstate(state)
        buffer = self._buffer
        if buffer is not None:
            buffer._rewind(position)

    # -- reading --------------------------------------------------------------------------
    async def read(self, size: int | None = -1, offset: int | None = None) -> str:
        """Up to ``size`` characters (all to EOF if ``size`` is negative or None).

        Positional calls (an ``offset``) are binary: use ``f.buffer.read(n, offset)``.
        """
        if offset is not None:
            raise unsupported(_POSITIONAL)
        n = line_limit(size)
        self._check()
        if self._decoder is None:
            raise unsupported("not readable")
        await self._begin()
        try:
            if n < 0:
                await self._writeflush()  # as the builtin: read() does, read(n) does not
            elif len(self._decoded_chars) - self._decoded_chars_used >= n:
                return self._get_decoded_chars(n)
            saved = self._save()
            try:
                return await self._read_unlocked(n)
            except asyncio.CancelledError:
                self._restore(saved)
                raise
        finally:
            self._release()

    async def _read_unlocked(self, n: int) -> str:
        decoder = self._decoder
        if n < 0:
            data = await self._attached()._read_unlocked(-1)
            decoded: str = decoder.decode(data, True)
            result = self._get_decoded_chars() + decoded
            self._snapshot = None
            return result
        result = self._get_decoded_chars(n)
        remaining = n - len(result)
        chunks = []
        while remaining > 0:
            if not await self._read_chunk(remaining):
                break
            if result:
                chunks.append(result)
            result = self._get_decoded_chars(remaining)
            remaining -= len(result)
        if chunks:
            chunks.append(result)
            return "".join(chunks)
        return result

    async def readline(self, size: int = -1) -> str:
        """The next line (its newline included), or at most ``size`` characters of it."""
        limit = operator.index(size)  # the builtin's text readline takes no None
        self._check()
        turn = self._attached()._turn
        if not turn.busy and self._decoded_chars:
            line = self._line_from_decoded(limit)  # the whole line decoded already
            if line is not None:
                return line
        await self._begin()
        try:
            # Pending text stays pending, as the builtin's readline leaves it: it reaches
            # the file at the position the reads leave (flush, tell, seek, read()).
            if self._decoder is None:
                raise unsupported("not readable")
            saved = self._save()
            try:
                return await self._readline_unlocked(limit)
            except asyncio.CancelledError:
                self._restore(saved)
                raise
        finally:
            self._release()

    async def readlines(self, hint: int | None = -1) -> list[str]:
        """Lines until EOF, or until their total length passes ``hint`` (if > 0).

        As the builtin (which iterates with ``next()`` here), a ``hint`` that stops
        before EOF leaves ``tell()`` disabled until the next ``flush()`` or ``seek()``.
        """
        self._check_open_dot()
        limit = -1 if hint is None else operator.index(hint)
        lines: list[str] = []
        total = 0
        self._telling = False
        while line := await self.readline():
            lines.append(line)
            total += len(line)
            if 0 < limit < total:
                return lines
        self._telling = self._seekable  # EOF ends the iteration: telling again
        return lines

    def _find_line_end(self, line: str, start: int) -> tuple[int, int]:
        return find_line_end(line, start, self._readtranslate, self._readuniversal, self._readnl)

    def _line_from_decoded(self, limit: int) -> str | None:
        chars, start = self._decoded_chars, self._decoded_chars_used
        end, _ = self._find_line_end(chars, start)
        if end < 0:
            if limit >= 0 and len(chars) - start >= limit:
                end = start + limit
            else:
                return None
        elif limit >= 0 and end - start > limit:
            end = start + limit
        self._decoded_chars_used = end
        return chars[start:end]

    async def _readline_unlocked(self, limit: int) -> str:
        chunks: list[str] = []
        chunked = 0
        remaining = ""
        line = ""
        start = endpos = offset_to_buffer = 0
        while True:
            ok = True
            while len(self._decoded_chars) == 0:
                ok = await self._read_chunk(0)
                if not ok:
                    break
            if not ok:  # EOF
                self._set_decoded_chars("")
                self._snapshot = None
                line = ""
                start = endpos = offset_to_buffer = 0
                break
            if not remaining:
                line = self._decoded_chars
                start = self._decoded_chars_used
                offset_to_buffer = 0
            else:
                line = remaining + self._decoded_chars
                start = 0
                offset_to_buffer = len(remaining)
                remaining = ""
            found, consumed = self._find_line_end(line, start)
            if found >= 0:
                endpos = found
                if limit >= 0 and (endpos - start) + chunked >= limit:
                    endpos = start + limit - chunked
                break
            endpos = consumed
            if limit >= 0 and (endpos - start) + chunked >= limit:
                endpos = start + limit - chunked
                break
            if endpos > start:
                chunks.append(line[start:endpos])
                chunked += endpos - start
            if endpos < len(line):
                remaining = line[endpos:]
            line = ""
            self._set_decoded_chars("")
        if line:
            self._decoded_chars_used = endpos - offset_to_buffer
            line = line[start:endpos]
        if remaining:
            chunks.append(remaining)
        if chunks:
            chunks.append(line)
            return "".join(chunks)
        return line

    # -- writing --------------------------------------------------------------------------
    async def write(self, text: str, offset: int | None = None) -> int:
        """Encode and buffer ``text``; returns ``len(text)``.

        Positional calls (an ``offset``) are binary: use ``f.buffer.write(data, offset)``.
        """
        if offset is not None:
            raise unsupported(_POSITIONAL)
        self._attached()
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self._check()
        encoder = self._encoder
        if encoder is None:
            raise unsupported("not writable")
        turn = self._attached()._turn
        if turn.busy:
            await turn.wait()
        else:
            turn.busy = True
        try:
            return await self._write_unlocked(encoder, text)
        finally:
            turn.release()

    async def _write_unlocked(self, encoder: Any, text: str) -> int:
        length = len(text)
        writenl = self._writenl
        haslf = ((self._writetranslate and writenl is not None) or self._line_buffering) and (
            "\n" in text
        )
        if haslf and self._writetranslate and writenl is not None:
            text = text.replace("\n", writenl)
        needflush = self._line_buffering and (haslf or "\r" in text)
        data = encoder.encode(text)
        if self._pending and self._pending_count + len(data) > _CHUNK_SIZE:
            await self._writeflush()  # never join more than a chunk
        self._pending.append(data)
        self._pending_count += len(data)
        if self._pending_count >= _CHUNK_SIZE or needflush or self._write_through:
            await self._writeflush()
            if needflush:
                await self._attached()._flush_public_unlocked()
        self._set_decoded_chars("")  # CPython 3.11 drops what was decoded ahead
        self._snapshot = None
        if self._decoder is not None:
            self._decoder.reset()
        return length

    async def _writeflush(self) -> None:
        """Hand the pending encoded text to the buffer (the turn is held)."""
        if not self._pending:
            return
        pending = self._pending
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        self._pending = []
        self._pending_count = 0
        await self._attached()._write_unlocked(memoryview(data))

    async def flush(self) -> None:
        """Write out pending text and the buffer."""
        self._check()
        await self._begin()
        try:
            await self._flush_unlocked()
        finally:
            self._release()

    async def _flush_unlocked(self) -> None:
        self._telling = self._seekable
        await self._writeflush()
        await self._attached()._flush_public_unlocked()

    # -- the positional API: binary only ------------------------------------------------------
    async def read_into(self, buf: Any, offset: int) -> int:
        raise unsupported(_POSITIONAL)

    async def readv(self, bufs: Any, offset: int) -> int:
        raise unsupported(_POSITIONAL)

    async def writev(self, bufs: Any, offset: int) -> int:
        raise unsupported(_POSITIONAL)

    async def fsync(self, *, datasync: bool = False) -> None:
        """Flush pending text and the buffer, then the file to stable storage."""
        await self.flush()
        await self._attached().fsync(datasync=datasync)

    # -- position ---------------------------------------------------------------------------
    async def tell(self) -> int:
        """An opaque cookie for :meth:`seek` (the builtin's cookie for the same place)."""
        self._check()
        if not self._seekable:
            raise unsupported("underlying stream is not seekable")
        if not self._telling:
            raise OSError("telling position disabled by next() call")
        await self._begin()
        try:
            await self._flush_unlocked()
            return self._tell_unlocked()
        finally:
            self._release()

    def _tell_unlocked(self) -> int:
        return tell_cookie(
            self._attached()._tell_now(),
            self._decoder,
            self._snapshot,
            self._decoded_chars_used,
            self._b2cratio,
        )

    async def seek(self, cookie: Any, whence: int = os.SEEK_SET) -> Any:
        """Go to a :meth:`tell` cookie (``whence=0``), or to the end (``seek(0, 2)``)."""
        whence = operator.index(whence)
        self._check()
        if not self._seekable:
            raise unsupported("underlying stream is not seekable")
        await self._begin()
        try:
            return await self._seek_unlocked(cookie, whence)
        finally:
            self._release()

    async def _seek_unlocked(self, cookie: Any, whence: int) -> Any:
        buffer = self._attached()
        if whence == os.SEEK_CUR:
            if cookie != 0:
                raise unsupported("can't do nonzero cur-relative seeks")
            if not self._telling:  # seek(0, 1) is tell(), with its check
                raise OSError("telling position disabled by next() call")
            await self._flush_unlocked()
            cookie = self._tell_unlocked()
        elif whence == os.SEEK_END:
            if cookie != 0:
                raise unsupported("can't do nonzero end-relative seeks")
            await self._flush_unlocked()
            self._set_decoded_chars("")
            self._snapshot = None
            if self._decoder is not None:
                self._decoder.reset()
            result = await buffer._seek_unlocked(0, os.SEEK_END)
            self._reset_encoder(result == 0)
            return result
        elif whence != os.SEEK_SET:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if cookie < 0:
            raise ValueError(f"negative seek position {cookie!r}")
        await self._flush_unlocked()
        position, dec_flags, bytes_to_feed, chars_to_skip, need_eof = unpack_cookie(int(cookie))
        await buffer._seek_unlocked(position, os.SEEK_SET)
        self._set_decoded_chars("")
        self._snapshot = None
        if self._decoder is not None:
            decoder_setstate(self._decoder, position, dec_flags)
        if chars_to_skip:
            chunk = await buffer._read_unlocked(bytes_to_feed)
            self._snapshot = (dec_flags, chunk)
            self._set_decoded_chars(self._decoder.decode(chunk, bool(need_eof)))
            if len(self._decoded_chars) < chars_to_skip:
                raise OSError("can't restore logical file position")
            self._decoded_chars_used = chars_to_skip
        else:
            self._snapshot = (dec_flags, b"")
        self._reset_encoder(position == 0 and dec_flags == 0)
        return cookie

    def _reset_encoder(self, start_of_stream: bool) -> None:
        encoder = self._encoder
        if encoder is not None:
            if start_of_stream:
                encoder.reset()
            else:
                encoder.setstate(0)

    async def truncate(self, pos: int | None = None) -> int:
        """Flush, then resize the file to ``pos`` (default: the current byte position)."""
        buffer = self._attached()
        await self.flush()
        return await buffer.truncate(pos)

    # -- closing, detaching -----------------------------------------------------------------
    def close(self) -> Awaitable[None]:
        """Flush and close; awaiting the result waits for both. Closing twice does nothing."""
        buffer = self._attached()
        raw = buffer._raw
        if raw is None or raw._fd < 0 or raw._closing:
            return done_future()
        if not self._pending:
            return buffer.close()
        raw._closing = True  # no new operations from here on
        return asyncio.ensure_future(self._close_after_flush(buffer))

    async def _close_after_flush(self, buffer: _Buffered) -> None:
        raw = buffer._attached()
        await self._begin()
        try:
            await self._writeflush()
        finally:
            self._release()
            raw._closing = False
            await buffer.close()

    def detach(self) -> io.BufferedIOBase:
        """Flush, then hand over the fd as a builtin buffered file at the position (what
        aiofiles returns); this object is unusable afterwards."""
        buffer = self._check()
        self._flush_sync()
        self._buffer = None
        raw = buffer._attached()
        size = buffer._size
        raw_file = buffer.detach()
        kind: type[io.BufferedIOBase]
        if buffer._readable and buffer._writable:
            kind = io.BufferedRandom
        elif buffer._writable:
            kind = io.BufferedWriter
        else:
            kind = io.BufferedReader
        del raw
        return kind(raw_file, size)

    def _flush_sync(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending = []
            self._pending_count = 0
            self._attached()._write_sync(data)

    def __del__(self) -> None:
        buffer = getattr(self, "_buffer", None)
        raw = getattr(buffer, "_raw", None)
        if raw is not None and raw._fd >= 0:
            warnings.warn(f"unclosed file {self!r}", ResourceWarning, stacklevel=2)
            with contextlib.suppress(Exception):  # best effort at collection time
                try:
                    self._flush_sync()
                finally:
                    assert buffer is not None
                    buffer._close_sync()

    def __repr__(self) -> str:
        buffer = self._buffer
        if buffer is None:
            return "<uringq.aio.AsyncTextIOWrapper [detached]>"
        name = buffer._raw._name if buffer._raw is not None else None
        return (
            f"<uringq.aio.AsyncTextIOWrapper name={name!r} mode={self.mode!r} "
            f"encoding={self._encoding!r}>"
        )
