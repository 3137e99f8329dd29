"""``uringq.aio``: asyncio integration (SPEC section 5).

Every behavioural test runs on each available provider (the ``provider`` fixture of
conftest) and on each event loop: the default one and uvloop (skipped when uvloop is not
installed). Tests that need a request to stay in flight read from an empty pipe; a
provider that completes such a read at once (one that serves reads with ``pread``, which
fails on a pipe) skips them, as conftest's ``pending_read`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import os
import random
import warnings
from collections.abc import Iterator
from typing import TypeVar

import pytest
import uringq
from uringq import aio

pytestmark = pytest.mark.timeout(60)

T = TypeVar("T")
BLOCK = 4096


@pytest.fixture
def data(tmp_path) -> tuple[str, bytes]:
    """(path, contents) of a 1 MiB + 100 byte file of random bytes."""
    contents = random.Random(11).randbytes(1024 * 1024 + 100)
    path = tmp_path / "data.bin"
    path.write_bytes(contents)
    return str(path), contents


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        with contextlib.suppress(OSError):
            os.close(fd)


async def pending_pipe_read(
    driver: aio.Driver, read_fd: int, buf: bytearray
) -> asyncio.Future[int]:
    """A read on an empty pipe: it stays in flight until someone writes to the pipe."""
    driver.register(read_fd)
    fut = driver.read_into(read_fd, 0, buf)
    await asyncio.sleep(0.05)
    if fut.done():
        exc = fut.exception()
        pytest.skip(f"{driver.provider_id} does not keep a pipe read pending: {exc!r}")
    return fut


def resizable(buf: bytearray) -> bool:
    try:
        buf.append(0)
    except BufferError:
        return False
    buf.pop()
    return True


# -- reading and writing ---------------------------------------------------------------
def test_read_returns_the_bytes_at_the_offset(run, data):
    path, contents = data

    async def main() -> None:
        async with aio.open(path, "rb") as f:
            assert await f.read(BLOCK, 0) == contents[:BLOCK]
            assert await f.read(100, 12345) == contents[12345:12445]
            block = await f.read(10, 5)
            assert type(block) is bytes

    run(main)


def test_read_is_short_at_eof_and_empty_past_it(run, data):
    path, contents = data
    size = len(contents)

    async def main() -> None:
        async with aio.open(path, "rb") as f:
            assert await f.read(BLOCK, size - 10) == contents[-10:]
            assert await f.read(BLOCK, size) == b""
            assert await f.read(BLOCK, size + 10**6) == b""
            assert await f.read(0, 0) == b""

    run(main)


def test_read_into_fills_the_buffer_and_returns_the_count(run, data):
    path, contents = data

    async def main() -> None:
        async with aio.open(path, "rb") as f:
            buf = bytearray(BLOCK)
            assert await f.read_into(buf, 777) == BLOCK
            assert buf == contents[777 : 777 + BLOCK]
            view = memoryview(bytearray(64))[8:40]
            assert await f.read_into(view, 0) == 32
            assert view.tobytes() == contents[:32]
            assert await f.read_into(bytearray(50), len(contents) - 20) == 20

    run(main)


class _OwnFuture(asyncio.Future):  # type: ignore[type-arg]
    """The future of a loop that makes its own (see the test below)."""


def test_a_loop_that_makes_its_own_futures_gets_them_from_every_request(provider, data):
    """The driver makes futures itself only where ``create_future`` is asyncio's or
    uvloop's own; any other ``create_future`` is called for every request."""
    path, contents = data
    made: list[asyncio.Future[object]] = []

    class OwnLoop(asyncio.SelectorEventLoop):
        def create_future(self) -> asyncio.Future[object]:
            fut = _OwnFuture(loop=self)
            made.append(fut)
            return fut

    async def main() -> None:
        aio.get_driver(provider=provider)
        async with aio.open(path, "rb") as f:
            made.clear()
            reads = [f.read(16, 16), f.read_into(bytearray(16), 0), f.write(b"x", 0)]
            assert all(type(fut) is _OwnFuture for fut in reads)
            assert made == reads
            assert await reads[0] == contents[16:32]
            assert await reads[1] == 16
            with pytest.raises(OSError):  # opened read-only
                await reads[2]

    with asyncio.Runner(loop_factory=OwnLoop) as r:
        r.run(main())


