"""Closing, garbage collection and fork (SPEC section 2, Closing; section 3)."""

from __future__ import annotations

import contextlib
import gc
import os
import select
import threading
import time

import pytest
import uringq
from helpers.patterns import pattern
from helpers.proc import open_fds, run_in_child
from helpers.queueing import collect, settle

# --- close with requests in flight ----------------------------------------------------------


@pytest.mark.timeout(20)
def test_close_cancel_with_a_read_that_never_completes_returns_promptly(queue, pending_read):
    start = time.monotonic()
    queue.close(cancel=True)
    assert time.monotonic() - start < 5
    with pytest.raises(uringq.QueueClosed):
        queue.wait(1, None, 0.1)


@pytest.mark.timeout(20)
def test_close_cancel_drops_prepared_and_unreaped_requests(queue, rfd):
    queue.prepare_read(rfd, 0, bytearray(64), "done")
    queue.commit()
    queue.prepare_read(rfd, 0, bytearray(64), "prepared")
    settle()
    queue.close(cancel=True)
    with pytest.raises(uringq.QueueClosed):
        queue.commit()


@pytest.mark.timeout(20)
def test_context_exit_cancels_a_read_that_never_completes(provider, pipe_fds):
    r, _w = pipe_fds
    with uringq.IoQueue(provider=provider) as q:
        q.register(r)
        q.prepare_read(r, 0, bytearray(16), "never")
        q.commit()
        q.prepare_read(r, 0, bytearray(16), "never committed")
    with pytest.raises(uringq.QueueClosed):
        q.commit()


def test_context_enter_returns_the_queue(provider):
    q = uringq.IoQueue(provider=provider)
    with q as entered:
        assert entered is q


@pytest.mark.timeout(20)
def test_context_exit_on_an_exception_closes_and_lets_it_propagate(provider, data_fd):
    with pytest.raises(ZeroDivisionError), uringq.IoQueue(provider=provider) as q:
        q.register(data_fd)
        q.prepare_read(data_fd, 0, bytearray(8))
        q.commit()
        1 / 0  # noqa: B018
    with pytest.raises(uringq.QueueClosed):
        q.prepare_read(data_fd, 0, bytearray(8))


@pytest.mark.timeout(20)
def test_context_exit_with_a_pending_read_does_not_lose_data_written_later(provider, pipe_fds):
    """The cancelled read must really be gone: data written afterwards stays in the pipe."""
    r, w = pipe_fds
    with uringq.IoQueue(provider=provider) as q:
        q.register(r)
        q.prepare_read(r, 0, bytearray(16), "cancelled")
        q.commit()
        settle(0.1)
    os.write(w, b"for the next reader")
    readable, _, _ = select.select([r], [], [], 1)
    assert readable == [r]
    assert os.read(r, 100) == b"for the next reader"


# --- close from another thread --------------------------------------------------------------


@pytest.mark.timeout(20)
def test_close_from_another_thread_makes_the_waiter_raise_QueueClosed(queue):
    closer = threading.Timer(0.2, queue.close)
    closer.start()
    start = time.monotonic()
    with pytest.raises(uringq.QueueClosed):
        queue.wait(1, None, 30)
    assert time.monotonic() - start < 5
    closer.join()


@pytest.mark.timeout(20)
def test_close_cancel_from_another_thread_during_a_wait_without_timeout(queue, pending_read):
    closer = threading.Timer(0.2, lambda: queue.close(cancel=True))
    closer.start()
    with pytest.raises(uringq.QueueClosed) as info:
        queue.wait()
    closer.join()
    taken = list(info.value.completions)
    assert len(taken) <= 1
    assert all(c.user_data == "pending" for c in taken)


