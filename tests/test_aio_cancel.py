"""``uringq.aio`` file objects under cancellation and concurrency (SPEC 10).

* A read cancelled at any point consumes nothing: the position is where the read began
  and the next read returns the bytes (or characters) from there.
* A write cancelled at any point leaves the position and the file consistent with each
  other: either nothing was written, or all of it (a write the kernel may be doing runs
  to its end before the cancellation goes on).
* No user buffer is handed to the kernel by the stream methods, so a cancelled
  ``readinto`` never pins it.
* Many tasks on one file object: every operation is whole (no torn reads or writes, the
  same bytes each way).
* A cancelled open never leaks its fd, on the queue's route and the worker pool's.

Every provider, the default loop and uvloop.
"""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path
from typing import Any

import pytest
from helpers.aio_oracle import pattern
from helpers.proc import open_fds
from uringq import aio

pytestmark = pytest.mark.timeout(120)

CONTENT = pattern(200_000, 3)
TEXT = "".join(random.Random(4).choices("abc€😀\n", k=50_000))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(CONTENT)
    return path


async def _cancel_after(coro: Any, steps: int) -> tuple[bool, Any]:
    """Start ``coro`` as a task, let the loop run ``steps`` times, cancel it: (finished, result)."""
    task = asyncio.ensure_future(coro)
    for _ in range(steps):
        await asyncio.sleep(0)
    task.cancel()
    try:
        return True, await task
    except asyncio.CancelledError:
        return False, None


async def _settled(f: Any) -> None:
    """Until nothing of ``f``'s driver is in flight."""
    driver = f.driver
    while driver.queue.in_flight or driver.backlog:
        await asyncio.sleep(0.001)


@pytest.mark.parametrize("buffering", [0, 7, 4096, -1])
@pytest.mark.parametrize("call", ["read", "read_all", "read1", "readinto", "readline", "peek"])
def test_a_cancelled_read_consumes_nothing(run: Any, data: Path, call: str, buffering: int) -> None:
    if buffering == 0 and call in ("read1", "peek"):
        pytest.skip("a raw file has neither")

    async def main() -> None:
        cancelled = 0
        for steps in range(8):
            async with aio.open(data, "r+b", buffering=buffering) as f:
                await f.read(10)
                start = await f.tell()
                buf = bytearray(30_000)
                args = {"read": (30_000,), "read1": (30_000,), "readinto": (buf,)}
                method = getattr(f, "read" if call == "read_all" else call)
                finished, result = await _cancel_after(method(*args.get(call, ())), steps)
                position = await f.tell()
                if not finished:
                    cancelled += 1
                    assert position == start
                    if call == "readinto":
                        if buffering == 0:  # FileIO.readinto: the kernel had it until now
                            await _settled(f)
                        buf.append(0)  # not pinned any more
                elif call != "peek":
                    consumed = result if isinstance(result, int) else len(result)
                    assert position == start + consumed
                assert await f.read(100) == CONTENT[position : position + 100]
        assert cancelled  # the early cancellations did land

    run(main)


@pytest.mark.parametrize("buffering", [-1, 1, 5])
def test_a_cancelled_text_read_consumes_nothing(run: Any, tmp_path: Path, buffering: int) -> None:
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")

    async def main() -> None:
        for steps in range(8):
            for call in ("read", "readline", "read_all"):
                async with aio.open(path, "r", buffering=buffering, encoding="utf-8") as f:
                    assert await f.read(10) == TEXT[:10]
                    args = (20_000,) if call == "read" else ()
                    method = getattr(f, "read" if call == "read_all" else call)
                    finished, result = await _cancel_after(method(*args), steps)
                    consumed = 10 + (len(result) if finished else 0)
                    assert await f.read() == TEXT[consumed:]

    run(main)


@pytest.mark.parametrize("buffering", [0, 64, -1])
def test_a_cancelled_write_is_all_or_nothing(run: Any, data: Path, buffering: int) -> None:
    payload = pattern(50_000, 9)

    async def main() -> None:
        outcomes = set()
        for steps in range(8):
            data.write_bytes(CONTENT)
            f = await aio.open(data, "r+b", buffering=buffering)
            await f.write(b"0123456789")
            finished, _ = await _cancel_after(f.write(payload), steps)
            position = await f.tell()
            await f.close()
            written = position - 10
            assert written in (0, len(payload))
            outcomes.add((finished, written))
            expected = b"0123456789" + (payload if written else b"")
            assert data.read_bytes() == expected + CONTENT[len(expected) :]
        assert (False, 0) in outcomes  # cancelled before it began: nothing written
        assert any(written for _, written in outcomes)

    run(main)