def test_write_then_read_back(run, tmp_path):
    path = str(tmp_path / "out.bin")

    async def main() -> None:
        async with aio.open(path, "wb") as f:
            assert await f.write(b"hello", 0) == 5
            assert await f.write(bytearray(b"world"), 10) == 5
            assert await f.write(memoryview(b"--"), 5) == 2
            await f.fsync()
            await f.fsync(datasync=True)
        async with aio.open(path, "r+b") as f:
            assert await f.read(100, 0) == b"hello--\0\0\0world"

    run(main)
    with open(path, "rb") as check:
        assert check.read() == b"hello--\0\0\0world"


def test_readv_and_writev(run, tmp_path):
    path = str(tmp_path / "vec.bin")

    async def main() -> None:
        async with aio.open(path, "w+b") as f:
            assert await f.writev([b"abc", bytearray(b"defg"), b""], 2) == 7
            a, b = bytearray(4), bytearray(10)
            assert await f.readv([a, b], 0) == 9
            assert (bytes(a), bytes(b[:5])) == (b"\0\0ab", b"cdefg")

    run(main)


def test_modes_follow_the_builtin_open(run, tmp_path):
    path = tmp_path / "modes.bin"

    async def main() -> None:
        async with aio.open(path, "xb") as f:  # creates; os.PathLike works
            await f.write(b"12345", 0)
        with pytest.raises(FileExistsError):
            await aio.open(path, "xb")
        async with aio.open(path, "ab") as f:
            await f.write(b"678", 0)  # O_APPEND: the kernel appends
        async with aio.open(path, "rb") as f:
            assert await f.read(20, 0) == b"12345678"
            with pytest.raises(OSError) as info:
                await f.write(b"x", 0)
            assert info.value.errno == errno.EBADF
        async with aio.open(path, "wb"):  # truncates
            pass
        assert path.stat().st_size == 0

    run(main)


@pytest.mark.parametrize("mode", ["", "rw", "rr", "q", "wb+x", "rtb", "U", "r++", "+", "xa"])
def test_invalid_modes_raise_the_builtins_value_error(tmp_path, mode):
    with pytest.raises(ValueError) as builtin:
        open(tmp_path / "x", mode)  # noqa: SIM115
    with pytest.raises(ValueError) as ours:
        aio.open(tmp_path / "x", mode)
    assert str(ours.value) == str(builtin.value)
    assert not (tmp_path / "x").exists()


def test_await_open_returns_a_file_to_close(run, data):
    path, contents = data

    async def main() -> None:
        f = await aio.open(path, "rb")
        try:
            assert not f.closed
            assert f.fileno() >= 0
            assert f.name == path and f.mode == "rb"
            assert await f.read(3, 0) == contents[:3]
        finally:
            await f.aclose()
        assert f.closed
        f.close()  # closing twice does nothing

    run(main)


# -- errors ------------------------------------------------------------------------------
def test_open_of_a_missing_file_raises_file_not_found(run, tmp_path):
    async def main() -> None:
        with pytest.raises(FileNotFoundError):
            async with aio.open(tmp_path / "missing.bin", "rb"):
                pass
        with pytest.raises(FileNotFoundError):
            await aio.open(tmp_path / "missing.bin", "r+b")
        with pytest.raises(IsADirectoryError):
            await aio.open(tmp_path, "wb")

    run(main)


def test_read_from_a_write_only_file_raises_ebadf(run, tmp_path):
    path = str(tmp_path / "wo.bin")

    async def main() -> None:
        async with aio.open(path, "wb") as f:
            await f.write(b"data", 0)
            with pytest.raises(OSError) as info:
                await f.read(4, 0)
            assert info.value.errno == errno.EBADF
            with pytest.raises(OSError) as info:
                await f.read_into(bytearray(4), 0)
            assert info.value.errno == errno.EBADF

    run(main)


def test_read_from_a_directory_raises_is_a_directory(run, tmp_path):
    async def main() -> None:
        fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            aio.register(fd)
            with pytest.raises(IsADirectoryError):
                await aio.read(fd, 0, bytearray(8))
            aio.deregister(fd)
        finally:
            os.close(fd)

    run(main)


def test_argument_errors_arrive_from_the_await(run, data):
    path, _ = data

    async def main() -> None:
        async with aio.open(path, "rb") as f:
            with pytest.raises(ValueError):
                await f.read_into(bytearray(8), -1)
            with pytest.raises(ValueError):
                await f.read(8, -5)
            with pytest.raises(ValueError):
                await f.read(-1, 0)
            with pytest.raises(TypeError):
                await f.read_into(b"read-only", 0)
            with pytest.raises(TypeError):
                await f.write("text", 0)  # type: ignore[arg-type]
            assert await f.read(4, 0)  # the driver is still fine

    run(main)


