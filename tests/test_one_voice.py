"""One voice: a bad call raises the same exception, errno and message on every provider.

Each row of ``BAD_CALLS`` is one bad call on an ``IoQueue`` (bad fds, offsets, sizes,
buffers, counts and timeouts; the operations' paths, dir fds, flags, modes, seconds and
lengths; link flags and deadlines; a full, empty, busy or closed queue, a deadline
needing two entries where one is left; an unregistered fd; cancel).
It runs on a fresh queue of every available provider: each must raise the documented
exception type and queue nothing, and, where io_uring and threadpool are both
available, both must raise the same type with the same ``errno`` and the same message.
The same goes for the ``IoQueue(...)`` sizes, a waiter whose queue another thread
closes, and every method in a forked child. Where io_uring is unavailable (the seccomp
run) only the first half runs, on threadpool.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uringq
from helpers.proc import run_in_child

PROVIDERS = [p.id for p in uringq.providers() if p.available]
BOTH = {"io_uring", "threadpool"} <= set(PROVIDERS)
needs_both = pytest.mark.skipif(not BOTH, reason="needs io_uring and threadpool to compare")

SQ, CQ = 4, 8  # small, so that both ways of QueueFull are quick to reach


@dataclass
class Env:
    """A queue and the fds a bad call may use; ``fd`` is registered, ``other`` is not."""

    q: uringq.IoQueue
    fd: int
    other: int
    pipe_r: int


class FileNo:
    """An object whose ``fileno()`` returns ``value``."""

    def __init__(self, value: object) -> None:
        self.value = value

    def fileno(self) -> object:
        return self.value


class Index:
    """An object whose ``__index__`` returns ``value``."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


def strided() -> memoryview:
    """A writable buffer that is not C-contiguous."""
    return memoryview(bytearray(16))[::2]


def fill(env: Env, count: int) -> None:
    """Prepare ``count`` reads of the registered file."""
    for i in range(count):
        env.q.prepare_read(env.fd, 0, bytearray(8), i)


def in_flight(env: Env, count: int) -> None:
    """Put ``count`` reads in flight (committed, not reaped), SQ entries at a time."""
    while count:
        step = min(count, SQ)
        fill(env, step)
        env.q.commit()
        count -= step


def closed(env: Env) -> None:
    env.q.close()


def closed_fd_number() -> int:
    """A number that is no open fd right now."""
    fd = os.open(os.devnull, os.O_RDONLY)
    os.close(fd)
    return fd


@dataclass(frozen=True)
class Bad:
    """A call, the exception it must raise (``None``: it returns) and the state it needs."""

    name: str
    call: Callable[[Env], object]
    raises: type[BaseException] | None
    setup: Callable[[Env], None] | None = None


def bad_fds(method: str, call: Callable[[Env, object], object]) -> list[Bad]:
    """The fd rows every method taking an fd shares."""
    return [
        Bad(f"{method}-fd-str", lambda e: call(e, "3"), TypeError),
        Bad(f"{method}-fd-float", lambda e: call(e, 3.0), TypeError),
        Bad(f"{method}-fd-None", lambda e: call(e, None), TypeError),
        Bad(f"{method}-fd-negative", lambda e: call(e, -1), ValueError),
        Bad(f"{method}-fd-2**31", lambda e: call(e, 2**31), ValueError),
        Bad(f"{method}-fd-2**64", lambda e: call(e, 2**64), ValueError),
        Bad(f"{method}-fd--2**64", lambda e: call(e, -(2**64)), ValueError),
        Bad(f"{method}-fd-index-negative", lambda e: call(e, Index(-1)), ValueError),
        Bad(f"{method}-fileno-negative", lambda e: call(e, FileNo(-1)), ValueError),
        Bad(f"{method}-fileno-str", lambda e: call(e, FileNo("3")), TypeError),
    ]


def bad_offsets(method: str, call: Callable[[Env, object], object]) -> list[Bad]:
    """The offset rows every positional request shares."""
    return [
        Bad(f"{method}-offset-negative", lambda e: call(e, -1), ValueError),
        Bad(f"{method}-offset-2**63", lambda e: call(e, 2**63), ValueError),
        Bad(f"{method}-offset-2**64", lambda e: call(e, 2**64), ValueError),
        Bad(f"{method}-offset--2**64", lambda e: call(e, -(2**64)), ValueError),
        Bad(f"{method}-offset-float", lambda e: call(e, 1.5), TypeError),
        Bad(f"{method}-offset-str", lambda e: call(e, "0"), TypeError),
        Bad(f"{method}-offset-None", lambda e: call(e, None), TypeError),
    ]


def refusals(method: str, call: Callable[[Env], object]) -> list[Bad]:
    """A request refused by the queue's state: closed, or full either way."""
    return [
        Bad(f"{method}-closed", call, uringq.QueueClosed, closed),
        Bad(f"{method}-sq-full", call, uringq.QueueFull, lambda e: fill(e, SQ)),
        Bad(f"{method}-cq-full", call, uringq.QueueFull, lambda e: in_flight(e, CQ)),
    ]


def bad_paths(method: str, call: Callable[[Env, object], object]) -> list[Bad]:
    """The path rows every path argument shares."""
    return [
        Bad(f"{method}-path-float", lambda e: call(e, 1.5), TypeError),
        Bad(f"{method}-path-None", lambda e: call(e, None), TypeError),
        Bad(f"{method}-path-bytearray", lambda e: call(e, bytearray(b"x")), TypeError),
        Bad(f"{method}-path-nul", lambda e: call(e, "a\0b"), ValueError),
        Bad(f"{method}-path-bytes-nul", lambda e: call(e, b"a\0b"), ValueError),
        Bad(f"{method}-path-bad-fspath", lambda e: call(e, FsPath(3)), TypeError),
        Bad(f"{method}-path-surrogate", lambda e: call(e, "\ud800"), UnicodeEncodeError),
    ]


