"""``tell()``/``seek()`` cookies and line endings of the text files, as CPython's C
``TextIOWrapper`` computes them.

A cookie packs a C struct (``off_t start_pos; int dec_flags, bytes_to_feed,
chars_to_skip; char need_eof``) little-endian into one int, so cookies are the
builtin's. :func:`reconstruct` is the builtin's search for the last point before the
position where the decoder holds no bytes (its heuristics included: the same search
gives the same cookie).
"""

from __future__ import annotations

from typing import Any

__all__ = ["decoder_setstate", "find_line_end", "pack_cookie", "reconstruct", "unpack_cookie"]

_COOKIE_FIELDS = ((0, 8), (8, 12), (12, 16), (16, 20))


def find_line_end(
    line: str, start: int, translated: bool, universal: bool, readnl: str | None
) -> tuple[int, int]:
    """(end of the line after ``start``, or -1; how far the search may put data aside)."""
    if universal and not translated:
        return _universal_line_end(line, start)
    separator = "\n" if translated else readnl
    assert separator is not None
    pos = line.find(separator, start)
    if pos >= 0:
        return pos + len(separator), 0
    consumed = len(line)
    if len(separator) > 1:  # a partial separator may end the text: keep it for later
        tail = line.find(separator[0], max(start, len(line) - len(separator) + 1))
        if tail >= 0:
            consumed = tail
    return -1, consumed


def _universal_line_end(line: str, start: int) -> tuple[int, int]:
    """The first of ``\\r\\n``, ``\\r``, ``\\n`` (the decoder never splits ``\\r\\n``)."""
    cr = line.find("\r", start)
    lf = line.find("\n", start)
    if cr < 0 and lf < 0:
        return -1, len(line)
    if cr < 0 or 0 <= lf < cr:
        return lf + 1, 0
    if line.startswith("\n", cr + 1):
        return cr + 2, 0
    return cr + 1, 0


def pack_cookie(
    position: int, dec_flags: int = 0, bytes_to_feed: int = 0, chars_to_skip: int = 0, eof: int = 0
) -> int:
    """The builtin's cookie: the fields of a C struct (off_t, 3 ints, a char), little-endian."""
    raw = (
        position.to_bytes(8, "little", signed=True)
        + (dec_flags & 0xFFFFFFFF).to_bytes(4, "little")
        + (bytes_to_feed & 0xFFFFFFFF).to_bytes(4, "little")
        + (chars_to_skip & 0xFFFFFFFF).to_bytes(4, "little")
        + bytes([eof & 0xFF])
    )
    return int.from_bytes(raw, "little")


def unpack_cookie(cookie: int) -> tuple[int, int, int, int, int]:
    raw = cookie.to_bytes(21, "little")  # OverflowError past 21 bytes, as the builtin's
    fields = [int.from_bytes(raw[a:b], "little", signed=True) for a, b in _COOKIE_FIELDS]
    return fields[0], fields[1], fields[2], fields[3], raw[20]


def decoder_setstate(decoder: Any, position: int, dec_flags: int) -> None:
    """The decoder as at a cookie's start point; at the start of the stream ``reset()``
    instead (some decoders, utf-16's, then expect a BOM)."""
    if position == 0 and dec_flags == 0:
        decoder.reset()
    else:
        decoder.setstate((b"", dec_flags))


_INT_MAX = (1 << 31) - 1


def c_int(value: int) -> int:
    """``value`` as the C ``int`` of a cookie field, or the ``OverflowError`` CPython's
    argument parsing raises for it (a stateful decoder's flags may not fit: iso2022_jp's
    after an escape byte)."""
    if value > _INT_MAX:
        raise OverflowError("signed integer is greater than maximum")
    if value < -_INT_MAX - 1:
        raise OverflowError("signed integer is less than minimum")
    return value


def decoder_state(decoder: Any) -> tuple[bytes, int]:
    """``decoder.getstate()`` with its flags checked as a C ``int``."""
    dec_buffer, flags = decoder.getstate()
    return dec_buffer, c_int(flags)


def reconstruct(  # noqa: PLR0917
    decoder: Any, b2cratio: float, position: int, dec_flags: int, next_input: bytes, skip: int
) -> int:
    """Find the last safe start point before the position (CPython's search)."""
    skip_bytes = int(b2cratio * skip)
    skip_back = 1
    while skip_bytes > 0:
        decoder_setstate(decoder, position, dec_flags)
        n = len(decoder.decode(next_input[:skip_bytes]))
        if n <= skip:
            dec_buffer, flags = decoder_state(decoder)
            if not dec_buffer:  # before the position, nothing buffered: a start point
                dec_flags = flags
                skip -= n
                break
            skip_bytes -= len(dec_buffer)
            skip_back = 1
        else:  # too far ahead: back off a bit
            skip_bytes -= skip_back
            skip_back *= 2
    if skip_bytes <= 0:
        skip_bytes = 0
        decoder_setstate(decoder, position, dec_flags)
    start = position + skip_bytes
    if skip == 0:
        return pack_cookie(start, dec_flags)
    # Feed one byte at a time, noting the last safe start point on the way.
    bytes_to_feed = chars_decoded = 0
    need_eof = 0
    index = skip_bytes
    while index < len(next_input):
        chars_decoded += len(decoder.decode(next_input[index : index + 1]))
        bytes_to_feed += 1
        dec_buffer, flags = decoder_state(decoder)
        if not dec_buffer and chars_decoded <= skip:
            start += bytes_to_feed
            skip -= chars_decoded
            dec_flags = flags
            bytes_to_feed = chars_decoded = 0
        if chars_decoded >= skip:
            break
        index += 1
    else:  # not enough decoded data: signal EOF to get more
        chars_decoded += len(decoder.decode(b"", True))
        need_eof = 1
        if chars_decoded < skip:
            raise OSError("can't reconstruct logical file position")
    return pack_cookie(start, dec_flags, bytes_to_feed, skip, need_eof)


def tell_cookie(position: int, decoder: Any, snapshot: Any, used: int, b2cratio: float) -> int:
    """CPython's ``tell()`` cookie: ``position`` is the buffer's, ``snapshot`` the decoder
    flags and the input read since the last safe start point (``None``: none kept),
    ``used`` the characters taken from that input. The decoder's state is restored."""
    if decoder is None or snapshot is None:
        return position
    dec_flags, next_input = snapshot
    dec_flags = c_int(dec_flags)  # the builtin parses the snapshot into C ints first
    position -= len(next_input)
    if used == 0:
        return pack_cookie(position, dec_flags)
    saved_state = decoder.getstate()
    try:
        return reconstruct(decoder, b2cratio, position, dec_flags, next_input, used)
    finally:
        decoder.setstate(saved_state)