def test_an_unregistered_fd_raises_handle_not_registered(run, data):
    path, _ = data

    async def main() -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            with pytest.raises(uringq.HandleNotRegistered):
                await aio.read(fd, 0, bytearray(8))
        finally:
            os.close(fd)

    run(main)


def test_operations_on_a_closed_file_raise_value_error(run, data):
    path, _ = data

    async def main() -> None:
        f = await aio.open(path, "rb")
        f.close()
        for call in (
            lambda: f.read(1, 0),
            lambda: f.read_into(bytearray(1), 0),
            lambda: f.write(b"x", 0),
            lambda: f.readv([bytearray(1)], 0),
            lambda: f.writev([b"x"], 0),
            f.fsync,
        ):
            with pytest.raises(ValueError, match="closed file"):
                await call()
        with pytest.raises(ValueError):
            f.fileno()

    run(main)


# -- concurrency -------------------------------------------------------------------------
def test_thousands_of_concurrent_reads_beyond_the_ring_size(run, data):
    path, contents = data
    rng = random.Random(5)
    offsets = [rng.randrange(len(contents)) for _ in range(5000)]

    async def main() -> None:
        driver = aio.get_driver()
        assert driver.queue.cq_entries < len(offsets)
        async with aio.open(path, "rb") as f:
            results = await asyncio.gather(*(f.read(BLOCK, off) for off in offsets))
        for off, got in zip(offsets, results, strict=True):
            assert got == contents[off : off + BLOCK]
        assert driver.backlog == 0

    run(main)


def test_a_tiny_queue_never_raises_queue_full(loop_factory, provider, data):
    path, contents = data
    offsets = list(range(0, 300 * 1000, 1000))

    async def main() -> None:
        aio.get_driver(provider=provider, sq_entries=2, cq_entries=2)
        async with aio.open(path, "rb") as f:
            bufs = [bytearray(64) for _ in offsets]
            counts = await asyncio.gather(
                *(f.read_into(buf, off) for buf, off in zip(bufs, offsets, strict=True))
            )
        assert counts == [64] * len(offsets)
        for buf, off in zip(bufs, offsets, strict=True):
            assert buf == contents[off : off + 64]

    with asyncio.Runner(loop_factory=loop_factory) as r:
        r.run(main())


def test_a_bad_request_behind_the_backlog_fails_alone_in_order(loop_factory, provider, data):
    """Requests made while others wait for room join the backlog unchecked: their
    argument errors arrive from their own await when their turn comes, in order."""
    path, contents = data

    async def main() -> None:
        aio.get_driver(provider=provider, sq_entries=1, cq_entries=1)
        async with aio.open(path, "rb") as f:
            buf = bytearray(8)
            futs = [f.read(8, 0), f.read(8, 8), f.read(8, -1), f.read_into(buf, 16)]
            futs += [f.read_into(b"read-only", 0), f.read(8, 24)]
            results = await asyncio.gather(*futs, return_exceptions=True)
        assert results[:2] == [contents[:8], contents[8:16]]
        assert type(results[2]) is ValueError
        assert results[3] == 8 and buf == contents[16:24]
        assert type(results[4]) is TypeError
        assert results[5] == contents[24:32]

    with asyncio.Runner(loop_factory=loop_factory) as r:
        r.run(main())


def test_many_tasks_doing_sequential_reads(run, data):
    path, contents = data

    async def worker(f: aio.AsyncFile, start: int) -> int:
        total = 0
        for off in range(start, start + 50 * 997, 997):
            block = await f.read(300, off)
            assert block == contents[off : off + 300]
            total += len(block)
        return total

    async def main() -> None:
        async with aio.open(path, "rb") as f:
            totals = await asyncio.gather(*(worker(f, i * 5000) for i in range(64)))
        assert totals == [50 * 300] * 64

    run(main)


def test_concurrent_writes_then_reads(run, tmp_path):
    path = str(tmp_path / "many.bin")
    blocks = [bytes([i % 256]) * 512 for i in range(2000)]

    async def main() -> None:
        async with aio.open(path, "w+b") as f:
            written = await asyncio.gather(
                *(f.write(block, i * 512) for i, block in enumerate(blocks))
            )
            assert written == [512] * len(blocks)
            await f.fsync()
            back = await asyncio.gather(*(f.read(512, i * 512) for i in range(len(blocks))))
        assert back == blocks

    run(main)