@pytest.mark.timeout(20)
def test_close_cancel_from_another_thread_hands_taken_completions_to_the_waiter(queue, rfd):
    queue.prepare_read(rfd, 0, bytearray(64), "ready")
    queue.commit()
    settle()
    closer = threading.Timer(0.2, lambda: queue.close(cancel=True))
    closer.start()
    with pytest.raises(uringq.QueueClosed) as info:
        queue.wait(2, None, 30)  # cannot be met: blocks until the close
    closer.join()
    assert [c.user_data for c in info.value.completions] in ([], ["ready"])


# --- garbage collection ---------------------------------------------------------------------


def fds_after(action) -> tuple[set[int], set[int]]:
    gc.collect()
    before = open_fds()
    action()
    gc.collect()
    return before, open_fds()


@pytest.mark.timeout(30)
def test_collecting_an_open_queue_with_a_pending_read_frees_its_fds(provider):
    r, w = os.pipe()

    def scenario() -> None:
        q = uringq.IoQueue(provider=provider)
        q.register(r)
        q.prepare_read(r, 0, bytearray(16), "never")
        q.commit()
        q.prepare_read(r, 0, bytearray(16), "prepared")
        del q

    try:
        before, after = fds_after(scenario)
    finally:
        os.close(r)
        os.close(w)
    assert after == before, f"leaked fds: {sorted(after - before)}"


@pytest.mark.timeout(30)
def test_collecting_an_open_queue_cancels_its_pending_read_and_releases_the_buffer(
    provider, pipe_fds
):
    r, w = pipe_fds
    q = uringq.IoQueue(provider=provider)
    q.register(r)
    buf = bytearray(16)
    q.prepare_read(r, 0, buf, "pending")
    q.commit()
    if q.wait(1, None, 0.1):
        pytest.skip(f"{provider} does not keep a pipe read pending")
    del q
    gc.collect()
    buf.extend(b"resizable again")  # the export was released
    os.write(w, b"for the next reader")
    readable, _, _ = select.select([r], [], [], 1)
    assert readable == [r], "the cancelled read consumed data written after collection"
    assert os.read(r, 100) == b"for the next reader"
    assert buf[:16] == bytes(16)


@pytest.mark.timeout(30)
def test_collecting_an_open_queue_in_a_reference_cycle_frees_its_fds(provider, data_file):
    def scenario() -> None:
        fd = os.open(data_file, os.O_RDONLY)
        q = uringq.IoQueue(provider=provider)
        q.register(fd)
        cycle = {"queue": q}
        cycle["self"] = cycle
        q.prepare_read(fd, 0, bytearray(64), cycle)  # the queue holds the cycle via user_data
        q.commit()
        os.close(fd)
        del q, cycle

    before, after = fds_after(scenario)
    assert after == before, f"leaked fds: {sorted(after - before)}"


@pytest.mark.timeout(60)
def test_many_queues_opened_and_closed_leak_neither_fds_nor_threads(provider, data_file):
    fd = os.open(data_file, os.O_RDONLY)
    try:
        gc.collect()
        fds_before = open_fds()
        threads_before = threading.active_count()
        for i in range(50):
            with uringq.IoQueue(8, provider=provider) as q:
                q.register(fd)
                buf = bytearray(64)
                q.prepare_read(fd, i * 64, buf, i)
                q.commit()
                collect(q, 1)
                assert buf == pattern(i * 64, 64)
                q.deregister(fd)
        gc.collect()
        deadline = time.monotonic() + 5
        while threading.active_count() > threads_before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert open_fds() == fds_before
        assert threading.active_count() <= threads_before
    finally:
        os.close(fd)


@pytest.mark.timeout(30)
def test_close_releases_the_fds_of_registered_files(provider, data_file):
    def scenario() -> None:
        q = uringq.IoQueue(provider=provider)
        for _ in range(3):
            fd = os.open(data_file, os.O_RDONLY)
            q.register(fd)
            os.close(fd)
        q.close()

    before, after = fds_after(scenario)
    assert after == before, f"leaked fds: {sorted(after - before)}"


# --- fork -----------------------------------------------------------------------------------