# -- many tasks on one file ----------------------------------------------------------------------
@pytest.mark.parametrize("buffering", [0, 100, -1])
def test_many_tasks_reading_one_file_get_whole_distinct_chunks(
    run: Any, data: Path, buffering: int
) -> None:
    async def main() -> None:
        async with aio.open(data, "rb", buffering=buffering) as f:
            chunks = await asyncio.gather(*(f.read(1000) for _ in range(200)))
        assert sorted(chunks) == sorted(CONTENT[i : i + 1000] for i in range(0, 200_000, 1000))

    run(main)


@pytest.mark.parametrize("buffering", [0, 100, -1])
def test_many_tasks_writing_one_file_write_whole_chunks(
    run: Any, tmp_path: Path, buffering: int
) -> None:
    path = tmp_path / "out.bin"
    chunks = [bytes([i]) * (300 + i) for i in range(128)]

    async def main() -> None:
        async with aio.open(path, "wb", buffering=buffering) as f:
            counts = await asyncio.gather(*(f.write(chunk) for chunk in chunks))
        assert counts == [len(chunk) for chunk in chunks]
        data = path.read_bytes()
        pieces, i = [], 0
        while i < len(data):
            size = 300 + data[i]
            pieces.append(data[i : i + size])
            i += size
        assert sorted(pieces) == sorted(chunks)

    run(main)


def test_many_tasks_reading_lines_of_one_text_file(run: Any, tmp_path: Path) -> None:
    path = tmp_path / "lines.txt"
    lines = [f"line {i} {'€' * (i % 7)}\n" for i in range(3000)]
    path.write_text("".join(lines), encoding="utf-8")

    async def main() -> None:
        async with aio.open(path, encoding="utf-8") as f:

            async def reader() -> list[str]:
                got = []
                while line := await f.readline():
                    got.append(line)
                return got

            results = await asyncio.gather(*(reader() for _ in range(32)))
        assert sorted(line for got in results for line in got) == sorted(lines)

    run(main)


# -- cancelled opens -------------------------------------------------------------------------------
@pytest.mark.parametrize("route", ["queue", "workers"])
def test_a_cancelled_open_never_leaks_its_fd(run: Any, data: Path, route: str) -> None:
    async def main() -> None:
        driver = aio.get_driver()
        if route == "workers":
            driver._ops.clear()
        before = open_fds()
        for steps in range(6):
            for _ in range(20):
                finished, f = await _cancel_after(aio.open(data, "rb"), steps)
                if finished:
                    await f.close()
        for _ in range(200):  # the worker's and the queue's late results arrive
            await asyncio.sleep(0.005)
            if open_fds() == before:
                break
        assert open_fds() == before

    run(main)


def test_a_close_while_a_read_runs_waits_for_it(run: Any, data: Path) -> None:
    async def main() -> None:
        f = await aio.open(data, "rb")
        fd = f.fileno()
        read = asyncio.ensure_future(f.read(150_000))
        await asyncio.sleep(0)
        closing = f.close()
        assert f.closed
        assert await read == CONTENT[:150_000]
        await closing
        with pytest.raises(OSError):
            os.fstat(fd)

    run(main)


@pytest.mark.parametrize("buffering", [0, -1])
def test_a_cancelled_read_on_a_fifo_consumes_nothing(
    arun: Any, tmp_path: Path, buffering: int
) -> None:
    """A read waiting for a stream's data is a queue request: cancelling its task cancels
    it, so data written afterwards goes to the next read, and nothing stays pinned."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    async def warm_up() -> None:  # the threadpool queue's stream thread: one eventfd, kept
        r, w = os.pipe()
        os.write(w, b"x")
        async with aio.open(r, "rb", buffering=0) as f:
            assert await f.read(1) == b"x"
        os.close(w)

    arun(warm_up())
    before = open_fds()
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    wfd = os.open(fifo, os.O_WRONLY)
    os.set_blocking(rfd, True)

    async def main() -> list[bytes]:
        got = []
        async with aio.open(rfd, "rb", buffering=buffering) as f:
            for word in (b"one", b"two", b"three"):
                waiting = asyncio.ensure_future(f.read(len(word)))
                await asyncio.sleep(0.05)
                assert not waiting.done()
                waiting.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await waiting
                target = bytearray(len(word))
                reading = asyncio.ensure_future(f.readinto(target))
                await asyncio.sleep(0.05)
                reading.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await reading
                target.extend(b"!")  # never pinned by a stream read
                os.write(wfd, word)
                got.append(await asyncio.wait_for(f.read(len(word)), 5))
        return got

    try:
        assert arun(main()) == [b"one", b"two", b"three"]
    finally:
        os.close(wfd)
    assert open_fds() == before