def bad_dir_fds(method: str, call: Callable[[Env, object], object]) -> list[Bad]:
    """The dir_fd rows every dir_fd argument shares."""
    return [
        Bad(f"{method}-dir_fd-str", lambda e: call(e, "3"), TypeError),
        Bad(f"{method}-dir_fd-float", lambda e: call(e, 3.0), TypeError),
        Bad(f"{method}-dir_fd-2**40", lambda e: call(e, 2**40), ValueError),
        Bad(f"{method}-dir_fd--2**40", lambda e: call(e, -(2**40)), ValueError),
        Bad(f"{method}-dir_fd-2**70", lambda e: call(e, 2**70), ValueError),
        Bad(f"{method}-dir_fd-index-2**40", lambda e: call(e, Index(2**40)), ValueError),
    ]


def bad_c_ints(method: str, call: Callable[[Env, object], object]) -> list[Bad]:
    """The rows of a C int argument such as flags or mode."""
    return [
        Bad(f"{method}-str", lambda e: call(e, "0"), TypeError),
        Bad(f"{method}-float", lambda e: call(e, 1.0), TypeError),
        Bad(f"{method}-2**40", lambda e: call(e, 2**40), ValueError),
        Bad(f"{method}--2**40", lambda e: call(e, -(2**40)), ValueError),
        Bad(f"{method}-2**70", lambda e: call(e, 2**70), ValueError),
    ]


def bad_extras(method: str, call: Callable[..., object], *, timed: bool = False) -> list[Bad]:
    """The rows of ``link``/``hardlink`` (and ``timeout`` where a deadline is taken)."""
    rows = [
        Bad(f"{method}-link-int", lambda e: call(e, link=1), TypeError),
        Bad(f"{method}-link-None", lambda e: call(e, link=None), TypeError),
        Bad(f"{method}-hardlink-str", lambda e: call(e, hardlink="yes"), TypeError),
        Bad(f"{method}-link-and-hardlink", lambda e: call(e, link=True, hardlink=True), ValueError),
        Bad(f"{method}-link-int-closed", lambda e: call(e, link=1), TypeError, closed),
    ]
    if timed:
        rows += [
            Bad(f"{method}-timeout-negative", lambda e: call(e, timeout=-1), ValueError),
            Bad(f"{method}-timeout-nan", lambda e: call(e, timeout=math.nan), ValueError),
            Bad(f"{method}-timeout-str", lambda e: call(e, timeout="1"), TypeError),
            Bad(f"{method}-timeout-bool", lambda e: call(e, timeout=True), TypeError),
        ]
    return rows


def deadline_refusals(method: str, call: Callable[[Env], object]) -> list[Bad]:
    """A request with a deadline takes two entries: refused with one left either way."""
    return [
        Bad(f"{method}-deadline-sq-one-left", call, uringq.QueueFull, lambda e: fill(e, SQ - 1)),
        Bad(
            f"{method}-deadline-cq-one-left",
            call,
            uringq.QueueFull,
            lambda e: in_flight(e, CQ - 1),
        ),
    ]


class FsPath:
    """An ``os.PathLike`` whose ``__fspath__`` returns ``value``."""

    def __init__(self, value: object) -> None:
        self.value = value

    def __fspath__(self) -> object:
        return self.value


class RaisingEq:
    """A user_data whose comparison raises."""

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no comparing")

    __hash__ = object.__hash__


