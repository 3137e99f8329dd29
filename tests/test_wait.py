"""wait(): min/max events, timeouts, wakeup and the pollable fileno (SPEC section 2, Waiting)."""

from __future__ import annotations

import select
import threading
import time

import pytest
import uringq
from helpers.patterns import pattern
from helpers.queueing import collect, settle


def commit_reads(q: uringq.IoQueue, fd: int, count: int, size: int = 64) -> dict[int, bytearray]:
    bufs = {i: bytearray(size) for i in range(count)}
    for i, buf in bufs.items():
        q.prepare_read(fd, i * size, buf, i)
    assert q.commit() == count
    return bufs


def later(delay: float, action) -> threading.Thread:
    """Run ``action`` in a thread after ``delay`` seconds."""

    def run() -> None:
        time.sleep(delay)
        action()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


# --- min_events / max_events ----------------------------------------------------------------


@pytest.mark.timeout(20)
def test_wait_returns_at_least_min_events(queue, rfd):
    bufs = commit_reads(queue, rfd, 8)
    got = queue.wait(8)
    assert sorted(c.user_data for c in got) == list(range(8))
    for i, buf in bufs.items():
        assert buf == pattern(i * 64, 64)


@pytest.mark.timeout(20)
def test_wait_returns_at_most_max_events(queue, rfd):
    commit_reads(queue, rfd, 8)
    settle()
    seen = []
    while len(seen) < 8:
        got = queue.wait(1, 3)
        assert 1 <= len(got) <= 3
        seen += [c.user_data for c in got]
    assert sorted(seen) == list(range(8))


@pytest.mark.timeout(20)
def test_wait_without_max_events_returns_every_ready_completion(queue, rfd):
    commit_reads(queue, rfd, 8)
    settle()
    assert sorted(c.user_data for c in queue.wait(1)) == list(range(8))


@pytest.mark.timeout(20)
def test_wait_with_timeout_returns_as_soon_as_min_events_are_ready(queue, rfd):
    commit_reads(queue, rfd, 2)
    start = time.monotonic()
    got = queue.wait(2, None, 30)
    assert len(got) == 2
    assert time.monotonic() - start < 5


@pytest.mark.timeout(20)
def test_wait_with_timeout_and_nothing_in_flight_returns_empty_after_the_timeout(queue):
    start = time.monotonic()
    assert queue.wait(1, None, 0.3) == []
    assert 0.25 <= time.monotonic() - start < 5


@pytest.mark.timeout(20)
def test_wait_with_zero_timeout_returns_at_once(queue):
    start = time.monotonic()
    assert queue.wait(1, None, 0) == []
    assert time.monotonic() - start < 0.5


@pytest.mark.timeout(20)
def test_wait_with_zero_timeout_returns_what_is_ready(queue, rfd):
    commit_reads(queue, rfd, 3)
    settle()
    assert sorted(c.user_data for c in queue.wait(1, None, 0)) == [0, 1, 2]


@pytest.mark.timeout(20)
def test_wait_with_timeout_and_nothing_ready_returns_empty_after_the_timeout(queue, pending_read):
    start = time.monotonic()
    assert queue.wait(1, None, 0.3) == []
    assert 0.25 <= time.monotonic() - start < 5
    assert queue.in_flight == 1


@pytest.mark.timeout(20)
def test_wait_with_timeout_and_min_events_above_in_flight_blocks_until_timeout(queue, rfd):
    commit_reads(queue, rfd, 1)
    start = time.monotonic()
    got = queue.wait(3, None, 0.5)
    elapsed = time.monotonic() - start
    assert [c.user_data for c in got] == [0]
    assert 0.45 <= elapsed < 5
    assert queue.in_flight == 0


@pytest.mark.timeout(10)
def test_min_events_above_in_flight_without_timeout_raises_ValueError(queue, rfd):
    commit_reads(queue, rfd, 2)
    with pytest.raises(ValueError):
        queue.wait(3)
    assert queue.in_flight == 2
    assert len(queue.wait(2)) == 2


@pytest.mark.timeout(10)
def test_prepared_requests_do_not_count_towards_min_events(queue, rfd):
    commit_reads(queue, rfd, 1)
    queue.prepare_read(rfd, 0, bytearray(8), "prepared")
    with pytest.raises(ValueError):
        queue.wait(2)


@pytest.mark.timeout(20)
def test_wait_without_timeout_blocks_until_the_request_completes(queue, pending_read):
    later(0.3, pending_read.release)
    start = time.monotonic()
    (c,) = queue.wait()
    assert time.monotonic() - start >= 0.2
    assert (c.user_data, c.result, c.error) == ("pending", len(b"released"), None)
    assert pending_read.buf[: c.result] == b"released"


