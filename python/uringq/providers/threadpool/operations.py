"""The queue's operations on the threadpool provider (SPEC section 8): open, close, statx,
timers, the path operations, link/hardlink and deadlines on every request, ``cancel``.

Each ``prepare_*`` checks its arguments in the io_uring provider's order, with its
exceptions and messages (the bool flags first, as PyO3 converts them with the call; then
a closed queue; then each argument; then the link flags and the deadline; then the
registration and the room), and queues a request carrying a :class:`~.jobs.Job`. An
operation's system call is the ``os`` function with the checked, encoded arguments, run
by a worker; its errors carry the path(s) as ``os.fspath`` gives them, as ``os`` raises
them. A request with a deadline takes two submission entries, as on io_uring (the
deadline is a second SQE there), and counts two CQ entries until it completes.

``commit`` cuts a batch with such requests into chains (:func:`split_chains`) and starts
them (see the chains module); plain requests take the usual path.
"""

from __future__ import annotations

import os
from functools import partial
from typing import TYPE_CHECKING, Any, NoReturn

from uringq._checks import buffer_views, c_int, flag, named_path, non_negative
from uringq._checks import dir_fd as _dir_fd
from uringq._checks import fd as _fd
from uringq._checks import link as _link
from uringq._checks import mode as _mode
from uringq._checks import offset as _offset
from uringq._checks import read_target as _read_target
from uringq._checks import seconds as _seconds
from uringq._checks import timeout as _timeout
from uringq._checks import write_source as _write_source
from uringq._errors import HandleNotRegistered, QueueFull
from uringq.providers.threadpool.batch import BatchCalls
from uringq.providers.threadpool.fifos import Opening, may_block
from uringq.providers.threadpool.jobs import Job, linkat, stat_fd
from uringq.providers.threadpool.requests import (
    CALL,
    FDATASYNC,
    FSYNC,
    HARD,
    OPERATION,
    READ,
    SOFT,
    TIMER,
    UNLINKED,
    Request,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from uringq._checks import HasFileno

    StrPath = str | bytes | os.PathLike[str] | os.PathLike[bytes]

__all__ = ["OperationCalls", "split_chains"]


def _linked(link: object, hardlink: object) -> int:
    """The link code of checked flags (ValueError if both are set)."""
    soft, hard = _link(link, hardlink)
    return SOFT if soft else HARD if hard else UNLINKED


class OperationCalls(BatchCalls):
    """The operations of ``ThreadPoolQueue``, its capacity checks and its commit of chains."""

    # -- capacity ----------------------------------------------------------------------------
    def _full(self, fd: int, sqes: int) -> bool:
        """True unless a request of ``sqes`` entries on ``fd`` (-1: none) can be queued
        (lock held). Refreshes the CQ limit, which may lag behind completions."""
        if not self._open or (fd >= 0 and fd not in self._files):
            return True
        extra = self._sq_entries - self._sq_limit
        self._cq_limit = self._cq_entries - extra - self._shared.timed
        n = len(self._prepared)
        return n + sqes > self._sq_limit or n + self._in_flight + sqes > self._cq_limit

    def _refuse(self, fd: int, sqes: int = 1) -> NoReturn:
        """Raise why a request of ``sqes`` entries on ``fd`` cannot be queued (lock held,
        after ``_full``)."""
        if not self._open:
            self._raise_unusable()
        if fd >= 0 and fd not in self._files:
            raise HandleNotRegistered(f"fd {fd} is not registered with this queue")
        if len(self._prepared) + sqes > self._sq_limit:
            raise QueueFull("every submission queue entry is prepared; commit() first")
        raise QueueFull(
            "prepared plus in-flight requests would exceed cq_entries; wait() for completions first"
        )

    def _queue_job(
        self,
        kind: int,
        fd: int,
        job: Job,
        user_data: Any,
        *,
        offset: int = 0,
        views: Sequence[memoryview] = (),
        nbytes: int = 0,
    ) -> None:
        """Append a checked request with its job, or raise and queue nothing."""
        sqes = 1 if job.deadline is None else 2
        registered = fd if kind < CALL else -1
        self._acquire()
        try:
            if self._full(registered, sqes):
                del views, job  # a kept traceback must pin nothing (see ThreadPoolQueue._queue)
                self._refuse(registered, sqes)
            dup = self._files[fd] if kind < CALL else -1
            self._prepared.append((kind, fd, dup, offset, views, nbytes, user_data, job))
            self._special = True
            if sqes == 2:
                self._sq_limit -= 1
                self._cq_limit -= 1
        finally:
            self._release()

    def _operation(self, job: Job, user_data: Any) -> None:
        self._queue_job(OPERATION, -1, job, user_data)

    # -- data requests with a link or a deadline --------------------------------------------
    def _prepare_linked(
        self,
        kind: int,
        fd: int | HasFileno,
        offset: int,
        buf: Any,
        user_data: Any,
        *,
        extras: tuple[object, object, object],
        vectored: bool = False,
    ) -> None:
        """``prepare_read/write/readv/writev`` with ``link``, ``hardlink`` or ``timeout``."""
        link, hardlink, timeout = extras
        flag(link, "link")
        flag(hardlink, "hardlink")
        if not self._open:
            self._raise_unusable()
        number, offset = _fd(fd), _offset(offset)
        views: Sequence[memoryview]
        if vectored:
            views, nbytes = buffer_views(buf, writable=kind == READ)
        else:
            view = _read_target(buf) if kind == READ else _write_source(buf)
            views, nbytes = (view,), view.nbytes
        job = Job(_linked(link, hardlink), _timeout(timeout))
        self._queue_job(kind, number, job, user_data, offset=offset, views=views, nbytes=nbytes)

    def _prepare_linked_sync(
        self, fd: int | HasFileno, user_data: Any, datasync: bool, link: object, hardlink: object
    ) -> None:
        """``prepare_sync`` with ``link`` or ``hardlink`` (``datasync`` checked)."""
        flag(link, "link")
        flag(hardlink, "hardlink")
        if not self._open:
            self._raise_unusable()
        number = _fd(fd)
        job = Job(_linked(link, hardlink))
        self._queue_job(FDATASYNC if datasync else FSYNC, number, job, user_data)

    # -- operations ----------------------------------------------------------------------------
    def prepare_openat(
        self,
        path: StrPath,
        flags: int | None = os.O_RDONLY,
        mode: int | None = 0o666,
        *,
        dir_fd: int | None = None,
        user_data: Any = None,
        link: bool = False,
        hardlink: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Queue ``os.open(path, flags | O_CLOEXEC, mode, dir_fd=dir_fd)``: the
        completion's ``result`` is the new fd, which the caller owns."""
        flag(link, "link")
        flag(hardlink, "hardlink")
        if not self._open:
            self._raise_unusable()
        encoded, name = named_path(path)
        directory = _dir_fd(dir_fd)
        opening = os.O_RDONLY if flags is None else c_int(flags, "flags")  # None: as native
        perms = 0o666 if mode is None else _mode(mode)
        call = partial(os.open, encoded, opening | os.O_CLOEXEC, perms, dir_fd=directory)
        blocking = Opening(encoded, opening, directory) if may_block(opening) else None
        job = Job(
            _linked(link, hardlink),
            _timeout(timeout),
            call,
            (name, None),
            opens=True,
            opening=blocking,
        )
        self._operation(job, user_data)

    def prepare_close(
        self,
        fd: int | HasFileno,
        *,
        user_data: Any = None,
        link: bool = False,
        hardlink: bool = False,
    ) -> None:
        """Queue ``os.close(fd)`` of any fd (a registered one stays pinned by its dup)."""
        flag(link, "link")
        flag(hardlink, "hardlink")
        if not self._open:
            self._raise_unusable()
        number = _fd(fd)
        job = Job(_linked(link, hardlink), call=partial(os.close, number), closes=True)
        self._operation(job, user_data)

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
        """Queue ``os.stat(path, dir_fd=..., follow_symlinks=...)``: the completion's
        ``stat`` is its ``os.stat_result`` (an int ``path`` is an fd)."""
        flag(follow_symlinks, "follow_symlinks")
        flag(link, "link")
        flag(hardlink, "hardlink")
        if not self._open:
            self._raise_unusable()
        name: object
        if isinstance(path, int):
            if dir_fd is not None:
                raise ValueError("prepare_statx: can't specify dir_fd without matching path")
            call, name = stat_fd(c_int(path, "fd")), path
        else:
            encoded, name = named_path(path)
            call = partial(
                os.stat, encoded, dir_fd=_dir_fd(dir_fd), follow_symlinks=follow_symlinks
            )
        job = Job(_linked(link, hardlink), _timeout(timeout), call, (name, None))
        self._operation(job, user_data)

    def prepare_timeout(
        self,
        seconds: float,
        *,
        user_data: Any = None,
        link: bool = False,
        hardlink: bool = False,
    ) -> None:
        """Queue a timer: it completes (``result`` 0) after ``seconds``; in a chain an
        expired timer is a success."""
        flag(link, "link")
        flag(hardlink, "hardlink")
        if not self._open:
            self._raise_unusable()
        delay = _seconds(seconds, "seconds")
        job = Job(_linked(link, hardlink), delay=delay)
        self._queue_job(TIMER, -1, job, user_data)

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
        """Queue ``os.rename(src, dst, src_dir_fd=..., dst_dir_fd=...)``."""
        flag(link, "link")
        flag(hardlink, "hardlink")
        if not self._open:
            self._raise_unusable()
        (old, old_name), (new, new_name) = named_path(src), named_path(dst)
        old_dir, new_dir = _dir_fd(src_dir_fd), _dir_fd(dst_dir_fd)
        call = partial(os.rename, old, new, src_dir_fd=old_dir, dst_dir_fd=new_dir)
        self._operation(Job(_linked(link, hardlink), None, call, (old_name, new_name)), user_data)

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
        """Queue ``os.unlink(path, dir_fd=...)`` (``os.rmdir`` with ``rmdir=True``)."""
        flag(rmdir, "rmdir")
        flag(link, "link")
        flag(hardlink, "hardlink")
        if not self._open:
            self._raise_unusable()
        encoded, name = named_path(path)
        call = partial(os.rmdir if rmdir else os.unlink, encoded, dir_fd=_dir_fd(dir_fd))
        self._operation(Job(_linked(link, hardlink), None, call, (name, None)), user_data)

    def prepare_mkdirat(
        self,
        path: StrPath,
        mode: int | None = 0o777,
        *,
        dir_fd: int | None = None,
        user_data: Any = None,
        link: bool = False,
        hardlink: bool = False,
    ) -> None:
        """Queue ``os.mkdir(path, mode, dir_fd=...)``."""
        flag(link, "link")
        flag(hardlink, "hardlink")
        if not self._open:
            self._raise_unusable()
        encoded, name = named_path(path)
        directory = _dir_fd(dir_fd)
        perms = 0o777 if mode is None else _mode(mode)
        call = partial(os.mkdir, encoded, perms, dir_fd=directory)
        self._operation(Job(_linked(link, hardlink), None, call, (name, None)), user_data)

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
        """Queue ``os.symlink(target, linkpath, dir_fd=...)``."""
        flag(link, "link")
        flag(hardlink, "hardlink")
        if not self._open:
            self._raise_unusable()
        (encoded, name), (where, where_name) = named_path(target), named_path(linkpath)
        call = partial(os.symlink, encoded, where, dir_fd=_dir_fd(dir_fd))
        self._operation(Job(_linked(link, hardlink), None, call, (name, where_name)), user_data)

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
        """Queue ``linkat`` as ``os.link(src, dst, ...)`` words it (``follow_symlinks``:
        ``AT_SYMLINK_FOLLOW``, as io_uring's LINKAT takes it)."""
        flag(follow_symlinks, "follow_symlinks")
        flag(link, "link")
        flag(hardlink, "hardlink")
        if not self._open:
            self._raise_unusable()
        (old, old_name), (new, new_name) = named_path(src), named_path(dst)
        call = linkat(old, new, _dir_fd(src_dir_fd), _dir_fd(dst_dir_fd), follow_symlinks)
        self._operation(Job(_linked(link, hardlink), None, call, (old_name, new_name)), user_data)

    def prepare_ftruncate(
        self,
        fd: int | HasFileno,
        length: int,
        *,
        user_data: Any = None,
        link: bool = False,
        hardlink: bool = False,
    ) -> None:
        """Queue ``os.ftruncate(fd, length)`` of any fd."""
        flag(link, "link")
        flag(hardlink, "hardlink")
        if not self._open:
            self._raise_unusable()
        number, size = _fd(fd), non_negative(length, "length")
        call = partial(os.ftruncate, number, size)
        self._operation(Job(_linked(link, hardlink), call=call), user_data)

    # -- cancel --------------------------------------------------------------------------------
    def cancel(self, user_data: Any) -> int:
        """Ask to cancel every request in flight whose ``user_data == user_data``; return
        how many matched. Each completes as usual: ``ECANCELED`` if the cancel won, its
        own result if it finished (or its blocking call started) first."""
        if not self._open:
            self._raise_unusable()
        with self._lock:
            if not self._open:
                self._raise_unusable()
            candidates = self._shared.in_flight_requests()
        # Compared without the lock: __eq__ may run any code (and may raise: then nothing
        # is cancelled, and the traceback keeps no request alive).
        matched = _matching(candidates, user_data)
        with self._lock:
            if self._open:
                cancel = self._shared.cancel_request
                for req in matched:
                    cancel(req)
        count = len(matched)
        matched.clear()
        return count


def split_chains(batch: list[Request]) -> tuple[list[Request], list[list[Request]], set[int]]:
    """``(plain, chains, members)`` of a committed batch: the requests that run alone
    without a job, the chains (a request with a job alone is a chain of one; a plain
    request that ends a chain gets a job of its own) and the ids of the batch's requests
    in chains."""
    plain: list[Request] = []
    chains: list[list[Request]] = []
    members: set[int] = set()
    chain: list[Request] = []
    for req in batch:
        if not chain and len(req) == 7:
            plain.append(req)
            continue
        members.add(id(req))
        step = req if len(req) > 7 else (*req, Job(UNLINKED))
        chain.append(step)
        if step[7].link == UNLINKED:
            chains.append(chain)
            chain = []
    if chain:
        chains.append(chain)
    return plain, chains, members


def _matching(candidates: list[Request], user_data: Any) -> list[Request]:
    """The candidates whose user_data ``== user_data``; on an exception from ``__eq__``
    (or ``__bool__``) nothing, with no request left in this frame."""
    matched: list[Request] = []
    req: Request = ()
    try:
        for req in candidates:
            if req[6] == user_data:
                matched.append(req)
    except BaseException:
        req = ()
        matched.clear()
        candidates.clear()
        raise
    candidates.clear()
    return matched
