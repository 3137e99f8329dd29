"""``uringq.aio.open`` against the builtin ``open``: arguments, errors, attributes, closed
and detached files, closefd, opener, fds, unclosed files (SPEC 10).

Every error is compared with the builtin's (type, message, errno, filename), and with
the file system it leaves behind; no fd may stay open after any error path. Every
provider, the default loop and uvloop.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import io
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.aio_oracle import describe
from helpers.proc import open_fds
from uringq import aio

pytestmark = pytest.mark.timeout(60)

CONTENT = b"0123456789\nabcdef\n" * 500


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "sample.txt"
    path.write_bytes(CONTENT)
    return path


def builtin_error(call: Callable[[], Any]) -> tuple[Any, ...]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            call().close()
        except Exception as exc:
            return describe(exc)
    raise AssertionError("the builtin did not fail")


async def aio_error(call: Callable[[], Any]) -> tuple[Any, ...]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            f = await call()
            await f.close()
        except Exception as exc:
            return describe(exc)
    raise AssertionError("uringq.aio did not fail")


class _FsPath:
    """A path-like object whose ``__fspath__`` raises ``value`` or returns it."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __fspath__(self) -> Any:
        if isinstance(self.value, BaseException):
            raise self.value
        return self.value


def error_cases(tmp: Path, sample: Path) -> list[tuple[str, Any, dict[str, Any]]]:
    """(description, file, keyword arguments) of opens that fail."""
    return [
        ("missing", tmp / "missing", {}),
        ("missing rb", tmp / "missing", {"mode": "rb"}),
        ("missing r+", tmp / "missing", {"mode": "r+"}),
        ("missing dir", tmp / "no" / "file", {"mode": "w"}),
        ("not a directory", sample / "x", {}),
        ("directory r", tmp, {}),
        ("directory rb", tmp, {"mode": "rb", "buffering": 0}),
        ("directory w", tmp, {"mode": "w"}),
        ("exists x", sample, {"mode": "x"}),
        ("exists xb", sample, {"mode": "xb"}),
        ("float file", 1.5, {}),
        ("None file", None, {}),
        ("list file", [1], {}),
        ("__fspath__ raises", _FsPath(TypeError("inner")), {}),
        ("__fspath__ raises OSError", _FsPath(OSError(5, "inner")), {}),
        ("__fspath__ returns int", _FsPath(5), {}),
        ("__fspath__ returns None", _FsPath(None), {}),
        ("__fspath__ returns a missing path", _FsPath(str(tmp / "missing")), {}),
        ("negative fd", -1, {}),
        ("bad fd", 99_999, {"mode": "rb"}),
        ("mode type", sample, {"mode": 1}),
        ("mode chars", sample, {"mode": "rz"}),
        ("mode t and b", sample, {"mode": "rtb"}),
        ("mode two kinds", sample, {"mode": "rw"}),
        ("mode no kind", sample, {"mode": "+"}),
        ("buffering type", sample, {"buffering": "1"}),
        ("buffering float", sample, {"buffering": 1.5}),
        ("unbuffered text", tmp / "created-unbuffered", {"mode": "w", "buffering": 0}),
        ("encoding type", sample, {"encoding": 1}),
        ("encoding unknown", tmp / "created-encoding", {"mode": "w", "encoding": "nope"}),
        ("encoding binary codec", sample, {"encoding": "hex"}),
        ("errors type", sample, {"errors": 1}),
        ("newline type", sample, {"newline": 1}),
        ("newline value", tmp / "created-newline", {"mode": "w", "newline": "x"}),
        ("binary encoding", sample, {"mode": "rb", "encoding": "utf-8"}),
        ("binary errors", sample, {"mode": "rb", "errors": "strict"}),
        ("binary newline", sample, {"mode": "rb", "newline": ""}),
        ("closefd with a name", sample, {"closefd": False}),
        ("opener returns str", sample, {"opener": lambda p, f: "a"}),
        ("opener returns -1", sample, {"opener": lambda p, f: -1}),
        ("opener raises", sample, {"opener": lambda p, f: os.open(p, f | os.O_DIRECTORY)}),
    ]


