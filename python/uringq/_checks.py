"""Argument checks shared by ``IoQueue`` and the pure-Python provider (SPEC sections 2-3).

One definition of each rule, with the io_uring provider's exceptions and messages
(``src/binding/args.rs``; ``tests/test_one_voice.py`` compares the two):

* integers: anything with ``__index__`` (``bool`` is refused for sizes and counts);
  other types raise :class:`TypeError` as ``operator.index`` (and ``os.pread``) word
  it, values out of range :class:`ValueError` naming the bound they cross (never
  :class:`OverflowError`);
* fds: an ``int``, an object with ``fileno()`` or one with ``__index__``, in that
  order; whatever ``__index__``/``fileno()`` raise propagates;
* buffers: any C-contiguous object with the buffer protocol, viewed as raw bytes. An
  object without the buffer protocol raises :class:`TypeError` and one that is not
  C-contiguous the exporter's own error (:class:`BufferError` for the builtin types),
  both as a C caller asking for a contiguous buffer gets them; a read target that is
  read-only raises :class:`TypeError` (as ``readinto`` does).
"""

from __future__ import annotations

import binascii
import operator
import os
import pickle
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "MAX_CQ_ENTRIES",
    "MAX_FD",
    "MAX_OFFSET",
    "MAX_SQ_ENTRIES",
    "HasFileno",
    "batch_buffer",
    "buffer_views",
    "c_int",
    "count",
    "dir_fd",
    "fd",
    "flag",
    "link",
    "mode",
    "named_path",
    "non_negative",
    "offset",
    "offsets",
    "path",
    "queue_sizes",
    "read_target",
    "seconds",
    "timeout",
    "wait_limits",
    "write_source",
]

MAX_SQ_ENTRIES = 32768
MAX_CQ_ENTRIES = 65536
MAX_OFFSET = 2**63 - 1
MAX_FD = 2**31 - 1


class HasFileno(Protocol):
    """An object that has an OS-level file descriptor, like a file object or socket."""

    def fileno(self) -> int: ...


def _index(value: object, name: str, *, allow_bool: bool) -> int:
    """``operator.index(value)``, whose TypeError ("'float' object cannot be interpreted as
    an integer") is the one ``os.pread`` raises too; ``bool`` refused by name."""
    if type(value) is int:
        return value
    if isinstance(value, bool) and not allow_bool:
        raise TypeError(f"{name} must be an integer, not bool")
    return operator.index(value)  # type: ignore[arg-type]


def _out_of_range(name: str, number: int, minimum: int, maximum: int) -> ValueError:
    """The error for ``number`` outside ``minimum..maximum``: it names the bound crossed."""
    bound = f">= {minimum}" if number < minimum else f"<= {maximum}"
    return ValueError(f"{name} must be {bound}, got {number}")


def queue_sizes(sq_entries: object, cq_entries: object = None) -> tuple[int, int]:
    """Checked ``(sq_entries, cq_entries)``: SQ rounded up to a power of two, never clamped.

    ``1 <= sq_entries <= 32768``; ``cq_entries`` defaults to twice the rounded SQ and
    must lie in ``sq_entries..=65536`` (compared with the rounded SQ).
    """
    sq = _index(sq_entries, "sq_entries", allow_bool=False)
    if not 1 <= sq <= MAX_SQ_ENTRIES:
        raise ValueError(f"sq_entries must be in 1..{MAX_SQ_ENTRIES}, got {sq}")
    sq = 1 << (sq - 1).bit_length()
    if cq_entries is None:
        return sq, 2 * sq
    cq = _index(cq_entries, "cq_entries", allow_bool=False)
    if not sq <= cq <= MAX_CQ_ENTRIES:
        raise ValueError(
            f"cq_entries must be in sq_entries..{MAX_CQ_ENTRIES} ({sq}..{MAX_CQ_ENTRIES}), got {cq}"
        )
    return sq, cq


def count(value: object, name: str, *, minimum: int = 0) -> int:
    """A non-negative (or ``>= minimum``) integer argument such as ``size`` or ``depth``."""
    number = _index(value, name, allow_bool=False)
    if not minimum <= number <= MAX_OFFSET:
        raise _out_of_range(name, number, minimum, MAX_OFFSET)
    return number


