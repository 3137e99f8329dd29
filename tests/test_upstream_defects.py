"""One regression test per defect of IPRT's io_uring provider (SPEC section 1, defects 1-7).

Each test is named for the defect it guards against and checks the behaviour uringq
promises instead.
"""

from __future__ import annotations

import errno
import os
import random
import signal
import threading
import time
from collections import Counter

import pytest
import uringq
from helpers.patterns import pattern
from helpers.proc import O_CLOEXEC_FDINFO, fd_flags, open_fds
from helpers.queueing import DATA_SIZE, collect, settle


@pytest.mark.timeout(20)
def test_defect1_preparing_past_sq_entries_raises_QueueFull_and_overwrites_nothing(
    make_queue, data_fd
):
    q = make_queue(4)
    q.register(data_fd)
    bufs = [bytearray(128) for _ in range(4)]
    for i, buf in enumerate(bufs):
        q.prepare_read(data_fd, i * 1000, buf, i)
    intruder = bytearray(128)
    with pytest.raises(uringq.QueueFull):
        q.prepare_read(data_fd, 50_000, intruder, "intruder")
    assert q.prepared == 4
    assert q.commit() == 4
    got = collect(q, 4)
    assert sorted(c.user_data for c in got) == [0, 1, 2, 3]
    for i, buf in enumerate(bufs):
        assert buf == pattern(i * 1000, 128), f"request {i} was overwritten"
    assert intruder == bytes(128)


@pytest.mark.timeout(60)
def test_defect2_every_request_is_in_flight_or_prepared_and_completes_exactly_once(
    make_queue, data_fd, empty_file, open_fd
):
    """Random batches, commits and partial waits; the books must balance at every step."""
    q = make_queue(8, 16)
    q.register(data_fd)
    wonly = open_fd(empty_file, os.O_WRONLY)
    q.register(wonly)  # reads from it fail (EBADF): errors must not lose requests either
    rng = random.Random(2)
    total, returned = 300, Counter()
    prepared_total = 0
    expected: dict[int, tuple[int, int]] = {}  # user_data -> (offset, size) or failure
    bufs: dict[int, bytearray] = {}

    def check_books() -> None:
        assert q.prepared + q.in_flight + sum(returned.values()) == prepared_total

    while sum(returned.values()) < total:
        room = min(q.sq_entries - q.prepared, q.cq_entries - q.prepared - q.in_flight)
        for _ in range(rng.randint(0, room) if room else 0):
            if prepared_total == total:
                break
            ud = prepared_total
            size = rng.choice([0, 1, 512, 4096])
            off = rng.randrange(0, DATA_SIZE - 4096)
            bufs[ud] = bytearray(size)
            if ud % 17 == 0:
                q.prepare_read(wonly, 0, bufs[ud], ud)
                expected[ud] = (-1, 0)
            else:
                q.prepare_read(data_fd, off, bufs[ud], ud)
                expected[ud] = (off, size)
            prepared_total += 1
            check_books()
        if q.prepared:
            before_prepared, before_in_flight = q.prepared, q.in_flight
            submitted = q.commit()
            assert 0 <= submitted <= before_prepared
            assert q.prepared == before_prepared - submitted
            assert q.in_flight == before_in_flight + submitted
            check_books()
        if q.in_flight:
            for c in q.wait(1, rng.choice([None, 1, 3]), 10):
                returned[c.user_data] += 1
            check_books()
    assert set(returned) == set(range(total))
    assert set(returned.values()) == {1}, "some completion was returned twice"
    assert (q.prepared, q.in_flight) == (0, 0)
    for ud, (off, size) in expected.items():
        if off >= 0:
            assert bufs[ud] == pattern(off, size)


def test_defect3_cq_entries_default_to_twice_sq_entries(make_queue):
    q = make_queue(16)
    assert q.cq_entries == 32


@pytest.mark.timeout(20)
def test_defect3_in_flight_never_exceeds_cq_entries_and_no_completion_overflows(
    make_queue, data_fd
):
    q = make_queue(8)  # CQ of 16
    q.register(data_fd)
    for batch in range(2):
        for i in range(8):
            q.prepare_read(data_fd, (batch * 8 + i) * 64, bytearray(64), batch * 8 + i)
        q.commit()
    settle()  # 16 completions sit in the CQ, none returned yet
    with pytest.raises(uringq.QueueFull):
        q.prepare_read(data_fd, 0, bytearray(64), "one too many")
    assert (q.prepared, q.in_flight) == (0, 16)
    got = collect(q, 16)
    assert sorted(c.user_data for c in got) == list(range(16))
    assert all(c.ok and c.result == 64 for c in got)


