"""The native queue's hooks for ``uringq.aio``: ``_prepare_read_bytes`` and ``_settle_futures``.

``uringq.aio`` uses them when the provider has them (io_uring): the kernel reads into a
``bytes`` object allocated for the request, and completions settle their futures without
``Completion`` objects. Both must keep the queue's guarantees: arguments checked before
anything is queued, nothing lost or settled twice, no uninitialised byte ever visible.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
import threading
import time
from collections.abc import Iterator

import pytest
import uringq
from uringq import HandleNotRegistered, QueueClosed

pytestmark = pytest.mark.skipif(
    not uringq.get_provider("io_uring").available, reason="io_uring unavailable"
)

CONTENTS = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def native(tmp_path) -> Iterator[tuple[object, int]]:
    """A native queue with a registered read-only fd on a 10240-byte file."""
    from uringq import _native

    path = tmp_path / "data"
    path.write_bytes(CONTENTS)
    fd = os.open(path, os.O_RDONLY)
    q = _native.NativeQueue(8, 16)
    q.register(fd)
    yield q, fd
    q.close(cancel=True)
    os.close(fd)


def settle_all(q, expected: int) -> int:
    """Commit, then settle until ``expected`` futures were settled."""
    q.commit()
    total = 0
    deadline = time.monotonic() + 5
    while total < expected and time.monotonic() < deadline:
        total += q._settle_futures(1.0)
    return total


def test_read_bytes_settles_each_future_with_the_bytes_read(native, loop):
    q, fd = native
    cases = [(0, 4096), (4096, 100), (10000, 4096), (20000, 16), (5, 0)]
    futs = [loop.create_future() for _ in cases]
    for (offset, size), fut in zip(cases, futs, strict=True):
        q._prepare_read_bytes(fd, offset, size, fut)
    assert settle_all(q, len(cases)) == len(cases)
    for (offset, size), fut in zip(cases, futs, strict=True):
        value = fut.result()
        assert type(value) is bytes
        assert value == CONTENTS[offset : offset + size]  # short at EOF, b"" past it
    assert q.in_flight == 0


def test_settle_sets_the_errno_exception_and_counts_for_plain_requests(native, loop, tmp_path):
    q, fd = native
    wfd = os.open(tmp_path / "w", os.O_WRONLY | os.O_CREAT)
    try:
        q.register(wfd)
        bad, good, sync = loop.create_future(), loop.create_future(), loop.create_future()
        q._prepare_read_bytes(wfd, 0, 10, bad)  # a write-only fd: the kernel says EBADF
        q.prepare_read(fd, 0, bytearray(7), good)
        q.prepare_sync(wfd, sync)
        assert settle_all(q, 3) == 3
        with pytest.raises(OSError) as info:
            bad.result()
        assert info.value.errno == errno.EBADF
        assert good.result() == 7
        assert sync.result() == 0
        q.deregister(wfd)
    finally:
        os.close(wfd)


def test_a_cancelled_future_is_skipped_and_its_result_dropped(native, loop):
    q, fd = native
    cancelled, live = loop.create_future(), loop.create_future()
    q._prepare_read_bytes(fd, 0, 64, cancelled)
    q._prepare_read_bytes(fd, 64, 64, live)
    cancelled.cancel()
    assert settle_all(q, 2) == 2
    assert cancelled.cancelled()
    assert live.result() == CONTENTS[64:128]
    assert q.in_flight == 0


@pytest.mark.parametrize(
    ("args", "exc"),
    [
        ((-1, 0, 16), ValueError),
        (("x", 0, 16), TypeError),
        ((None, -5, 16), ValueError),
        ((None, 0, -1), ValueError),
        ((None, 0, 2**70), ValueError),
        ((None, 0, "16"), TypeError),
        ((None, 2**64, 16), ValueError),
    ],
)
def test_bad_arguments_raise_before_anything_is_queued(native, loop, args, exc):
    q, fd = native
    fd_arg, offset, size = args
    with pytest.raises(exc):
        q._prepare_read_bytes(fd if fd_arg is None else fd_arg, offset, size, None)
    assert q.prepared == 0


def test_an_unregistered_fd_is_refused(native, loop):
    q, fd = native
    other = os.dup(fd)
    try:
        with pytest.raises(HandleNotRegistered):
            q._prepare_read_bytes(other, 0, 8, loop.create_future())
        assert q.prepared == 0
    finally:
        os.close(other)


def test_an_object_that_is_not_a_future_fails_after_the_others_are_settled(native, loop):
    q, fd = native
    first, last = loop.create_future(), loop.create_future()
    q._prepare_read_bytes(fd, 0, 8, first)
    q._prepare_read_bytes(fd, 8, 8, "not a future")
    q._prepare_read_bytes(fd, 16, 8, last)
    q.commit()
    time.sleep(0.01)
    with pytest.raises(AttributeError):
        q._settle_futures(1.0)
    assert first.result() == CONTENTS[0:8]
    assert last.result() == CONTENTS[16:24]
    assert q.in_flight == 0  # nothing left behind, nothing to settle twice
    assert q._settle_futures() == 0


def test_wait_takes_a_read_bytes_completion_as_a_count(native, loop):
    q, fd = native
    q._prepare_read_bytes(fd, 10200, 100, "tag")
    q.commit()
    (completion,) = q.wait(1, None, 5)
    assert (completion.user_data, completion.result, completion.error) == ("tag", 40, None)


def test_settle_waits_up_to_its_timeout_and_a_wakeup_ends_it(native):
    q, _ = native
    start = time.monotonic()
    assert q._settle_futures(0.05) == 0
    assert time.monotonic() - start >= 0.04
    threading.Timer(0.05, q.wakeup).start()
    start = time.monotonic()
    assert q._settle_futures(10.0) == 0
    assert time.monotonic() - start < 5


def test_settle_on_a_closed_queue_raises_queue_closed(native):
    q, _ = native
    q.close()
    with pytest.raises(QueueClosed):
        q._settle_futures()
    with pytest.raises(QueueClosed):
        q._prepare_read_bytes(0, 0, 1, None)


def test_closing_with_read_bytes_in_flight_on_a_pipe_releases_everything(loop):
    from uringq import _native

    r, w = os.pipe()
    try:
        q = _native.NativeQueue(4, 8)
        q.register(r)
        futs = [loop.create_future() for _ in range(3)]
        for fut in futs:
            q._prepare_read_bytes(r, 0, 32, fut)
        q.commit()
        assert q._settle_futures(0.02) == 0  # nothing to read yet
        q.close(cancel=True)  # the kernel gives the bytes objects back first
        assert not any(f.done() for f in futs)
    finally:
        os.close(r)
        os.close(w)


def test_fuzzed_sizes_and_offsets_never_show_foreign_bytes(native, loop):
    q, fd = native
    import random

    rng = random.Random(7)
    for _ in range(20):
        cases = [(rng.randrange(0, 12000), rng.randrange(0, 5000)) for _ in range(8)]
        futs = [loop.create_future() for _ in cases]
        for (offset, size), fut in zip(cases, futs, strict=True):
            q._prepare_read_bytes(fd, offset, size, fut)
        assert settle_all(q, len(cases)) == len(cases)
        for (offset, size), fut in zip(cases, futs, strict=True):
            assert fut.result() == CONTENTS[offset : offset + size]


def test_close_from_another_thread_ends_a_blocked_settle_with_queue_closed(loop):
    from uringq import _native

    r, w = os.pipe()
    try:
        q = _native.NativeQueue(4, 8)
        q.register(r)
        fut = loop.create_future()
        q._prepare_read_bytes(r, 0, 8, fut)
        q.commit()
        threading.Timer(0.1, lambda: q.close(cancel=True)).start()
        start = time.monotonic()
        with pytest.raises(QueueClosed):
            q._settle_futures(30.0)
        assert time.monotonic() - start < 10
        assert not fut.done()  # cancelled by the kernel: its result never came
    finally:
        os.close(r)
        os.close(w)


def test_a_signal_handler_error_ends_a_blocked_settle_and_nothing_is_lost(native, loop):
    import signal

    q, _ = native
    r, w = os.pipe()

    class Alarm(Exception):
        pass

    def on_alarm(signum, frame):
        raise Alarm

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        q.register(r)
        fut = loop.create_future()
        q._prepare_read_bytes(r, 0, 4, fut)
        q.commit()
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        start = time.monotonic()
        with pytest.raises(Alarm):
            q._settle_futures(30.0)
        assert time.monotonic() - start < 10
        os.write(w, b"late")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert q._settle_futures(5.0) == 1  # the queue still works, the request was kept
    assert fut.result() == b"late"
    q.deregister(r)
    os.close(r)
    os.close(w)


# -- the request path in one call (_aio_bind, _aio_read, _aio_read_into, _aio_flush) -------
def test_aio_requests_need_a_bound_driver(native) -> None:
    q, fd = native
    with pytest.raises(RuntimeError, match=r"no uringq\.aio driver is bound"):
        q._aio_read(fd, 16, 0)
    with pytest.raises(RuntimeError, match=r"no uringq\.aio driver is bound"):
        q._aio_read_into(fd, 0, bytearray(16))
    assert q.prepared == 0


def test_aio_read_and_flush_on_a_bound_queue(native, loop) -> None:
    """One call per request; the first schedules the flush (once), which commits and
    settles; argument errors land on the future and nothing is queued for them."""
    from collections import deque

    q, fd = native
    scheduled: list[object] = []
    backlog: deque[object] = deque()
    q._aio_bind(asyncio.Future, {"loop": loop}, scheduled.append, lambda: None, backlog)
    buf = bytearray(100)
    futs = [q._aio_read(fd, 16, 32), q._aio_read_into(fd, 200, buf), q._aio_read(fd, 8, -1)]
    assert len(scheduled) == 1 and q.prepared == 2 and not backlog
    assert type(futs[2].exception()) is ValueError
    total = q._aio_flush()  # commits both (cached reads usually complete right then)
    assert q.prepared == 0
    # A flush that committed and settled something schedules the next one.
    assert len(scheduled) == (2 if total else 1)
    deadline = time.monotonic() + 5
    while total < 2 and time.monotonic() < deadline:
        total += q._aio_flush()
    assert futs[0].result() == CONTENTS[32:48]
    assert futs[1].result() == 100 and buf == CONTENTS[200:300]


# -- uringq.aio.open's open (_prepare_open_file) and registration without a dup (_adopt) --
def _fds() -> set[int]:
    return {int(n) for n in os.listdir("/proc/self/fd")}


def test_open_file_settles_with_the_fds_fstat(native, loop, tmp_path):
    q, _ = native
    path = tmp_path / "data"
    futs = [loop.create_future() for _ in range(3)]
    q._prepare_open_file(path, os.O_RDONLY | os.O_CLOEXEC, 0, futs[0])
    q._prepare_open_file(os.fsencode(tmp_path), os.O_RDONLY | os.O_CLOEXEC, 0, futs[1])
    q._prepare_open_file(str(tmp_path / "missing"), os.O_RDONLY | os.O_CLOEXEC, 0, futs[2])
    assert settle_all(q, 3) == 3
    for fut, name in zip(futs[:2], [path, tmp_path], strict=True):
        fd, mode, size, blksize = fut.result()
        try:
            st = os.fstat(fd)
            assert (mode, size, blksize) == (st.st_mode, st.st_size, st.st_blksize)
            assert os.path.samestat(st, os.stat(name))
            assert os.get_inheritable(fd) is False
        finally:
            os.close(fd)
    with pytest.raises(FileNotFoundError) as info:
        futs[2].result()
    assert info.value.filename == str(tmp_path / "missing")


def test_open_file_closes_the_fd_of_a_cancelled_future(native, loop, tmp_path):
    q, _ = native
    before = _fds()
    futs = [loop.create_future() for _ in range(8)]
    for fut in futs:
        q._prepare_open_file(tmp_path / "data", os.O_RDONLY | os.O_CLOEXEC, 0, fut)
    for fut in futs[::2]:
        fut.cancel()
    assert settle_all(q, 8) == 8
    taken = [fut.result()[0] for fut in futs[1::2]]
    assert _fds() == before | set(taken)
    for fd in taken:
        os.close(fd)
    assert _fds() == before


@pytest.mark.parametrize(
    ("args", "exc"),
    [
        ((None, os.O_RDONLY, 0), TypeError),
        ((b"a\0b", os.O_RDONLY, 0), ValueError),
        (("x", "r", 0), TypeError),
        (("x", 2**40, 0), ValueError),
        (("x", os.O_RDONLY, 2**40), ValueError),
        (("x", os.O_RDONLY, "0"), TypeError),
    ],
)
def test_open_file_checks_its_arguments_before_anything_is_queued(native, loop, args, exc):
    q, _ = native
    with pytest.raises(exc):
        q._prepare_open_file(*args, loop.create_future())
    assert q.prepared == 0


def test_an_adopted_fd_takes_no_duplicate_and_serves_requests(native, loop, tmp_path):
    q, _ = native
    fd = os.open(tmp_path / "data", os.O_RDONLY)
    try:
        before = _fds()
        q._adopt(fd)
        q._adopt(fd)  # again: nothing changes
        assert _fds() == before
        fut = loop.create_future()
        q._prepare_read_bytes(fd, 100, 10, fut)
        settle_all(q, 1)
        assert fut.result() == CONTENTS[100:110]
        q.deregister(fd)
        with pytest.raises(HandleNotRegistered):
            q._prepare_read_bytes(fd, 0, 1, loop.create_future())
        with pytest.raises(ValueError):
            q._adopt(-1)
    finally:
        os.close(fd)


def test_open_file_reads_nothing_of_the_file(native, loop, tmp_path):
    """A FIFO opened while a writer holds data: the open leaves every byte to the caller."""
    q, _ = native
    path = tmp_path / "fifo"
    os.mkfifo(path)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # lets the writer open
    writer = os.open(path, os.O_WRONLY)
    try:
        os.write(writer, b"not yours")
        os.close(reader)
        fut = loop.create_future()
        q._prepare_open_file(path, os.O_RDONLY | os.O_CLOEXEC, 0, fut)
        settle_all(q, 1)
        fd, mode, *_ = fut.result()
        try:
            assert stat.S_ISFIFO(mode)
            assert os.read(fd, 100) == b"not yours"
        finally:
            os.close(fd)
    finally:
        os.close(writer)


# -- _read_rest: a small file's first read, made without blocking ------------------------
def _read_rest(fd, offset, size):
    from uringq import _native

    return _native._read_rest(fd, offset, size)


@pytest.mark.parametrize("size", [1, 4095, 4096, 4097, 8192, 65536])
def test_read_rest_reads_a_cached_file_from_the_offset_to_its_end(tmp_path, size):
    path = tmp_path / "small"
    data = os.urandom(size)
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        for offset in {0, size // 2, size - 1}:
            rest = _read_rest(fd, offset, size - offset)
            assert type(rest) is bytes
            assert rest == data[offset:]
        assert os.lseek(fd, 0, os.SEEK_CUR) == 0  # positional: the fd did not move
        # Not the rest: the file is longer, or shorter, than asked.
        assert _read_rest(fd, 0, size - 1) is None
        assert _read_rest(fd, 0, size + 1) is None
        assert _read_rest(fd, size, 1) is None
        assert _read_rest(fd, 0, 0) is None
        with open(path, "ab") as f:  # it grew: the size it had is no longer its end
            f.write(b"+")
        assert _read_rest(fd, 0, size) is None
        assert _read_rest(fd, 0, size + 1) == data + b"+"
    finally:
        os.close(fd)


def test_read_rest_sees_a_store_through_a_shared_mapping(tmp_path):
    """Read when asked: a store into a mapped page already dirty changes no timestamp,
    and is still seen."""
    import mmap

    path = tmp_path / "m"
    path.write_bytes(b"A" * 5000)
    fd = os.open(path, os.O_RDWR)
    try:
        with mmap.mmap(fd, 5000) as m:
            m[0:1] = b"B"
            assert _read_rest(fd, 0, 5000)[:1] == b"B"
            m[0:1] = b"C"
            assert _read_rest(fd, 0, 5000)[:1] == b"C"
    finally:
        os.close(fd)


def test_read_rest_waits_for_nothing_and_consumes_nothing(tmp_path):
    """A file not in the page cache, a FIFO with data, a closed fd: None at once, and
    the FIFO's data is all still there."""
    path = tmp_path / "cold"
    path.write_bytes(os.urandom(1 << 20))
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        try:
            os.preadv(fd, [bytearray(1)], 0, os.RWF_NOWAIT)
            cold = False
        except BlockingIOError:
            cold = True
        if cold:  # the page cache dropped it (not so on every file system)
            # The kernel may start readahead and find it done (a fast disk): the whole
            # rest then, else None; never a part taken for the whole.
            got = _read_rest(fd, 0, 1 << 20)
            assert got is None or got == os.pread(fd, 1 << 20, 0)
    finally:
        os.close(fd)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    writer = os.open(fifo, os.O_WRONLY)
    try:
        os.write(writer, b"data")
        assert _read_rest(reader, 0, 4) is None
        assert os.read(reader, 10) == b"data"
    finally:
        os.close(reader)
        os.close(writer)
    closed = os.open(tmp_path, os.O_RDONLY)
    os.close(closed)
    assert _read_rest(closed, 0, 4) is None
    dirfd = os.open(tmp_path, os.O_RDONLY)
    try:
        assert _read_rest(dirfd, 0, 4) is None
    finally:
        os.close(dirfd)


