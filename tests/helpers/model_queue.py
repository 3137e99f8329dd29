"""``ModelQueue``: the oracle of ``tests/test_differential.py``, SPEC sections 1-3 and 8
restated plainly.

Requests run synchronously at ``commit``, chain by chain, in preparation order, with the
plain ``os`` calls on the model's own copy of the files; their completions are ready at
once and ``wait`` never blocks. A chain is the run of requests linked by ``link``/
``hardlink``, ending at the first one without a flag or at the end of the commit; after
a ``link=True`` request that fails or transfers fewer bytes than asked, the rest of its
chain completes with ECANCELED without running. A *long* timer (``LONG`` seconds, drawn
only at the head of a chain) never expires here: it and the rest of its chain wait until
``cancel`` reaches it (ECANCELED, then the rest runs or is cancelled as after a failure).
A short timer completes with 0 at once. A request with a deadline (the fuzz only draws
far ones, which never pass) takes two submission entries and, while it is not complete,
two CQ entries.

Checks come in the providers' order, closed queue first; the model raises the same
exception types (messages are ``test_one_voice``'s business).
"""

from __future__ import annotations

import errno
import os
import stat
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import uringq

__all__ = ["HARD", "LONG", "OPENED", "SOFT", "ModelQueue", "ModelRequest", "stat_key"]

SOFT, HARD = 1, 2
LONG = 60.0  # a timer that waits for its cancel
OPENED = -2  # the result a successful open is compared as: each side's fd number differs


def stat_key(st: os.stat_result | None) -> tuple[int, ...] | None:
    """What of a stat result is the same on every side's copy of the namespace."""
    if st is None:
        return None
    size = 0 if stat.S_ISDIR(st.st_mode) else st.st_size
    return (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), size, st.st_nlink)


@dataclass
class ModelRequest:
    """One request: a data request on a registered fd, an operation (``call``) or a timer."""

    kind: str
    ud: Any
    link: int = 0
    sqes: int = 1
    fd: int | None = None  # the registered fd of a data request
    offset: int = 0
    views: list[memoryview] = field(default_factory=list)
    call: Callable[[], Any] | None = None  # returns None, an fd or a stat result
    names: tuple[Any, ...] = ()  # the filename(s) of its errors
    long: bool = False
    cancelled: bool = False  # cancel() reached it while it waited in its chain

    @property
    def nbytes(self) -> int:
        return sum(view.nbytes for view in self.views)


