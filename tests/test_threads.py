"""One thread waits while others prepare, commit and wake it up (SPEC section 2; section 4:
"one thread may wait while others prepare and commit"). Totals must be exact."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter

import pytest
import uringq
from helpers.patterns import pattern
from helpers.queueing import DATA_SIZE

SUBMITTERS = 4
PER_SUBMITTER = 150
SIZE = 512


def submit(q: uringq.IoQueue, fd: int, tag: int, bufs: dict, errors: list) -> None:
    """Prepare and commit PER_SUBMITTER reads, retrying on QueueFull and tolerating commits
    that another thread made first (QueueEmpty)."""
    try:
        for i in range(PER_SUBMITTER):
            ud = (tag, i)
            off = ((tag * PER_SUBMITTER + i) * SIZE) % (DATA_SIZE - SIZE)
            bufs[ud] = (off, bytearray(SIZE))
            while True:
                try:
                    q.prepare_read(fd, off, bufs[ud][1], ud)
                    break
                except uringq.QueueFull:
                    time.sleep(0.0005)
            # another thread may have committed this request together with its own
            with contextlib.suppress(uringq.QueueEmpty):
                q.commit()
    except BaseException as e:
        errors.append(e)


def waiter(q: uringq.IoQueue, total: int, seen: Counter, errors: list, on_interrupt=None) -> None:
    try:
        deadline = time.monotonic() + 30
        while sum(seen.values()) < total and time.monotonic() < deadline:
            try:
                got = q.wait(1, None, 0.1)
            except uringq.Interrupted as e:
                got = e.completions
                if on_interrupt:
                    on_interrupt()
            for c in got:
                seen[c.user_data] += 1
                assert c.ok, c
    except BaseException as e:
        errors.append(e)


def run_threads(q: uringq.IoQueue, fd: int, on_interrupt=None, helper=None) -> tuple[Counter, dict]:
    """Run one waiter and SUBMITTERS submitters to the end; ``helper(stop)`` runs in one
    more thread until the others are done and ``stop`` is set."""
    q.register(fd)
    total = SUBMITTERS * PER_SUBMITTER
    seen: Counter = Counter()
    bufs: dict = {}
    errors: list = []
    stop = threading.Event()
    threads = [threading.Thread(target=waiter, args=(q, total, seen, errors, on_interrupt))]
    threads += [
        threading.Thread(target=submit, args=(q, fd, t, bufs, errors)) for t in range(SUBMITTERS)
    ]
    extra = threading.Thread(target=helper, args=(stop,)) if helper else None
    # The helper starts first, so it acts while the others run even when they are quick.
    for t in [extra, *threads]:
        if t:
            t.start()
    try:
        for t in threads:
            t.join(40)
            assert not t.is_alive(), "a thread hung"
    finally:
        stop.set()
        if extra:
            extra.join(10)
    assert not errors, errors
    return seen, bufs


def check_exact(seen: Counter, bufs: dict) -> None:
    expected = {(t, i) for t in range(SUBMITTERS) for i in range(PER_SUBMITTER)}
    assert set(seen) == expected, f"missing {len(expected - set(seen))} completions"
    assert set(seen.values()) == {1}, "a completion was returned twice"
    for ud, (off, buf) in bufs.items():
        assert buf == pattern(off, SIZE), f"wrong data for {ud}"


@pytest.mark.timeout(60)
def test_one_waiter_and_several_submitters_see_every_completion_once(make_queue, data_fd):
    q = make_queue(16)
    seen, bufs = run_threads(q, data_fd)
    check_exact(seen, bufs)
    assert (q.prepared, q.in_flight) == (0, 0)


@pytest.mark.timeout(60)
def test_wakeups_from_another_thread_lose_no_completion(make_queue, data_fd):
    q = make_queue(16)
    interrupts = []

    def keep_waking(stop: threading.Event) -> None:
        while not stop.is_set():
            q.wakeup()
            time.sleep(0.002)

    seen, bufs = run_threads(
        q, data_fd, on_interrupt=lambda: interrupts.append(1), helper=keep_waking
    )
    check_exact(seen, bufs)
    assert interrupts, "the waiter was never interrupted: the test did not exercise wakeup"


@pytest.mark.timeout(30)
def test_concurrent_wakeups_from_many_threads_are_safe(queue):
    barrier = threading.Barrier(8)

    def wake() -> None:
        barrier.wait()
        for _ in range(500):
            queue.wakeup()

    threads = [threading.Thread(target=wake) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    with pytest.raises(uringq.Interrupted):
        queue.wait(1, None, 5)
    assert queue.wait(1, None, 0.1) == []


@pytest.mark.timeout(30)
def test_a_blocked_wait_does_not_block_prepare_and_commit_in_other_threads(make_queue, data_fd):
    """While one thread sits in a long wait, another can still prepare and commit."""
    q = make_queue(8)
    q.register(data_fd)
    result: list = []

    def long_wait() -> None:
        result.extend(q.wait(1, None, 10))

    t = threading.Thread(target=long_wait)
    t.start()
    time.sleep(0.2)
    start = time.monotonic()
    buf = bytearray(64)
    q.prepare_read(data_fd, 4096, buf, "from another thread")
    q.commit()
    assert time.monotonic() - start < 1, "prepare/commit waited for the blocked wait"
    t.join(10)
    assert [c.user_data for c in result] == ["from another thread"]
    assert buf == pattern(4096, 64)


@pytest.mark.timeout(30)
def test_a_blocked_wait_releases_the_gil(queue):
    """Another Python thread runs while a thread sits in wait: were the GIL held there,
    this thread could run no bytecode until the 10 s wait ended (no timing ratio: the
    machine may be loaded)."""
    ended = []

    def wait() -> None:
        with pytest.raises(uringq.Interrupted):
            queue.wait(1, None, 10.0)
        ended.append(True)

    waiter = threading.Thread(target=wait)
    start = time.monotonic()
    waiter.start()
    time.sleep(0.05)
    n, end = 0, time.monotonic() + 0.3
    while time.monotonic() < end:
        n += 1
    ran_beside = waiter.is_alive() and time.monotonic() - start < 5
    queue.wakeup()
    waiter.join(10)
    assert ended == [True]  # the wakeup ended it
    assert ran_beside and n > 1000, (n, time.monotonic() - start)


@pytest.mark.timeout(60)
def test_wakeup_racing_with_the_start_of_wait_is_never_lost(queue):
    """Wakeups land just before, during and just after the waiter enters wait; each one
    must end that wait promptly (a lost wakeup would sit out the 5 s timeout)."""
    rng = random.Random(7)
    slow = []
    for round_ in range(200):
        delay = rng.choice([0, 0, 1e-5, 1e-4, 1e-3])
        waker = threading.Thread(target=lambda d=delay: (time.sleep(d), queue.wakeup()))
        start = time.monotonic()
        waker.start()
        try:
            queue.wait(1, None, 5)
        except uringq.Interrupted:
            pass
        else:
            slow.append((round_, "returned without Interrupted"))
        elapsed = time.monotonic() - start
        waker.join()
        if elapsed > 1:
            slow.append((round_, f"{elapsed:.2f}s"))
        # a wakeup that arrived after wait returned is still pending: consume it
        with contextlib.suppress(uringq.Interrupted):
            queue.wait(1, None, 0)
    assert not slow, slow


@pytest.mark.timeout(60)
def test_close_racing_with_a_blocked_wait_never_crashes_or_hangs(make_queue, data_fd):
    rng = random.Random(11)
    for round_ in range(40):
        q = make_queue(4)
        q.register(data_fd)
        q.prepare_read(data_fd, 0, bytearray(64), round_)
        q.commit()
        outcome: list = []

        def wait_until_closed(q=q, outcome=outcome) -> None:
            try:
                outcome.append(q.wait(2, None, 10))  # cannot be met: blocks until closed
            except uringq.QueueClosed as e:
                outcome.append(e)
            except BaseException as e:
                outcome.append(e)

        waiter = threading.Thread(target=wait_until_closed)
        waiter.start()
        time.sleep(rng.choice([0, 1e-4, 1e-3, 1e-2]))
        q.close(cancel=True)
        waiter.join(5)
        assert not waiter.is_alive(), f"round {round_}: the waiter hung after close"
        (result,) = outcome
        assert isinstance(result, uringq.QueueClosed), f"round {round_}: {result!r}"
        assert len(result.completions) <= 1