def test_failed_opens_raise_the_builtins_errors_and_leak_nothing(run: Any, tmp_path: Path) -> None:
    sample = tmp_path / "sample"
    sample.write_bytes(b"x")
    theirs_dir, ours_dir = tmp_path / "theirs", tmp_path / "ours"
    theirs_dir.mkdir()
    ours_dir.mkdir()

    def relocate(file: Any, directory: Path) -> Any:
        if isinstance(file, Path) and file.name.startswith("created-"):
            return directory / file.name
        return file

    async def main() -> None:
        before = open_fds()
        for name, file, kwargs in error_cases(tmp_path, sample):
            expected = builtin_error(lambda: open(relocate(file, theirs_dir), **kwargs))  # noqa: B023, SIM115
            got = await aio_error(lambda: aio.open(relocate(file, ours_dir), **kwargs))  # noqa: B023
            expected = (*expected[:3], *(_rebase(e, theirs_dir, ours_dir) for e in expected[3:]))
            assert got == expected, name
        assert sorted(os.listdir(ours_dir)) == sorted(os.listdir(theirs_dir))
        await asyncio.sleep(0.01)
        assert open_fds() == before

    run(main)


def _rebase(filename: Any, old: Path, new: Path) -> Any:
    if isinstance(filename, str) and filename.startswith(str(old)):
        return str(new) + filename[len(str(old)) :]
    return filename


def test_an_fd_of_a_directory_raises_with_the_fd_as_filename_and_stays_open(
    run: Any, tmp_path: Path
) -> None:
    async def main() -> None:
        fd = os.open(tmp_path, os.O_RDONLY)
        try:
            expected = builtin_error(lambda: open(fd, "rb"))  # noqa: SIM115
            assert await aio_error(lambda: aio.open(fd, "rb")) == expected
            os.fstat(fd)  # FileIO did not take it: it stays the caller's
        finally:
            os.close(fd)

    run(main)


def test_binary_line_buffering_warns_like_the_builtin(run: Any, sample: Path) -> None:
    async def main() -> None:
        with pytest.warns(RuntimeWarning, match="line buffering"):
            opener = aio.open(sample, "rb", buffering=1)
        async with opener as f:
            assert await f.read(3) == CONTENT[:3]

    run(main)


# -- what an open file looks like --------------------------------------------------------------
MODES = ["r", "rb", "r+", "r+b", "w", "wb", "w+", "wb+", "a", "ab", "a+", "ab+", "x", "xb+"]


# buffering=0 is refused in text mode, and buffering=1 warned about in binary mode
MODES_AND_BUFFERING = [
    (mode, buffering) for mode in MODES for buffering in ([-1, 0, 7] if "b" in mode else [-1, 1, 7])
]


@pytest.mark.parametrize(("mode", "buffering"), MODES_AND_BUFFERING)
def test_attributes_follow_the_builtin(run: Any, tmp_path: Path, mode: str, buffering: int) -> None:
    text = "b" not in mode
    theirs_path, ours_path = tmp_path / "theirs", tmp_path / "ours"
    if "x" not in mode:
        theirs_path.write_bytes(CONTENT)
        ours_path.write_bytes(CONTENT)

    async def main() -> None:
        theirs = open(theirs_path, mode, buffering)  # noqa: SIM115
        ours = await aio.open(ours_path, mode, buffering)
        try:
            assert type(ours).__name__ == "Async" + type(theirs).__name__
            assert isinstance(ours, aio.AsyncFile)
            assert ours.mode == theirs.mode
            assert ours.name == str(ours_path)
            assert ours.closed is theirs.closed is False
            assert ours.readable() == theirs.readable() if not text else True
            assert await ours.writable() == theirs.writable()
            assert await ours.seekable() == theirs.seekable()
            assert await ours.isatty() == theirs.isatty()
            assert await ours.tell() == theirs.tell()
            assert ours.fileno() >= 0
            if text:
                for name in ("encoding", "errors", "line_buffering", "newlines", "write_through"):
                    assert getattr(ours, name) == getattr(theirs, name), name
                assert await ours.readable() == theirs.readable()
                assert type(ours.buffer).__name__ == "Async" + type(theirs.buffer).__name__
                assert ours.buffer.raw.mode == theirs.buffer.raw.mode
            elif buffering != 0:
                assert type(ours.raw).__name__ == "Async" + type(theirs.raw).__name__
                assert hasattr(ours, "peek") == hasattr(theirs, "peek")
            else:
                assert ours.closefd == theirs.closefd
            assert repr(ours).startswith("<uringq.aio.Async")
        finally:
            theirs.close()
            await ours.close()
        assert ours.closed and theirs.closed

    run(main)