class ModelQueue:
    """See the module docstring."""

    provider_id = "model"

    def __init__(self, sq_entries: int, cq_entries: int) -> None:
        self.sq_entries = 1 << (sq_entries - 1).bit_length()
        self.cq_entries = cq_entries
        self._files: dict[int, int] = {}  # registered fd -> our dup
        self._prepared: list[ModelRequest] = []
        self._ready: deque[tuple[ModelRequest, Any]] = deque()
        self._parked: list[tuple[list[ModelRequest], int]] = []  # (chain, index of its head)
        self._users: Counter[int] = Counter()  # fd -> requests prepared or not returned
        self._woken = False
        self.closed = False
        self.results: dict[Any, Any] = {}  # user_data -> its completion, once it ran

    # -- counters ---------------------------------------------------------------------------
    @property
    def prepared(self) -> int:
        return len(self._prepared)

    @property
    def in_flight(self) -> int:
        return len(self._ready) + self.waiting

    @property
    def waiting(self) -> int:
        """Requests waiting for a long timer's cancel (the timers included)."""
        return sum(len(chain) - head for chain, head in self._parked)

    @property
    def prepared_sqes(self) -> int:
        """SQ entries the prepared requests take (two for a request with a deadline)."""
        return sum(r.sqes for r in self._prepared)

    @property
    def waiting_extra(self) -> int:
        """The second CQ entries of waiting requests with a deadline (not complete)."""
        return sum(r.sqes - 1 for chain, head in self._parked for r in chain[head:])

    def room(self, sqes: int, extra: int | None = None) -> bool:
        """Room for a request of ``sqes`` entries, where the requests in flight with a
        deadline take ``extra`` second CQ entries (default: as if none of them had
        completed; whether a provider has noticed is its timing, see the fuzz)."""
        if extra is None:
            extra = self.waiting_extra + sum(r.sqes - 1 for r, _ in self._ready)
        sq = self.prepared_sqes
        cq = sq + self.in_flight + extra
        return sq + sqes <= self.sq_entries and cq + sqes <= self.cq_entries

    # -- checks -----------------------------------------------------------------------------
    def _open(self) -> None:
        if self.closed:
            raise uringq.QueueClosed("queue is closed")

    @staticmethod
    def _flags(*flags: Any) -> None:
        for value in flags:
            if not isinstance(value, bool):
                raise TypeError("flags must be bools")

    @staticmethod
    def _link(link: bool, hardlink: bool) -> int:
        if link and hardlink:
            raise ValueError("link and hardlink are exclusive")
        return SOFT if link else HARD if hardlink else 0

    @staticmethod
    def _sqes(timeout: Any) -> int:
        if timeout is None:
            return 1
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise TypeError("timeout must be a number")
        if not timeout >= 0:
            raise ValueError("timeout must be >= 0")
        return 2

    @staticmethod
    def _fd(fd: Any) -> int:
        if isinstance(fd, bool) or not isinstance(fd, int):
            raise TypeError(f"fd must be an int, not {type(fd).__name__}")
        if fd < 0:
            raise ValueError("fd must be >= 0")
        return fd

    @staticmethod
    def _offset(offset: Any) -> int:
        if not isinstance(offset, int):
            raise TypeError("offset must be an int")
        if offset < 0:
            raise ValueError("offset must be >= 0")
        return offset

    @staticmethod
    def _dir_fd(value: Any) -> Any:
        if value is not None and not isinstance(value, int):
            raise TypeError("dir_fd must be an int or None")
        return value

    @staticmethod
    def _path(path: Any) -> Any:
        name = os.fspath(path)
        if (b"\0" if isinstance(name, bytes) else "\0") in name:
            raise ValueError("embedded null byte")
        return name

    @staticmethod
    def _view(buf: Any, writable: bool) -> memoryview:
        view = memoryview(buf)  # TypeError without the buffer protocol
        if writable and view.readonly:
            raise TypeError("read target must be writable")
        if not view.c_contiguous:
            raise BufferError("buffer must be C-contiguous")
        return view.cast("B") if view.format != "B" or view.ndim != 1 else view

    def _views(self, bufs: Any, writable: bool) -> list[memoryview]:
        try:
            memoryview(bufs)
        except TypeError:
            pass
        else:
            raise TypeError("bufs must be a sequence of buffers, not a single buffer")
        if not isinstance(bufs, Sequence):
            raise TypeError("bufs must be a sequence of buffers")
        return [self._view(b, writable) for b in bufs]

    def _queue(self, req: ModelRequest) -> None:
        if req.fd is not None and req.fd not in self._files:
            raise uringq.HandleNotRegistered(f"fd {req.fd} is not registered")
        if not self.room(req.sqes):
            raise uringq.QueueFull("no room")
        self._prepared.append(req)
        if req.fd is not None:
            self._users[req.fd] += 1

    # -- registration -------------------------------------------------------------------------
    def register(self, fd: Any) -> None:
        self._open()
        fd = self._fd(fd)
        if fd not in self._files:
            self._files[fd] = os.dup(fd)

    def deregister(self, fd: Any) -> None:
        self._open()
        fd = self._fd(fd)
        if fd not in self._files:
            raise uringq.HandleNotRegistered(f"fd {fd} is not registered")
        if self._users[fd]:
            raise uringq.QueueBusy(f"fd {fd} is in use")
        os.close(self._files.pop(fd))

    # -- data requests ------------------------------------------------------------------------
    def _data(
        self,
        kind: str,
        fd: Any,
        offset: Any,
        views: Callable[[], list[memoryview]],
        ud: Any,
        *,
        extras: tuple[Any, Any, Any],
    ) -> None:
        link, hardlink, timeout = extras
        self._flags(link, hardlink)
        self._open()
        fd, offset = self._fd(fd), self._offset(offset)
        parts = views()
        code = self._link(link, hardlink)
        sqes = self._sqes(timeout)
        self._queue(ModelRequest(kind, ud, code, sqes, fd, offset, parts))

    def prepare_read(self, fd: Any, offset: Any, buf: Any, ud: Any = None, **kw: Any) -> None:
        extras = (kw.get("link", False), kw.get("hardlink", False), kw.get("timeout"))
        self._data("read", fd, offset, lambda: [self._view(buf, True)], ud, extras=extras)

    def prepare_write(self, fd: Any, offset: Any, buf: Any, ud: Any = None, **kw: Any) -> None:
        extras = (kw.get("link", False), kw.get("hardlink", False), kw.get("timeout"))
        self._data("write", fd, offset, lambda: [self._view(buf, False)], ud, extras=extras)

    def prepare_readv(self, fd: Any, offset: Any, bufs: Any, ud: Any = None, **kw: Any) -> None:
        extras = (kw.get("link", False), kw.get("hardlink", False), kw.get("timeout"))
        self._data("read", fd, offset, lambda: self._views(bufs, True), ud, extras=extras)

    def prepare_writev(self, fd: Any, offset: Any, bufs: Any, ud: Any = None, **kw: Any) -> None:
        extras = (kw.get("link", False), kw.get("hardlink", False), kw.get("timeout"))
        self._data("write", fd, offset, lambda: self._views(bufs, False), ud, extras=extras)

    def prepare_sync(
        self,
        fd: Any,
        ud: Any = None,
        *,
        datasync: bool = False,
        link: bool = False,
        hardlink: bool = False,
    ) -> None:
        self._flags(datasync)
        kind = "fdatasync" if datasync else "fsync"
        self._data(kind, fd, 0, list, ud, extras=(link, hardlink, None))

    # -- operations ---------------------------------------------------------------------------
    def _operation(
        self,
        kind: str,
        build: Callable[[], tuple[Callable[[], Any] | None, tuple[Any, ...]]],
        ud: Any,
        flags: tuple[Any, ...] = (),
        *,
        link: Any = False,
        hardlink: Any = False,
        timeout: Any = None,
        long: bool = False,
    ) -> None:
        self._flags(*flags, link, hardlink)
        self._open()
        call, names = build()
        code = self._link(link, hardlink)
        sqes = self._sqes(timeout)
        self._queue(ModelRequest(kind, ud, code, sqes, call=call, names=names, long=long))

    def prepare_openat(
        self, path: Any, flags: int = os.O_RDONLY, mode: int = 0o666, *, dir_fd: Any = None,
        user_data: Any = None, **kw: Any,
    ) -> None:  # fmt: skip
        def build() -> tuple[Callable[[], Any], tuple[Any, ...]]:
            name, where = self._path(path), self._dir_fd(dir_fd)
            return lambda: _opened(os.open(name, flags, mode, dir_fd=where)), (name,)

        self._operation("openat", build, user_data, **kw)

    def prepare_close(self, fd: Any, *, user_data: Any = None, **kw: Any) -> None:
        def build() -> tuple[Callable[[], Any], tuple[Any, ...]]:
            number = self._fd(fd)
            return lambda: os.close(number), ()

        self._operation("close", build, user_data, **kw)

    def prepare_statx(
        self, path: Any, *, dir_fd: Any = None, follow_symlinks: bool = True,
        user_data: Any = None, **kw: Any,
    ) -> None:  # fmt: skip
        def build() -> tuple[Callable[[], Any], tuple[Any, ...]]:
            name, where = self._path(path), self._dir_fd(dir_fd)
            return lambda: os.stat(name, dir_fd=where, follow_symlinks=follow_symlinks), (name,)

        self._operation("statx", build, user_data, (follow_symlinks,), **kw)

    def prepare_timeout(self, seconds: float, *, user_data: Any = None, **kw: Any) -> None:
        self._operation("timeout", lambda: (None, ()), user_data, long=seconds >= LONG, **kw)

    def prepare_renameat(
        self, src: Any, dst: Any, *, src_dir_fd: Any = None, dst_dir_fd: Any = None,
        user_data: Any = None, **kw: Any,
    ) -> None:  # fmt: skip
        def build() -> tuple[Callable[[], Any], tuple[Any, ...]]:
            old, new = self._path(src), self._path(dst)
            here, there = self._dir_fd(src_dir_fd), self._dir_fd(dst_dir_fd)
            call = lambda: os.rename(old, new, src_dir_fd=here, dst_dir_fd=there)  # noqa: E731
            return call, (old, new)

        self._operation("renameat", build, user_data, **kw)

    def prepare_unlinkat(
        self, path: Any, *, dir_fd: Any = None, rmdir: bool = False, user_data: Any = None,
        **kw: Any,
    ) -> None:  # fmt: skip
        def build() -> tuple[Callable[[], Any], tuple[Any, ...]]:
            name, where = self._path(path), self._dir_fd(dir_fd)
            remove = os.rmdir if rmdir else os.unlink
            return lambda: remove(name, dir_fd=where), (name,)

        self._operation("unlinkat", build, user_data, (rmdir,), **kw)

    def prepare_mkdirat(
        self, path: Any, mode: int = 0o777, *, dir_fd: Any = None, user_data: Any = None,
        **kw: Any,
    ) -> None:  # fmt: skip
        def build() -> tuple[Callable[[], Any], tuple[Any, ...]]:
            name, where = self._path(path), self._dir_fd(dir_fd)
            return lambda: os.mkdir(name, mode, dir_fd=where), (name,)

        self._operation("mkdirat", build, user_data, **kw)

    def prepare_symlinkat(
        self, target: Any, linkpath: Any, *, dir_fd: Any = None, user_data: Any = None,
        **kw: Any,
    ) -> None:  # fmt: skip
        def build() -> tuple[Callable[[], Any], tuple[Any, ...]]:
            name, link = self._path(target), self._path(linkpath)
            where = self._dir_fd(dir_fd)
            return lambda: os.symlink(name, link, dir_fd=where), (name, link)

        self._operation("symlinkat", build, user_data, **kw)

    def prepare_linkat(
        self, src: Any, dst: Any, *, src_dir_fd: Any = None, dst_dir_fd: Any = None,
        follow_symlinks: bool = True, user_data: Any = None, **kw: Any,
    ) -> None:  # fmt: skip
        def build() -> tuple[Callable[[], Any], tuple[Any, ...]]:
            # os.link follows a symlink (linkat's AT_SYMLINK_FOLLOW, as io_uring's LINKAT)
            # only where a dir fd is given: the fuzz always gives them.
            old, new = self._path(src), self._path(dst)
            here, there = self._dir_fd(src_dir_fd), self._dir_fd(dst_dir_fd)
            call = lambda: os.link(  # noqa: E731
                old, new, src_dir_fd=here, dst_dir_fd=there, follow_symlinks=follow_symlinks
            )
            return call, (old, new)

        self._operation("linkat", build, user_data, (follow_symlinks,), **kw)

    def prepare_ftruncate(self, fd: Any, length: int, *, user_data: Any = None, **kw: Any) -> None:
        def build() -> tuple[Callable[[], Any], tuple[Any, ...]]:
            number = self._fd(fd)
            if length < 0:
                raise ValueError("length must be >= 0")
            return lambda: os.ftruncate(number, length), ()

        self._operation("ftruncate", build, user_data, **kw)

    # -- running ------------------------------------------------------------------------------
    def commit(self) -> int:
        self._open()
        if not self._prepared:
            raise uringq.QueueEmpty("nothing prepared")
        batch, self._prepared = self._prepared, []
        chain: list[ModelRequest] = []
        for req in batch:
            chain.append(req)
            if not req.link:
                self._run(chain, 0, False)
                chain = []
        if chain:
            self._run(chain, 0, False)
        return len(batch)

    def _run(self, chain: list[ModelRequest], start: int, broken: bool) -> None:
        for i in range(start, len(chain)):
            req = chain[i]
            if broken or req.cancelled:
                self._complete(req, 0, OSError(errno.ECANCELED, os.strerror(errno.ECANCELED),
                                               *_names(req)))  # fmt: skip
                broken = broken or (req.cancelled and req.link == SOFT)
                continue
            if req.long:
                self._parked.append((chain, i))
                return
            result, error, st = self._execute(req)
            self._complete(req, result, error, st)
            short = req.kind in ("read", "write") and error is None and result != req.nbytes
            broken = req.link == SOFT and (error is not None or short)

    def _execute(self, req: ModelRequest) -> tuple[int, OSError | None, Any]:
        try:
            if req.kind in ("read", "write"):
                call = os.preadv if req.kind == "read" else os.pwritev
                return call(self._files[req.fd], req.views, req.offset), None, None  # type: ignore[index]
            if req.kind in ("fsync", "fdatasync"):
                (os.fdatasync if req.kind == "fdatasync" else os.fsync)(self._files[req.fd])  # type: ignore[index]
                return 0, None, None
            if req.call is None:  # a short timer
                return 0, None, None
            value = req.call()
        except OSError as exc:
            code = exc.errno or errno.EIO
            return 0, OSError(code, os.strerror(code), *_names(req)), None
        if isinstance(value, os.stat_result):
            return 0, None, value
        return (0 if value is None else value), None, None

    def _complete(
        self, req: ModelRequest, result: int, error: OSError | None, st: Any = None
    ) -> None:
        completion = uringq.Completion(req.ud, result, error, st)
        self.results[req.ud] = completion
        self._ready.append((req, completion))

    def cancel(self, user_data: Any) -> int:
        self._open()
        matched = sum(1 for _, c in self._ready if c.user_data == user_data)
        for chain, head in list(self._parked):
            for i in range(head, len(chain)):
                if chain[i].ud == user_data:
                    matched += 1
                    chain[i].cancelled = True
            if chain[head].cancelled:  # the running long timer: its cancel wins now
                self._parked.remove((chain, head))
                self._run(chain, head, False)
        return matched

    # -- completions --------------------------------------------------------------------------
    def wait(
        self, min_events: int = 1, max_events: int | None = None, timeout: float | None = None
    ) -> list[Any]:
        self._open()
        if min_events < 0 or (max_events is not None and max_events < max(min_events, 1)):
            raise ValueError("bad min_events/max_events")
        if timeout is not None and timeout < 0:
            raise ValueError("bad timeout")
        if timeout is None and not self._woken:
            if not self.in_flight:
                raise uringq.QueueEmpty("nothing in flight")
            if min_events > self.in_flight:
                raise ValueError("min_events can never be met")
        taken = self._take(max_events)
        if self._woken:
            self._woken = False
            raise uringq.Interrupted("woken", taken)
        return taken

    def _take(self, high: int | None) -> list[Any]:
        n = len(self._ready) if high is None else min(high, len(self._ready))
        out = []
        for _ in range(n):
            req, c = self._ready.popleft()
            if req.fd is not None:
                self._users[req.fd] -= 1
            out.append(c)
        return out

    def wakeup(self) -> None:
        self._open()
        self._woken = True

    # -- batches ------------------------------------------------------------------------------
    def _many(self, write: bool, fd: Any, offsets: Any, size: Any, buf: Any) -> Any:
        from array import array

        self._open()
        fd = self._fd(fd)
        offs = [self._offset(o) for o in offsets]
        if size < 0:
            raise ValueError("size must be >= 0")
        view = self._view(buf, not write)
        if view.nbytes < len(offs) * size:
            raise ValueError("buffer too small")
        if fd not in self._files:
            raise uringq.HandleNotRegistered(f"fd {fd} is not registered")
        call = os.pwritev if write else os.preadv
        out = array("q")
        for i, off in enumerate(offs):
            try:
                out.append(call(self._files[fd], [view[i * size : (i + 1) * size]], off))
            except OSError as exc:
                out.append(-(exc.errno or errno.EIO))
        return out

    def read_many(self, fd: Any, offsets: Any, size: Any, out: Any) -> Any:
        return self._many(False, fd, offsets, size, out)

    def write_many(self, fd: Any, offsets: Any, size: Any, data: Any) -> Any:
        return self._many(True, fd, offsets, size, data)

    def close(self, *, cancel: bool = False) -> None:
        if self.closed:
            return
        if not cancel and (self._prepared or self.in_flight):
            raise uringq.QueueBusy("busy")
        self.closed = True
        self._prepared, self._woken = [], False
        self._ready.clear()
        self._parked.clear()
        self._users.clear()
        for dup in self._files.values():
            os.close(dup)
        self._files.clear()


def _names(req: ModelRequest) -> tuple[Any, ...]:
    """OSError's arguments after strerror: ``filename`` (and ``None, filename2``)."""
    if len(req.names) == 2:
        return (req.names[0], None, req.names[1])
    return req.names


def _opened(fd: int) -> int:
    """An open's result as the model reports it: the fd is closed at once (see OPENED)."""
    os.close(fd)
    return OPENED
