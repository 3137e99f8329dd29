"""Threads hammering one queue (SPEC section 2 Waiting and Closing, section 3, section 4:
"one thread may wait while others prepare and commit").

Complements test_threads.py (one waiter, read-only submitters, one slow waker, close
racing a lone blocked wait) with: mixed reads/writes/syncs from several submitters and
two waiters, a storm of wakers, close racing every other method, ``read_many`` and
``write_many`` from two threads at once, waiters that take completions another waiter
counted on, and fork while other threads wait or work. Every test checks exact totals:
no completion lost, none returned twice, and no thread left hanging.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import uringq
from helpers.patterns import pattern
from helpers.queueing import DATA_SIZE, collect
from test_lifetime import FORK_CALLS, run_in_child

REGION = 16 * 1024  # each submitter writes only inside its own region of the file


class Failures:
    """Exceptions raised in worker threads, re-raised in the test."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.lock = threading.Lock()

    def add(self, who: str, exc: BaseException) -> None:
        with self.lock:
            self.items.append(f"{who}: {type(exc).__name__}: {exc}")

    def check(self) -> None:
        assert not self.items, "\n".join(self.items)


def start(*targets: Callable[[], None]) -> list[threading.Thread]:
    threads = [threading.Thread(target=t, daemon=True) for t in targets]
    for t in threads:
        t.start()
    return threads