@pytest.mark.timeout(20)
def test_defect3_explicit_cq_entries_bound_what_may_be_in_flight(make_queue, data_fd):
    q = make_queue(4, 4)
    q.register(data_fd)
    for i in range(4):
        q.prepare_read(data_fd, 0, bytearray(8), i)
    q.commit()
    with pytest.raises(uringq.QueueFull):
        q.prepare_read(data_fd, 0, bytearray(8), "over")
    assert len(collect(q, 4)) == 4
    q.prepare_read(data_fd, 0, bytearray(8), "room again")


def test_defect4_the_pollable_fd_is_cloexec(queue):
    assert fd_flags(queue.fileno()) & O_CLOEXEC_FDINFO


def test_defect4_every_fd_the_queue_opens_is_cloexec(provider, data_fd):
    before = open_fds()
    q = uringq.IoQueue(provider=provider)
    try:
        q.register(data_fd)
        q.fileno()
        new = open_fds() - before
        assert new, "a queue opens at least its pollable fd"
        for fd in new:
            assert fd_flags(fd) & O_CLOEXEC_FDINFO, (
                f"fd {fd} ({os.readlink(f'/proc/self/fd/{fd}')}) lacks O_CLOEXEC"
            )
    finally:
        q.close()


@pytest.mark.timeout(20)
def test_defect4_wait_tells_wakeup_signal_and_timeout_apart(queue, rfd):
    class Signalled(Exception):
        pass

    def handler(signum, frame):
        raise Signalled

    # timeout: returns normally (an empty list)
    assert queue.wait(1, None, 0.2) == []

    # wakeup: Interrupted
    threading.Timer(0.1, queue.wakeup).start()
    with pytest.raises(uringq.Interrupted):
        queue.wait(1, None, 10)

    # signal: the handler's exception, not Interrupted
    saved = signal.signal(signal.SIGUSR1, handler)
    try:
        main = threading.main_thread().ident
        threading.Timer(0.1, lambda: signal.pthread_kill(main, signal.SIGUSR1)).start()
        start = time.monotonic()
        with pytest.raises(Signalled):
            queue.wait(1, None, 10)
        assert time.monotonic() - start < 2
    finally:
        time.sleep(0.05)
        signal.signal(signal.SIGUSR1, saved)


@pytest.mark.timeout(20)
def test_defect5_error_completion_carries_errno_and_result_zero(queue, empty_file, open_fd):
    fd = open_fd(empty_file, os.O_WRONLY)
    queue.register(fd)
    queue.prepare_read(fd, 0, bytearray(100), "fails")
    queue.commit()
    (c,) = collect(queue, 1)
    assert isinstance(c.error, OSError)
    assert c.error.errno == errno.EBADF
    assert c.result == 0
    assert c.ok is False


@pytest.mark.timeout(20)
def test_defect5_short_read_is_visible_as_result_below_length(queue, rfd):
    queue.prepare_read(rfd, DATA_SIZE - 10, bytearray(100), "short")
    queue.commit()
    (c,) = collect(queue, 1)
    assert (c.result, c.error, c.ok) == (10, None, True)


@pytest.mark.timeout(20)
def test_defect6_scatter_gather_readv_and_writev_work(queue, wfd):
    out = [pattern(0, 300), pattern(300, 5000), pattern(5300, 1)]
    queue.prepare_writev(wfd, 0, out, "writev")
    queue.commit()
    (w,) = collect(queue, 1)
    assert (w.result, w.error) == (5301, None)
    back = [bytearray(1), bytearray(5000), bytearray(300)]
    queue.prepare_readv(wfd, 0, back, "readv")
    queue.commit()
    (r,) = collect(queue, 1)
    assert (r.result, r.error) == (5301, None)
    assert b"".join(back) == pattern(0, 5301)


@pytest.mark.timeout(10)
def test_defect7_min_events_beyond_what_is_in_flight_raises_ValueError_instead_of_hanging(
    queue, rfd
):
    for i in range(2):
        queue.prepare_read(rfd, 0, bytearray(8), i)
    queue.commit()
    with pytest.raises(ValueError):
        queue.wait(3)
    with pytest.raises(ValueError):
        queue.wait(3, 5)
    assert sorted(c.user_data for c in queue.wait(2)) == [0, 1]


@pytest.mark.timeout(60)
def test_defect1_and_3_the_largest_queue_fills_commits_and_drains_completely(make_queue, data_fd):
    q = make_queue(32768)
    q.register(data_fd)
    buf = bytearray(8)  # one buffer for every read: only the counts matter here
    for i in range(32768):
        q.prepare_read(data_fd, (i * 8) % DATA_SIZE, buf, i)
    with pytest.raises(uringq.QueueFull):
        q.prepare_read(data_fd, 0, buf, "over")
    submitted = 0
    while q.prepared:
        submitted += q.commit()
    assert submitted == 32768
    seen = Counter(c.user_data for c in collect(q, 32768, timeout=30))
    assert len(seen) == 32768 and set(seen.values()) == {1}
