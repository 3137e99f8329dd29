"""The aiofiles-style hot path of ``uringq.aio.open`` (issue 10): ``async with open(p)``
runs the open as ``__aenter__`` and the file's close as ``__aexit__``, and ``read()`` to
EOF on a buffered reader with nothing buffered goes straight to the raw file's readall.

Each is checked against the builtin file (same bytes, same position afterwards, same
errors), and for what it must never do: swallow an exception of the block, leave an fd
open after a failed or cancelled open or read, or consume data on a cancelled read.
Every provider, the default loop and uvloop.
"""

from __future__ import annotations

import asyncio
import mmap
import os
from pathlib import Path
from typing import Any

import pytest
from helpers.aio_oracle import describe
from helpers.proc import open_fds
from uringq import aio

pytestmark = pytest.mark.timeout(60)

# Around the buffer size (4096 here: st_blksize on ext4), the readall probe (8 KiB) and
# the one-read limit (1 MiB) of AsyncFileIO._read_all.
SIZES = [0, 1, 4095, 4096, 4097, 8192, 12_000, 65_536, (1 << 20) - 1, (1 << 20) + 3]


def _content(size: int) -> bytes:
    return bytes((i * 7 + 3) % 251 for i in range(size))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(_content(100_000))
    return path


async def _fds_back_to(before: set[int]) -> set[int]:
    """The open fds once late completions (cancelled requests) have landed."""
    for _ in range(200):
        now = open_fds()
        if now == before:
            return now
        await asyncio.sleep(0.005)
    return open_fds()


@pytest.mark.parametrize("size", SIZES)
def test_async_with_read_to_eof_matches_the_builtin(run: Any, tmp_path: Path, size: int) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(_content(size))

    async def main() -> None:
        with open(path, "rb") as theirs:
            expected, expected_pos = theirs.read(), theirs.tell()
        async with aio.open(path, "rb") as f:
            assert await f.read() == expected
            assert await f.tell() == expected_pos
            assert await f.read() == b""  # at EOF: the next read is empty
            assert await f.tell() == expected_pos
        assert f.closed

    run(main)


@pytest.mark.parametrize(
    "before",
    [
        ("read", 10),  # leaves the rest of a buffer's fill: the buffered path
        ("read", 4096),  # a whole block, nothing buffered after it
        ("peek", 0),
        ("seek", 5000),  # nothing buffered, the position moved: the fast path
        ("readline", -1),
        ("read1", 3),
    ],
)
def test_read_to_eof_after_other_calls_matches_the_builtin(
    run: Any, data: Path, before: tuple[str, int]
) -> None:
    name, arg = before

    async def main() -> None:
        with open(data, "rb") as theirs:
            first = getattr(theirs, name)(arg)
            expected = (first, theirs.read(), theirs.tell())
        async with aio.open(data, "rb") as f:
            first = await getattr(f, name)(arg)
            got = (first, await f.read(), await f.tell())
        assert got == expected

    run(main)


@pytest.mark.parametrize("mode", ["rb", "wb", "r+b", "r", "w"])
def test_an_exception_in_the_block_propagates_and_the_file_is_closed(
    run: Any, tmp_path: Path, mode: str
) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc\n")

    async def main() -> None:
        before = open_fds()
        with pytest.raises(KeyError, match="inside"):
            async with aio.open(path, mode) as f:
                if "w" in mode:
                    await f.write(b"xyz" if "b" in mode else "xyz")  # buffered, not yet written
                raise KeyError("inside")
        assert f.closed
        assert open_fds() == before
        # The close flushed what the block wrote, as the builtin's with-block does.
        assert path.read_bytes() == (b"xyz" if "w" in mode else b"abc\n")

    run(main)


def test_a_pending_open_is_one_file_until_its_block_ends(run: Any, data: Path) -> None:
    async def main() -> None:
        pending = aio.open(data, "rb")
        f = await pending
        async with pending as g:  # entering an awaited open gives that same file
            assert g is f
            assert await g.read(3) == _content(3)
        assert f.closed
        h = await pending  # the block closed it: awaiting again opens anew
        assert h is not f and not h.closed
        assert await h.read(3) == _content(3)
        await h.close()
        async with aio.open(data, "rb") as a, aio.open(data, "rb") as b:
            assert a is not b and a.fileno() != b.fileno()

    run(main)