BAD_CALLS: list[Bad] = [
    # register / deregister
    *bad_fds("register", lambda e, fd: e.q.register(fd)),
    Bad("register-not-open", lambda e: e.q.register(closed_fd_number()), OSError),
    Bad("register-closed", lambda e: e.q.register(e.other), uringq.QueueClosed, closed),
    *bad_fds("deregister", lambda e, fd: e.q.deregister(fd)),
    Bad("deregister-unregistered", lambda e: e.q.deregister(e.other), uringq.HandleNotRegistered),
    Bad(
        "deregister-prepared",
        lambda e: e.q.deregister(e.fd),
        uringq.QueueBusy,
        lambda e: fill(e, 1),
    ),
    Bad(
        "deregister-in-flight",
        lambda e: e.q.deregister(e.fd),
        uringq.QueueBusy,
        lambda e: in_flight(e, 2),
    ),
    Bad("deregister-closed", lambda e: e.q.deregister(e.fd), uringq.QueueClosed, closed),
    # prepare_read
    *bad_fds("prepare_read", lambda e, fd: e.q.prepare_read(fd, 0, bytearray(8))),
    Bad(
        "prepare_read-unregistered",
        lambda e: e.q.prepare_read(e.other, 0, bytearray(8)),
        uringq.HandleNotRegistered,
    ),
    *bad_offsets("prepare_read", lambda e, off: e.q.prepare_read(e.fd, off, bytearray(8))),
    Bad("prepare_read-bytes", lambda e: e.q.prepare_read(e.fd, 0, b"12345678"), TypeError),
    Bad(
        "prepare_read-readonly-view",
        lambda e: e.q.prepare_read(e.fd, 0, memoryview(bytearray(8)).toreadonly()),
        TypeError,
    ),
    Bad("prepare_read-str", lambda e: e.q.prepare_read(e.fd, 0, "12345678"), TypeError),
    Bad("prepare_read-None", lambda e: e.q.prepare_read(e.fd, 0, None), TypeError),
    Bad("prepare_read-strided", lambda e: e.q.prepare_read(e.fd, 0, strided()), BufferError),
    *refusals("prepare_read", lambda e: e.q.prepare_read(e.fd, 0, bytearray(8))),
    # prepare_write
    *bad_fds("prepare_write", lambda e, fd: e.q.prepare_write(fd, 0, b"x")),
    Bad(
        "prepare_write-unregistered",
        lambda e: e.q.prepare_write(e.other, 0, b"x"),
        uringq.HandleNotRegistered,
    ),
    *bad_offsets("prepare_write", lambda e, off: e.q.prepare_write(e.fd, off, b"x")),
    Bad("prepare_write-str", lambda e: e.q.prepare_write(e.fd, 0, "x"), TypeError),
    Bad("prepare_write-int", lambda e: e.q.prepare_write(e.fd, 0, 5), TypeError),
    Bad("prepare_write-strided", lambda e: e.q.prepare_write(e.fd, 0, strided()), BufferError),
    *refusals("prepare_write", lambda e: e.q.prepare_write(e.fd, 0, b"x")),
    # prepare_readv / prepare_writev
    *bad_fds("prepare_readv", lambda e, fd: e.q.prepare_readv(fd, 0, [bytearray(8)])),
    *bad_offsets("prepare_readv", lambda e, off: e.q.prepare_readv(e.fd, off, [bytearray(8)])),
    Bad(
        "prepare_readv-unregistered",
        lambda e: e.q.prepare_readv(e.other, 0, [bytearray(8)]),
        uringq.HandleNotRegistered,
    ),
    Bad(
        "prepare_readv-one-buffer",
        lambda e: e.q.prepare_readv(e.fd, 0, bytearray(8)),
        TypeError,
    ),
    Bad("prepare_readv-int", lambda e: e.q.prepare_readv(e.fd, 0, 5), TypeError),
    Bad(
        "prepare_readv-generator",
        lambda e: e.q.prepare_readv(e.fd, 0, (b for b in [bytearray(8)])),
        TypeError,
    ),
    Bad(
        "prepare_readv-bytes-part",
        lambda e: e.q.prepare_readv(e.fd, 0, [bytearray(8), b"x"]),
        TypeError,
    ),
    Bad("prepare_readv-str-part", lambda e: e.q.prepare_readv(e.fd, 0, ["x"]), TypeError),
    Bad("prepare_readv-strided", lambda e: e.q.prepare_readv(e.fd, 0, [strided()]), BufferError),
    *refusals("prepare_readv", lambda e: e.q.prepare_readv(e.fd, 0, [bytearray(8)])),
    *bad_fds("prepare_writev", lambda e, fd: e.q.prepare_writev(fd, 0, [b"x"])),
    *bad_offsets("prepare_writev", lambda e, off: e.q.prepare_writev(e.fd, off, [b"x"])),
    Bad("prepare_writev-one-buffer", lambda e: e.q.prepare_writev(e.fd, 0, b"xy"), TypeError),
    Bad("prepare_writev-str", lambda e: e.q.prepare_writev(e.fd, 0, "xy"), TypeError),
    Bad("prepare_writev-None", lambda e: e.q.prepare_writev(e.fd, 0, None), TypeError),
    Bad("prepare_writev-int-part", lambda e: e.q.prepare_writev(e.fd, 0, [b"x", 5]), TypeError),
    Bad(
        "prepare_writev-strided",
        lambda e: e.q.prepare_writev(e.fd, 0, [b"x", strided()]),
        BufferError,
    ),
    *refusals("prepare_writev", lambda e: e.q.prepare_writev(e.fd, 0, [b"x"])),
    # prepare_sync
    *bad_fds("prepare_sync", lambda e, fd: e.q.prepare_sync(fd)),
    Bad(
        "prepare_sync-unregistered",
        lambda e: e.q.prepare_sync(e.other),
        uringq.HandleNotRegistered,
    ),
    Bad("prepare_sync-datasync-int", lambda e: e.q.prepare_sync(e.fd, datasync=1), TypeError),
    Bad(
        "prepare_sync-datasync-None",
        lambda e: e.q.prepare_sync(e.fd, datasync=None),
        TypeError,
    ),
    *refusals("prepare_sync", lambda e: e.q.prepare_sync(e.fd)),
    # commit
    Bad("commit-empty", lambda e: e.q.commit(), uringq.QueueEmpty),
    Bad("commit-closed", lambda e: e.q.commit(), uringq.QueueClosed, closed),
    # wait
    Bad("wait-nothing-in-flight", lambda e: e.q.wait(), uringq.QueueEmpty),
    Bad("wait-never-met", lambda e: e.q.wait(3), ValueError, lambda e: in_flight(e, 2)),
    Bad("wait-min-negative", lambda e: e.q.wait(-1), ValueError),
    Bad("wait-min-2**64", lambda e: e.q.wait(2**64), ValueError),
    Bad("wait-min-float", lambda e: e.q.wait(1.0), TypeError),
    Bad("wait-min-str", lambda e: e.q.wait("1"), TypeError),
    Bad("wait-min-bool", lambda e: e.q.wait(True), TypeError),
    Bad("wait-max-zero", lambda e: e.q.wait(0, 0, 0), ValueError),
    Bad("wait-max-negative", lambda e: e.q.wait(0, -1, 0), ValueError),
    Bad("wait-max-below-min", lambda e: e.q.wait(2, 1, 0), ValueError),
    Bad("wait-max-float", lambda e: e.q.wait(0, 1.0, 0), TypeError),
    Bad("wait-max-bool", lambda e: e.q.wait(0, True, 0), TypeError),
    Bad("wait-timeout-negative", lambda e: e.q.wait(0, None, -1), ValueError),
    Bad("wait-timeout-nan", lambda e: e.q.wait(0, None, math.nan), ValueError),
    Bad("wait-timeout-str", lambda e: e.q.wait(0, None, "1"), TypeError),
    Bad("wait-timeout-bool", lambda e: e.q.wait(0, None, True), TypeError),
    Bad("wait-timeout-list", lambda e: e.q.wait(0, None, [1]), TypeError),
    Bad("wait-closed", lambda e: e.q.wait(0, None, 0), uringq.QueueClosed, closed),
    Bad(
        "wait-after-wakeup",
        lambda e: e.q.wait(0, None, 0),
        uringq.Interrupted,
        lambda e: e.q.wakeup(),
    ),
    # wakeup, fileno, close
    Bad("wakeup-closed", lambda e: e.q.wakeup(), uringq.QueueClosed, closed),
    Bad("fileno-closed", lambda e: e.q.fileno(), uringq.QueueClosed, closed),
    Bad("close-prepared", lambda e: e.q.close(), uringq.QueueBusy, lambda e: fill(e, 1)),
    Bad("close-in-flight", lambda e: e.q.close(), uringq.QueueBusy, lambda e: in_flight(e, 2)),
    Bad("close-cancel-int", lambda e: e.q.close(cancel=1), TypeError),
    # read_many / write_many
    *bad_fds("read_many", lambda e, fd: e.q.read_many(fd, [0], 8, bytearray(8))),
    Bad(
        "read_many-unregistered",
        lambda e: e.q.read_many(e.other, [0], 8, bytearray(8)),
        uringq.HandleNotRegistered,
    ),
    Bad("read_many-offsets-str", lambda e: e.q.read_many(e.fd, "0", 8, bytearray(8)), TypeError),
    Bad("read_many-offsets-int", lambda e: e.q.read_many(e.fd, 0, 8, bytearray(8)), TypeError),
    Bad(
        "read_many-offsets-None",
        lambda e: e.q.read_many(e.fd, None, 8, bytearray(8)),
        TypeError,
    ),
    Bad(
        "read_many-offset-negative",
        lambda e: e.q.read_many(e.fd, [0, -1], 8, bytearray(16)),
        ValueError,
    ),
    Bad(
        "read_many-offset-2**63",
        lambda e: e.q.read_many(e.fd, [2**63], 8, bytearray(8)),
        ValueError,
    ),
    Bad(
        "read_many-offset-float",
        lambda e: e.q.read_many(e.fd, [1.5], 8, bytearray(8)),
        TypeError,
    ),
    Bad(
        "read_many-offset-str",
        lambda e: e.q.read_many(e.fd, ["0"], 8, bytearray(8)),
        TypeError,
    ),
    Bad(
        "read_many-size-negative", lambda e: e.q.read_many(e.fd, [0], -1, bytearray(8)), ValueError
    ),
    Bad(
        "read_many-size-2**64", lambda e: e.q.read_many(e.fd, [0], 2**64, bytearray(8)), ValueError
    ),
    Bad("read_many-size-bool", lambda e: e.q.read_many(e.fd, [0], True, bytearray(8)), TypeError),
    Bad("read_many-size-float", lambda e: e.q.read_many(e.fd, [0], 8.0, bytearray(8)), TypeError),
    Bad("read_many-size-str", lambda e: e.q.read_many(e.fd, [0], "8", bytearray(8)), TypeError),
    Bad("read_many-out-bytes", lambda e: e.q.read_many(e.fd, [0], 8, bytes(8)), TypeError),
    Bad("read_many-out-str", lambda e: e.q.read_many(e.fd, [0], 8, "x" * 8), TypeError),
    Bad("read_many-out-strided", lambda e: e.q.read_many(e.fd, [0], 8, strided()), BufferError),
    Bad("read_many-out-small", lambda e: e.q.read_many(e.fd, [0, 8], 8, bytearray(15)), ValueError),
    Bad(
        "read_many-depth-zero",
        lambda e: e.q.read_many(e.fd, [0], 8, bytearray(8), depth=0),
        ValueError,
    ),
    Bad(
        "read_many-depth-negative",
        lambda e: e.q.read_many(e.fd, [0], 8, bytearray(8), depth=-1),
        ValueError,
    ),
    Bad(
        "read_many-depth-bool",
        lambda e: e.q.read_many(e.fd, [0], 8, bytearray(8), depth=True),
        TypeError,
    ),
    Bad(
        "read_many-depth-str",
        lambda e: e.q.read_many(e.fd, [0], 8, bytearray(8), depth="2"),
        TypeError,
    ),
    Bad(
        "read_many-closed",
        lambda e: e.q.read_many(e.fd, [0], 8, bytearray(8)),
        uringq.QueueClosed,
        closed,
    ),
    *bad_fds("write_many", lambda e, fd: e.q.write_many(fd, [0], 1, b"x")),
    Bad(
        "write_many-unregistered",
        lambda e: e.q.write_many(e.other, [0], 1, b"x"),
        uringq.HandleNotRegistered,
    ),
    Bad("write_many-offset-negative", lambda e: e.q.write_many(e.fd, [-1], 1, b"x"), ValueError),
    Bad("write_many-size-negative", lambda e: e.q.write_many(e.fd, [0], -1, b"x"), ValueError),
    Bad("write_many-size-bool", lambda e: e.q.write_many(e.fd, [0], True, b"x"), TypeError),
    Bad("write_many-data-str", lambda e: e.q.write_many(e.fd, [0], 1, "x"), TypeError),
    Bad("write_many-data-strided", lambda e: e.q.write_many(e.fd, [0], 1, strided()), BufferError),
    Bad("write_many-data-small", lambda e: e.q.write_many(e.fd, [0, 4], 4, b"1234567"), ValueError),
    Bad(
        "write_many-depth-zero",
        lambda e: e.q.write_many(e.fd, [0], 1, b"x", depth=0),
        ValueError,
    ),
    Bad(
        "write_many-closed",
        lambda e: e.q.write_many(e.fd, [0], 1, b"x"),
        uringq.QueueClosed,
        closed,
    ),
    # register_buffer / deregister_buffer
    Bad("register_buffer-bytes", lambda e: e.q.register_buffer(b"x" * 8), TypeError),
    Bad("register_buffer-str", lambda e: e.q.register_buffer("x"), TypeError),
    Bad("register_buffer-strided", lambda e: e.q.register_buffer(strided()), BufferError),
    Bad(
        "register_buffer-closed",
        lambda e: e.q.register_buffer(bytearray(8)),
        uringq.QueueClosed,
        closed,
    ),
    Bad("deregister_buffer-closed", lambda e: e.q.deregister_buffer(), uringq.QueueClosed, closed),
    # the operations of SPEC 8: paths, dir fds, flags, modes, seconds, fds, lengths
    *bad_paths("prepare_openat", lambda e, p: e.q.prepare_openat(p)),
    *bad_dir_fds("prepare_openat", lambda e, d: e.q.prepare_openat("x", dir_fd=d)),
    *bad_c_ints("prepare_openat-flags", lambda e, v: e.q.prepare_openat("x", v)),
    *bad_c_ints("prepare_openat-mode", lambda e, v: e.q.prepare_openat("x", 0, v)),
    *bad_extras("prepare_openat", lambda e, **kw: e.q.prepare_openat("x", **kw), timed=True),
    *refusals("prepare_openat", lambda e: e.q.prepare_openat("x")),
    *bad_fds("prepare_close", lambda e, fd: e.q.prepare_close(fd)),
    *bad_extras("prepare_close", lambda e, **kw: e.q.prepare_close(99, **kw)),
    *refusals("prepare_close", lambda e: e.q.prepare_close(99)),
    *bad_paths("prepare_statx", lambda e, p: e.q.prepare_statx(p)),
    *bad_dir_fds("prepare_statx", lambda e, d: e.q.prepare_statx("x", dir_fd=d)),
    Bad("prepare_statx-fd-and-dir_fd", lambda e: e.q.prepare_statx(3, dir_fd=4), ValueError),
    Bad("prepare_statx-fd-2**40", lambda e: e.q.prepare_statx(2**40), ValueError),
    Bad("prepare_statx-fd-2**70", lambda e: e.q.prepare_statx(-(2**70)), ValueError),
    Bad(
        "prepare_statx-follow-None",
        lambda e: e.q.prepare_statx("x", follow_symlinks=None),
        TypeError,
    ),
    Bad(
        "order-follow-before-closed",
        lambda e: e.q.prepare_statx("x", follow_symlinks=1),
        TypeError,
        closed,
    ),
    Bad(
        "order-dir_fd-before-fd-path",
        lambda e: e.q.prepare_statx(2**40, dir_fd=4),
        ValueError,
    ),
    *bad_extras("prepare_statx", lambda e, **kw: e.q.prepare_statx("x", **kw), timed=True),
    *refusals("prepare_statx", lambda e: e.q.prepare_statx("x")),
    Bad("prepare_timeout-None", lambda e: e.q.prepare_timeout(None), TypeError),
    Bad("prepare_timeout-bool", lambda e: e.q.prepare_timeout(True), TypeError),
    Bad("prepare_timeout-str", lambda e: e.q.prepare_timeout("1"), TypeError),
    Bad("prepare_timeout-list", lambda e: e.q.prepare_timeout([1]), TypeError),
    Bad("prepare_timeout-10**400", lambda e: e.q.prepare_timeout(10**400), TypeError),
    Bad("prepare_timeout-negative", lambda e: e.q.prepare_timeout(-0.5), ValueError),
    Bad("prepare_timeout-nan", lambda e: e.q.prepare_timeout(math.nan), ValueError),
    *bad_extras("prepare_timeout", lambda e, **kw: e.q.prepare_timeout(1, **kw)),
    *refusals("prepare_timeout", lambda e: e.q.prepare_timeout(1)),
    *bad_paths("prepare_renameat-src", lambda e, p: e.q.prepare_renameat(p, "y")),
    *bad_paths("prepare_renameat-dst", lambda e, p: e.q.prepare_renameat("x", p)),
    *bad_dir_fds("prepare_renameat-src", lambda e, d: e.q.prepare_renameat("x", "y", src_dir_fd=d)),
    *bad_dir_fds("prepare_renameat-dst", lambda e, d: e.q.prepare_renameat("x", "y", dst_dir_fd=d)),
    *bad_extras("prepare_renameat", lambda e, **kw: e.q.prepare_renameat("x", "y", **kw)),
    *refusals("prepare_renameat", lambda e: e.q.prepare_renameat("x", "y")),
    *bad_paths("prepare_unlinkat", lambda e, p: e.q.prepare_unlinkat(p)),
    *bad_dir_fds("prepare_unlinkat", lambda e, d: e.q.prepare_unlinkat("x", dir_fd=d)),
    Bad("prepare_unlinkat-rmdir-int", lambda e: e.q.prepare_unlinkat("x", rmdir=1), TypeError),
    *bad_extras("prepare_unlinkat", lambda e, **kw: e.q.prepare_unlinkat("x", **kw)),
    *refusals("prepare_unlinkat", lambda e: e.q.prepare_unlinkat("x")),
    *bad_paths("prepare_mkdirat", lambda e, p: e.q.prepare_mkdirat(p)),
    *bad_dir_fds("prepare_mkdirat", lambda e, d: e.q.prepare_mkdirat("x", dir_fd=d)),
    *bad_c_ints("prepare_mkdirat-mode", lambda e, v: e.q.prepare_mkdirat("x", v)),
    *bad_extras("prepare_mkdirat", lambda e, **kw: e.q.prepare_mkdirat("x", **kw)),
    *refusals("prepare_mkdirat", lambda e: e.q.prepare_mkdirat("x")),
    *bad_paths("prepare_symlinkat-target", lambda e, p: e.q.prepare_symlinkat(p, "y")),
    *bad_paths("prepare_symlinkat-linkpath", lambda e, p: e.q.prepare_symlinkat("x", p)),
    *bad_dir_fds("prepare_symlinkat", lambda e, d: e.q.prepare_symlinkat("x", "y", dir_fd=d)),
    *bad_extras("prepare_symlinkat", lambda e, **kw: e.q.prepare_symlinkat("x", "y", **kw)),
    *refusals("prepare_symlinkat", lambda e: e.q.prepare_symlinkat("x", "y")),
    *bad_paths("prepare_linkat-src", lambda e, p: e.q.prepare_linkat(p, "y")),
    *bad_paths("prepare_linkat-dst", lambda e, p: e.q.prepare_linkat("x", p)),
    *bad_dir_fds("prepare_linkat-src", lambda e, d: e.q.prepare_linkat("x", "y", src_dir_fd=d)),
    *bad_dir_fds("prepare_linkat-dst", lambda e, d: e.q.prepare_linkat("x", "y", dst_dir_fd=d)),
    Bad(
        "prepare_linkat-follow-int",
        lambda e: e.q.prepare_linkat("x", "y", follow_symlinks=0),
        TypeError,
    ),
    *bad_extras("prepare_linkat", lambda e, **kw: e.q.prepare_linkat("x", "y", **kw)),
    *refusals("prepare_linkat", lambda e: e.q.prepare_linkat("x", "y")),
    *bad_fds("prepare_ftruncate", lambda e, fd: e.q.prepare_ftruncate(fd, 0)),
    Bad("prepare_ftruncate-length-negative", lambda e: e.q.prepare_ftruncate(99, -1), ValueError),
    Bad("prepare_ftruncate-length-2**63", lambda e: e.q.prepare_ftruncate(99, 2**63), ValueError),
    Bad("prepare_ftruncate-length-2**64", lambda e: e.q.prepare_ftruncate(99, 2**64), ValueError),
    Bad("prepare_ftruncate-length-float", lambda e: e.q.prepare_ftruncate(99, 1.5), TypeError),
    Bad("prepare_ftruncate-length-str", lambda e: e.q.prepare_ftruncate(99, "1"), TypeError),
    Bad(
        "order-fd-before-length",
        lambda e: e.q.prepare_ftruncate(-1, "1"),
        ValueError,
    ),
    *bad_extras("prepare_ftruncate", lambda e, **kw: e.q.prepare_ftruncate(99, 0, **kw)),
    *refusals("prepare_ftruncate", lambda e: e.q.prepare_ftruncate(99, 0)),
    # link/hardlink/timeout on the data requests
    *bad_extras(
        "prepare_read", lambda e, **kw: e.q.prepare_read(e.fd, 0, bytearray(8), **kw), timed=True
    ),
    *bad_extras(
        "prepare_write", lambda e, **kw: e.q.prepare_write(e.fd, 0, b"x", **kw), timed=True
    ),
    *bad_extras(
        "prepare_readv",
        lambda e, **kw: e.q.prepare_readv(e.fd, 0, [bytearray(8)], **kw),
        timed=True,
    ),
    *bad_extras(
        "prepare_writev", lambda e, **kw: e.q.prepare_writev(e.fd, 0, [b"x"], **kw), timed=True
    ),
    *bad_extras("prepare_sync", lambda e, **kw: e.q.prepare_sync(e.fd, **kw)),
    *refusals("prepare_read-linked", lambda e: e.q.prepare_read(e.fd, 0, bytearray(8), link=True)),
    *refusals("prepare_sync-hardlinked", lambda e: e.q.prepare_sync(e.fd, hardlink=True)),
    *deadline_refusals(
        "prepare_read", lambda e: e.q.prepare_read(e.fd, 0, bytearray(8), timeout=1)
    ),
    *deadline_refusals("prepare_openat", lambda e: e.q.prepare_openat("x", timeout=1)),
    *deadline_refusals("prepare_statx", lambda e: e.q.prepare_statx("x", timeout=1)),
    Bad(
        "prepare_read-linked-unregistered",
        lambda e: e.q.prepare_read(e.other, 0, bytearray(8), link=True),
        uringq.HandleNotRegistered,
    ),
    Bad(
        "order-link-type-before-closed",
        lambda e: e.q.prepare_read(e.fd, 0, bytearray(8), hardlink=None),
        TypeError,
        closed,
    ),
    Bad(
        "order-buffer-before-link-flags",
        lambda e: e.q.prepare_read(e.fd, 0, b"x", link=True, hardlink=True),
        TypeError,
    ),
    Bad(
        "order-link-flags-before-timeout",
        lambda e: e.q.prepare_read(e.fd, 0, bytearray(8), link=True, hardlink=True, timeout=-1),
        ValueError,
    ),
    Bad(
        "order-timeout-before-registration",
        lambda e: e.q.prepare_read(e.other, 0, bytearray(8), timeout="x"),
        TypeError,
    ),
    Bad(
        "order-path-before-dir_fd",
        lambda e: e.q.prepare_openat(1.5, dir_fd="x"),
        TypeError,
    ),
    Bad(
        "order-dir_fd-before-flags",
        lambda e: e.q.prepare_openat("x", "r", dir_fd="x"),
        TypeError,
    ),
    Bad(
        "order-flags-before-mode",
        lambda e: e.q.prepare_openat("x", 2**40, "r"),
        ValueError,
    ),
    Bad(
        "order-mode-before-link-flags",
        lambda e: e.q.prepare_openat("x", 0, "r", link=True, hardlink=True),
        TypeError,
    ),
    Bad(
        "order-dir_fd-before-mode",
        lambda e: e.q.prepare_mkdirat("x", "r", dir_fd="x"),
        TypeError,
    ),
    Bad(
        "order-src-before-dst",
        lambda e: e.q.prepare_renameat(None, b"a\0b"),
        TypeError,
    ),
    Bad(
        "order-dst-before-dir_fds",
        lambda e: e.q.prepare_linkat("x", None, src_dir_fd="x"),
        TypeError,
    ),
    Bad(
        "order-path-before-closed",
        lambda e: e.q.prepare_unlinkat(1.5),
        uringq.QueueClosed,
        closed,
    ),
    # cancel
    Bad("cancel-closed", lambda e: e.q.cancel(1), uringq.QueueClosed, closed),
    Bad("cancel-nothing", lambda e: e.q.cancel(1), None),
    Bad(
        "cancel-raising-eq",
        lambda e: e.q.cancel(RaisingEq()),
        RuntimeError,
        lambda e: in_flight(e, 2),
    ),
    # the counters and close() of a closed queue answer without raising
    Bad("prepared-closed", lambda e: e.q.prepared, None, closed),
    Bad("in_flight-closed", lambda e: e.q.in_flight, None, closed),
    Bad("closed-closed", lambda e: e.q.closed, None, closed),
    Bad("close-closed", lambda e: e.q.close(), None, closed),
    # several bad arguments: the same one is reported first
    Bad(
        "order-closed-before-fd",
        lambda e: e.q.prepare_read("3", 0, b"x"),
        uringq.QueueClosed,
        closed,
    ),
    Bad("order-fd-before-offset", lambda e: e.q.prepare_read("3", -1, b"x"), TypeError),
    Bad("order-offset-before-buffer", lambda e: e.q.prepare_read(e.fd, -1, b"x"), ValueError),
    Bad(
        "order-buffer-before-registration",
        lambda e: e.q.prepare_read(e.other, 0, b"x"),
        TypeError,
    ),
    Bad(
        "order-registration-before-capacity",
        lambda e: e.q.prepare_read(e.other, 0, bytearray(8)),
        uringq.HandleNotRegistered,
        lambda e: fill(e, SQ),
    ),
    Bad(
        "order-contiguity-before-writability",
        lambda e: e.q.prepare_read(e.fd, 0, memoryview(b"abcd")[::2]),
        BufferError,
    ),
    Bad(
        "order-datasync-before-closed",
        lambda e: e.q.prepare_sync(e.fd, datasync=1),
        TypeError,
        closed,
    ),
    Bad("order-cancel-before-busy", lambda e: e.q.close(cancel=1), TypeError, lambda e: fill(e, 1)),
    Bad("order-timeout-before-max-below-min", lambda e: e.q.wait(2, 1, -1), ValueError),
    Bad("order-min-before-max", lambda e: e.q.wait(-1, 0, 0), ValueError),
    Bad(
        "order-offsets-before-registration",
        lambda e: e.q.read_many(e.other, [-1], 8, bytearray(8)),
        ValueError,
    ),
    Bad(
        "order-depth-before-buffer",
        lambda e: e.q.read_many(e.fd, [0], 8, bytes(8), depth=0),
        ValueError,
    ),
    Bad(
        "order-buffer-before-size-check",
        lambda e: e.q.read_many(e.fd, [0, 8], 8, bytes(8)),
        TypeError,
    ),
]


