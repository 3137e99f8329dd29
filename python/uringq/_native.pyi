"""Type stubs for the Rust extension ``uringq._native`` (the io_uring provider).

Use the public API in :mod:`uringq` instead of this module: ``IoQueue`` picks a
provider, checks the queue sizes and adds the context manager. ``NativeQueue`` checks
every per-request argument itself (that is why ``IoQueue`` can bind its methods
directly), pins buffers while the kernel may touch them and releases the GIL in every
blocking call.
"""

import os
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol, final

from typing_extensions import Buffer

class _HasFileno(Protocol):
    def fileno(self) -> int: ...

_Fd = int | _HasFileno
_Path = str | bytes | os.PathLike[str] | os.PathLike[bytes]

__all__ = [
    "Completion",
    "NativeQueue",
    "_read_rest",
    "fork_generation",
    "probe",
    "probed_opcodes",
    "read_files",
    "read_files_rings",
    "whole_files_mode",
    "write_files",
]

def probe() -> tuple[bool, str | None]:
    """Check that io_uring can be used here: ``(True, None)`` or ``(False, reason)``.

    The reason names the failing call, the errno symbol and text and the likely cause
    (seccomp profile, ``kernel.io_uring_disabled``, kernel without io_uring, an opcode
    missing from the probe).
    """

def probed_opcodes() -> list[tuple[str, bool]]:
    """Every opcode this kernel's io_uring probe reports: ``(name, used by uringq)``.

    Names lack the ``IORING_OP_`` prefix; the list is empty if io_uring is unusable.
    """

def fork_generation() -> int:
    """How many times this process image has forked (counted by a pthread_atfork handler)."""

def whole_files_mode() -> str | None:
    """How whole-file chains open files here: ``"direct"`` (direct descriptors, 5.17+),
    ``"plain"`` (ordinary descriptors), or ``None`` (no OPENAT/CLOSE: not available)."""

def read_files(
    paths: list[Any],
    *,
    dir_fd: int | None = None,
    return_exceptions: bool = False,
    _window: int | None = None,
    _buffer: int | None = None,
    _plain: bool = False,
    _threads: int | None = None,
) -> list[Any]:
    """Each path's whole content (``bytes``) or, with ``return_exceptions``, its ``OSError``;
    one linked chain per file on a private ring, the GIL released; big lists are split
    over several rings, one thread each (``read_files_rings``). Use ``uringq.read_files``.
    The ``_`` arguments size the run (tests only; ``_threads`` forces the ring count)."""

def _read_rest(fd: _Fd, offset: int, size: int) -> bytes | None:
    """The ``size`` bytes from ``offset`` to the end of the regular file ``fd``, read now
    without blocking (``preadv2`` with ``RWF_NOWAIT``), or ``None`` when they cannot be:
    not all in the page cache, the file not exactly that long, or any error (for a real
    read to report). ``uringq.aio`` reads a small file so right after opening it."""

def read_files_rings(files: int) -> int:
    """How many rings (threads) ``read_files`` spreads ``files`` files over here: one per
    CPU this process may run on (at most 4), each with at least 512 files, with direct
    descriptors only."""

def write_files(
    paths: list[Any],
    data: list[Buffer],
    *,
    mode: int = 0o666,
    fsync: bool = False,
    dir_fd: int | None = None,
    return_exceptions: bool = False,
    _window: int | None = None,
    _plain: bool = False,
) -> list[Any]:
    """Creates or truncates each path and writes ``data[i]`` whole; bytes written per file
    (or its ``OSError``). Use ``uringq.write_files``."""