FORK_CALLS = {
    "register": lambda q, fd: q.register(fd),
    "deregister": lambda q, fd: q.deregister(fd),
    "prepare_read": lambda q, fd: q.prepare_read(fd, 0, bytearray(8)),
    "prepare_write": lambda q, fd: q.prepare_write(fd, 0, b"x"),
    "prepare_sync": lambda q, fd: q.prepare_sync(fd),
    "prepare_readv": lambda q, fd: q.prepare_readv(fd, 0, [bytearray(8)]),
    "prepare_writev": lambda q, fd: q.prepare_writev(fd, 0, [b"x"]),
    "commit": lambda q, fd: q.commit(),
    "wait": lambda q, fd: q.wait(1, None, 0.1),
    "wakeup": lambda q, fd: q.wakeup(),
    "fileno": lambda q, fd: q.fileno(),
    "read_many": lambda q, fd: q.read_many(fd, [0], 8, bytearray(8)),
    "write_many": lambda q, fd: q.write_many(fd, [0], 1, b"x"),
}


@pytest.mark.timeout(30)
def test_every_method_raises_RuntimeError_in_a_forked_child(queue, rfd):
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
        return "; ".join(wrong)

    code, message = run_in_child(child)
    assert (code, message) == (0, "")


@pytest.mark.timeout(30)
def test_closing_in_a_forked_child_does_not_steal_the_parent_completion(queue, rfd):
    buf = bytearray(256)
    queue.prepare_read(rfd, 512, buf, "parent's")
    queue.commit()
    settle()  # the completion is ready (not yet returned) when the child forks

    def child() -> str:
        with contextlib.suppress(RuntimeError):
            queue.close(cancel=True)
        gc.collect()
        return ""

    code, message = run_in_child(child)
    assert (code, message) == (0, "")
    (c,) = queue.wait(1, None, 5)
    assert (c.user_data, c.result, c.error) == ("parent's", 256, None)
    assert buf == pattern(512, 256)


@pytest.mark.timeout(30)
def test_closing_in_a_forked_child_does_not_cancel_the_parent_pending_read(queue, pending_read):
    def child() -> str:
        with contextlib.suppress(RuntimeError):
            queue.close(cancel=True)
        gc.collect()
        return ""

    code, message = run_in_child(child)
    assert (code, message) == (0, "")
    pending_read.release(b"parent")
    (c,) = queue.wait(1, None, 5)
    assert (c.user_data, c.result, c.error) == ("pending", 6, None)
    assert pending_read.buf[:6] == b"parent"


@pytest.mark.timeout(30)
def test_collecting_a_queue_in_a_forked_child_does_not_steal_the_parent_completion(
    provider, data_fd
):
    holder = [uringq.IoQueue(provider=provider)]  # the only reference, so the child can drop it
    try:
        holder[0].register(data_fd)
        buf = bytearray(256)
        holder[0].prepare_read(data_fd, 1024, buf, "parent's")
        holder[0].commit()
        settle()

        def child() -> str:
            holder.clear()
            gc.collect()
            return ""

        code, message = run_in_child(child)
        assert (code, message) == (0, "")
        (c,) = holder[0].wait(1, None, 5)
        assert (c.user_data, c.result, c.error) == ("parent's", 256, None)
        assert buf == pattern(1024, 256)
    finally:
        holder[0].close(cancel=True)


@pytest.mark.timeout(30)
def test_a_new_queue_in_a_forked_child_works(queue, rfd, data_file):
    def child() -> str:
        fd = os.open(data_file, os.O_RDONLY)
        with uringq.IoQueue(provider=queue.provider_id) as q:
            q.register(fd)
            buf = bytearray(128)
            q.prepare_read(fd, 128, buf, "child")
            q.commit()
            (c,) = q.wait(1, None, 5)
            if (c.result, bytes(buf)) != (128, pattern(128, 128)):
                return f"bad completion in child: {c!r}"
        return ""

    code, message = run_in_child(child)
    assert (code, message) == (0, "")