def outcome(run: Callable[[], object]) -> tuple[Any, ...]:
    """What a call did, in comparable form: its result, or its exception's type, errno
    (for an ``OSError``) and message (with the completions it carries, if any)."""
    try:
        value = run()
    except Exception as exc:
        code = exc.errno if isinstance(exc, OSError) else None
        carried = getattr(exc, "completions", None)
        return (type(exc), code, str(exc), None if carried is None else len(carried))
    return ("returned", repr(value))


@pytest.fixture
def make_env(tmp_path: Any) -> Iterator[Callable[[str], Env]]:
    """``make_env(provider)``: a fresh small queue with ``fd`` registered; the fds are
    the same for every provider, so messages that name an fd compare equal."""
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 16)
    fd = os.open(path, os.O_RDWR)
    other = os.open(path, os.O_RDONLY)
    pipe_r, pipe_w = os.pipe()
    queues: list[uringq.IoQueue] = []

    def make(provider: str) -> Env:
        q = uringq.IoQueue(SQ, CQ, provider=provider)
        queues.append(q)
        q.register(fd)
        return Env(q, fd, other, pipe_r)

    yield make
    for q in queues:
        q.close(cancel=True)
    for number in (fd, other, pipe_r, pipe_w):
        os.close(number)


def run_bad(env: Env, bad: Bad) -> tuple[Any, ...]:
    """Set up ``bad``'s state on ``env``, then make the call; check it queued nothing."""
    if bad.setup is not None:
        bad.setup(env)
    before = (env.q.prepared, env.q.in_flight)
    result = outcome(lambda: bad.call(env))
    assert (env.q.prepared, env.q.in_flight) == before, f"{bad.name} changed the counters"
    return result