def test_requests_are_committed_once_per_loop_iteration(run, data, monkeypatch):
    path, _ = data
    commits: list[int] = []

    async def main() -> None:
        driver = aio.get_driver()
        flush = driver._flush_native
        if flush is not None:  # the native flush commits every prepared request at once

            def counting_flush() -> int:
                if n := driver.queue.prepared:
                    commits.append(n)
                return flush()

            hook, counting = "_flush_native", counting_flush
        else:
            original = driver._commit

            def counting_commit() -> int:
                n = original()
                commits.append(n)
                return n

            hook, counting = "_commit", counting_commit

        async with aio.open(path, "rb") as f:  # the open and close may be requests too
            monkeypatch.setattr(driver, hook, counting)
            await asyncio.gather(*(f.read(16, i * 16) for i in range(100)))
            monkeypatch.undo()

    run(main)
    assert commits == [100]


# -- cancellation ------------------------------------------------------------------------
def test_cancelled_read_keeps_its_buffer_pinned_until_the_completion(run, pipe):
    r, w = pipe

    async def main() -> None:
        driver = aio.get_driver()
        buf = bytearray(8)
        fut = await pending_pipe_read(driver, r, buf)
        fut.cancel()
        await asyncio.sleep(0.01)
        assert fut.cancelled()
        with pytest.raises(BufferError):  # the kernel may still write into it
            buf.append(0)
        os.write(w, b"late")
        for _ in range(200):
            await asyncio.sleep(0.005)
            if resizable(buf):
                break
        assert resizable(buf), "the buffer stayed pinned after its completion arrived"
        assert bytes(buf[:4]) == b"late"  # the data landed in the pinned buffer, unreported
        assert fut.cancelled()

    run(main)


def test_cancelling_the_awaiting_task_cancels_the_request_future(run, pipe):
    r, w = pipe

    async def main() -> None:
        driver = aio.get_driver()
        driver.register(r)
        buf = bytearray(8)
        task = asyncio.ensure_future(driver.read_into(r, 0, buf))
        await asyncio.sleep(0.05)
        if task.done():
            pytest.skip(f"{driver.provider_id} does not keep a pipe read pending")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not resizable(buf)
        os.write(w, b"x")
        for _ in range(200):
            await asyncio.sleep(0.005)
            if resizable(buf):
                break
        assert resizable(buf)
        # the driver keeps working after dropping the result
        os.write(w, b"next")
        assert await driver.read_into(r, 0, bytearray(4)) == 4

    run(main)


def test_cancelling_a_completed_read_drops_the_result_quietly(run, data):
    path, contents = data

    async def main() -> None:
        async with aio.open(path, "rb") as f:
            futs = [f.read(16, i) for i in range(10)]
            for fut in futs[::2]:
                fut.cancel()
            results = await asyncio.gather(*futs, return_exceptions=True)
        for i, result in enumerate(results):
            if i % 2 == 0:
                assert isinstance(result, asyncio.CancelledError)
            else:
                assert result == contents[i : i + 16]

    run(main)


def test_a_cancelled_request_in_the_backlog_never_runs(loop_factory, provider, pipe):
    r, w = pipe

    async def main() -> None:
        driver = aio.get_driver(provider=provider, sq_entries=1, cq_entries=1)
        first = bytearray(4)
        await pending_pipe_read(driver, r, first)  # takes the only slot
        second = bytearray(4)
        fut = driver.read_into(r, 0, second)
        assert driver.backlog == 1
        fut.cancel()
        assert resizable(second)  # never handed to the kernel
        os.write(w, b"abcdefgh")
        for _ in range(200):
            await asyncio.sleep(0.005)
            if resizable(first):
                break
        assert first == b"abcd"
        assert driver.backlog == 0
        assert second == b"\0\0\0\0"
        assert os.read(r, 100) == b"efgh"  # the cancelled read consumed nothing

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())