def fd(obj: int | HasFileno) -> int:
    """The fd number of ``obj``: an int, an object with ``fileno()`` or an ``__index__`` one."""
    if type(obj) is int:
        number = obj
    elif not isinstance(obj, int) and hasattr(obj, "fileno"):
        number = obj.fileno()
        if not isinstance(number, int):
            raise TypeError(f"fileno() returned {type(number).__name__}, not int")
    elif hasattr(type(obj), "__index__"):
        number = operator.index(obj)  # type: ignore[arg-type]
    else:
        raise TypeError(f"fd must be an int or have a fileno() method, not {type(obj).__name__}")
    if not 0 <= number <= MAX_FD:
        raise _out_of_range("fd", number, 0, MAX_FD)
    return number


def offset(value: object) -> int:
    """A file offset: an integer in ``0..2**63-1``."""
    number = _index(value, "offset", allow_bool=True)
    if not 0 <= number <= MAX_OFFSET:
        raise _out_of_range("offset", number, 0, MAX_OFFSET)
    return number


def offsets(values: object) -> list[int]:
    """The offsets of a batch: any iterable (or buffer) of integers, each a valid offset."""
    items: list[int]
    try:
        view = memoryview(values)  # type: ignore[arg-type]
    except TypeError:
        items = list(values)  # type: ignore[call-overload]  # "'int' object is not iterable"
    else:
        with view:
            items = view.tolist()
    # C-speed check of the common case; the per-item path explains what is wrong.
    if items and not (
        set(map(type, items)) == {int} and min(items) >= 0 and max(items) <= MAX_OFFSET
    ):
        items = [offset(value) for value in items]
    return items


def batch_buffer(view: memoryview, requests: int, size: int) -> None:
    """A read_many/write_many buffer must hold ``requests * size`` bytes (ValueError)."""
    if view.nbytes < requests * size:
        raise ValueError(
            f"buffer of {view.nbytes} bytes is too small for {requests} requests of {size} bytes"
        )


def _byte_view(buf: Buffer, *, writable: bool) -> memoryview:
    try:
        view = memoryview(buf)
    except TypeError as exc:  # PyObject_GetBuffer's words, without memoryview's prefix
        raise TypeError(str(exc).removeprefix("memoryview: ")) from None
    if not view.c_contiguous:
        # Ask for a contiguous buffer as a C caller does (PyBUF_SIMPLE): the exporter
        # raises its own error, e.g. "memoryview: underlying buffer is not C-contiguous".
        binascii.crc32(buf)
        raise BufferError(f"{type(buf).__name__} is not C-contiguous")
    if writable and view.readonly:
        raise TypeError(
            "read target must be a writable bytes-like object, not a read-only"
            f" {type(buf).__name__}"
        )
    if view.ndim == 1 and view.format == "B":
        return view
    try:
        return view.cast("B")
    except (TypeError, ValueError):  # exotic item formats: PickleBuffer views any format
        return pickle.PickleBuffer(view).raw()


def read_target(buf: Buffer) -> memoryview:
    """A writable, C-contiguous byte view of ``buf`` (holding it pins the export)."""
    return _byte_view(buf, writable=True)


def write_source(buf: Buffer) -> memoryview:
    """A C-contiguous byte view of ``buf``."""
    return _byte_view(buf, writable=False)


def buffer_views(bufs: Sequence[Buffer], *, writable: bool) -> tuple[list[memoryview], int]:
    """Byte views of the parts of a readv/writev request and their total length."""
    if not isinstance(bufs, list | tuple):
        try:
            memoryview(bufs)  # type: ignore[arg-type]
        except TypeError:
            pass
        else:
            raise TypeError("bufs must be a sequence of buffers, not a single buffer")
        if not isinstance(bufs, Sequence):
            raise TypeError(f"bufs must be a sequence of buffers, not {type(bufs).__name__}")
    views = [_byte_view(part, writable=writable) for part in bufs]
    return views, sum(view.nbytes for view in views)


def timeout(value: object) -> float | None:
    """A wait's or a request's ``timeout``: ``None`` or a number of seconds ``>= 0``."""
    return None if value is None else seconds(value, "timeout")