@pytest.mark.parametrize(
    ("args", "exc"),
    [
        (("x", 0, 1), TypeError),
        ((-1, 0, 1), ValueError),
        ((0, -1, 1), OverflowError),
        ((0, 0, -1), OverflowError),
        ((0, 0, 1 << 63), (ValueError, OverflowError)),
        ((0, 2**64, 1), OverflowError),
    ],
)
def test_read_rest_checks_its_arguments(args, exc):
    with pytest.raises(exc):
        _read_rest(*args)


def test_read_rest_fuzz_over_fd_kinds_offsets_and_sizes(tmp_path):
    """Random calls on regular files (checked against ``os.pread``), a pipe with data, a
    socket, an eventfd, /dev/zero, /dev/null, a directory and closed numbers: bytes only
    when they are exactly the rest of a file, else None, an argument error, or a
    MemoryError; nothing blocks, and the pipe's data is all still there."""
    import random
    import socket

    rng = random.Random(11)
    files = []
    for size in (1, 100, 4095, 4096, 8192, 9000, 65_536):
        path = tmp_path / f"f{size}"
        path.write_bytes(os.urandom(size))
        files.append(os.open(path, os.O_RDONLY))
    r, w = os.pipe()
    os.write(w, b"keep")
    a, b = socket.socketpair()
    efd = os.eventfd(3)
    others = [
        r,
        a.fileno(),
        efd,
        os.open("/dev/zero", os.O_RDONLY),
        os.open("/dev/null", os.O_RDONLY),
        os.open(tmp_path, os.O_RDONLY),
    ]
    try:
        for _ in range(3000):
            fd = rng.choice(files + others + [9999, -5])
            size = rng.choice([0, 1, 4096, rng.randrange(0, 70_000), 1 << 40, -1])
            offset = rng.choice([0, rng.randrange(0, 70_000), 2**63 - 1, 2**63, -1])
            try:
                got = _read_rest(fd, offset, size)
            except (ValueError, OverflowError, MemoryError):
                assert fd < 0 or size < 0 or offset < 0 or offset >= 2**63 or size == 1 << 40
                continue
            if got is None:
                if fd in files and size > 0 and offset < 2**63:
                    whole = os.fstat(fd).st_size
                    assert offset + size != whole or offset >= whole, (fd, offset, size)
                continue
            assert fd in files
            assert got == os.pread(fd, size + 1, offset)
        assert os.read(r, 10) == b"keep"
        assert os.eventfd_read(efd) == 3
    finally:
        for fd in files + others[3:]:
            os.close(fd)
        for fd in (r, w, efd):
            os.close(fd)
        a.close()
        b.close()