@pytest.mark.parametrize("target", ["missing", "directory", "not a directory"])
def test_a_failed_open_in_async_with_raises_the_builtins_error_and_leaks_nothing(
    run: Any, tmp_path: Path, data: Path, target: str
) -> None:
    path = {
        "missing": tmp_path / "missing",
        "directory": tmp_path,
        "not a directory": data / "x",
    }[target]
    try:
        open(path, "rb").close()  # the oracle: the builtin's error
    except OSError as exc:
        expected = describe(exc)
    else:
        raise AssertionError("the builtin did not fail")

    async def main() -> None:
        before = open_fds()
        pending = aio.open(path, "rb")
        for _ in range(2):  # a failed open keeps nothing: trying again fails the same way
            with pytest.raises(OSError) as info:
                async with pending:
                    raise AssertionError("the block must not run")
            assert describe(info.value) == expected
        assert await _fds_back_to(before) == before

    run(main)


def test_a_task_cancelled_anywhere_in_open_read_close_leaks_no_fd(run: Any, data: Path) -> None:
    async def read_whole(path: Path) -> bytes:
        async with aio.open(path, "rb") as f:
            return bytes(await f.read())

    async def main() -> None:
        before = open_fds()
        outcomes = set()
        # Loop iterations before the cancel, then longer waits (a worker's open and read).
        for steps in [*range(8), 0.002, 0.05]:
            for _ in range(10):
                task = asyncio.ensure_future(read_whole(data))
                if isinstance(steps, float):
                    await asyncio.sleep(steps)
                for _ in range(steps if isinstance(steps, int) else 0):
                    await asyncio.sleep(0)
                task.cancel()
                try:
                    assert await task == data.read_bytes()
                    outcomes.add("done")
                except asyncio.CancelledError:
                    outcomes.add("cancelled")
        assert outcomes == {"done", "cancelled"}  # both ends of the range were reached
        assert await _fds_back_to(before) == before

    run(main)


@pytest.mark.parametrize("partial", [0, 10])
def test_a_cancelled_read_to_eof_of_a_reader_consumes_nothing(
    run: Any, data: Path, partial: int
) -> None:
    content = data.read_bytes()

    async def main() -> None:
        cancelled = 0
        for steps in range(6):
            async with aio.open(data, "rb") as f:
                if partial:
                    await f.read(partial)  # the rest of the buffer: the buffered path
                task = asyncio.ensure_future(f.read())
                for _ in range(steps):
                    await asyncio.sleep(0)
                task.cancel()
                try:
                    got = await task
                except asyncio.CancelledError:
                    cancelled += 1
                    assert await f.tell() == partial
                    assert await f.read() == content[partial:]
                else:
                    assert got == content[partial:]
                    assert await f.tell() == len(content)
        assert cancelled

    run(main)


def test_read_to_eof_sees_a_file_that_grew_or_shrank_since_the_open(
    run: Any, tmp_path: Path
) -> None:
    path = tmp_path / "f"

    async def main() -> None:
        for before, after in [(100, 50_000), (50_000, 100), (5000, 0), (0, 300)]:
            path.write_bytes(_content(before))
            async with aio.open(path, "rb") as f:
                with open(path, "r+b") as other:  # another writer, after the open's fstat
                    other.truncate(after)
                    other.seek(0)
                    other.write(_content(after))
                assert await f.read() == _content(after)
                assert await f.tell() == after

    run(main)


def test_fileno_name_mode_and_closed_inside_async_with(run: Any, data: Path) -> None:
    async def main() -> None:
        async with aio.open(data, "rb") as f:
            fd = f.fileno()
            assert os.fstat(fd).st_ino == data.stat().st_ino
            assert (f.name, f.mode, f.closed) == (os.fspath(data), "rb", False)
        assert f.closed
        with pytest.raises(ValueError, match="closed file"):
            f.fileno()

    run(main)