def wait_limits(
    min_events: object, max_events: object, seconds: object
) -> tuple[int, int | None, float | None]:
    """Checked ``(min_events, max_events, timeout)``: ``min >= 0``, ``max >= max(min, 1)``
    or None, ``timeout`` as :func:`timeout`; each argument alone first, then the pair."""
    low = count(min_events, "min_events")
    high = None if max_events is None else count(max_events, "max_events", minimum=1)
    checked = timeout(seconds)
    if high is not None and high < low:
        raise ValueError(
            "need 0 <= min_events <= max_events and max_events >= 1,"
            f" got min_events={low}, max_events={high}"
        )
    return low, high, checked


def flag(value: object, name: str) -> bool:
    """A keyword flag such as ``datasync`` or ``cancel``: a bool, nothing else."""
    if not isinstance(value, bool):
        shown = "'None'" if value is None else f"'{type(value).__qualname__}' object"
        raise TypeError(f"argument '{name}': {shown} is not an instance of 'bool'")
    return value


def path(value: object) -> bytes:
    """A path as ``os.open`` takes it (str, bytes or ``os.PathLike``), as ``os.fsencode``
    encodes it; an embedded NUL is a :class:`ValueError`."""
    return named_path(value)[0]


def named_path(value: object) -> tuple[bytes, str | bytes]:
    """``(encoded, name)``: the path encoded as ``os.fsencode`` does it (an embedded NUL is
    a :class:`ValueError`) and ``os.fspath(value)``, the name ``os`` puts in an error's
    ``filename``. ``__fspath__`` is called once."""
    name = os.fspath(value)  # type: ignore[call-overload]
    encoded = os.fsencode(name)
    if b"\0" in encoded:
        raise ValueError("embedded null byte")
    return encoded, name


def dir_fd(value: object) -> int | None:
    """``None`` (the current directory) or an int (``bool`` included, as ``os`` takes
    it); the kernel judges the number."""
    if value is None:
        return None
    if not isinstance(value, int) and not hasattr(value, "__index__"):
        raise TypeError(f"dir_fd must be an int or None, not {type(value).__name__}")
    number = operator.index(value)
    if not -(2**63) <= number < 2**63:
        raise ValueError("dir_fd out of range")
    if not -(2**31) <= number < 2**31:
        raise ValueError(f"dir_fd out of range: {number}")
    return number


def c_int(value: object, name: str) -> int:
    """A C ``int`` argument such as ``flags`` (any ``__index__`` object, ``bool``
    included): :class:`ValueError` out of range, never :class:`OverflowError`."""
    number = operator.index(value)  # type: ignore[arg-type]
    if not -(2**63) <= number < 2**63:
        raise ValueError(f"{name} out of range")
    if not -(2**31) <= number < 2**31:
        raise ValueError(f"{name} out of range: {number}")
    return number


def mode(value: object) -> int:
    """A file mode: a C ``int`` whose permission bits (``0o7777``) are used, as the
    kernel does."""
    return c_int(value, "mode") & 0o7777


def non_negative(value: object, name: str) -> int:
    """An integer in ``0..2**63-1`` such as a file ``length`` (``bool`` accepted, as for
    offsets)."""
    number = _index(value, name, allow_bool=True)
    if not 0 <= number <= MAX_OFFSET:
        raise _out_of_range(name, number, 0, MAX_OFFSET)
    return number


def link(link: object, hardlink: object) -> tuple[bool, bool]:
    """The link flags of a request: exclusive bools."""
    flag(link, "link")
    flag(hardlink, "hardlink")
    if link and hardlink:
        raise ValueError("link and hardlink are exclusive: pass one of them")
    return bool(link), bool(hardlink)


def seconds(value: object, name: str) -> float:
    """A number of seconds ``>= 0`` (TypeError for a non-number or a bool)."""
    kind = type(value)
    if kind is bool or not (hasattr(kind, "__float__") or hasattr(kind, "__index__")):
        raise TypeError(f"{name} must be a number of seconds, not {kind.__name__}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except Exception:  # e.g. an int too large for a float: refused as a non-number
        raise TypeError(f"{name} must be a number of seconds, not {kind.__name__}") from None
    if not number >= 0.0:  # also catches NaN
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return number
