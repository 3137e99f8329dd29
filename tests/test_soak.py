"""Leaks and soaks (SPEC section 6: "flat RSS and fd count over 10 M requests"; section 2,
Closing: garbage collection of an open queue cancels like ``close(cancel=True)``).

Each test runs a bounded amount of traffic through one provider, measures the open fds
(``/proc/self/fd``), the threads and the resident set (``/proc/self/statm``) after a
warm-up, and checks them again at the end: fds and threads exactly as before, RSS within
RSS_TOLERANCE. The CI form takes a few seconds per provider; ``URINGQ_SOAK_REQUESTS``
(default 200000) scales the request soaks, e.g. ``URINGQ_SOAK_REQUESTS=2000000`` for the
long form (docs/TESTING.md).
"""

from __future__ import annotations

import contextlib
import gc
import os
import random
import time
from collections.abc import Callable
from typing import Any

import pytest
import uringq
from helpers.patterns import pattern
from helpers.proc import Gauge
from helpers.queueing import collect

SOAK_REQUESTS = int(os.environ.get("URINGQ_SOAK_REQUESTS", "200000"))
LONG = SOAK_REQUESTS > 200_000
SOAK_TIMEOUT = 60 if not LONG else max(600, SOAK_REQUESTS // 2000)

BLOCK = 4096
READ_AREA = 256 * BLOCK  # reads land here (pattern bytes, never written)
WRITE_AREA = 256 * BLOCK  # writes land here, after the read area


@pytest.fixture
def soak_file(tmp_path: Any) -> str:
    """READ_AREA pattern bytes followed by WRITE_AREA zeros."""
    path = str(tmp_path / "soak.bin")
    with open(path, "wb") as f:
        f.write(pattern(0, READ_AREA))
        f.write(bytes(WRITE_AREA))
    return path


# -- mixed requests --------------------------------------------------------------------------


def run_mixed(q: uringq.IoQueue, fd: int, requests: int, rng: random.Random) -> int:
    """``requests`` requests in batches of up to 32: mostly 4 KiB reads of the read area,
    a quarter writes to the write area, now and then a readv, a writev or a sync. Every
    completion is checked; read data every 16th batch. Returns the number of batches."""
    bufs = [bytearray(BLOCK) for _ in range(32)]
    parts = [bytearray(100), bytearray(BLOCK - 100)]
    data = memoryview(bytes(rng.randbytes(BLOCK)))
    done = batches = 0
    while done < requests:
        n = min(32, requests - done)
        offsets = {}
        for i in range(n):
            pick = rng.random()
            if pick < 0.70:
                off = rng.randrange(0, READ_AREA // BLOCK) * BLOCK
                offsets[i] = off
                q.prepare_read(fd, off, bufs[i], i)
            elif pick < 0.95:
                q.prepare_write(
                    fd, READ_AREA + rng.randrange(0, WRITE_AREA // BLOCK) * BLOCK, data, i
                )
            elif pick < 0.98:
                off = rng.randrange(0, READ_AREA // BLOCK) * BLOCK
                q.prepare_readv(fd, off, parts, i)
            elif pick < 0.995:
                q.prepare_writev(fd, READ_AREA, [data[:7], data[7:]], i)
            else:
                q.prepare_sync(fd, i, datasync=True)
        assert q.commit() == n
        got = q.wait(n)
        assert len(got) == n
        for c in got:
            assert c.error is None, c
        if batches % 16 == 0:
            for i, off in offsets.items():
                assert bufs[i] == pattern(off, BLOCK), f"read at {off} returned the wrong bytes"
        done += n
        batches += 1
    return batches


@pytest.mark.timeout(SOAK_TIMEOUT)
def test_mixed_request_soak_keeps_fds_threads_and_rss_flat(provider, soak_file):
    fd = os.open(soak_file, os.O_RDWR)
    rng = random.Random(1)
    try:
        with uringq.IoQueue(64, provider=provider) as q:
            q.register(fd)
            run_mixed(q, fd, max(SOAK_REQUESTS // 10, 1000), rng)  # warm-up
            gauge = Gauge()
            started = time.perf_counter()
            run_mixed(q, fd, SOAK_REQUESTS, rng)
            elapsed = time.perf_counter() - started
            assert (q.prepared, q.in_flight) == (0, 0)
            gauge.assert_flat(f"{SOAK_REQUESTS} mixed requests")
            q.deregister(fd)
    finally:
        os.close(fd)
    print(f"\n{provider}: {SOAK_REQUESTS} requests in {elapsed:.2f}s")


# -- batches --------------------------------------------------------------------------------


@pytest.mark.timeout(SOAK_TIMEOUT)
def test_read_many_and_write_many_soak_keeps_fds_threads_and_rss_flat(provider, soak_file):
    fd = os.open(soak_file, os.O_RDWR)
    rng = random.Random(2)
    per_call = 256
    out = bytearray(per_call * BLOCK)
    data = rng.randbytes(per_call * BLOCK)

    def run(requests: int, q: uringq.IoQueue) -> None:
        for call in range(max(requests // per_call, 1)):
            if call % 4 == 3:
                offsets = [READ_AREA + rng.randrange(0, WRITE_AREA // BLOCK) * BLOCK] * per_call
                got = q.write_many(fd, offsets, BLOCK, data, depth=rng.choice([8, 64, 256]))
            else:
                offsets = [rng.randrange(0, READ_AREA // BLOCK) * BLOCK for _ in range(per_call)]
                got = q.read_many(fd, offsets, BLOCK, out, depth=rng.choice([8, 64, 256]))
                if call % 32 == 0:
                    for i, off in enumerate(offsets):
                        assert out[i * BLOCK : (i + 1) * BLOCK] == pattern(off, BLOCK)
            assert set(got) == {BLOCK}, set(got)

    try:
        with uringq.IoQueue(8, provider=provider) as q:
            q.register(fd)
            run(max(SOAK_REQUESTS // 10, 1000), q)
            gauge = Gauge()
            run(SOAK_REQUESTS, q)
            gauge.assert_flat(f"{SOAK_REQUESTS} batch requests")
            q.deregister(fd)
    finally:
        os.close(fd)


# -- asyncio ---------------------------------------------------------------------------------


@pytest.mark.timeout(SOAK_TIMEOUT)
def test_aio_soak_keeps_fds_threads_and_rss_flat(provider, soak_file):
    """uringq.aio: 64 tasks of read (bytes), read_into and writes, a few cancelled."""
    import asyncio

    from uringq import aio

    async def traffic(f: aio.AsyncFile, requests: int, seed: int) -> None:
        rng = random.Random(seed)
        left = [requests]
        payload = rng.randbytes(BLOCK)

        async def worker() -> None:
            buf = bytearray(BLOCK)
            while left[0] > 0:
                left[0] -= 1
                pick = rng.random()
                off = rng.randrange(0, READ_AREA // BLOCK) * BLOCK
                if pick < 0.6:
                    data = await f.read(BLOCK, off)
                    if left[0] % 997 == 0:
                        assert data == pattern(off, BLOCK)
                elif pick < 0.85:
                    assert await f.read_into(buf, off) == BLOCK
                elif pick < 0.99:
                    where = READ_AREA + rng.randrange(0, WRITE_AREA // BLOCK) * BLOCK
                    assert await f.write(payload, where) == BLOCK
                else:
                    fut = f.read(BLOCK, off)
                    fut.cancel()  # the request still runs; its bytes are dropped

        await asyncio.gather(*(worker() for _ in range(64)))

    async def main() -> None:
        async with aio.open(soak_file, "r+b", provider=provider) as f:
            await traffic(f, max(SOAK_REQUESTS // 10, 1000), 1)
            while f.driver.queue.in_flight:
                await asyncio.sleep(0.001)
            gauge = Gauge()
            await traffic(f, SOAK_REQUESTS, 2)
            while f.driver.queue.in_flight:
                await asyncio.sleep(0.001)
            gauge.assert_flat(f"{SOAK_REQUESTS} aio requests")

    asyncio.run(main())


# -- queues created and closed ----------------------------------------------------------------

QUEUE_CYCLES = 10_000


@pytest.mark.timeout(120)
def test_ten_thousand_queues_created_and_closed_keep_fds_and_threads_flat(provider, soak_file):
    """10k queues of random sizes, each closed or left by its context manager; every 10th
    registers the file and reads, every 100th also writes and syncs, which on the
    threadpool provider starts its worker threads (they must leave with the queue)."""
    fd = os.open(soak_file, os.O_RDWR)
    rng = random.Random(3)
    buf = bytearray(512)

    def cycle(i: int) -> None:
        busy = i % 10 == 0
        q = uringq.IoQueue(rng.choice([4, 64] if busy else [1, 2, 8, 64]), provider=provider)
        if busy:
            q.register(fd)
            q.prepare_read(fd, 512 * (i % 100), buf, i)
            if i % 100 == 0:
                q.prepare_write(fd, READ_AREA, b"w" * 512, i)
                q.prepare_sync(fd, i)
            q.commit()
            collect(q, 3 if i % 100 == 0 else 1)
            assert buf == pattern(512 * (i % 100), 512)
        if i % 2:
            q.close()
        else:
            with q:
                pass

    try:
        for i in range(200):  # warm-up (imports, allocator pools)
            cycle(i)
        gauge = Gauge()
        for i in range(QUEUE_CYCLES):
            cycle(i)
        gauge.assert_flat(f"{QUEUE_CYCLES} queues")
    finally:
        os.close(fd)


# -- garbage collection with requests in flight ---------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize("shape", ["in flight", "cycle through user_data", "pipe read pending"])
def test_collecting_open_queues_with_requests_in_flight_leaks_nothing(provider, soak_file, shape):
    """300 times: open a queue, put requests in flight (and more prepared), drop every
    reference without closing and collect. The fds, threads and memory must come back,
    and no buffer may stay pinned. (Before a3c4adb, threadpool never collected a queue
    whose user_data referred to it once its workers had started.)"""
    fd = os.open(soak_file, os.O_RDWR)
    r, w = os.pipe()
    kept: list[bytearray] = []

    def scenario(i: int) -> None:
        q = uringq.IoQueue(8, provider=provider)
        q.register(fd)
        bufs = [bytearray(512) for _ in range(5)]  # kept to check they are unpinned
        kept.extend(bufs)
        ud: Any = {"queue": q} if shape == "cycle through user_data" else i
        for k, buf in enumerate(bufs[:3]):
            q.prepare_read(fd, k * 512, buf, ud)
        q.prepare_write(fd, READ_AREA + (i % 64) * BLOCK, bufs[3], ud)
        if shape == "pipe read pending":
            q.register(r)
            q.prepare_read(r, 0, bufs[4], ud)
        q.commit()
        q.prepare_read(fd, 0, bytearray(16), ud)  # one more, prepared only
        del q, ud

    try:
        for i in range(20):
            scenario(i)
        gc.collect()
        gauge = Gauge()
        for i in range(300):
            scenario(i)
            if i % 50 == 0:
                gc.collect()
        gauge.assert_flat(f"300 collected queues ({shape})")
        for buf in kept:
            buf.extend(b"x")  # BufferError if a collected queue still pinned it
    finally:
        for n in (fd, r, w):
            os.close(n)


# -- a queue that sees every kind of refusal, many times -----------------------------------


@pytest.mark.timeout(60)
def test_refusals_and_errors_in_a_loop_leak_nothing(provider, soak_file):
    """QueueFull, QueueEmpty, HandleNotRegistered, QueueBusy, Interrupted, bad arguments
    and I/O errors (EBADF completions) 20000 times: none of them may leak an fd, a thread,
    a buffer export or memory."""
    fd = os.open(soak_file, os.O_RDWR)
    ro = os.open(soak_file, os.O_RDONLY)
    other = os.open(soak_file, os.O_RDONLY)
    refusals = (
        uringq.QueueFull,
        uringq.QueueEmpty,
        uringq.HandleNotRegistered,
        uringq.QueueBusy,
        uringq.Interrupted,
        ValueError,
        TypeError,
    )
    calls: list[Callable[[uringq.IoQueue, bytearray], Any]] = [
        lambda q, b: q.prepare_read(fd, 0, b, "full?"),
        lambda q, b: q.prepare_write(ro, 0, b, "EBADF"),
        lambda q, b: q.commit(),
        lambda q, b: q.prepare_read(other, 0, b, "not registered"),
        lambda q, b: q.deregister(fd),
        lambda q, b: q.prepare_read(fd, -1, b, "negative"),
        lambda q, b: q.prepare_read(fd, 0, b"read-only", "read-only"),
        lambda q, b: q.wait(q.in_flight + 1),
        lambda q, b: (q.wakeup(), q.wait(0, None, 0)),
        lambda q, b: q.wait(1, None, 0),
    ]
    rng = random.Random(4)
    try:
        with uringq.IoQueue(4, 6, provider=provider) as q:
            q.register(fd)
            q.register(ro)

            def run(n: int) -> None:
                for _ in range(n):
                    with contextlib.suppress(*refusals):
                        rng.choice(calls)(q, bytearray(64))
                while q.prepared:
                    q.commit()
                collect(q, q.in_flight)

            run(2000)
            gauge = Gauge()
            run(20000)
            gauge.assert_flat("20000 refusals")
    finally:
        for n in (fd, ro, other):
            os.close(n)