def test_a_file_opened_by_path_takes_one_fd(run: Any, data: Path) -> None:
    """The file object's own fd serves its requests (adopted by the queue: no ``dup``,
    no fixed slot), on every provider."""

    async def main() -> None:
        before = open_fds()
        async with aio.open(data, "rb") as f:
            taken = open_fds() - before
            assert taken == {f.fileno()}
            assert await f.read(5) == _content(5)
        assert await _fds_back_to(before) == before

    run(main)


# -- changes between the open and the first read (io_uring reads a small file's rest at once) --
def _rewrite(path: Path, how: str) -> None:
    """Change ``path`` as a writer next to the reader would."""
    if how == "same size":
        with open(path, "r+b") as f:
            f.write(b"X" * 10)
    elif how == "append":
        with open(path, "ab") as f:
            f.write(b"appended")
    elif how == "truncate":
        os.truncate(path, 7)
    else:  # replaced: the open file is the old one, for the builtin too
        tmp = path.with_suffix(".new")
        tmp.write_bytes(b"a new file")
        os.replace(tmp, path)


WRITERS = ["same size", "append", "truncate", "replace"]


@pytest.mark.parametrize("reads", ["read()", "read(n)", "readline", "peek"])
@pytest.mark.parametrize("how", WRITERS)
@pytest.mark.parametrize("when", ["in the same step", "while the task yields"])
def test_a_write_between_the_open_and_the_read_is_seen_as_by_the_builtin(
    run: Any, tmp_path: Path, how: str, when: str, reads: str
) -> None:
    path = tmp_path / "f.bin"
    original = _content(5000)
    path.write_bytes(original)
    calls = {
        "read()": [("read",), ("read",)],
        "read(n)": [("read", 3), ("read", 100), ("read",)],
        "readline": [("readline",), ("read", 20)],
        "peek": [("peek", 1), ("read", 5)],
    }[reads]
    with open(path, "rb") as theirs:  # the oracle
        _rewrite(path, how)
        expected = [getattr(theirs, name)(*args) for name, *args in calls]
    path.write_bytes(original)

    async def main() -> None:
        async with aio.open(path, "rb") as f:
            if when == "in the same step":
                _rewrite(path, how)
            else:
                await asyncio.gather(asyncio.to_thread(_rewrite, path, how), asyncio.sleep(0))
            assert [await getattr(f, name)(*args) for name, *args in calls] == expected

    run(main)


@pytest.mark.parametrize("reads", ["read()", "read(n)", "readline", "peek"])
@pytest.mark.parametrize("dirty", [False, True], ids=["clean page", "dirty page"])
def test_a_store_through_a_shared_mapping_after_the_open_is_seen(
    run: Any, tmp_path: Path, reads: str, dirty: bool
) -> None:
    """A store into a page mapped shared: into a page already dirty it changes no
    timestamp, so only a read made when asked sees it (as the builtin's)."""
    path = tmp_path / "m.bin"
    path.write_bytes(b"A" * 5000 + b"\n")
    calls = {
        "read()": [("read",)],
        "read(n)": [("read", 3), ("read",)],
        "readline": [("readline",)],
        "peek": [("peek", 1), ("read", 5)],
    }[reads]

    async def main() -> list[Any]:
        fd = os.open(path, os.O_RDWR)
        try:
            with mmap.mmap(fd, 5001) as m:
                if dirty:
                    m[0:1] = b"B"
                with open(path, "rb") as theirs:
                    async with aio.open(path, "rb") as f:
                        m[0:2] = b"CD"
                        got = [await getattr(f, name)(*args) for name, *args in calls]
                    expected = [getattr(theirs, name)(*args) for name, *args in calls]
            assert got == expected
            return got
        finally:
            os.close(fd)

    assert run(main)[0][:1] == b"C"


