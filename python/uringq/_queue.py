"""``IoQueue``: the public queue, in front of whichever provider runs it."""

from __future__ import annotations

import os
from array import array
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from uringq import _checks
from uringq._errors import FORKED, HandleNotRegistered, QueueClosed
from uringq._registry import ProviderInfo, resolve_provider

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from uringq._checks import HasFileno

    StrPath = str | bytes | os.PathLike[str] | os.PathLike[bytes]
    from uringq._completion import Completion
    from uringq.providers import ProviderQueue

__all__ = ["IoQueue"]

# Methods bound straight from a provider queue that validates its own arguments.
_HOT_METHODS = (
    "register",
    "deregister",
    "prepare_read",
    "prepare_write",
    "prepare_sync",
    "prepare_readv",
    "prepare_writev",
    "commit",
    "wait",
    "wakeup",
    "fileno",
    "read_many",
    "write_many",
    "register_buffer",
    "deregister_buffer",
    "prepare_openat",
    "prepare_close",
    "prepare_statx",
    "prepare_timeout",
    "prepare_renameat",
    "prepare_unlinkat",
    "prepare_mkdirat",
    "prepare_symlinkat",
    "prepare_linkat",
    "prepare_ftruncate",
    "cancel",
    # uringq.aio's hooks (optional): a read into a new bytes object, settling futures.
    "_prepare_read_bytes",
    "_settle_futures",
    # uringq.aio's whole-file groups (optional) and whether this queue runs them.
    "_prepare_read_file",
    "_prepare_write_file",
    "_whole_files",
    # ... uringq.aio.open's open (with the fd's fstat) and the registration without a dup.
    "_prepare_open_file",
    "_adopt",
    # ... and its request path in one native call (issue 11; see uringq/aio/_driver.py).
    "_aio_bind",
    "_aio_read",
    "_aio_read_into",
    "_aio_schedule",
    "_aio_flush",
    "_aio_open_file",
)