def join_all(threads: list[threading.Thread], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    hung = [t.name for t in threads if t.is_alive()]
    assert not hung, f"threads still running after {timeout}s: {hung}"


def prepare_retrying(prepare: Callable[[], None], stop: threading.Event) -> bool:
    """Call ``prepare`` until the queue has room (False if ``stop`` was set meanwhile)."""
    while not stop.is_set():
        try:
            prepare()
            return True
        except uringq.QueueFull:
            time.sleep(0.0002)
    return False


# -- several submitters, two waiters --------------------------------------------------------


@pytest.mark.timeout(60)
def test_mixed_requests_from_several_threads_with_two_waiters_are_each_returned_once(
    make_queue, tmp_path
):
    """Four submitters prepare reads, writes, syncs and readv/writev in batches of random
    size and commit them; two waiters take completions with random ``max_events``. Every
    request comes back exactly once with its own result, and the file ends up holding
    exactly what was written."""
    submitters, per_thread = 4, 120
    path = tmp_path / "mixed.bin"
    path.write_bytes(pattern(0, submitters * REGION))
    fd = os.open(path, os.O_RDWR)
    q = make_queue(16, 24)
    q.register(fd)
    expected: dict[tuple[int, int], int] = {}
    reads: dict[tuple[int, int], tuple[bytearray, bytes]] = {}
    final = bytearray(pattern(0, submitters * REGION))
    seen: Counter[Any] = Counter()
    results: dict[Any, int] = {}
    failures = Failures()
    stop = threading.Event()
    total = submitters * per_thread
    seen_lock = threading.Lock()

    def submitter(tag: int) -> None:
        rng = random.Random(tag)
        base = tag * REGION
        image = bytearray(final[base : base + REGION])  # this region as it will be
        try:
            i = 0
            while i < per_thread:
                batch = rng.randint(1, 5)
                # writes and reads of one batch never overlap: results do not depend on order
                blocks = rng.sample(range(REGION // 512), batch)
                for block in blocks[: per_thread - i]:
                    ud, off = (tag, i), base + block * 512
                    op = rng.choice(["read", "write", "readv", "writev", "sync"])
                    if op in ("read", "readv"):
                        buf = bytearray(512)
                        want = bytes(image[block * 512 : block * 512 + 512])
                        reads[ud] = (buf, want)
                        bufs = [memoryview(buf)[:100], memoryview(buf)[100:]]
                        call = (
                            (lambda ud=ud, off=off, buf=buf: q.prepare_read(fd, off, buf, ud))
                            if op == "read"
                            else (lambda ud=ud, off=off, b=bufs: q.prepare_readv(fd, off, b, ud))
                        )
                        expected[ud] = 512
                    elif op in ("write", "writev"):
                        data = rng.randbytes(512)
                        image[block * 512 : block * 512 + 512] = data
                        call = (
                            (lambda ud=ud, off=off, d=data: q.prepare_write(fd, off, d, ud))
                            if op == "write"
                            else (
                                lambda ud=ud, off=off, d=data: q.prepare_writev(
                                    fd, off, [d[:7], d[7:]], ud
                                )
                            )
                        )
                        expected[ud] = 512
                    else:
                        call = lambda ud=ud: q.prepare_sync(fd, ud, datasync=True)  # noqa: E731
                        expected[ud] = 0
                    if not prepare_retrying(call, stop):
                        return
                    i += 1
                with contextlib.suppress(uringq.QueueEmpty):  # another thread committed it
                    q.commit()
                # wait until this batch is back before touching the same blocks again
                while not stop.is_set():
                    with seen_lock:
                        if all(seen[(tag, j)] for j in range(i)):
                            break
                    time.sleep(0.0005)
            final[base : base + REGION] = image
        except BaseException as exc:
            failures.add(f"submitter {tag}", exc)

    def waiter(tag: int) -> None:
        rng = random.Random(100 + tag)
        try:
            while not stop.is_set():
                with seen_lock:
                    if sum(seen.values()) >= total:
                        return
                got = q.wait(1, rng.choice([1, 2, 7, None]), 0.05)
                with seen_lock:
                    for c in got:
                        seen[c.user_data] += 1
                        results[c.user_data] = c.result
                        assert c.error is None, c
        except BaseException as exc:
            failures.add(f"waiter {tag}", exc)

    threads = start(*(lambda t=t: submitter(t) for t in range(submitters)))
    threads += start(lambda: waiter(0), lambda: waiter(1))
    try:
        join_all(threads, 45)
    finally:
        stop.set()
    failures.check()
    assert set(seen) == set(expected), f"missing {len(set(expected) - set(seen))} completions"
    assert max(seen.values()) == 1, "a completion was returned twice"
    assert results == expected
    for ud, (buf, want) in reads.items():
        assert bytes(buf) == want, f"read {ud} saw the wrong bytes"
    assert (q.prepared, q.in_flight) == (0, 0)
    q.deregister(fd)
    with open(path, "rb") as f:
        assert f.read() == bytes(final)
    os.close(fd)


# -- wakeup storm ------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_storm_of_wakeups_never_hangs_a_waiter_nor_loses_a_completion(make_queue, data_fd):
    """Six threads call ``wakeup()`` as fast as they can while two submitters commit reads
    and one waiter loops on ``wait(1, max, 0.05)``: every wait returns within a second
    (an Interrupted or a list), and every completion is seen exactly once, whether it came
    in a list or on ``Interrupted.completions``."""
    q = make_queue(8)
    q.register(data_fd)
    per_submitter, size = 300, 256
    total = 2 * per_submitter
    stop = threading.Event()
    failures = Failures()
    seen: Counter[Any] = Counter()
    bufs: dict[Any, tuple[int, bytearray]] = {}
    stats = {"interrupted": 0, "lists": 0, "slowest": 0.0, "wakeups": 0}

    def submitter(tag: int) -> None:
        try:
            for i in range(per_submitter):
                off = (tag * per_submitter + i) * size % (DATA_SIZE - size)
                buf = bytearray(size)
                bufs[(tag, i)] = (off, buf)
                if not prepare_retrying(
                    lambda off=off, buf=buf, ud=(tag, i): q.prepare_read(data_fd, off, buf, ud),
                    stop,
                ):
                    return
                with contextlib.suppress(uringq.QueueEmpty):
                    q.commit()
        except BaseException as exc:
            failures.add(f"submitter {tag}", exc)

    def waker() -> None:
        try:
            n = 0
            while not stop.is_set():
                q.wakeup()
                n += 1
            stats["wakeups"] += n
        except BaseException as exc:
            failures.add("waker", exc)

    def waiter() -> None:
        rng = random.Random(3)
        try:
            deadline = time.monotonic() + 40
            while sum(seen.values()) < total and time.monotonic() < deadline:
                began = time.monotonic()
                try:
                    got = q.wait(1, rng.choice([1, 3, None]), 0.05)
                    stats["lists"] += 1
                except uringq.Interrupted as e:
                    got = e.completions
                    stats["interrupted"] += 1
                stats["slowest"] = max(stats["slowest"], time.monotonic() - began)
                for c in got:
                    seen[c.user_data] += 1
                    assert c.ok, c
        except BaseException as exc:
            failures.add("waiter", exc)
        finally:
            stop.set()

    threads = start(waiter, lambda: submitter(0), lambda: submitter(1), *[waker] * 6)
    join_all(threads, 50)
    failures.check()
    assert set(seen) == set(bufs) and len(seen) == total, f"{len(seen)} of {total} seen"
    assert max(seen.values()) == 1, "a completion was returned twice"
    for ud, (off, buf) in bufs.items():
        assert buf == pattern(off, size), f"wrong data for {ud}"
    assert stats["interrupted"] > 0, "the storm never interrupted the waiter"
    assert stats["slowest"] < 1.0, f"a wait took {stats['slowest']:.2f}s in the storm"
    # the storm may leave one wakeup pending: it ends the next wait, then nothing is left
    with contextlib.suppress(uringq.Interrupted):
        q.wait(0, None, 0)
    assert q.wait(0, None, 0) == []
    assert (q.prepared, q.in_flight) == (0, 0)


# -- close racing everything else ---------------------------------------------------------

EXPECTED_IN_THE_RACE = (
    uringq.QueueFull,
    uringq.QueueEmpty,
    uringq.QueueBusy,
    uringq.Interrupted,
)


class CloseRace:
    """One round: six threads use ``q`` until it is closed under them."""

    def __init__(self, q: uringq.IoQueue, rfd: int, wfd: int, spare: int, seed: int) -> None:
        self.q, self.rfd, self.wfd, self.spare, self.seed = q, rfd, wfd, spare, seed
        self.failures = Failures()
        self.buffers: list[bytearray] = []
        self.closed_seen: Counter[str] = Counter()
        self.go = threading.Barrier(7)

    def loop(self, name: str, body: Callable[[random.Random], None]) -> None:
        local = random.Random(self.seed * 31 + len(name))
        self.go.wait()
        try:
            while True:
                with contextlib.suppress(*EXPECTED_IN_THE_RACE):
                    body(local)
        except uringq.QueueClosed:
            self.closed_seen[name] += 1
        except BaseException as exc:
            self.failures.add(name, exc)

    def submit(self, local: random.Random) -> None:
        buf = bytearray(512)
        self.buffers.append(buf)
        off = local.randrange(0, 64) * 512
        if local.random() < 0.5:
            self.q.prepare_read(self.rfd, off, buf, "r")
        else:
            self.q.prepare_write(self.wfd, off, buf, "w")
        if local.random() < 0.5:
            self.q.commit()

    def wait(self, local: random.Random) -> None:
        self.q.wait(local.choice([0, 1, 2]), None, 0.01)

    def wake(self, local: random.Random) -> None:
        self.q.wakeup()
        time.sleep(0.0005)

    def churn_registration(self, local: random.Random) -> None:
        self.q.register(self.spare)
        self.q.deregister(self.spare)

    def batch(self, local: random.Random) -> None:
        out = bytearray(8 * 512)
        self.buffers.append(out)
        self.q.read_many(self.rfd, [local.randrange(0, 64) * 512 for _ in range(8)], 512, out)

    def run(self, delay: float) -> None:
        threads = start(
            lambda: self.loop("submit 1", self.submit),
            lambda: self.loop("submit 2", self.submit),
            lambda: self.loop("wait", self.wait),
            lambda: self.loop("wakeup", self.wake),
            lambda: self.loop("register", self.churn_registration),
            lambda: self.loop("read_many", self.batch),
        )
        self.go.wait()
        time.sleep(delay)
        self.q.close(cancel=True)
        join_all(threads, 10)
        self.failures.check()
        assert sum(self.closed_seen.values()) == 6, self.closed_seen
        for buf in self.buffers:
            buf.extend(b"x")  # BufferError if the closed queue still pinned it


@pytest.mark.timeout(120)
def test_close_racing_every_method_in_other_threads_raises_only_QueueClosed(
    provider, data_fd, tmp_path
):
    """Per round, six threads use one queue (prepare+commit of reads and writes, wait,
    wakeup, register/deregister, read_many) while the main thread closes it with
    ``cancel=True`` at a random moment. Each call either works, raises one of the
    ordinary refusals, or raises ``QueueClosed``; once closed, every thread sees
    ``QueueClosed`` and leaves; nothing crashes or hangs; every buffer is released.
    (Before a445314, io_uring's read_many lost this race now and then with a bare
    OSError(EBADF): it used the registered dup's number after dropping the lock.)"""
    wpath = tmp_path / "race.bin"
    wpath.write_bytes(bytes(64 * 1024))
    wfd = os.open(wpath, os.O_RDWR)
    spare = os.open(wpath, os.O_RDONLY)
    rng = random.Random(5)
    try:
        for round_ in range(25):
            q = uringq.IoQueue(8, provider=provider)
            q.register(data_fd)
            q.register(wfd)
            CloseRace(q, data_fd, wfd, spare, round_).run(
                rng.choice([0, 0.0005, 0.002, 0.01, 0.03])
            )
    finally:
        os.close(wfd)
        os.close(spare)


# -- batches from two threads ---------------------------------------------------------------


@pytest.mark.timeout(60)
def test_read_many_from_two_threads_at_once_on_one_queue(make_queue, data_fd):
    """Two threads run ``read_many`` on the same queue at the same time (each call its own
    offsets, output buffer and depth) while a third does per-request reads: every block of
    every batch holds the right bytes."""
    q = make_queue(16)
    q.register(data_fd)
    size, count = 4096, 48
    failures = Failures()
    done = {"batches": 0, "singles": 0}
    stop = threading.Event()

    def batches(tag: int) -> None:
        rng = random.Random(tag)
        try:
            for _ in range(40):
                offsets = [rng.randrange(0, DATA_SIZE - size) for _ in range(count)]
                out = bytearray(count * size)
                got = q.read_many(data_fd, offsets, size, out, depth=rng.choice([1, 4, 32]))
                assert list(got) == [size] * count
                for i, off in enumerate(offsets):
                    assert out[i * size : (i + 1) * size] == pattern(off, size), (tag, i, off)
                done["batches"] += 1
        except BaseException as exc:
            failures.add(f"batch thread {tag}", exc)

    def singles() -> None:
        rng = random.Random(9)
        try:
            while not stop.is_set():
                off = rng.randrange(0, DATA_SIZE - 100)
                buf = bytearray(100)
                q.prepare_read(data_fd, off, buf, off)
                q.commit()
                (c,) = q.wait(1, None, 5)
                assert (c.user_data, c.result, bytes(buf)) == (off, 100, pattern(off, 100))
                done["singles"] += 1
        except BaseException as exc:
            failures.add("per-request thread", exc)

    side = start(singles)
    threads = start(lambda: batches(1), lambda: batches(2))
    try:
        join_all(threads, 50)
    finally:
        stop.set()
        join_all(side, 10)
    failures.check()
    assert done["batches"] == 80 and done["singles"] > 0


@pytest.mark.timeout(60)
def test_write_many_from_two_threads_into_disjoint_regions(make_queue, tmp_path):
    q = make_queue(16)
    path = tmp_path / "two-writers.bin"
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDWR)
    q.register(fd)
    size, count, rounds = 1024, 32, 25
    image = bytearray(2 * count * size)
    failures = Failures()

    def writer(tag: int) -> None:
        rng = random.Random(tag)
        try:
            for _ in range(rounds):
                slots = rng.sample(range(count), count)  # this thread's slots, shuffled
                offsets = [(tag * count + s) * size for s in slots]
                data = rng.randbytes(count * size)
                got = q.write_many(fd, offsets, size, data, depth=rng.choice([2, 16]))
                assert list(got) == [size] * count
                for i, off in enumerate(offsets):
                    image[off : off + size] = data[i * size : (i + 1) * size]
        except BaseException as exc:
            failures.add(f"writer {tag}", exc)

    join_all(start(lambda: writer(0), lambda: writer(1)), 50)
    failures.check()
    q.deregister(fd)
    os.close(fd)
    assert path.read_bytes() == bytes(image)


# -- waiters that count on the same completions ----------------------------------------------


@pytest.mark.timeout(30)
def test_a_waiter_whose_completions_another_thread_took_does_not_hang(
    request, make_queue, provider, pipe_fds
):
    """Thread A waits (no timeout) for both of the two reads in flight; the main thread
    takes the first one when it completes. SPEC 2: ``min_events`` above what is in flight
    "could never be met" - A must not sleep forever once the second read completes: it
    returns it (or raises QueueEmpty / ValueError), and no completion is lost."""
    r, w = pipe_fds
    q = make_queue(4)
    q.register(r)
    first, second = bytearray(4), bytearray(4)
    q.prepare_read(r, 0, first, "first")
    q.prepare_read(r, 0, second, "second")
    q.commit()
    if q.wait(1, None, 0.1):
        pytest.skip(f"{provider} does not keep a pipe read pending")
    outcome: list[Any] = []

    def wait_for_both() -> None:
        try:
            outcome.append(q.wait(2))
        except BaseException as exc:
            outcome.append(exc)

    (waiter,) = start(wait_for_both)
    time.sleep(0.2)
    os.write(w, b"1234")
    taken = q.wait(1, 1, 5)
    os.write(w, b"5678")
    waiter.join(3)
    hung = waiter.is_alive()
    if hung:
        q.wakeup()  # let the thread go before failing
        waiter.join(5)
    assert not hung, "the waiter still sleeps for a completion that another thread took"
    (result,) = outcome
    got = list(taken) + (result if isinstance(result, list) else [])
    assert isinstance(result, list | uringq.QueueEmpty | ValueError), result
    if not isinstance(result, list):
        got += q.wait(1, None, 5)
    assert sorted(c.user_data for c in got) == ["first", "second"]
    assert sorted([bytes(first), bytes(second)]) == [b"1234", b"5678"]


# -- fork with other threads at work --------------------------------------------------------


def fork_and_wait(body: Callable[[], int], timeout: float) -> int:
    """Run ``body()`` in a forked child; its exit code, or -1 if it hung (then killed).

    A lighter ``run_in_child`` for many forks in a row: it polls every millisecond.
    """
    pid = os.fork()
    if pid == 0:  # child
        code = 2
        try:
            code = body()
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return -1
        time.sleep(0.001)


@pytest.mark.timeout(60)
def test_fork_while_another_thread_waits(queue, rfd):
    """A thread sits in ``wait`` when the main thread forks. In the child every method
    raises RuntimeError and closing releases only the child's copy; the parent's waiter
    then gets the completion of a read committed after the fork."""
    outcome: list[Any] = []

    def waiter() -> None:
        try:
            outcome.append(queue.wait(1, None, 20))
        except BaseException as exc:
            outcome.append(exc)

    (t,) = start(waiter)
    time.sleep(0.2)  # the waiter is asleep in wait()

    def child() -> str:
        wrong = []
        for name, call in FORK_CALLS.items():
            try:
                call(queue, rfd)
            except RuntimeError:
                continue
            except BaseException as e:
                wrong.append(f"{name}: {type(e).__name__}: {e}")
            else:
                wrong.append(f"{name}: no exception")
        queue.close(cancel=True)
        return "; ".join(wrong)

    for _ in range(3):
        code, message = run_in_child(child, timeout=10)
        assert (code, message) == (0, "")
    assert t.is_alive(), "the parent's waiter returned early"
    buf = bytearray(128)
    queue.prepare_read(rfd, 256, buf, "after fork")
    queue.commit()
    t.join(10)
    assert not t.is_alive()
    (result,) = outcome
    assert [c.user_data for c in result] == ["after fork"]
    assert buf == pattern(256, 128)
    assert (queue.prepared, queue.in_flight) == (0, 0)


@pytest.mark.timeout(120)
def test_fork_while_other_threads_submit_and_wait(request, provider, data_fd):
    """Two threads keep preparing, committing and waiting, each on its own queue, while
    the main thread forks 200 times. Each child must find every method raising
    RuntimeError and must be able to close both queues (SPEC 2: closing in the child
    releases only the child's memory and fds); the parent's threads lose nothing."""
    queues = [uringq.IoQueue(16, provider=provider) for _ in range(2)]
    stop = threading.Event()
    failures = Failures()
    rounds = Counter[int]()

    def churn(q: uringq.IoQueue, tag: int) -> None:
        bufs = [bytearray(256) for _ in range(6)]
        try:
            while not stop.is_set():
                for i, buf in enumerate(bufs):
                    q.prepare_read(data_fd, i * 256, buf, (tag, i))
                q.commit()
                got = [c.user_data for c in collect(q, len(bufs))]
                assert sorted(got) == [(tag, i) for i in range(len(bufs))]
                assert all(buf == pattern(i * 256, 256) for i, buf in enumerate(bufs))
                rounds[tag] += 1
        except BaseException as exc:
            failures.add(f"churn {tag}", exc)

    def child() -> int:
        for q in queues:
            try:
                q.wait(1, None, 0)
            except RuntimeError:
                pass
            else:
                return 3  # wait worked in the child
            q.close(cancel=True)
        return 0

    for q in queues:
        q.register(data_fd)
    threads = start(*(lambda q=q, t=t: churn(q, t) for t, q in enumerate(queues)))
    hung = False
    try:
        for _ in range(200):
            code = fork_and_wait(child, timeout=3)
            if code == -1:
                hung = True
                break
            assert code == 0, f"the child exited {code}"
    finally:
        stop.set()
        join_all(threads, 20)
        for q in queues:
            q.close(cancel=True)
    failures.check()
    assert not hung, "a forked child hung closing a queue"
    assert rounds[0] and rounds[1]