def test_a_small_cached_file_s_first_read_makes_no_request(
    run: Any, provider: str, tmp_path: Path
) -> None:
    """On io_uring the first read of a small file opened to be read takes its rest from
    the page cache at once (no request, no loop turn); any later read, and a first read
    whose rest is not all in the page cache (``read_rest`` says None), go through the
    queue. Other providers read through their queue."""
    hot = tmp_path / "hot"
    text = b"".join(b"line %d\n" % i for i in range(2000))[:10_000]
    hot.write_bytes(text)

    async def main() -> list[int]:
        driver = aio.get_driver()
        reads = []
        real = driver.read

        def counted(fd: int, size: int, offset: int) -> Any:
            reads.append(offset)
            return real(fd, size, offset)

        driver.read = counted  # type: ignore[method-assign]
        counts = []
        for mode, cached in [("rb", True), ("r", True), ("rb", False)]:
            if not cached and driver.read_rest is not None:
                driver.read_rest = lambda fd, offset, size: None  # as for an uncached file
            async with aio.open(hot, mode) as f:
                got = await f.read()
                assert (got.encode() if mode == "r" else got) == text
                counts.append(len(reads))
                await f.seek(0)
                got = await f.read(10)
                assert (got.encode() if mode == "r" else got) == text[:10]
                counts.append(len(reads))
        return counts

    counts = run(main)
    if provider == "io_uring":
        assert counts == [0, 1, 1, 2, 3, 4]
    else:
        assert counts[0] >= 1


def test_another_task_writing_while_the_reader_yields_is_seen(run: Any, tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"first\n")

    async def writer() -> None:
        with open(path, "ab") as f:  # the same loop, another task: no thread, no timestamp tick
            f.write(b"second\n")

    async def main() -> None:
        async with aio.open(path) as f:
            await asyncio.create_task(writer())
            assert await f.read() == "first\nsecond\n"

    run(main)


@pytest.mark.parametrize("size", [0, 1, 100, 65_535, 65_536, 65_537, 200_000])
@pytest.mark.parametrize("mode", ["rb", "r"])
def test_files_around_the_open_read_limit_read_as_with_the_builtin(
    run: Any, tmp_path: Path, size: int, mode: str
) -> None:
    path = tmp_path / "f"
    lines = b"".join(b"line %d\n" % i for i in range(size // 7 + 1))[:size]
    path.write_bytes(lines)

    def script(f: Any) -> list[Any]:
        """The same calls on the builtin file (the oracle) as on ours (below)."""
        return [f.read(3), f.readline(), f.read(10_000), f.tell(), f.readlines(), f.read()]

    with open(path, mode) as theirs:
        expected = script(theirs)

    async def main() -> None:
        async with aio.open(path, mode) as f:
            got = [await f.read(3), await f.readline(), await f.read(10_000), await f.tell()]
            got += [await f.readlines(), await f.read()]
            assert got == expected
        async with aio.open(path, mode) as f:
            assert [line async for line in f] == expected_lines

    with open(path, mode) as theirs:
        expected_lines = list(theirs)
    run(main)


def test_opens_beyond_the_queue_s_capacity_wait_in_the_backlog(
    loop_factory: Any, provider: str, tmp_path: Path
) -> None:
    """64 tasks opening and reading on a queue of 2 entries: opens (and their reads) that
    find no room wait in the driver's backlog, in order, and every file reads whole."""
    paths = []
    for i in range(64):
        path = tmp_path / f"f{i}"
        path.write_bytes(_content(100 + 97 * i))
        paths.append(path)

    async def read_whole(path: Path) -> bytes:
        async with aio.open(path, "rb") as f:
            return bytes(await f.read())

    async def main() -> None:
        aio.get_driver(provider=provider, sq_entries=2)
        before = open_fds()  # the driver's own fds (ring, eventfd) included
        got = await asyncio.gather(*(read_whole(p) for p in paths))
        assert got == [p.read_bytes() for p in paths]
        assert await _fds_back_to(before) == before

    with asyncio.Runner(loop_factory=loop_factory) as r:
        r.run(main())