@pytest.mark.timeout(20)
def test_wait_with_timeout_returns_promptly_when_the_request_completes(queue, pending_read):
    later(0.2, pending_read.release)
    start = time.monotonic()
    (c,) = queue.wait(1, None, 10)
    assert 0.15 <= time.monotonic() - start < 1.5
    assert c.user_data == "pending"


# --- wakeup ---------------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_wakeup_from_another_thread_interrupts_a_blocked_wait_promptly(queue):
    later(0.2, queue.wakeup)
    start = time.monotonic()
    with pytest.raises(uringq.Interrupted) as info:
        queue.wait(1, None, 30)
    assert time.monotonic() - start < 1.5
    assert list(info.value.completions) == []


@pytest.mark.timeout(20)
def test_wakeup_interrupts_a_wait_without_timeout(queue, pending_read):
    later(0.2, queue.wakeup)
    start = time.monotonic()
    with pytest.raises(uringq.Interrupted):
        queue.wait()
    assert time.monotonic() - start < 1.5
    assert queue.in_flight == 1


@pytest.mark.timeout(20)
def test_interrupted_carries_the_ready_completion_and_it_is_not_returned_again(queue, rfd):
    bufs = commit_reads(queue, rfd, 1)
    settle()
    later(0.2, queue.wakeup)
    with pytest.raises(uringq.Interrupted) as info:
        queue.wait(2, None, 30)  # cannot be met: blocks until the wakeup
    (c,) = info.value.completions
    assert (c.user_data, c.result, c.error) == (0, 64, None)
    assert bufs[0] == pattern(0, 64)
    assert queue.in_flight == 0
    assert queue.wait(1, None, 0.2) == []


@pytest.mark.timeout(20)
def test_wakeup_before_wait_makes_the_next_wait_raise_at_once(queue):
    queue.wakeup()
    start = time.monotonic()
    with pytest.raises(uringq.Interrupted):
        queue.wait(1, None, 30)
    assert time.monotonic() - start < 1


@pytest.mark.timeout(20)
def test_wakeup_before_wait_hands_over_ready_completions(queue, rfd):
    commit_reads(queue, rfd, 3)
    settle()
    queue.wakeup()
    with pytest.raises(uringq.Interrupted) as info:
        queue.wait(1, None, 30)
    assert sorted(c.user_data for c in info.value.completions) == [0, 1, 2]
    assert queue.in_flight == 0


@pytest.mark.timeout(20)
def test_several_wakeups_before_a_wait_count_once(queue):
    for _ in range(5):
        queue.wakeup()
    with pytest.raises(uringq.Interrupted):
        queue.wait(1, None, 30)
    start = time.monotonic()
    assert queue.wait(1, None, 0.3) == []
    assert time.monotonic() - start >= 0.25


@pytest.mark.timeout(20)
def test_interrupted_completions_are_limited_to_max_events(queue, rfd):
    commit_reads(queue, rfd, 4)
    settle()
    queue.wakeup()
    with pytest.raises(uringq.Interrupted) as info:
        queue.wait(1, 2, 30)
    first = [c.user_data for c in info.value.completions]
    assert len(first) == 2
    rest = [c.user_data for c in collect(queue, 2)]
    assert sorted(first + rest) == [0, 1, 2, 3]


@pytest.mark.timeout(20)
def test_interrupted_is_an_IoQueueError_with_a_completions_list(queue):
    queue.wakeup()
    with pytest.raises(uringq.Interrupted) as info:
        queue.wait(1, None, 5)
    assert isinstance(info.value, uringq.IoQueueError)
    assert isinstance(info.value.completions, list)


# --- fileno ---------------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_fileno_becomes_readable_when_a_completion_is_ready(queue, rfd):
    commit_reads(queue, rfd, 1)
    readable, _, _ = select.select([queue.fileno()], [], [], 5)
    assert readable == [queue.fileno()]
    assert [c.user_data for c in queue.wait(1, None, 5)] == [0]


@pytest.mark.timeout(20)
def test_fileno_becomes_readable_when_a_pending_request_completes(queue, pending_read):
    later(0.2, pending_read.release)
    readable, _, _ = select.select([queue.fileno()], [], [], 5)
    assert readable == [queue.fileno()]
    assert [c.user_data for c in queue.wait(1, None, 5)] == ["pending"]


def test_fileno_is_a_stable_open_fd(queue):
    fd = queue.fileno()
    assert isinstance(fd, int) and fd >= 0
    assert queue.fileno() == fd


@pytest.mark.timeout(20)
@pytest.mark.parametrize("timeout", [1e10, 1e300, float("inf"), 2**64])
def test_huge_timeouts_neither_overflow_nor_cut_the_wait_short(queue, timeout):
    later(0.2, queue.wakeup)
    start = time.monotonic()
    with pytest.raises(uringq.Interrupted):
        queue.wait(1, None, timeout)
    assert 0.15 <= time.monotonic() - start < 2
