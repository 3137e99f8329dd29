"""SPEC 8 and closing: the operations, chains, timers, deadlines and cancel leave no fd,
thread or pinned buffer behind, whatever becomes of the queue (closed with requests
pending, collected, reaped in full), and no error path changes the fd count.

Runs on every provider. Threads are counted as ``test_soak`` does (Python's and the
process's, io_uring's own ``iou-*`` kernel workers aside), after letting closed queues'
threads leave.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import os
import pathlib
import threading
from collections.abc import Callable
from typing import Any

import pytest
import uringq
from helpers.proc import Gauge, open_fds
from helpers.queueing import collect, settle


@pytest.fixture
def pipes() -> Any:
    made: list[tuple[int, int]] = []

    def make(count: int) -> list[tuple[int, int]]:
        made.extend(os.pipe() for _ in range(count))
        return made[-count:]

    yield make
    for r, w in made:
        for fd in (r, w):
            with contextlib.suppress(OSError):
                os.close(fd)


def resizable(buf: bytearray) -> bool:
    try:
        buf.append(0)
    except BufferError:
        return False
    buf.pop()
    return True


def timer_threads() -> list[str]:
    """The threadpool provider's timer threads alive now (close() ends its queue's)."""
    return [t.name for t in threading.enumerate() if t.name.endswith("-timers") and t.is_alive()]


def errnos(done: list[uringq.Completion]) -> dict[Any, int]:
    return {c.user_data: c.error.errno if c.error else 0 for c in done}


def stream_scenario(provider: str, r: int, r2: int, path: pathlib.Path, bufs: list[bytearray]):
    """A pipe read with a deadline, a chain behind a timer and a cancelled stream read,
    reaped in full, then the queue closed."""
    q = uringq.IoQueue(provider=provider)
    q.register(r)
    q.register(r2)
    q.prepare_read(r, 0, bufs[0], "deadline", timeout=0.02)
    q.prepare_timeout(0.01, user_data="timer", link=True)
    q.prepare_statx(path, user_data="after timer", link=True)
    q.prepare_openat(path, user_data="open")
    q.prepare_read(r2, 0, bufs[1], "cancelled")
    q.commit()
    assert q.cancel("cancelled") == 1
    done = errnos(collect(q, 5))
    assert done == {
        "deadline": errno.ETIMEDOUT,
        "timer": 0,
        "after timer": 0,
        "open": 0,
        "cancelled": errno.ECANCELED,
    }
    return q


@pytest.mark.timeout(120)
def test_timed_pipe_reads_timer_chains_and_cancelled_stream_reads_leave_nothing(
    provider, pipes, tmp_path
):
    path = tmp_path / "f"
    path.write_bytes(b"data")
    (r, _), (r2, _) = pipes(2)
    bufs = [bytearray(8) for _ in range(2)]

    def once() -> None:
        q = stream_scenario(provider, r, r2, path, bufs)
        for fd in list(open_fds()):  # the open's fd: the caller's, so close it here
            with contextlib.suppress(OSError):
                if os.path.samefile(f"/proc/self/fd/{fd}", path):
                    os.close(fd)
        q.close()
        assert timer_threads() == []
        assert all(resizable(b) for b in bufs)

    once()
    gauge = Gauge()
    for _ in range(30):
        once()
    gauge.assert_flat("30 queues: deadline, timer chain, cancelled stream read")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("end", ["close(cancel=True)", "garbage collection"])
def test_pending_timers_chains_deadlines_and_opens_are_dropped_with_the_queue(
    provider, pipes, tmp_path, end
):
    """A long timer with a chain held behind it, a pipe read with a far deadline, a
    stream read, an open completed but never returned: closing (or collecting) the queue
    ends them all, closes the opened fd and unpins every buffer."""
    path = tmp_path / "f"
    path.write_bytes(b"data")
    (r, _), (r2, _) = pipes(2)
    kept: list[bytearray] = []

    def once() -> None:
        q = uringq.IoQueue(provider=provider)
        q.register(r)
        q.register(r2)
        bufs = [bytearray(8) for _ in range(3)]
        kept.extend(bufs)
        q.prepare_timeout(60, user_data="long", link=True)
        q.prepare_read(r, 0, bufs[0], "held", hardlink=True)
        q.prepare_mkdirat(tmp_path / "never", user_data="never")
        q.prepare_read(r, 0, bufs[1], "deadline", timeout=60)
        q.prepare_read(r2, 0, bufs[2], "stream")
        q.prepare_openat(path, user_data="opened, never returned")
        q.commit()
        settle(0.05)
        if end == "close(cancel=True)":
            q.close(cancel=True)
            assert timer_threads() == []
        else:
            q.prepare_statx(path, user_data={"cycle": q})  # prepared only: a cycle to collect
            del q
            gc.collect()

    once()
    gauge = Gauge()
    for _ in range(20):
        once()
    gauge.assert_flat(f"20 queues ended by {end}")
    assert not (tmp_path / "never").exists()
    for buf in kept:
        buf.extend(b"x")  # BufferError if a dropped request still pinned it


ErrorPath = Callable[[uringq.IoQueue, pathlib.Path], None]


def refused(call: Callable[[], object], *errors: type[BaseException]) -> None:
    with pytest.raises(errors):
        call()


def fill(q: uringq.IoQueue) -> None:
    while q.prepared < q.sq_entries:
        q.prepare_timeout(0)


ERROR_PATHS: dict[str, ErrorPath] = {
    "openat ENOENT": lambda q, p: q.prepare_openat(p / "missing"),
    "openat EEXIST": lambda q, p: q.prepare_openat(p / "f", os.O_CREAT | os.O_EXCL | os.O_WRONLY),
    "openat EISDIR": lambda q, p: q.prepare_openat(p, os.O_WRONLY),
    "openat after a failing link": lambda q, p: (
        q.prepare_statx(p / "missing", link=True),
        q.prepare_openat(p / "f"),
    ),
    "openat after a cancelled timer": lambda q, p: (
        q.prepare_timeout(60, user_data="long", link=True),
        q.prepare_openat(p / "f"),
    ),
    "close EBADF": lambda q, p: q.prepare_close(2**31 - 1),
    "ftruncate EBADF": lambda q, p: q.prepare_ftruncate(2**31 - 1, 0),
    "statx ENOENT": lambda q, p: q.prepare_statx(p / "missing"),
    "statx of a closed fd": lambda q, p: q.prepare_statx(2**31 - 1),
    "path operations failing": lambda q, p: (
        q.prepare_mkdirat(p, hardlink=True),
        q.prepare_renameat(p / "missing", p / "x", hardlink=True),
        q.prepare_unlinkat(p / "missing", hardlink=True),
        q.prepare_symlinkat("t", p / "f", hardlink=True),
        q.prepare_linkat(p / "missing", p / "y"),
    ),
    "bad arguments": lambda q, p: (
        refused(lambda: q.prepare_openat("a\0b"), ValueError),
        refused(lambda: q.prepare_openat(p, dir_fd="3"), TypeError),
        refused(lambda: q.prepare_statx(3, dir_fd=3), ValueError),
        refused(lambda: q.prepare_timeout(-1), ValueError),
        refused(lambda: q.prepare_close(-1), ValueError),
        refused(lambda: q.prepare_ftruncate(0, -1), ValueError),
        refused(lambda: q.prepare_openat(p, link=True, hardlink=True), ValueError),
        refused(lambda: q.prepare_openat(p, timeout="soon"), TypeError),
        refused(lambda: q.prepare_linkat(p, None), TypeError),
        refused(q.cancel, TypeError),  # no user_data
    ),
    "refused: the queue is full": lambda q, p: (
        fill(q),
        refused(lambda: q.prepare_openat(p / "f"), uringq.QueueFull),
        refused(lambda: q.prepare_statx(p / "f", timeout=1), uringq.QueueFull),
    ),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", list(ERROR_PATHS))
def test_error_paths_of_the_operations_leave_the_fd_count_unchanged(provider, tmp_path, name):
    (tmp_path / "f").write_bytes(b"data")
    path = ERROR_PATHS[name]
    for _ in range(2):  # the first round may start a queue's threads
        before = open_fds()
        with uringq.IoQueue(8, provider=provider) as q:
            path(q, tmp_path)
            if q.prepared:
                q.commit()
            q.cancel("long")
            done = collect(q, q.in_flight)
            if not name.startswith("refused"):
                assert not any(c.ok for c in done), done
        assert open_fds() == before, name