def test_await_and_async_with_and_closing_twice(run: Any, sample: Path) -> None:
    async def main() -> None:
        f = await aio.open(sample)
        assert await f.read(4) == "0123"
        await f.close()
        await f.close()
        f.close()  # without awaiting: the effect is at once
        async with aio.open(sample, "rb") as g:
            assert await g.read(4) == b"0123"
        assert g.closed
        opener = aio.open(sample)
        assert await opener is await opener  # awaiting twice gives the same file
        await (await opener).close()

    run(main)


# -- closed and detached files -----------------------------------------------------------------
BINARY_CALLS: list[tuple[str, tuple[Any, ...]]] = [
    ("read", ()),
    ("read", (2,)),
    ("read1", ()),
    ("readinto", (bytearray(2),)),
    ("readinto1", (bytearray(2),)),
    ("readline", ()),
    ("readlines", ()),
    ("peek", ()),
    ("write", (b"x",)),
    ("writelines", ([b"x"],)),
    ("seek", (0,)),
    ("tell", ()),
    ("truncate", ()),
    ("flush", ()),
    ("readall", ()),
    ("fileno", ()),
    ("isatty", ()),
    ("readable", ()),
    ("writable", ()),
    ("seekable", ()),
]
TEXT_CALLS: list[tuple[str, tuple[Any, ...]]] = [
    ("read", ()),
    ("readline", ()),
    ("readlines", ()),
    ("write", ("x",)),
    ("writelines", (["x"],)),
    ("seek", (0,)),
    ("tell", ()),
    ("truncate", ()),
    ("flush", ()),
    ("fileno", ()),
    ("isatty", ()),
    ("readable", ()),
    ("writable", ()),
    ("seekable", ()),
]


