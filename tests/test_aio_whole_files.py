"""``uringq.aio.read_file`` / ``write_file`` / ``read_files`` / ``write_files`` (SPEC 9)
against the builtin file: ``open(p, "rb").read()`` and ``open(p, "wb").write(data)`` are
the oracles for contents, error types, messages, errno and filename. Every provider, the
default loop and uvloop; no fd may stay open after any path, cancellation included.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import time
from collections.abc import Callable
from typing import Any

import pytest
import uringq
from helpers.aio_oracle import describe
from helpers.proc import assert_child_ok, open_fds, run_python
from uringq import aio

pytestmark = pytest.mark.timeout(120)

FIRST = 64 * 1024  # the first read of a group: sizes around it matter
SIZES = [0, 1, 4095, 4096, FIRST - 1, FIRST, FIRST + 1, 200_000, 3 << 20]


def content(size: int, seed: int = 0) -> bytes:
    return bytes((i * 7 + seed) % 251 for i in range(min(size, 4096))) * (size // 4096 + 1)


def make(tmp: pathlib.Path, sizes: list[int]) -> list[pathlib.Path]:
    paths = []
    for i, size in enumerate(sizes):
        p = tmp / f"f{i}"
        p.write_bytes(content(size, i)[:size])
        paths.append(p)
    return paths


def builtin_read(path: Any) -> Any:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        return describe(exc)


def fds_after_warming(run: Any) -> set[int]:
    """The open fds once the loop kind and the driver were used (uvloop keeps a pipe for
    the process from its first loop on)."""

    async def warm() -> None:
        await aio.read_file("/proc/self/cmdline")

    run(warm)
    return open_fds()


def as_outcome(value: Any) -> Any:
    return describe(value) if isinstance(value, BaseException) else value


# -- contents ------------------------------------------------------------------------------
def test_every_size_reads_as_the_builtin_does(run: Any, tmp_path: pathlib.Path) -> None:
    paths = make(tmp_path, SIZES)
    expected = [p.read_bytes() for p in paths]

    async def main() -> None:
        for path, data in zip(paths, expected, strict=True):
            assert await aio.read_file(path) == data
            assert await aio.read_file(str(path)) == data
        assert await aio.read_files(paths) == expected
        doubled = paths + paths[::-1]
        assert await aio.read_files(doubled) == expected + expected[::-1]
        assert await aio.read_files([]) == []
        assert await aio.read_files(iter(p for p in paths[:3])) == expected[:3]

    before = fds_after_warming(run)
    run(main)
    assert open_fds() == before


def test_proc_files_are_read_to_eof(run: Any) -> None:
    """``st_size`` 0, a page per read: the first short read is not the end."""
    names = ["/proc/kallsyms", "/proc/cpuinfo", "/proc/filesystems", "/proc/self/cmdline"]

    async def main() -> list[bytes]:
        single = [await aio.read_file(name) for name in names]
        assert await aio.read_files(names) == single
        return single

    got = run(main)
    for name, data in zip(names, got, strict=True):
        if name != "/proc/self/cmdline":  # the child's own command line is the same too
            assert data == builtin_read(name), name
    assert len(got[0]) > 100_000  # many pages: the group's probe sent it to the re-read


def test_str_bytes_pathlike_and_non_utf8_names(run: Any, tmp_path: pathlib.Path) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9-\xff.bin"
    with open(raw, "wb") as f:
        f.write(b"latin-1 name")
    names: list[Any] = [raw, os.fsdecode(raw), pathlib.Path(os.fsdecode(raw))]

    async def main() -> None:
        for name in names:
            assert await aio.read_file(name) == b"latin-1 name"
        assert await aio.read_files(names) == [b"latin-1 name"] * 3
        for i, name in enumerate(names):
            assert await aio.write_file(name, b"x" * i) == i
            assert await aio.read_file(raw) == b"x" * i

    run(main)


def test_relative_paths_against_dir_fd(run: Any, tmp_path: pathlib.Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a").write_bytes(b"A" * 70_000)
    dir_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)

    async def main() -> None:
        assert await aio.read_file("sub/a", dir_fd=dir_fd) == b"A" * 70_000
        assert await aio.write_file("sub/b", b"B", dir_fd=dir_fd) == 1
        assert await aio.read_files(["sub/a", "sub/b"], dir_fd=dir_fd) == [b"A" * 70_000, b"B"]
        assert await aio.write_files({"c": b"C"}, dir_fd=dir_fd) == [1]
        with pytest.raises(FileNotFoundError) as info:
            await aio.read_file("a", dir_fd=dir_fd)
        assert info.value.filename == "a"

    try:
        run(main)
    finally:
        os.close(dir_fd)
    assert (tmp_path / "sub" / "b").read_bytes() == b"B"
    assert (tmp_path / "c").read_bytes() == b"C"


# -- writes --------------------------------------------------------------------------------
@pytest.mark.parametrize("fsync", [False, True])
def test_writes_match_the_builtin(run: Any, tmp_path: pathlib.Path, fsync: bool) -> None:
    data = [content(size, 3)[:size] for size in SIZES]
    ours = [tmp_path / f"ours{i}" for i in range(len(data))]
    theirs = [tmp_path / f"theirs{i}" for i in range(len(data))]
    for path in ours + theirs:
        path.write_bytes(b"old content, longer than some of the new" * 10)
    for path, buf in zip(theirs, data, strict=True):
        with open(path, "wb") as f:
            f.write(buf)

    async def main() -> None:
        assert await aio.write_file(ours[0], data[0], fsync=fsync) == len(data[0])
        assert await aio.write_file(ours[-1], bytearray(data[-1]), fsync=fsync) == len(data[-1])
        views = [memoryview(buf) for buf in data]
        got = await aio.write_files(zip(ours, views, strict=True), fsync=fsync)
        assert got == [len(buf) for buf in data]

    run(main)
    for a, b in zip(ours, theirs, strict=True):
        assert a.read_bytes() == b.read_bytes()
        assert a.stat().st_mode == b.stat().st_mode


def test_mode_applies_to_created_files(run: Any, tmp_path: pathlib.Path) -> None:
    async def main() -> None:
        await aio.write_file(tmp_path / "a", b"1", mode=0o600)
        await aio.write_files({tmp_path / "b": b"2"}, mode=0o640)

    old = os.umask(0o022)
    try:
        run(main)
    finally:
        os.umask(old)
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "b").stat().st_mode & 0o777 == 0o640


def test_a_path_given_twice_gets_the_last_data(run: Any, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "twice"
    pairs: list[tuple[Any, bytes]] = [
        (path, b"first, the longest of them all" * 5000),
        (tmp_path / "other", b"o"),
        (str(path), b"second"),
        (path, b"third, longer"),
        (os.fsencode(path), b"third!"),
    ]

    async def main() -> list[int]:
        return await aio.write_files(pairs)

    for _ in range(3):
        assert run(main) == [len(d) for _, d in pairs]
        assert path.read_bytes() == b"third!"


# -- errors --------------------------------------------------------------------------------
def error_paths(tmp: pathlib.Path) -> list[Any]:
    (tmp / "file").write_bytes(b"x")
    (tmp / "dir").mkdir()
    return [
        tmp / "missing",
        str(tmp / "missing"),
        os.fsencode(tmp / "missing"),
        tmp / "dir",
        tmp / "file" / "below",
        tmp / "no" / "such" / "dir",
    ]


def test_read_errors_are_the_builtins(run: Any, tmp_path: pathlib.Path) -> None:
    paths = error_paths(tmp_path)
    expected = [builtin_read(p) for p in paths]

    async def main() -> None:
        for path, want in zip(paths, expected, strict=True):
            with pytest.raises(OSError) as info:
                await aio.read_file(path)
            # filename is the path as given (uringq.read_files' rule; the builtin gives
            # os.fspath of a PathLike), all else is the builtin's.
            assert info.value.filename is path
            assert describe(info.value)[::2] == want[::2]
            if not isinstance(path, os.PathLike):
                assert describe(info.value) == want

    run(main)


def test_write_errors_are_the_builtins(run: Any, tmp_path: pathlib.Path) -> None:
    paths = error_paths(tmp_path)[3:]

    def builtin_write(path: Any) -> Any:
        try:
            with open(path, "wb") as f:
                f.write(b"data")
        except OSError as exc:
            return describe(exc)
        raise AssertionError(path)

    expected = [builtin_write(p) for p in paths]

    async def main() -> None:
        for path, want in zip(paths, expected, strict=True):
            with pytest.raises(OSError) as info:
                await aio.write_file(path, b"data")
            assert info.value.filename is path
            assert describe(info.value)[::2] == want[::2]

    run(main)


def test_the_first_failure_in_input_order_is_raised_after_every_file(
    run: Any, tmp_path: pathlib.Path
) -> None:
    good = make(tmp_path, [10, 100_000, 5])
    bad = [tmp_path / "missing1", tmp_path / "missing2"]
    paths = [good[0], bad[0], good[1], bad[1], good[2]]
    want = [as_outcome(builtin_read(p)) for p in paths]

    async def main() -> None:
        got = await aio.read_files([str(p) for p in paths], return_exceptions=True)
        assert [as_outcome(g) for g in got] == want
        got = await aio.read_files(paths, return_exceptions=True)
        assert got[1].filename is bad[0]
        with pytest.raises(FileNotFoundError) as info:
            await aio.read_files(paths)
        assert info.value.filename is bad[0]
        # Writes: the files after the failure are written all the same.
        targets = [tmp_path / "w0", tmp_path / "nodir" / "w1", tmp_path / "w2", tmp_path / "w3"]
        with pytest.raises(FileNotFoundError) as info:
            await aio.write_files([(t, b"w") for t in targets])
        assert info.value.filename is targets[1]
        got = await aio.write_files([(t, b"v") for t in targets], return_exceptions=True)
        assert got[0] == got[2] == got[3] == 1
        assert isinstance(got[1], FileNotFoundError)

    run(main)
    assert [(tmp_path / n).read_bytes() for n in ("w0", "w2", "w3")] == [b"v"] * 3


def test_bad_arguments_raise_as_the_sync_api_does_before_anything_is_queued(
    run: Any, tmp_path: pathlib.Path
) -> None:
    target = tmp_path / "never"
    sync_cases: list[tuple[Callable[[], Any], Callable[[], Any]]] = [
        (lambda: uringq.read_files("one/path"), lambda: aio.read_files("one/path")),
        (lambda: uringq.read_files([target, 3]), lambda: aio.read_files([target, 3])),
        (lambda: uringq.read_files([b"a\0b"]), lambda: aio.read_files([b"a\0b"])),
        (lambda: uringq.read_files([], dir_fd="x"), lambda: aio.read_files([], dir_fd="x")),
        (
            lambda: uringq.write_files([(target, b"x")], mode=-1),
            lambda: aio.write_files([(target, b"x")], mode=-1),
        ),
        (
            lambda: uringq.write_files([(target, b"x")], mode=0o10000),
            lambda: aio.write_files([(target, b"x")], mode=0o10000),
        ),
        (
            lambda: uringq.write_files([(target, b"x"), (tmp_path / "n2", "text")]),
            lambda: aio.write_files([(target, b"x"), (tmp_path / "n2", "text")]),
        ),
        (
            lambda: uringq.write_files([(target, b"x"), ("a\0", b"y")]),
            lambda: aio.write_files([(target, b"x"), ("a\0", b"y")]),
        ),
        (lambda: uringq.write_files([(target,)]), lambda: aio.write_files([(target,)])),
    ]
    single_cases: list[tuple[type[BaseException], Callable[[], Any]]] = [
        (TypeError, lambda: aio.read_file(3.5)),  # type: ignore[arg-type]
        (ValueError, lambda: aio.read_file("a\0")),
        (TypeError, lambda: aio.write_file(target, "text")),  # type: ignore[arg-type]
        (ValueError, lambda: aio.write_file(target, b"", mode=-1)),
        (TypeError, lambda: aio.read_file(target, dir_fd=1.5)),  # type: ignore[arg-type]
    ]

    async def main() -> None:
        for sync_call, async_call in sync_cases:
            try:
                sync_call()
            except Exception as exc:
                want = describe(exc)
            else:
                raise AssertionError("the sync API accepted it")
            with pytest.raises(Exception) as info:
                await async_call()
            assert describe(info.value) == want
        for kind, call in single_cases:
            with pytest.raises(kind):
                await call()

    run(main)
    assert not target.exists()
    assert not (tmp_path / "n2").exists()


# -- descriptors ---------------------------------------------------------------------------
@pytest.mark.parametrize("provider_id", ["io_uring", "threadpool"])
def test_thousands_of_files_under_a_low_descriptor_limit(
    provider_id: str, tmp_path: pathlib.Path
) -> None:
    if provider_id not in {p.id for p in uringq.providers() if p.available}:
        pytest.skip(f"{provider_id} unavailable")
    proc = run_python(
        f"""
        import asyncio, os, resource
        from uringq import aio
        root = {str(tmp_path)!r}
        paths = [os.path.join(root, f"n{{i}}") for i in range(3000)]
        expected = [bytes([i % 256]) * (i % 5000) + (b"!" * 70000 if i % 97 == 0 else b"")
                    for i in range(3000)]
        async def main():
            aio.get_driver(provider={provider_id!r})
            resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))
            written = await aio.write_files(zip(paths, expected, strict=True))
            assert written == [len(d) for d in expected], "written"
            got = await aio.read_files(paths)
            assert got == expected, "mismatch"
            got = await asyncio.gather(*(aio.read_file(p) for p in paths))
            assert list(got) == expected, "gather mismatch"
        asyncio.run(main())
        print("ok")
        """
    )
    assert_child_ok(proc)
    assert proc.stdout.strip() == "ok"


@pytest.mark.parametrize("how", ["read_files", "write_files", "read_file big", "gather"])
def test_cancelling_mid_flight_leaves_no_fd_open(
    run: Any, tmp_path: pathlib.Path, how: str
) -> None:
    paths = make(tmp_path, [3 << 20 if i % 7 == 0 else 9000 for i in range(300)])
    expected = [p.read_bytes() for p in paths]

    def start() -> Any:
        if how == "read_files":
            return aio.read_files(paths)
        if how == "write_files":
            return aio.write_files([(tmp_path / f"w{i}", b"w" * 200_000) for i in range(300)])
        if how == "read_file big":
            return aio.read_file(paths[0])
        return asyncio.gather(*(aio.read_file(p) for p in paths))

    async def main() -> None:
        cancelled = 0
        for delay in range(12):
            task = asyncio.ensure_future(start())
            for _ in range(delay):
                await asyncio.sleep(0)
            task.cancel()
            try:
                result = await task
            except asyncio.CancelledError:
                cancelled += 1
            else:  # it finished first: then it must be right
                assert result == expected[0] if how == "read_file big" else len(result) == 300
        assert cancelled >= 6
        # The driver still works, and the files are intact.
        assert await aio.read_files(paths) == expected
        await asyncio.sleep(0.2)  # deferred closes (the driver's 50 ms retry)

    before = fds_after_warming(run)
    run(main)
    # A write already in a worker's hands (threadpool) runs to its end and then closes
    # its file: on a slow disk that may take longer than the driver's retry above.
    settled = time.monotonic() + 10
    while open_fds() != before and time.monotonic() < settled:
        time.sleep(0.05)
    assert open_fds() == before


def test_a_file_larger_than_the_first_read_is_read_whole_even_as_it_grows(
    run: Any, tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "grows"
    path.write_bytes(b"g" * (FIRST + 10))

    async def main() -> None:
        for extra in (0, 1, 5000, FIRST * 3):
            with open(path, "ab") as f:
                f.write(b"h" * extra)
            assert await aio.read_file(path) == path.read_bytes()

    run(main)


def test_the_exports(provider: str) -> None:
    for name in ("read_file", "write_file", "read_files", "write_files"):
        assert name in aio.__all__
        assert asyncio.iscoroutinefunction(getattr(aio, name))