def test_closing_a_file_with_a_cancelled_read_in_flight_waits_for_it(run, tmp_path):
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    keep_writer = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # so opening for read won't block

    async def main() -> None:
        driver = aio.get_driver()
        f = await aio.open(fifo, "rb")
        fd = f.fileno()
        buf = bytearray(4)
        fut = driver.read_into(fd, 0, buf)
        await asyncio.sleep(0.05)
        if fut.done():
            f.close()
            pytest.skip(f"{driver.provider_id} does not keep a fifo read pending")
        fut.cancel()
        f.close()
        assert f.closed
        os.fstat(fd)  # still open: the number stays reserved while the kernel may use it
        os.write(keep_writer, b"done")
        for _ in range(200):
            await asyncio.sleep(0.005)
            if resizable(buf):
                break
        await asyncio.sleep(0.01)
        with pytest.raises(OSError):
            os.fstat(fd)  # closed once the completion arrived

    try:
        run(main)
    finally:
        os.close(keep_writer)


def test_closing_a_file_right_after_its_reads_closes_the_fd_promptly(run, data):
    path, _ = data

    async def main() -> None:
        for _ in range(20):
            f = await aio.open(path, "rb")
            fd = f.fileno()
            await asyncio.gather(*(f.read(BLOCK, i * BLOCK) for i in range(128)))
            f.close()
            for _ in range(100):  # 1 s
                try:
                    os.fstat(fd)
                except OSError:
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError(f"fd {fd} still open 1 s after close()")

    run(main)


# -- one queue per loop; loop close --------------------------------------------------------
def test_one_driver_per_loop(loop_factory, provider):
    async def main() -> aio.Driver:
        driver = aio.get_driver(provider=provider)
        assert aio.get_driver() is driver
        assert aio.get_driver(asyncio.get_running_loop()) is driver
        assert driver.provider_id == provider
        return driver

    with asyncio.Runner(loop_factory=loop_factory) as r:
        first = r.run(main())
    with asyncio.Runner(loop_factory=loop_factory) as r:
        second = r.run(main())
    assert first is not second
    assert first.closed and second.closed  # closing the loop closed them
    assert first.queue.closed


def test_get_driver_refuses_to_switch_provider(loop_factory, provider):
    others = [p.id for p in uringq.providers() if p.available and p.id != provider]
    if not others:
        pytest.skip("only one provider available")

    async def main() -> None:
        aio.get_driver(provider=provider)
        with pytest.raises(ValueError, match="close it"):
            aio.get_driver(provider=others[0])

    with asyncio.Runner(loop_factory=loop_factory) as r:
        r.run(main())


def test_get_driver_without_a_running_loop_raises():
    with pytest.raises(RuntimeError):
        aio.get_driver()


def test_loop_close_with_requests_in_flight_closes_the_queue(loop_factory, provider, pipe):
    r, _w = pipe
    loop = loop_factory()
    driver = aio.get_driver(loop, provider=provider)
    buf = bytearray(8)
    driver.register(r)
    fut = driver.read_into(r, 0, buf)
    loop.run_until_complete(asyncio.sleep(0.05))
    if fut.done():
        loop.close()
        pytest.skip(f"{provider} does not keep a pipe read pending")
    assert not resizable(buf)
    loop.close()  # must neither hang nor crash
    assert driver.closed
    assert driver.queue.closed
    assert resizable(buf)  # the kernel released it before the queue went away


def test_asyncio_run_with_pending_reads_does_not_hang(loop_factory, provider, pipe):
    r, _w = pipe
    bufs = [bytearray(8) for _ in range(10)]

    async def main() -> aio.Driver:
        driver = aio.get_driver(provider=provider)
        driver.register(r)
        tasks = [asyncio.ensure_future(driver.read_into(r, 0, buf)) for buf in bufs]
        await asyncio.sleep(0.02)
        assert len(tasks) == len(bufs)
        return driver  # the reads are still pending: the runner cancels and closes

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        driver = runner.run(main())
    assert driver.closed
    assert all(resizable(buf) for buf in bufs)


def test_loop_close_with_a_backlog_cancels_it(loop_factory, provider, pipe):
    r, _w = pipe
    loop = loop_factory()
    driver = aio.get_driver(loop, provider=provider, sq_entries=1, cq_entries=1)
    driver.register(r)
    futs = [driver.read_into(r, 0, bytearray(4)) for _ in range(5)]
    loop.run_until_complete(asyncio.sleep(0.05))
    pending = [fut for fut in futs if not fut.done()]
    loop.close()
    assert driver.closed
    assert all(fut.done() for fut in pending[1:])  # backlog futures were cancelled