@pytest.mark.parametrize("bad", BAD_CALLS, ids=[bad.name for bad in BAD_CALLS])
def test_bad_call_raises_the_documented_exception(provider, make_env, bad):
    result = run_bad(make_env(provider), bad)
    assert result[0] is (bad.raises or "returned"), f"{bad.name} on {provider}: {result}"


@needs_both
@pytest.mark.parametrize("bad", BAD_CALLS, ids=[bad.name for bad in BAD_CALLS])
def test_bad_call_speaks_with_one_voice(make_env, bad):
    io_uring = run_bad(make_env("io_uring"), bad)
    threadpool = run_bad(make_env("threadpool"), bad)
    assert io_uring == threadpool


# --- IoQueue(...) sizes -----------------------------------------------------------------------

BAD_SIZES: list[tuple[str, tuple[Any, ...], type[BaseException]]] = [
    ("sq-zero", (0,), ValueError),
    ("sq-negative", (-1,), ValueError),
    ("sq-too-big", (32769,), ValueError),
    ("sq-2**64", (2**64,), ValueError),
    ("sq-str", ("8",), TypeError),
    ("sq-float", (8.0,), TypeError),
    ("sq-bool", (True,), TypeError),
    ("cq-below-sq", (8, 4), ValueError),
    ("cq-below-rounded-sq", (5, 6), ValueError),
    ("cq-too-big", (8, 65537), ValueError),
    ("cq-str", (8, "16"), TypeError),
    ("cq-bool", (1, True), TypeError),
]