@final
class Completion:
    """The result of one request. Frozen and cheap.

    ``result`` is the number of bytes transferred (the new fd of an open; 0 for other
    operations, and 0 whenever ``error`` is set); ``error`` is an :class:`OSError`
    carrying ``errno`` (and ``filename`` for path operations) or ``None``; ``stat`` is
    the :class:`os.stat_result` of a statx request, ``None`` otherwise.
    """

    def __new__(
        cls,
        user_data: Any,
        result: int,
        error: OSError | None,
        stat: os.stat_result | None = None,
    ) -> Completion: ...
    @property
    def user_data(self) -> Any: ...
    @property
    def result(self) -> int: ...
    @property
    def error(self) -> OSError | None: ...
    @property
    def stat(self) -> os.stat_result | None: ...
    @property
    def ok(self) -> bool:
        """True when the request succeeded (``error is None``)."""
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class NativeQueue:
    """An io_uring instance with its op table, eventfd and fixed-file table.

    ``sq_entries`` must be a power of two in ``1..=32768`` and ``cq_entries`` in
    ``sq_entries..=65536``; ``IoQueue`` checks and rounds them before calling this.
    """

    def __new__(cls, sq_entries: int, cq_entries: int) -> NativeQueue: ...
    @property
    def provider_id(self) -> str: ...
    @property
    def sq_entries(self) -> int: ...
    @property
    def cq_entries(self) -> int: ...
    @property
    def prepared(self) -> int: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def register(self, fd: _Fd) -> None: ...
    def deregister(self, fd: _Fd) -> None: ...
    def prepare_read(
        self,
        fd: _Fd,
        offset: int,
        buf: Buffer,
        user_data: Any = None,
        *,
        link: bool = False,
        hardlink: bool = False,
        timeout: float | None = None,
    ) -> None: ...
    def prepare_write(
        self,
        fd: _Fd,
        offset: int,
        buf: Buffer,
        user_data: Any = None,
        *,
        link: bool = False,
        hardlink: bool = False,
        timeout: float | None = None,
    ) -> None: ...
    def prepare_sync(
        self,
        fd: _Fd,
        user_data: Any = None,
        *,
        datasync: bool = False,
        link: bool = False,
        hardlink: bool = False,
    ) -> None: ...
    def prepare_readv(
        self,
        fd: _Fd,
        offset: int,
        bufs: Sequence[Buffer],
        user_data: Any = None,
        *,
        link: bool = False,
        hardlink: bool = False,
        timeout: float | None = None,
    ) -> None: ...
    def prepare_writev(
        self,
        fd: _Fd,
        offset: int,
        bufs: Sequence[Buffer],
        user_data: Any = None,
        *,
        link: bool = False,
        hardlink: bool = False,
        timeout: float | None = None,
    ) -> None: ...
    def prepare_openat(
        self,
        path: _Path,
        flags: int = ...,
        mode: int = ...,
        *,
        dir_fd: int | None = None,
        user_data: Any = None,
        link: bool = False,
        hardlink: bool = False,
        timeout: float | None = None,
    ) -> None:
        """``openat``; the completion's ``result`` is the new fd (``O_CLOEXEC`` added)."""
    def prepare_close(
        self, fd: _Fd, *, user_data: Any = None, link: bool = False, hardlink: bool = False
    ) -> None:
        """``close`` of any fd."""
    def prepare_statx(
        self,
        path: _Path | int,
        *,
        dir_fd: int | None = None,
        follow_symlinks: bool = True,
        user_data: Any = None,
        link: bool = False,
        hardlink: bool = False,
        timeout: float | None = None,
    ) -> None:
        """``statx``; the completion's ``stat`` is an ``os.stat_result`` (an int path is
        an fd, as ``os.stat(fd)``)."""
    def prepare_timeout(
        self,
        seconds: float,
        *,
        user_data: Any = None,
        link: bool = False,
        hardlink: bool = False,
    ) -> None:
        """A timer: completes (``result`` 0) after ``seconds``."""
    def prepare_renameat(
        self,
        src: _Path,
        dst: _Path,
        *,
        src_dir_fd: int | None = None,
        dst_dir_fd: int | None = None,
        user_data: Any = None,
        link: bool = False,
        hardlink: bool = False,
    ) -> None: ...
    def prepare_unlinkat(
        self,
        path: _Path,
        *,
        dir_fd: int | None = None,
        rmdir: bool = False,
        user_data: Any = None,
        link: bool = False,
        hardlink: bool = False,
    ) -> None: ...
    def prepare_mkdirat(
        self,
        path: _Path,
        mode: int = ...,
        *,
        dir_fd: int | None = None,
        user_data: Any = None,
        link: bool = False,
        hardlink: bool = False,
    ) -> None: ...
    def prepare_symlinkat(
        self,
        target: _Path,
        linkpath: _Path,
        *,
        dir_fd: int | None = None,
        user_data: Any = None,
        link: bool = False,
        hardlink: bool = False,
    ) -> None: ...
    def prepare_linkat(
        self,
        src: _Path,
        dst: _Path,
        *,
        src_dir_fd: int | None = None,
        dst_dir_fd: int | None = None,
        follow_symlinks: bool = True,
        user_data: Any = None,
        link: bool = False,
        hardlink: bool = False,
    ) -> None: ...
    def prepare_ftruncate(
        self,
        fd: _Fd,
        length: int,
        *,
        user_data: Any = None,
        link: bool = False,
        hardlink: bool = False,
    ) -> None: ...
    def cancel(self, user_data: Any) -> int:
        """Ask to cancel every request in flight whose ``user_data == user_data``; returns
        how many matched (each completes as usual, ``ECANCELED`` if the cancel won)."""
    def commit(self) -> int: ...
    def wait(
        self,
        min_events: int = 1,
        max_events: int | None = None,
        timeout: float | None = None,
    ) -> list[Completion]: ...
    # uringq.aio's hooks: a read into a bytes object the queue allocates (the kernel fills
    # it in place), and settling each completion's asyncio.Future directly.
    def _prepare_read_bytes(
        self, fd: _Fd, offset: int, size: int, user_data: object = None
    ) -> None: ...
    def _settle_futures(self, timeout: float = 0.0) -> int: ...
    # uringq.aio's request path in one call (the driver binds itself first): a future
    # per request, the flush scheduled once per loop iteration.
    def _aio_bind(
        self,
        new_future: Callable[..., object],
        kwargs: dict[str, Any] | None,
        call_soon: Callable[..., object],
        flush: Callable[[], object],
        backlog: deque[Any],
    ) -> None: ...
    def _aio_read(self, fd: _Fd, size: int, offset: int) -> Any: ...
    def _aio_read_into(self, fd: _Fd, offset: int, buf: Buffer) -> Any: ...
    def _aio_schedule(self) -> None: ...
    def _aio_flush(self) -> int: ...
    def _aio_open_file(self, path: _Path, flags: int, mode: int) -> Any: ...
    # uringq.aio's whole-file groups (direct descriptors, Linux 5.15+: see _whole_files):
    # a read settles with bytes (or None when its EOF probe found more than the first
    # read returned: read the file again), a write with the bytes written.
    def _prepare_read_file(
        self, path: _Path, user_data: object = None, *, dir_fd: int | None = None, size: int = 65536
    ) -> None: ...
    def _prepare_write_file(
        self,
        path: _Path,
        data: Buffer,
        user_data: object = None,
        *,
        mode: int = 0o666,
        fsync: bool = False,
        dir_fd: int | None = None,
    ) -> None: ...
    @property
    def _whole_files(self) -> bool: ...
    # uringq.aio.open's open: settles with (fd, st_mode, st_size, st_blksize); the
    # registration of an fd its owner deregisters before closing.
    def _prepare_open_file(self, path: _Path, flags: int, mode: int, user_data: object) -> None: ...
    def _adopt(self, fd: _Fd) -> None: ...
    def wakeup(self) -> None: ...
    def fileno(self) -> int: ...
    def register_buffer(self, buf: Buffer) -> None:
        """Register ``buf`` (writable) for the batch API; its export is held until
        ``deregister_buffer()`` or close, and batches inside it use a fixed buffer."""
    def deregister_buffer(self) -> None:
        """Release the registered buffer (a no-op when there is none)."""
    def read_many(
        self, fd: _Fd, offsets: Any, size: int, out: Buffer, *, depth: int | None = None
    ) -> array[int]:
        """Reads ``size`` bytes at each offset into ``out[i*size:(i+1)*size]`` on a private
        ring with the GIL released; returns bytes read or ``-errno`` per request."""
    def write_many(
        self, fd: _Fd, offsets: Any, size: int, data: Buffer, *, depth: int | None = None
    ) -> array[int]:
        """Writes ``data[i*size:(i+1)*size]`` at each offset; bytes written or ``-errno``."""
    def close(self, *, cancel: bool = False) -> None: ...