def outcome(call: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        return ("ok", call())
    except Exception as exc:
        return (type(exc), str(exc))


async def aoutcome(call: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        value = call()
        if inspect.isawaitable(value):
            value = await value
        return ("ok", value)
    except Exception as exc:
        return (type(exc), str(exc))


@pytest.mark.parametrize("how", ["closed", "detached"])
@pytest.mark.parametrize("mode", ["rb", "wb", "r+b", "rb0", "r", "w", "r+"])
def test_closed_and_detached_files_raise_what_the_builtin_raises(
    run: Any, sample: Path, mode: str, how: str
) -> None:
    buffering = 0 if mode.endswith("0") else -1
    mode = mode.rstrip("0")
    if how == "detached" and buffering == 0:
        pytest.skip("a raw file has no detach()")
    calls = TEXT_CALLS if "b" not in mode else BINARY_CALLS

    async def main() -> None:
        theirs = open(sample, mode, buffering)  # noqa: SIM115
        ours = await aio.open(sample, mode, buffering)
        if how == "closed":
            theirs.close()
            await ours.close()
        else:
            theirs.detach().close()
            ours.detach().close()
        for name, args in calls:
            if not hasattr(theirs, name):
                assert not hasattr(ours, name), name
                continue
            expected = outcome(lambda: getattr(theirs, name)(*args))  # noqa: B023
            got = await aoutcome(lambda: getattr(ours, name)(*args))  # noqa: B023
            assert got == expected, name
        for name in ("name", "mode", "closed"):
            assert outcome(lambda: getattr(ours, name)) == outcome(lambda: getattr(theirs, name))  # noqa: B023
        assert await aoutcome(ours.close) == outcome(theirs.close)

    run(main)


def test_detach_hands_over_a_builtin_file_at_the_position(run: Any, sample: Path) -> None:
    async def main() -> None:
        f = await aio.open(sample, "r+b")
        await f.seek(5)
        await f.write(b"XY")  # buffered: detach() flushes it
        raw = f.detach()
        assert isinstance(raw, io.FileIO) and raw.name == str(sample)
        with pytest.raises(ValueError, match="detached"):
            await f.read()
        with pytest.raises(ValueError, match="raw stream has been detached"):
            await f.close()
        assert raw.read(3) == CONTENT[7:10]
        raw.close()
        theirs_path = sample.with_name("theirs.txt")
        theirs_path.write_bytes(sample.read_bytes())
        theirs = open(theirs_path, "r+", encoding="ascii")  # noqa: SIM115
        text = await aio.open(sample, "r+", encoding="ascii")
        assert await text.read(3) == theirs.read(3) == "012"
        await text.write("Q")
        theirs.write("Q")
        buffer, their_buffer = text.detach(), theirs.detach()
        assert isinstance(buffer, io.BufferedRandom)
        assert buffer.tell() == their_buffer.tell()  # the pending "Q" went where theirs did
        buffer.close()
        their_buffer.close()
        with pytest.raises(ValueError, match="underlying buffer has been detached"):
            await text.close()
        assert sample.read_bytes() == theirs_path.read_bytes()

    run(main)


# -- closefd, opener, fds ----------------------------------------------------------------------
def test_an_fd_is_read_from_its_offset_and_left_where_the_builtin_leaves_it(
    run: Any, sample: Path
) -> None:
    async def main() -> None:
        theirs_fd = os.open(sample, os.O_RDWR)
        ours_fd = os.open(sample, os.O_RDWR)
        try:
            for fd in (theirs_fd, ours_fd):
                os.lseek(fd, 11, os.SEEK_SET)
            theirs = open(theirs_fd, "rb", closefd=False)  # noqa: SIM115
            ours = await aio.open(ours_fd, "rb", closefd=False)
            assert ours.name == ours_fd
            assert await ours.read(5) == theirs.read(5) == CONTENT[11:16]
            assert await ours.readline() == theirs.readline()
            theirs.close()
            await ours.close()
            assert os.lseek(ours_fd, 0, os.SEEK_CUR) == os.lseek(theirs_fd, 0, os.SEEK_CUR)
            os.fstat(ours_fd)  # closefd=False: still open
        finally:
            os.close(theirs_fd)
            os.close(ours_fd)
        fd = os.open(sample, os.O_RDONLY)
        f = await aio.open(fd, "rb")  # closefd=True: closing the file closes the fd
        await f.close()
        with pytest.raises(OSError):
            os.fstat(fd)

    run(main)


def test_an_opener_opens_the_file(run: Any, tmp_path: Path, sample: Path) -> None:
    seen: list[tuple[Any, int]] = []
    directory = os.open(tmp_path, os.O_RDONLY)

    def opener(path: Any, flags: int) -> int:
        seen.append((path, flags))
        return os.open(path, flags, dir_fd=directory)

    async def main() -> None:
        async with aio.open("sample.txt", "rb", opener=opener) as f:
            assert await f.read(4) == CONTENT[:4]
        flags = os.O_RDONLY | os.O_CLOEXEC
        with open("sample.txt", "rb", opener=opener):
            pass
        assert seen == [("sample.txt", flags), ("sample.txt", flags)]

    try:
        run(main)
    finally:
        os.close(directory)


def test_pipes_work_without_a_position(run: Any) -> None:
    async def main() -> None:
        r, w = os.pipe()
        os.write(w, b"line one\nline two\n")
        os.close(w)
        theirs_r, theirs_w = os.pipe()
        os.write(theirs_w, b"line one\nline two\n")
        os.close(theirs_w)
        theirs = open(theirs_r)  # noqa: SIM115
        async with aio.open(r, "r") as f:
            assert await f.seekable() is theirs.seekable() is False
            assert await f.readline() == theirs.readline() == "line one\n"
            assert await aoutcome(f.tell) == outcome(theirs.tell)
            assert await f.read() == theirs.read() == "line two\n"
        theirs.close()

    run(main)


# -- positional calls, unclosed files ----------------------------------------------------------
def test_positional_calls_do_not_move_the_position_and_are_binary_only(
    run: Any, sample: Path
) -> None:
    async def main() -> None:
        async with aio.open(sample, "r+b") as f:
            assert await f.read(2) == CONTENT[:2]
            assert await f.read(5, 100) == CONTENT[100:105]
            buf = bytearray(3)
            assert await f.read_into(buf, 11) == 3 and buf == CONTENT[11:14]
            assert await f.write(b"ZZ", 200) == 2
            assert await f.tell() == 2
            assert await f.read(1) == CONTENT[2:3]
        assert sample.read_bytes()[200:202] == b"ZZ"
        async with aio.open(sample) as t:
            for call in (
                lambda: t.read(5, 0),
                lambda: t.write("x", 0),
                lambda: t.read_into(bytearray(1), 0),
                lambda: t.readv([bytearray(1)], 0),
                lambda: t.writev([b"x"], 0),
            ):
                with pytest.raises(io.UnsupportedOperation, match=r"f\.buffer"):
                    await call()
            assert await t.buffer.read(3, 0) == CONTENT[:3]
            await t.fsync()

    run(main)


@pytest.mark.parametrize("mode", ["w", "wb", "wb0"])
def test_an_unclosed_file_warns_flushes_and_closes_its_fd(
    run: Any, tmp_path: Path, mode: str
) -> None:
    path = tmp_path / "unclosed"
    buffering = 0 if mode.endswith("0") else -1
    mode = mode.rstrip("0")

    async def main() -> int:
        f = await aio.open(path, mode, buffering)
        fd = f.fileno()
        await f.write("data" if mode == "w" else b"data")
        with pytest.warns(ResourceWarning, match="unclosed file"):
            del f
            gc.collect()
        return fd

    fd = run(main)
    with pytest.raises(OSError):
        os.fstat(fd)
    assert path.read_bytes() == b"data"


@pytest.mark.parametrize("how", ["positional", "buffered", "truncate"])
def test_read_ahead_never_hides_this_files_own_writes(run: Any, tmp_path: Path, how: str) -> None:
    """Sequential reads fill a read-ahead window; a write through the same file object
    (positional or buffered) or a truncate must be seen by the reads that follow."""
    path = tmp_path / "ahead.bin"
    data = bytes(range(256)) * 1024  # 256 KiB
    path.write_bytes(data)

    async def main() -> None:
        async with aio.open(path, "r+b", buffering=4096) as f:
            assert await f.read(4096) == data[:4096]
            assert await f.read(4096) == data[4096:8192]  # sequential: a window is read
            expected = bytearray(data)
            if how == "positional":
                assert await f.write(b"NEW!", 20_000) == 4
                expected[20_000:20_004] = b"NEW!"
            elif how == "buffered":
                await f.seek(20_000)
                await f.write(b"NEW!")
                await f.seek(8192)
                expected[20_000:20_004] = b"NEW!"
            else:
                await f.truncate(12_000)
                await f.seek(8192)
                del expected[12_000:]
            assert await f.read(20_000) == bytes(expected[8192:28_192])

    run(main)


def test_a_close_not_awaited_before_the_loop_closes_still_closes_the_fd(
    loop_factory: Any, provider: str, sample: Path
) -> None:
    import time

    loop = loop_factory()
    aio.get_driver(loop, provider=provider)
    f = loop.run_until_complete(aio.open(sample, "rb"))
    fd = f.fileno()
    f.close()  # prepared (or handed to a worker), never awaited
    loop.close()  # the loop never runs again
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            os.fstat(fd)
        except OSError:
            return
        time.sleep(0.01)
    raise AssertionError(f"fd {fd} still open after the loop closed")


@pytest.mark.parametrize("provider_id", ["io_uring", "threadpool"])
def test_opens_at_the_descriptor_limit_match_the_builtin(provider_id: str, tmp_path: Path) -> None:
    """With one descriptor free, the open takes it and succeeds, as the builtin's does
    (the file object's fd is all it holds); with none, the builtin's EMFILE, filename
    included; nothing is left open either way (in a child: the limit is per process)."""
    import uringq
    from helpers.proc import assert_child_ok, run_python

    if provider_id not in {p.id for p in uringq.providers() if p.available}:
        pytest.skip(f"{provider_id} unavailable")
    path = tmp_path / "f"
    path.write_bytes(b"data")
    proc = run_python(
        f"""
        import asyncio, os, resource
        from uringq import aio
        from helpers.proc import open_fds
        path = {str(path)!r}
        def outcome(call):
            try:
                return ("ok", call())
            except OSError as exc:
                return (type(exc).__name__, exc.errno, exc.filename)
        def builtin():
            with open(path, "rb") as f:
                return f.read()
        async def ours():
            async with aio.open(path, "rb") as f:
                return await f.read()
        async def main():
            aio.get_driver(provider={provider_id!r})
            async with aio.open(path, "rb") as f:  # the driver's fds and threads are up
                await f.read()
            before = open_fds()
            results = []
            hole = min(set(range(len(before) + 1)) - before)  # the lowest free number
            for free in (1, 0):
                # Below the limit every number is taken but, with one free, that hole.
                resource.setrlimit(resource.RLIMIT_NOFILE, (hole + free, 4096))
                expected = outcome(builtin)
                try:
                    got = ("ok", await ours())
                except OSError as exc:
                    got = (type(exc).__name__, exc.errno, exc.filename)
                resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
                results.append((free, expected, got, sorted(open_fds() - before)))
            return results
        for free, expected, got, left in asyncio.run(main()):
            assert got == expected, (free, got, expected)
            assert left == [], (free, left)
        print("ok")
        """
    )
    assert_child_ok(proc)
    assert proc.stdout.strip() == "ok"