@pytest.mark.parametrize(
    ("sizes", "raises"), [row[1:] for row in BAD_SIZES], ids=[row[0] for row in BAD_SIZES]
)
def test_bad_queue_sizes_raise_the_documented_exception(provider, sizes, raises):
    result = outcome(lambda: uringq.IoQueue(*sizes, provider=provider))
    assert result[0] is raises, result


@needs_both
@pytest.mark.parametrize("sizes", [row[1] for row in BAD_SIZES], ids=[row[0] for row in BAD_SIZES])
def test_bad_queue_sizes_speak_with_one_voice(sizes):
    assert outcome(lambda: uringq.IoQueue(*sizes, provider="io_uring")) == outcome(
        lambda: uringq.IoQueue(*sizes, provider="threadpool")
    )


# --- a waiter whose queue another thread closes -------------------------------------------------


def closed_under_waiter(env: Env, pending: bool) -> tuple[Any, ...]:
    """Close ``env.q`` from this thread while another waits on it; the waiter's outcome.

    ``pending``: a read of an empty pipe is in flight and ``close(cancel=True)`` drops
    it; otherwise the waiter waits with a timeout on an idle queue and ``close()`` ends it.
    """
    q = env.q
    if pending:
        q.register(env.pipe_r)
        q.prepare_read(env.pipe_r, 0, bytearray(8), "pending")
        q.commit()
    results: list[tuple[Any, ...]] = []
    waiter = threading.Thread(target=lambda: results.append(outcome(lambda: q.wait(1, None, 30))))
    waiter.start()
    time.sleep(0.2)  # let it block
    q.close(cancel=pending)
    waiter.join(10)
    assert not waiter.is_alive(), "the waiter did not wake up when its queue was closed"
    return results[0]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("pending", [False, True], ids=["idle", "pending"])