def test_explicit_driver_close_settles_file_requests_in_flight(run, data):
    path, contents = data

    async def main() -> None:
        driver = aio.get_driver()
        f = await aio.open(path, "rb")
        futs = [f.read(8, i) for i in range(50)]
        driver.close()  # before the iteration that would commit them
        assert [fut.result() for fut in futs] == [contents[i : i + 8] for i in range(50)]
        f.close()
        with pytest.raises(uringq.QueueClosed):
            await driver.read_into(0, 0, bytearray(1))
        assert aio.get_driver() is not driver  # a new one for the same loop

    run(main)


def test_a_file_outliving_its_loop_can_still_be_closed(loop_factory, provider, data):
    path, _ = data
    loop = loop_factory()
    aio.get_driver(loop, provider=provider)
    f = loop.run_until_complete(aio.open(path, "rb"))
    fd = f.fileno()
    loop.close()
    f.close()
    with pytest.raises(OSError):
        os.fstat(fd)


def test_an_unclosed_file_warns_and_closes_its_fd(run, data):
    path, _ = data

    async def main() -> int:
        f = await aio.open(path, "rb")
        fd = f.fileno()
        with pytest.warns(ResourceWarning):
            del f
            gc.collect()
        return fd

    fd = run(main)
    with pytest.raises(OSError):
        os.fstat(fd)


# -- module-level functions and providers ------------------------------------------------
def test_module_level_functions_on_a_registered_fd(run, tmp_path):
    path = str(tmp_path / "raw.bin")

    async def main() -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        aio.register(fd)
        assert await aio.write(fd, 0, b"abcdef") == 6
        assert await aio.writev(fd, 6, [b"gh", b"ij"]) == 4
        assert await aio.fsync(fd) == 0
        assert await aio.fsync(fd, datasync=True) == 0
        buf = bytearray(10)
        assert await aio.read(fd, 0, buf) == 10
        assert buf == b"abcdefghij"
        a, b = bytearray(3), bytearray(3)
        assert await aio.readv(fd, 4, [a, b]) == 6
        assert (a, b) == (b"efg", b"hij")
        aio.deregister(fd, close=True)
        with pytest.raises(OSError):
            os.fstat(fd)

    run(main)


def test_forced_threadpool_provider_through_the_environment(loop_factory, monkeypatch, data):
    if not uringq.get_provider("threadpool").available:
        pytest.skip("threadpool unavailable")
    monkeypatch.setenv("URINGQ_PROVIDER", "threadpool")
    path, contents = data

    async def main() -> None:
        async with aio.open(path, "rb") as f:
            assert f.driver.provider_id == "threadpool"
            got = await asyncio.gather(*(f.read(100, i * 100) for i in range(500)))
        assert got == [contents[i * 100 : (i + 1) * 100] for i in range(500)]

    with asyncio.Runner(loop_factory=loop_factory) as r:
        r.run(main())


def test_provider_keyword_of_open_picks_the_provider(loop_factory, provider, data):
    path, contents = data

    async def main() -> None:
        async with aio.open(path, "rb", provider=provider) as f:
            assert f.driver.provider_id == provider
            assert await f.read(10, 0) == contents[:10]

    with asyncio.Runner(loop_factory=loop_factory) as r:
        r.run(main())


def test_direct_io_reads_aligned_blocks(run, provider):
    from helpers.odirect import CANDIDATE_DIRS

    directory = next((d for d in CANDIDATE_DIRS if os.path.isdir(d)), None)
    if directory is None:
        pytest.skip("no directory for an O_DIRECT file")
    path = os.path.join(directory, f"uringq-aio-direct-{os.getpid()}-{provider}")
    contents = random.Random(9).randbytes(16 * BLOCK)
    with open(path, "wb") as f:
        f.write(contents)

    async def main() -> None:
        try:
            f = await aio.open(path, "rb", direct=True)
        except OSError as exc:
            pytest.skip(f"O_DIRECT refused: {exc}")
        try:
            buf = uringq.aligned_buffer(2 * BLOCK)
            try:
                n = await f.read_into(buf, 4 * BLOCK)
            except OSError as exc:
                if exc.errno == errno.EINVAL:
                    pytest.skip("this file system refuses O_DIRECT reads")
                raise
            assert n == 2 * BLOCK
            assert bytes(buf) == contents[4 * BLOCK : 6 * BLOCK]
        finally:
            f.close()

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            run(main)
    finally:
        os.unlink(path)
