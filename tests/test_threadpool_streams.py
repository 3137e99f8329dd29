"""Streams (pipes, FIFOs, sockets, ttys): requests stay in flight until the fd is ready.

io_uring ignores the offset on a stream (a socket refuses a non-zero one with ESPIPE) and
keeps a read pending until data arrives; the threadpool provider must do the same through
its stream thread. Shared behaviour runs on every provider (the ``provider`` fixture);
the tests at the end look at how the threadpool provider does it (one stream thread per
queue, never a blocked file worker) and at ``wait`` putting completions back when a
signal handler raises before they are handed over.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gc
import os
import pty
import select
import socket
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
import uringq
from helpers.patterns import pattern
from helpers.proc import open_fds
from helpers.queueing import WatchableBuffer, collect

NOT_YET = 0.1  # how long a request must stay pending to count as "waits for the fd"


def resizable(buf: bytearray) -> bool:
    try:
        buf.extend(b"?")
    except BufferError:
        return False
    del buf[-1:]
    return True


def still_pending(q: uringq.IoQueue) -> None:
    assert q.wait(1, None, NOT_YET) == [], "completed before the fd was ready"


@pytest.fixture
def pipes() -> Iterator[Any]:
    """``pipes(n)`` opens ``n`` pipes, closed at teardown."""
    opened: list[int] = []

    def make(n: int = 1) -> list[tuple[int, int]]:
        made = [os.pipe() for _ in range(n)]
        for r, w in made:
            opened.extend((r, w))
        return made

    yield make
    for fd in opened:
        with contextlib.suppress(OSError):
            os.close(fd)


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def tty() -> Iterator[tuple[int, int]]:
    master, slave = pty.openpty()
    yield master, slave
    for fd in (master, slave):
        with contextlib.suppress(OSError):
            os.close(fd)


# --- reads and writes -----------------------------------------------------------------


@pytest.mark.timeout(20)
def test_pending_pipe_read_completes_when_data_is_written_later(queue, pipes):
    [(r, w)] = pipes()
    queue.register(r)
    buf = bytearray(8)
    queue.prepare_read(r, 12345, buf, "later")  # the offset means nothing on a pipe
    queue.commit()
    still_pending(queue)
    assert queue.in_flight == 1
    os.write(w, b"hello")
    [c] = collect(queue, 1)
    assert (c.user_data, c.result, c.error) == ("later", 5, None)
    assert buf == b"hello\0\0\0"
    assert resizable(buf)


@pytest.mark.timeout(20)
def test_pipe_readv_fills_the_buffers_in_order(queue, pipes):
    [(r, w)] = pipes()
    queue.register(r)
    bufs = [bytearray(2), bytearray(0), bytearray(3)]
    queue.prepare_readv(r, 7, bufs, "rv")
    queue.commit()
    still_pending(queue)
    os.write(w, b"abcdefgh")
    [c] = collect(queue, 1)
    assert (c.result, c.error) == (5, None)
    assert bufs == [b"ab", b"", b"cde"]
    assert os.read(r, 100) == b"fgh"


@pytest.mark.timeout(20)
def test_zero_length_pipe_read_completes_at_once(queue, pipes):
    [(r, _)] = pipes()
    queue.register(r)
    queue.prepare_read(r, 0, bytearray(0), "empty")
    queue.commit()
    [c] = collect(queue, 1, timeout=5)
    assert (c.result, c.error) == (0, None)


@pytest.mark.timeout(20)
def test_pipe_read_at_eof_returns_zero(queue, pipes):
    [(r, w)] = pipes()
    os.close(w)
    queue.register(r)
    queue.prepare_read(r, 0, bytearray(4), "eof")
    queue.commit()
    [c] = collect(queue, 1, timeout=5)
    assert (c.result, c.error) == (0, None)


@pytest.mark.timeout(20)
def test_pending_read_on_an_O_NONBLOCK_pipe_still_waits_for_data(queue, pipes):
    [(r, w)] = pipes()
    os.set_blocking(r, False)
    queue.register(r)
    buf = bytearray(4)
    queue.prepare_read(r, 0, buf, "nb")
    queue.commit()
    still_pending(queue)
    os.write(w, b"ok")
    [c] = collect(queue, 1)
    assert (c.result, c.error, bytes(buf[:2])) == (2, None, b"ok")


@pytest.mark.timeout(20)
def test_pipe_write_ignores_the_offset_and_reaches_the_reader(queue, pipes):
    [(r, w)] = pipes()
    queue.register(w)
    queue.prepare_write(w, 999, b"first ", "a")
    queue.prepare_writev(w, 5, [b"sec", memoryview(b"ond")], "b")
    queue.commit()
    got = {c.user_data: (c.result, c.error) for c in collect(queue, 2)}
    assert got == {"a": (6, None), "b": (6, None)}
    assert os.read(r, 100) == b"first second"


@pytest.mark.timeout(20)
def test_write_to_a_full_pipe_stays_pending_until_the_reader_drains_it(queue, pipes):
    [(r, w)] = pipes()
    capacity = fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)
    assert os.write(w, bytes(capacity)) == capacity
    queue.register(w)
    data = bytearray(b"x" * 100)
    queue.prepare_write(w, 0, data, "full")
    queue.commit()
    still_pending(queue)
    assert not resizable(data)  # the write still reads from it
    drained = 0
    while drained < capacity:
        drained += len(os.read(r, capacity - drained))
    [c] = collect(queue, 1)
    assert (c.result, c.error) == (100, None)
    assert os.read(r, 200) == b"x" * 100
    assert resizable(data)


@pytest.mark.timeout(20)
def test_write_to_a_pipe_without_readers_fails_with_EPIPE(queue, pipes):
    [(r, w)] = pipes()
    os.close(r)
    queue.register(w)
    queue.prepare_write(w, 0, b"nobody", "epipe")
    queue.commit()
    [c] = collect(queue, 1, timeout=5)
    assert c.result == 0
    assert isinstance(c.error, BrokenPipeError)


@pytest.mark.timeout(20)
def test_sync_on_a_pipe_fails_with_EINVAL(queue, pipes):
    [(r, _)] = pipes()
    queue.register(r)
    queue.prepare_sync(r, "sync")
    queue.commit()
    [c] = collect(queue, 1, timeout=5)
    assert c.error is not None and c.error.errno == errno.EINVAL


@pytest.mark.timeout(20)
def test_fifo_read_waits_for_the_writer(queue, tmp_path):
    path = str(tmp_path / "fifo")
    os.mkfifo(path)
    r = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    w = os.open(path, os.O_WRONLY)
    try:
        queue.register(r)
        buf = bytearray(3)
        queue.prepare_read(r, 4096, buf, "fifo")
        queue.commit()
        still_pending(queue)
        os.write(w, b"hello")
        [c] = collect(queue, 1)
        assert (c.result, c.error, buf) == (3, None, b"hel")
        queue.deregister(r)
    finally:
        os.close(r)
        os.close(w)


# --- sockets and ttys -----------------------------------------------------------------


@pytest.mark.timeout(20)
def test_socketpair_read_waits_for_the_peer_and_write_reaches_it(queue, sockets):
    a, b = sockets
    queue.register(a)
    buf = bytearray(4)
    queue.prepare_read(a, 0, buf, "recv")
    queue.commit()
    still_pending(queue)
    b.sendall(b"abcdef")
    [c] = collect(queue, 1)
    assert (c.result, c.error, buf) == (4, None, b"abcd")

    queue.prepare_write(a, 0, b"pong", "send")
    queue.prepare_readv(a, 0, [bytearray(1), bytearray(5)], "rest")
    queue.commit()
    got = {c.user_data: (c.result, c.error) for c in collect(queue, 2)}
    assert got == {"send": (4, None), "rest": (2, None)}  # "ef" was left over
    b.settimeout(5)
    assert b.recv(10) == b"pong"


@pytest.mark.timeout(20)
def test_socket_refuses_a_non_zero_offset_with_ESPIPE(queue, sockets):
    a, b = sockets
    queue.register(a)
    queue.prepare_read(a, 1, bytearray(4), "read")
    queue.prepare_write(a, 4096, b"data", "write")
    queue.commit()
    got = {c.user_data: c for c in collect(queue, 2, timeout=5)}
    for c in got.values():
        assert c.result == 0
        assert c.error is not None and c.error.errno == errno.ESPIPE
    b.setblocking(False)
    with pytest.raises(BlockingIOError):
        b.recv(10)  # nothing was sent


@pytest.mark.timeout(20)
def test_tty_read_waits_for_a_line_and_write_reaches_the_master(queue, tty):
    master, slave = tty
    queue.register(slave)
    buf = bytearray(10)
    queue.prepare_read(slave, 5, buf, "line")
    queue.commit()
    os.write(master, b"partial")  # canonical mode: not a line yet
    still_pending(queue)
    os.write(master, b" line\nnext")
    [c] = collect(queue, 1)
    assert (c.result, c.error) == (10, None)  # a line is longer than the buffer
    assert buf == b"partial li"

    queue.prepare_write(slave, 3, b"out\n", "write")
    queue.commit()
    [c] = collect(queue, 1)
    assert (c.result, c.error) == (4, None)
    deadline = time.monotonic() + 5
    echoed = b""
    while b"out\r\n" not in echoed and time.monotonic() < deadline:
        if select.select([master], [], [], 0.1)[0]:
            echoed += os.read(master, 1000)
    assert b"out\r\n" in echoed


# --- cancellation, starvation, registration -------------------------------------------


@pytest.mark.timeout(30)
def test_close_cancel_releases_the_buffers_of_pending_reads_promptly(queue, pipes):
    made = pipes(4)
    bufs = []
    for r, _ in made:
        queue.register(r)
    for i in range(24):
        buf = bytearray(8)
        bufs.append(buf)
        queue.prepare_read(made[i % 4][0], 0, buf, i)
    queue.commit()
    still_pending(queue)
    assert not any(resizable(b) for b in bufs)
    start = time.monotonic()
    queue.close(cancel=True)
    assert time.monotonic() - start < 2
    assert all(resizable(b) for b in bufs), "close(cancel=True) left a buffer pinned"
    for r, w in made:  # the cancelled reads consume nothing written afterwards
        os.write(w, b"after")
        assert select.select([r], [], [], 1)[0] == [r]
        assert os.read(r, 100) == b"after"


@pytest.mark.timeout(30)
def test_context_exit_and_collection_release_pending_writes_and_their_user_data(provider, pipes):
    class Token:
        pass

    [(_, w)] = pipes()
    os.write(w, bytes(fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)))  # full: writes stay pending
    data = [WatchableBuffer(b"w" * 64) for _ in range(2)]
    token = Token()
    watch = weakref.ref(token)
    with uringq.IoQueue(provider=provider) as q:
        q.register(w)
        q.prepare_write(w, 0, data[0], token)
        q.commit()
        still_pending(q)
    assert resizable(data[0])
    q = uringq.IoQueue(provider=provider)
    q.register(w)
    q.prepare_write(w, 0, data[1], token)
    q.commit()
    del token, q
    gc.collect()
    assert resizable(data[1])
    assert watch() is None, "the queue kept user_data of a cancelled request"


@pytest.mark.timeout(30)
def test_collecting_a_queue_whose_unreaped_completions_hold_it_frees_fds_and_threads(
    provider, pipes, tmp_path
):
    [(r, w)] = pipes()
    path = tmp_path / "file.bin"
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDWR)
    try:
        gc.collect()
        fds_before, threads_before = open_fds(), threading.active_count()
        q = uringq.IoQueue(provider=provider)
        cycle: dict[str, Any] = {"queue": q}
        cycle["self"] = cycle
        q.register(fd)
        q.register(r)
        q.prepare_write(fd, 0, b"data", cycle)  # served by a file worker
        q.prepare_read(r, 0, bytearray(2), cycle)  # served by the stream thread
        q.commit()
        os.write(w, b"ok")
        readable, _, _ = select.select([q.fileno()], [], [], 5)
        assert readable
        deadline = time.monotonic() + 5
        while os.path.getsize(path) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # both completions are ready and unreaped
        del q, cycle
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            gc.collect()
            if open_fds() == fds_before and threading.active_count() <= threads_before:
                break
            time.sleep(0.05)
        assert open_fds() == fds_before, "the queue was never collected"
        assert threading.active_count() <= threads_before
    finally:
        os.close(fd)


@pytest.mark.timeout(60)
def test_many_pending_pipe_reads_do_not_starve_file_requests(make_queue, pipes, tmp_path):
    q = make_queue(8, 128)  # the threadpool provider has min(8, sq_entries) file workers
    made = pipes(12)
    for r, _ in made:
        q.register(r)
    pending = [bytearray(4) for _ in range(96)]
    for i, buf in enumerate(pending):
        q.prepare_read(made[i % 12][0], 0, buf, ("pipe", i))
        if q.prepared == 8:
            q.commit()
    still_pending(q)

    path = tmp_path / "file.bin"
    path.write_bytes(pattern(0, 8 * 4096))
    fd = os.open(path, os.O_RDWR)
    try:
        q.register(fd)
        for round_ in range(3):  # reads, then writes and syncs: each needs a file worker
            reads = [bytearray(4096) for _ in range(8)]
            for i, buf in enumerate(reads):
                q.prepare_read(fd, i * 4096, buf, ("read", i))
            q.commit()
            q.prepare_write(fd, 4096 * round_, b"w" * 100, ("write", round_))
            q.prepare_sync(fd, ("sync", round_))
            q.prepare_sync(fd, ("fdatasync", round_), datasync=True)
            q.commit()
            got = collect(q, 11, timeout=20)
            assert all(c.ok for c in got), got
            assert all(c.user_data[0] != "pipe" for c in got)
        for _, w in made:
            os.write(w, b"abcd" * 8)
        got = collect(q, 96, timeout=20)
        assert sorted(c.user_data[1] for c in got) == list(range(96))
        assert {(c.result, c.error) for c in got} == {(4, None)}
        q.deregister(fd)
    finally:
        os.close(fd)


@pytest.mark.timeout(20)
def test_deregister_is_refused_while_a_stream_request_is_pending(queue, pipes):
    [(r, w)] = pipes()
    queue.register(r)
    queue.prepare_read(r, 0, bytearray(2), "p")
    queue.commit()
    still_pending(queue)
    with pytest.raises(uringq.QueueBusy):
        queue.deregister(r)
    os.write(w, b"ok")
    collect(queue, 1)
    queue.deregister(r)


@pytest.mark.timeout(20)
def test_wakeup_and_timeout_work_while_only_stream_requests_are_pending(queue, pipes):
    [(r, w)] = pipes()
    queue.register(r)
    queue.prepare_read(r, 0, bytearray(2), "p")
    queue.commit()
    threading.Timer(0.1, queue.wakeup).start()
    start = time.monotonic()
    with pytest.raises(uringq.Interrupted) as info:
        queue.wait()
    assert info.value.completions == []
    assert time.monotonic() - start < 5
    assert queue.wait(1, None, 0.05) == []
    os.write(w, b"ok")
    [c] = collect(queue, 1)
    assert c.result == 2


# --- how the threadpool provider does it ----------------------------------------------


def stream_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.endswith("-streams")]


@pytest.mark.timeout(30)
def test_threadpool_serves_every_pending_stream_request_with_one_thread(pipes):
    before = threading.active_count()
    threads_before = set(stream_threads())
    made = pipes(40)
    with uringq.IoQueue(8, 64, provider="threadpool") as q:
        for r, _ in made:
            q.register(r)
        for i, (r, _) in enumerate(made):
            q.prepare_read(r, 0, bytearray(1), i)
            if q.prepared == 8:
                q.commit()
        still_pending(q)
        assert len(set(stream_threads()) - threads_before) == 1
        assert threading.active_count() - before <= 1  # no file worker was needed
        for _, w in made[:10]:
            os.write(w, b"x")
        assert len(collect(q, 10)) == 10
    deadline = time.monotonic() + 5
    while set(stream_threads()) - threads_before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not set(stream_threads()) - threads_before, "the stream thread outlived its queue"


@pytest.mark.timeout(20)
def test_threadpool_stream_request_fails_with_EAGAIN_when_no_thread_can_start(pipes, monkeypatch):
    [(r, _)] = pipes()
    q = uringq.IoQueue(provider="threadpool")
    try:
        q.register(r)

        def refuse(self: threading.Thread) -> None:
            raise RuntimeError("can't start new thread")

        monkeypatch.setattr(threading.Thread, "start", refuse)
        q.prepare_read(r, 0, bytearray(4), "no thread")
        q.commit()
        [c] = collect(q, 1, timeout=5)
        assert c.error is not None and c.error.errno == errno.EAGAIN
        monkeypatch.undo()
        q.prepare_read(r, 0, bytearray(4), "thread")
        q.commit()
        still_pending(q)
    finally:
        q.close(cancel=True)


@pytest.mark.timeout(30)
def test_threadpool_queue_collected_inside_its_own_stream_thread_releases_everything(
    pipes, monkeypatch
):
    """The garbage collector may run ``__del__`` in the stream thread while it works."""
    from uringq.providers.threadpool.chains import Shared

    made = pipes(2)
    armed = threading.Event()
    collected_there: list[int] = []
    real_try = Shared.stream_try

    def stream_try(self: Any, req: Any) -> Any:
        if req[6] == "trigger" and armed.is_set():
            armed.clear()
            collected_there.append(gc.collect())
        return real_try(self, req)

    monkeypatch.setattr(Shared, "stream_try", stream_try)
    gc.collect()
    fds_before = open_fds()
    bufs = [bytearray(1) for _ in range(6)]
    gc.disable()
    try:
        q = uringq.IoQueue(provider="threadpool")
        for r, _ in made:
            q.register(r)
        for i, buf in enumerate(bufs):
            q.prepare_read(made[i % 2][0], 0, buf, "trigger" if i == 0 else i)
        q.commit()
        still_pending(q)
        cycle: dict[str, Any] = {"queue": q}
        cycle["self"] = cycle
        q.prepare_read(made[0][0], 0, bytearray(1), cycle)  # prepared only: q is garbage
        del q, cycle
        armed.set()
        os.write(made[0][1], b"x")  # the stream thread retries the trigger, and collects
        deadline = time.monotonic() + 5
        while not collected_there and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        gc.enable()
    assert collected_there and collected_there[0] > 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (stream_threads() or open_fds() != fds_before):
        time.sleep(0.02)
    assert open_fds() == fds_before
    assert all(resizable(b) for b in bufs)
    for r, w in made:  # the cancelled reads consume nothing written afterwards
        os.write(w, b"after")
        assert select.select([r], [], [], 1)[0] == [r]
        assert os.read(r, 100).endswith(b"after")


class _RaiseAfterRelease:
    """Stands in for the queue lock's ``release``: releases, then raises once, as a
    signal handler would right after ``wait`` let go of the lock."""

    def __init__(self, release: Any) -> None:
        self.release = release
        self.armed = True

    def __call__(self) -> None:
        self.release()
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt


@pytest.mark.timeout(20)
@pytest.mark.parametrize("with_wakeup", [False, True], ids=["completions", "wakeup"])
def test_threadpool_wait_puts_completions_back_when_interrupted_before_returning(
    pipes, with_wakeup
):
    [(r, w)] = pipes()
    q = uringq.IoQueue(provider="threadpool")
    try:
        q.register(r)
        bufs = [bytearray(1) for _ in range(3)]
        for i, buf in enumerate(bufs):
            q.prepare_read(r, 0, buf, i)
        q.commit()
        os.write(w, b"abc")
        deadline = time.monotonic() + 5
        while any(b == b"\0" for b in bufs) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)  # the completions are made ready in the same pass
        if with_wakeup:
            q.wakeup()
        provider_queue = q._queue
        provider_queue._release = _RaiseAfterRelease(provider_queue._release)
        with pytest.raises(KeyboardInterrupt):
            q.wait(1, None, 5)
        assert q.in_flight == 3
        if with_wakeup:
            with pytest.raises(uringq.Interrupted) as info:
                q.wait(1, None, 5)
            got = info.value.completions
        else:
            got = q.wait(3, None, 5)
        assert sorted(c.user_data for c in got) == [0, 1, 2]
        assert q.in_flight == 0
        assert all(resizable(b) for b in bufs)
    finally:
        q.close(cancel=True)