def test_a_waiter_gets_QueueClosed_when_another_thread_closes_the_queue(
    provider, make_env, pending
):
    result = closed_under_waiter(make_env(provider), pending)
    assert result[0] is uringq.QueueClosed, result


@needs_both
@pytest.mark.timeout(30)
@pytest.mark.parametrize("pending", [False, True], ids=["idle", "pending"])
def test_a_waiter_of_a_closed_queue_hears_one_voice(make_env, pending):
    assert closed_under_waiter(make_env("io_uring"), pending) == closed_under_waiter(
        make_env("threadpool"), pending
    )


# --- every method in a forked child -----------------------------------------------------------

FORKED_CALLS: dict[str, Callable[[Env], object]] = {
    "register": lambda e: e.q.register(e.other),
    "deregister": lambda e: e.q.deregister(e.fd),
    "prepare_read": lambda e: e.q.prepare_read(e.fd, 0, bytearray(8)),
    "prepare_write": lambda e: e.q.prepare_write(e.fd, 0, b"x"),
    "prepare_readv": lambda e: e.q.prepare_readv(e.fd, 0, [bytearray(8)]),
    "prepare_writev": lambda e: e.q.prepare_writev(e.fd, 0, [b"x"]),
    "prepare_sync": lambda e: e.q.prepare_sync(e.fd),
    "commit": lambda e: e.q.commit(),
    "wait": lambda e: e.q.wait(0, None, 0),
    "wakeup": lambda e: e.q.wakeup(),
    "fileno": lambda e: e.q.fileno(),
    "read_many": lambda e: e.q.read_many(e.fd, [0], 8, bytearray(8)),
    "write_many": lambda e: e.q.write_many(e.fd, [0], 1, b"x"),
    "register_buffer": lambda e: e.q.register_buffer(bytearray(8)),
    "deregister_buffer": lambda e: e.q.deregister_buffer(),
    "prepare_openat": lambda e: e.q.prepare_openat("x"),
    "prepare_close": lambda e: e.q.prepare_close(99),
    "prepare_statx": lambda e: e.q.prepare_statx("x"),
    "prepare_timeout": lambda e: e.q.prepare_timeout(1),
    "prepare_renameat": lambda e: e.q.prepare_renameat("x", "y"),
    "prepare_unlinkat": lambda e: e.q.prepare_unlinkat("x"),
    "prepare_mkdirat": lambda e: e.q.prepare_mkdirat("x"),
    "prepare_symlinkat": lambda e: e.q.prepare_symlinkat("x", "y"),
    "prepare_linkat": lambda e: e.q.prepare_linkat("x", "y"),
    "prepare_ftruncate": lambda e: e.q.prepare_ftruncate(99, 0),
    "prepare_read-linked": lambda e: e.q.prepare_read(e.fd, 0, bytearray(8), link=True),
    "cancel": lambda e: e.q.cancel(1),
    "prepared": lambda e: e.q.prepared,
    "in_flight": lambda e: e.q.in_flight,
    "closed": lambda e: e.q.closed,
    "close": lambda e: e.q.close(),
}


def in_forked_child(env: Env) -> str:
    """Every method's outcome in a forked child, one line each."""

    def child() -> str:
        lines = []
        for name, call in FORKED_CALLS.items():
            result = outcome(lambda call=call: call(env))
            kind = result[0] if isinstance(result[0], str) else result[0].__name__
            lines.append(f"{name}: {kind} {result[1:]}")
        return "\n".join(lines)

    code, report = run_in_child(child)
    assert code == 1, report  # run_in_child: a non-empty report exits 1
    return report


@pytest.mark.timeout(60)
def test_every_method_in_a_forked_child_raises_RuntimeError(provider, make_env):
    report = in_forked_child(make_env(provider))
    for line in report.splitlines():
        name, _, rest = line.partition(": ")
        expected = "returned" if name in ("closed", "close") else "RuntimeError"
        assert rest.startswith(expected), line


@needs_both
@pytest.mark.timeout(60)
def test_a_forked_child_hears_one_voice(make_env):
    assert in_forked_child(make_env("io_uring")) == in_forked_child(make_env("threadpool"))