class IoQueue:
    """An asynchronous file I/O queue (RTIoQueue): prepare, commit, wait.

    ``sq_entries`` (1..32768) is rounded up to a power of two; ``cq_entries`` defaults
    to twice that and must lie in ``sq_entries..65536``. ``provider`` is ``None`` (the
    ``URINGQ_PROVIDER`` environment variable, else the best available provider), a
    provider id or a :class:`ProviderInfo`; an unavailable one raises
    :class:`~uringq.ProviderUnavailable` with the reason.

    Providers that check their own arguments (both shipped ones) have their methods bound
    onto the instance, so a call costs no extra Python frame. For other providers the
    methods below check arguments, registration, a closed queue and use after ``fork()``
    before handing the provider plain ``int`` fds and offsets and byte ``memoryview``\\ s.

    Use it as a context manager: leaving the block closes it with ``cancel=True``.
    """

    def __init__(
        self,
        sq_entries: int = 128,
        cq_entries: int | None = None,
        *,
        provider: str | ProviderInfo | None = None,
    ) -> None:
        self._sq_entries, self._cq_entries = _checks.queue_sizes(sq_entries, cq_entries)
        self._info = resolve_provider(provider)
        self._queue: ProviderQueue = self._info.provider_class(self._sq_entries, self._cq_entries)
        self._pid = os.getpid()
        self._registered: set[int] = set()  # the checked path's view of registrations
        self._pinned: memoryview | None = None  # the checked path's registered buffer
        if self._info.validates_arguments:
            bound = self.__dict__
            for name in _HOT_METHODS:
                method = getattr(self._queue, name, None)
                if method is not None:  # register_buffer & co. are optional
                    bound[name] = method

    # -- properties -------------------------------------------------------------------
    @property
    def provider(self) -> ProviderInfo:
        """The provider running this queue."""
        return self._info

    @property
    def provider_id(self) -> str:
        """The id of the provider running this queue, e.g. ``"io_uring"``."""
        return self._info.id

    @property
    def sq_entries(self) -> int:
        """Submission queue size (a power of two)."""
        return self._sq_entries

    @property
    def cq_entries(self) -> int:
        """Completion queue size: at most this many requests are prepared or in flight."""
        return self._cq_entries

    @property
    def prepared(self) -> int:
        """Requests prepared and not yet committed."""
        self._check_pid()
        return self._queue.prepared

    @property
    def in_flight(self) -> int:
        """Requests committed whose completion has not been returned yet."""
        self._check_pid()
        return self._queue.in_flight

    @property
    def closed(self) -> bool:
        """True once the queue is closed."""
        return self._queue.closed

    # -- the checked path (providers that do not validate their arguments) ------------
    def _check_pid(self) -> None:
        if self._pid != os.getpid():
            raise RuntimeError(FORKED)

    def _usable(self) -> ProviderQueue:
        self._check_pid()
        if self._queue.closed:
            raise QueueClosed("the queue is closed")
        return self._queue

    def _require_registered(self, fd: int) -> None:
        if fd not in self._registered:
            raise HandleNotRegistered(f"fd {fd} is not registered with this queue")

    def register(self, fd: int | HasFileno) -> None:
        """Pin the open file behind ``fd`` for requests on that number until deregistered.

        Registering a registered fd does nothing. Deregister before closing an fd whose
        number you mean to reuse.
        """
        queue = self._usable()
        number = _checks.fd(fd)
        queue.register(number)
        self._registered.add(number)

    def deregister(self, fd: int | HasFileno) -> None:
        """Unpin ``fd``: ``HandleNotRegistered`` if unknown, ``QueueBusy`` while in use."""
        queue = self._usable()
        number = _checks.fd(fd)
        self._require_registered(number)
        queue.deregister(number)
        self._registered.discard(number)

    def prepare_read(
        self,
        fd: int | HasFileno,
        offset: int,
        buf: Buffer,
        user_data: Any = None,
        *,
        link: bool = False,
        hardlink: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Prepare a read of ``len(buf)`` bytes at ``offset`` into the writable ``buf``.

        ``link``/``hardlink`` chain the next request behind this one, ``timeout`` is a
        deadline in seconds (see :meth:`prepare_openat`)."""
        queue = self._usable()
        number, offset = _checks.fd(fd), _checks.offset(offset)
        view = _checks.read_target(buf)
        extra = _chained(link, hardlink, timeout)
        self._require_registered(number)
        queue.prepare_read(number, offset, view, user_data, **extra)

    def prepare_write(
        self,
        fd: int | HasFileno,
        offset: int,
        buf: Buffer,
        user_data: Any = None,
        *,
        link: bool = False,
        hardlink: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Prepare a write of ``buf`` at ``offset`` (links and deadline as for reads)."""
        queue = self._usable()
        number, offset = _checks.fd(fd), _checks.offset(offset)
        view = _checks.write_source(buf)
        extra = _chained(link, hardlink, timeout)
        self._require_registered(number)
        queue.prepare_write(number, offset, view, user_data, **extra)

    def prepare_sync(
        self,
        fd: int | HasFileno,
        user_data: Any = None,
        *,
        datasync: bool = False,
        link: bool = False,
        hardlink: bool = False,
    ) -> None:
        """Prepare an ``fsync`` of ``fd`` (``fdatasync`` with ``datasync=True``)."""
        datasync = _checks.flag(datasync, "datasync")
        queue = self._usable()
        number = _checks.fd(fd)
        extra = _chained(link, hardlink, None)
        self._require_registered(number)
        queue.prepare_sync(number, user_data, datasync=datasync, **extra)

    def prepare_readv(
        self,
        fd: int | HasFileno,
        offset: int,
        bufs: Sequence[Buffer],
        user_data: Any = None,
        *,
        link: bool = False,
        hardlink: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Prepare a scatter read filling ``bufs`` in order from ``offset``."""
        queue = self._usable()
        number, offset = _checks.fd(fd), _checks.offset(offset)
        views, _ = _checks.buffer_views(bufs, writable=True)
        extra = _chained(link, hardlink, timeout)
        self._require_registered(number)
        queue.prepare_readv(number, offset, views, user_data, **extra)

    def prepare_writev(
        self,
        fd: int | HasFileno,
        offset: int,
        bufs: Sequence[Buffer],
        user_data: Any = None,
        *,
        link: bool = False,
        hardlink: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Prepare a gather write of ``bufs`` in order from ``offset``."""
        queue = self._usable()
        number, offset = _checks.fd(fd), _checks.offset(offset)
        views, _ = _checks.buffer_views(bufs, writable=False)
        extra = _chained(link, hardlink, timeout)
        self._require_registered(number)
        queue.prepare_writev(number, offset, views, user_data, **extra)

    # -- operations (SPEC 8) ------------------------------------------------------------
    def prepare_openat(
        self,
        path: StrPath,
        flags: int = os.O_RDONLY,
        mode: int = 0o666,
        *,
        dir_fd: int | None = None,
        user_data: Any = None,
        link: bool = False,
        hardlink: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Prepare ``openat``: the completion's ``result`` is the new fd, which the caller
        owns (``O_CLOEXEC`` is always added). ``path`` is str, bytes or ``os.PathLike``,
        relative to ``dir_fd`` (default: the current directory)."""
        self._forward(
            "prepare_openat", path, flags, mode, dir_fd=dir_fd, user_data=user_data,
            link=link, hardlink=hardlink, timeout=timeout,
        )  # fmt: skip

    def prepare_close(
        self,
        fd: int | HasFileno,
        *,
        user_data: Any = None,
        link: bool = False,
        hardlink: bool = False,
    ) -> None:
        """Prepare ``close(fd)`` of any fd (a registered one stays pinned by its
        registration, as with ``os.close``)."""
        self._forward("prepare_close", fd, user_data=user_data, link=link, hardlink=hardlink)

    def prepare_statx(
        self,
        path: StrPath | int,
        *,
        dir_fd: int | None = None,
        follow_symlinks: bool = True,
        user_data: Any = None,
        link: bool = False,
        hardlink: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Prepare ``statx``: the completion's ``stat`` is the :class:`os.stat_result`
        that ``os.stat(path, dir_fd=..., follow_symlinks=...)`` would give (an int path is
        an fd, as for ``os.stat``)."""
        self._forward(
            "prepare_statx", path, dir_fd=dir_fd, follow_symlinks=follow_symlinks,
            user_data=user_data, link=link, hardlink=hardlink, timeout=timeout,
        )  # fmt: skip

    def prepare_timeout(
        self,
        seconds: float,
        *,
        user_data: Any = None,
        link: bool = False,
        hardlink: bool = False,
    ) -> None:
        """Prepare a timer: it completes (``result`` 0) after ``seconds``. In a chain an
        expired timer is a success, so ``link=True`` delays the next request."""
        self._forward("prepare_timeout", seconds, user_data=user_data, link=link, hardlink=hardlink)

    def prepare_renameat(
        self,
        src: StrPath,
        dst: StrPath,
        *,
        src_dir_fd: int | None = None,
        dst_dir_fd: int | None = None,
        user_data: Any = None,
        link: bool = False,
        hardlink: bool = False,
    ) -> None:
        """Prepare ``os.rename(src, dst, ...)`` (``result`` 0)."""
        self._forward(
            "prepare_renameat", src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd,
            user_data=user_data, link=link, hardlink=hardlink,
        )  # fmt: skip

    def prepare_unlinkat(
        self,
        path: StrPath,
        *,
        dir_fd: int | None = None,
        rmdir: bool = False,
        user_data: Any = None,
        link: bool = False,
        hardlink: bool = False,
    ) -> None:
        """Prepare ``os.unlink(path)`` (``os.rmdir`` with ``rmdir=True``)."""
        self._forward(
            "prepare_unlinkat", path, dir_fd=dir_fd, rmdir=rmdir, user_data=user_data,
            link=link, hardlink=hardlink,
        )  # fmt: skip

    def prepare_mkdirat(
        self,
        path: StrPath,
        mode: int = 0o777,
        *,
        dir_fd: int | None = None,
        user_data: Any = None,
        link: bool = False,
        hardlink: bool = False,
    ) -> None:
        """Prepare ``os.mkdir(path, mode)``."""
        self._forward(
            "prepare_mkdirat", path, mode, dir_fd=dir_fd, user_data=user_data, link=link,
            hardlink=hardlink,
        )  # fmt: skip

    def prepare_symlinkat(
        self,
        target: StrPath,
        linkpath: StrPath,
        *,
        dir_fd: int | None = None,
        user_data: Any = None,
        link: bool = False,
        hardlink: bool = False,
    ) -> None:
        """Prepare ``os.symlink(target, linkpath)``."""
        self._forward(
            "prepare_symlinkat", target, linkpath, dir_fd=dir_fd, user_data=user_data,
            link=link, hardlink=hardlink,
        )  # fmt: skip

    def prepare_linkat(
        self,
        src: StrPath,
        dst: StrPath,
        *,
        src_dir_fd: int | None = None,
        dst_dir_fd: int | None = None,
        follow_symlinks: bool = True,
        user_data: Any = None,
        link: bool = False,
        hardlink: bool = False,
    ) -> None:
        """Prepare ``os.link(src, dst, ...)``."""
        self._forward(
            "prepare_linkat", src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd,
            follow_symlinks=follow_symlinks, user_data=user_data, link=link,
            hardlink=hardlink,
        )  # fmt: skip

    def prepare_ftruncate(
        self,
        fd: int | HasFileno,
        length: int,
        *,
        user_data: Any = None,
        link: bool = False,
        hardlink: bool = False,
    ) -> None:
        """Prepare ``os.ftruncate(fd, length)`` of any fd."""
        self._forward(
            "prepare_ftruncate", fd, length, user_data=user_data, link=link, hardlink=hardlink
        )

    def cancel(self, user_data: Any) -> int:
        """Ask to cancel every request in flight whose ``user_data == user_data``.

        Returns how many matched. Each completes as usual: ``ECANCELED`` if the cancel
        won, its own result if it finished first. Nothing is lost, and no buffer is
        released before its completion.
        """
        queue = self._usable()
        cancel = getattr(queue, "cancel", None)
        if cancel is None:
            raise NotImplementedError(f"provider {self._info.id!r} cannot cancel requests")
        result: int = cancel(user_data)
        return result

    def _forward(self, name: str, *args: Any, **kwargs: Any) -> None:
        """The checked path of an operation: common checks, then the provider's method."""
        queue = self._usable()
        _checks.link(kwargs["link"], kwargs["hardlink"])
        if "timeout" in kwargs:
            _checks.timeout(kwargs["timeout"])
        method = getattr(queue, name, None)
        if method is None:
            raise NotImplementedError(f"provider {self._info.id!r} has no {name}()")
        method(*args, **kwargs)

    def commit(self) -> int:
        """Submit every prepared request; return how many the provider took.

        A request not taken stays prepared for the next commit. ``QueueEmpty`` if nothing
        is prepared.
        """
        return self._usable().commit()

    def wait(
        self, min_events: int = 1, max_events: int | None = None, timeout: float | None = None
    ) -> list[Completion]:
        """Return between ``min_events`` and ``max_events`` (default: all ready) completions.

        Without ``timeout``: ``QueueEmpty`` if nothing is in flight, ``ValueError`` if
        ``min_events`` exceeds what is in flight. With one: returns what is ready when it
        passes (possibly ``[]``). A ``wakeup()`` raises ``Interrupted`` carrying the ready
        completions; a signal handler's exception propagates and loses nothing.
        """
        queue = self._usable()
        return queue.wait(*_checks.wait_limits(min_events, max_events, timeout))

    def wakeup(self) -> None:
        """Make a blocked ``wait`` (or the next one) raise ``Interrupted``. Thread-safe."""
        self._usable().wakeup()

    def fileno(self) -> int:
        """An fd that polls readable whenever completions may be ready (for event loops)."""
        return self._usable().fileno()

    def read_many(
        self,
        fd: int | HasFileno,
        offsets: Sequence[int] | Buffer,
        size: int,
        out: Buffer,
        *,
        depth: int | None = None,
    ) -> array[int]:
        """Read ``size`` bytes at each offset into ``out[i*size:(i+1)*size]``.

        Returns an ``array('q')`` with the bytes read, or ``-errno``, per request.
        ``out`` must hold ``len(offsets) * size`` bytes (``ValueError``). ``depth`` caps
        how many requests run at once.
        """
        queue = self._usable()
        number, offs = _checks.fd(fd), _checks.offsets(offsets)
        size = _checks.count(size, "size")
        if depth is not None:
            depth = _checks.count(depth, "depth", minimum=1)
        view = _checks.read_target(out)
        _checks.batch_buffer(view, len(offs), size)
        self._require_registered(number)
        if depth is None:
            return _as_results(queue.read_many(number, offs, size, view))
        return _as_results(queue.read_many(number, offs, size, view, depth=depth))  # type: ignore[call-arg]

    def write_many(
        self,
        fd: int | HasFileno,
        offsets: Sequence[int] | Buffer,
        size: int,
        data: Buffer,
        *,
        depth: int | None = None,
    ) -> array[int]:
        """Write ``data[i*size:(i+1)*size]`` at each offset; the mirror of :meth:`read_many`."""
        queue = self._usable()
        number, offs = _checks.fd(fd), _checks.offsets(offsets)
        size = _checks.count(size, "size")
        if depth is not None:
            depth = _checks.count(depth, "depth", minimum=1)
        view = _checks.write_source(data)
        _checks.batch_buffer(view, len(offs), size)
        self._require_registered(number)
        if depth is None:
            return _as_results(queue.write_many(number, offs, size, view))
        return _as_results(queue.write_many(number, offs, size, view, depth=depth))  # type: ignore[call-arg]

    def register_buffer(self, buf: Buffer) -> None:
        """Register ``buf`` for the batch API, as io_uring's registered buffers.

        While registered, ``buf`` is pinned (its export held: a ``bytearray`` cannot be
        resized) and ``read_many``/``write_many`` whose ``out``/``data`` lies inside it
        skip per-request page-table work on the io_uring provider (5-20% more cached
        4 KiB reads per second). One buffer at a time: a new registration replaces the
        old one. Released by ``deregister_buffer()`` or ``close()``.
        """
        queue = self._usable()
        view = _checks.read_target(buf)
        register = getattr(queue, "register_buffer", None)
        if register is not None:
            register(view)
        self._pinned = view

    def deregister_buffer(self) -> None:
        """Release the buffer of :meth:`register_buffer` (a no-op when there is none)."""
        queue = self._usable()
        deregister = getattr(queue, "deregister_buffer", None)
        if deregister is not None:
            deregister()
        self._pinned = None

    # -- life cycle -------------------------------------------------------------------
    def close(self, *, cancel: bool = False) -> None:
        """Close the queue; closing a closed queue does nothing.

        Without ``cancel``: ``QueueBusy`` while requests are prepared, in flight or
        unreaped. With ``cancel``: cancel what is in flight, wait until every buffer is
        released, drop the rest. In a forked child only the child's own fds and memory
        are released (a provider that does not validate its arguments is left alone
        there, as it may not know about forks).
        """
        cancel = _checks.flag(cancel, "cancel")
        if self._pid != os.getpid() and not self._info.validates_arguments:
            return
        self._queue.close(cancel=cancel)
        self._pinned = None

    def __enter__(self) -> Self:
        if self.closed:
            raise QueueClosed("the queue is closed")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(cancel=True)

    def __repr__(self) -> str:
        try:
            state = (
                "closed" if self.closed else f"prepared={self.prepared} in_flight={self.in_flight}"
            )
        except Exception as exc:  # e.g. used after fork()
            state = f"unusable ({type(exc).__name__})"
        return (
            f"<IoQueue provider={self.provider_id!r} sq_entries={self._sq_entries}"
            f" cq_entries={self._cq_entries} {state}>"
        )


def _as_results(results: Any) -> array[int]:
    """A provider's batch results as ``array('q')`` (third-party ones may return lists)."""
    if isinstance(results, array) and results.typecode == "q":
        return results
    return array("q", results)


def _chained(link: object, hardlink: object, timeout: object) -> dict[str, Any]:
    """The checked ``link``/``hardlink``/``timeout`` of a data request, as keywords for
    the provider: only those that are set (a provider without links then sees a plain
    request as before)."""
    linked, hard = _checks.link(link, hardlink)
    extra: dict[str, Any] = {}
    if linked:
        extra["link"] = True
    if hard:
        extra["hardlink"] = True
    deadline = _checks.timeout(timeout)
    if deadline is not None:
        extra["timeout"] = deadline
    return extra
