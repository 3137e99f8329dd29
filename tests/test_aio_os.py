"""``uringq.aio.os`` and ``uringq.aio.os.path`` against ``os`` and ``os.path`` (SPEC 10),
and the driver's file and path operations on both routes.

Each function runs on the same inputs as its ``os`` counterpart: existing and missing
paths, directories, symlinks (broken ones too), bytes and ``PathLike`` paths, fds,
``dir_fd``, wrong types, embedded NUL bytes. Results must be equal; errors must have
the same type, message, errno and file names; operations that change the file system
run on two identical trees, which must stay identical; no fd may be left open.

``route`` runs every test twice: as the queue does it (its opcodes, where the queue has
them) and with the operations forced onto the worker pool.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.aio_oracle import describe
from helpers.proc import open_fds
from uringq import aio

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["queue", "workers"])
def route(request: pytest.FixtureRequest) -> str:
    return request.param


def on_route(route: str) -> None:
    """Force the worker pool for ``route == "workers"`` (the running loop's driver)."""
    if route == "workers":
        aio.get_driver()._ops.clear()


def tree(root: Path) -> None:
    (root / "dir").mkdir()
    (root / "dir" / "inner").write_bytes(b"inner")
    (root / "file").write_bytes(b"0123456789")
    (root / "empty").mkdir()
    (root / "link").symlink_to(root / "file")
    (root / "broken").symlink_to(root / "missing")
    (root / "dirlink").symlink_to(root / "dir")


def snapshot(root: Path) -> list[tuple[str, Any]]:
    """What a tree holds: names, kinds, sizes, link targets (relative to the root)."""
    found = []
    for base, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            path = Path(base) / name
            st = os.lstat(path)
            target = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
            size = st.st_size
            if target is not None:
                target = target.replace(str(root), "<root>")
                size = 0  # a symlink's size is its target's length
            found.append((str(path.relative_to(root)), stat.S_IFMT(st.st_mode), size, target))
    return sorted(found)


def relative(value: Any, root: Path) -> Any:
    if isinstance(value, str):
        return value.replace(str(root), "<root>")
    if isinstance(value, bytes):
        return value.replace(os.fsencode(root), b"<root>")
    if isinstance(value, tuple):
        return tuple(relative(v, root) for v in value)
    if isinstance(value, list):
        return sorted(relative(v, root) for v in value)
    return value


def stat_fields(st: os.stat_result) -> tuple[Any, ...]:
    return (*tuple(st), st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns, st.st_blksize, st.st_blocks)


def outcome_of(call: Callable[[], Any], root: Path) -> tuple[Any, ...]:
    try:
        value = call()
    except Exception as exc:
        return relative(describe(exc), root)
    if isinstance(value, os.stat_result):
        value = stat_fields(value)
    return ("ok", relative(value, root))


async def aoutcome_of(call: Callable[[], Any], root: Path) -> tuple[Any, ...]:
    try:
        value = await call()
    except Exception as exc:
        return relative(describe(exc), root)
    if isinstance(value, os.stat_result):
        value = stat_fields(value)
    return ("ok", relative(value, root))


def paths(root: Path) -> list[Any]:
    names = ["file", "dir", "empty", "link", "broken", "dirlink", "missing", "file/x"]
    found: list[Any] = [root / n for n in names]
    found += [str(root / "file"), os.fsencode(root / "file"), os.fsencode(root / "missing")]
    found += [None, 1.5, "nul\0byte", b"nul\0byte", ""]
    return found


READ_ONLY: list[tuple[str, str]] = [
    ("stat", "os"),
    ("lstat", "os"),
    ("readlink", "os"),
    ("listdir", "os"),
    ("access", "os"),
    ("exists", "path"),
    ("lexists", "path"),
    ("isfile", "path"),
    ("isdir", "path"),
    ("islink", "path"),
    ("ismount", "path"),
    ("getsize", "path"),
    ("getmtime", "path"),
    ("getatime", "path"),
    ("getctime", "path"),
    ("abspath", "path"),
]


@pytest.mark.parametrize(("name", "module"), READ_ONLY)
def test_queries_match_os(run: Any, route: str, tmp_path: Path, name: str, module: str) -> None:
    tree(tmp_path)
    theirs = getattr(os if module == "os" else os.path, name)
    ours = getattr(aio.os if module == "os" else aio.os.path, name)
    extra: tuple[Any, ...] = (os.R_OK,) if name == "access" else ()

    async def main() -> None:
        on_route(route)
        before = open_fds()
        for path in paths(tmp_path):
            expected = outcome_of(lambda: theirs(path, *extra), tmp_path)  # noqa: B023
            got = await aoutcome_of(lambda: ours(path, *extra), tmp_path)  # noqa: B023
            if name in ("stat", "lstat") and expected[0] == "ok" and got[0] == "ok":
                assert got[1][:7] == expected[1][:7], path  # atimes may move between calls
            else:
                assert got == expected, path
        await asyncio.sleep(0.01)
        assert open_fds() == before

    run(main)


def test_stat_takes_fds_dir_fd_and_follow_symlinks_like_os(
    run: Any, route: str, tmp_path: Path
) -> None:
    tree(tmp_path)

    async def main() -> None:
        on_route(route)
        fd = os.open(tmp_path / "file", os.O_RDONLY)
        dir_fd = os.open(tmp_path, os.O_RDONLY)
        try:
            calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
                ((fd,), {}),
                ((99_999,), {}),
                (("file",), {"dir_fd": dir_fd}),
                (("link",), {"dir_fd": dir_fd, "follow_symlinks": False}),
                (("broken",), {"dir_fd": dir_fd, "follow_symlinks": False}),
                (("missing",), {"dir_fd": dir_fd}),
                (("file",), {"dir_fd": "x"}),
            ]
            for args, kwargs in calls:
                expected = outcome_of(lambda: os.stat(*args, **kwargs), tmp_path)  # noqa: B023
                got = await aoutcome_of(lambda: aio.os.stat(*args, **kwargs), tmp_path)  # noqa: B023
                assert got[:1] == expected[:1] and got[1][:7] == expected[1][:7], (args, kwargs)
            assert await aio.os.path.sameopenfile(fd, fd)
            assert not await aio.os.path.sameopenfile(fd, dir_fd)
            assert await aio.os.path.samefile(tmp_path / "link", tmp_path / "file")
            with pytest.raises(FileNotFoundError):
                await aio.os.path.samefile(tmp_path / "missing", tmp_path / "file")
        finally:
            os.close(fd)
            os.close(dir_fd)

    run(main)


MUTATIONS: list[tuple[str, tuple[str, ...], dict[str, Any]]] = [
    ("rename", ("file", "renamed"), {}),
    ("rename", ("file", "dir"), {}),
    ("rename", ("missing", "x"), {}),
    ("rename", ("dir", "empty"), {}),
    ("replace", ("file", "dir/inner"), {}),
    ("renames", ("dir/inner", "new/deep/inner"), {}),
    ("remove", ("file",), {}),
    ("remove", ("dir",), {}),
    ("unlink", ("link",), {}),
    ("unlink", ("missing",), {}),
    ("rmdir", ("empty",), {}),
    ("rmdir", ("dir",), {}),
    ("rmdir", ("file",), {}),
    ("removedirs", ("empty",), {}),
    ("mkdir", ("made",), {}),
    ("mkdir", ("made2",), {"mode": 0o700}),
    ("mkdir", ("dir",), {}),
    ("mkdir", ("missing/x",), {}),
    ("makedirs", ("a/b/c",), {}),
    ("makedirs", ("dir",), {"exist_ok": True}),
    ("makedirs", ("dir",), {}),
    ("symlink", ("file", "sym"), {}),
    ("symlink", ("file", "dir"), {}),
    ("link", ("file", "hard"), {}),
    ("link", ("missing", "hard2"), {}),
    ("link", ("link", "hard3"), {"follow_symlinks": False}),
    ("link", ("dir", "hard4"), {}),
]


@pytest.mark.parametrize(("name", "args", "kwargs"), MUTATIONS)
def test_changes_match_os(  # noqa: PLR0917 - the fixtures and the parameters
    run: Any, route: str, tmp_path: Path, name: str, args: tuple[str, ...], kwargs: dict[str, Any]
) -> None:
    theirs_root, ours_root = tmp_path / "theirs", tmp_path / "ours"
    for root in (theirs_root, ours_root):
        root.mkdir()
        tree(root)

    async def main() -> None:
        on_route(route)
        before = open_fds()
        expected = outcome_of(
            lambda: getattr(os, name)(*(str(theirs_root / a) for a in args), **kwargs), theirs_root
        )
        got = await aoutcome_of(
            lambda: getattr(aio.os, name)(*(str(ours_root / a) for a in args), **kwargs), ours_root
        )
        assert got == expected
        assert snapshot(ours_root) == snapshot(theirs_root)
        if name == "mkdir" and expected[0] == "ok":
            assert stat.S_IMODE(os.stat(ours_root / args[0]).st_mode) == stat.S_IMODE(
                os.stat(theirs_root / args[0]).st_mode
            )
        await asyncio.sleep(0.01)
        assert open_fds() == before

    run(main)


def test_dir_fd_forms_of_the_changes(run: Any, route: str, tmp_path: Path) -> None:
    tree(tmp_path)

    async def main() -> None:
        on_route(route)
        fd = os.open(tmp_path, os.O_RDONLY)
        try:
            await aio.os.mkdir("sub", dir_fd=fd)
            await aio.os.rename("file", "sub/file", src_dir_fd=fd, dst_dir_fd=fd)
            await aio.os.symlink("sub/file", "sym", dir_fd=fd)
            await aio.os.link("sub/file", "hard", src_dir_fd=fd, dst_dir_fd=fd)
            await aio.os.unlink("sym", dir_fd=fd)
            assert (tmp_path / "hard").read_bytes() == b"0123456789"
            await aio.os.unlink("hard", dir_fd=fd)
            await aio.os.remove("sub/file", dir_fd=fd)
            await aio.os.rmdir("sub", dir_fd=fd)
            assert sorted(os.listdir(tmp_path)) == ["broken", "dir", "dirlink", "empty", "link"]
            with pytest.raises(TypeError, match="rename: src should be"):
                await aio.os.rename(None, "x")
            with pytest.raises(TypeError, match="mkdir: path should be"):
                await aio.os.mkdir(1.5)
            with pytest.raises(ValueError, match="embedded null byte"):
                await aio.os.unlink("a\0b")
        finally:
            os.close(fd)

    run(main)


def test_the_rest_matches_os(run: Any, route: str, tmp_path: Path) -> None:
    tree(tmp_path)

    async def main() -> None:
        on_route(route)
        assert await aio.os.getcwd() == os.getcwd()
        assert (await aio.os.statvfs(tmp_path)).f_bsize == os.statvfs(tmp_path).f_bsize
        entries = await aio.os.scandir(tmp_path)
        with entries:
            assert sorted(e.name for e in entries) == sorted(os.listdir(tmp_path))
        assert await aio.os.path.abspath("x") == os.path.abspath("x")
        src = os.open(tmp_path / "file", os.O_RDONLY)
        dst = os.open(tmp_path / "copy", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            assert await aio.os.sendfile(dst, src, 2, 5) == 5
        finally:
            os.close(src)
            os.close(dst)
        assert (tmp_path / "copy").read_bytes() == b"23456"
        wrapped = aio.os.wrap(os.path.getsize)
        assert await wrapped(tmp_path / "file") == 10
        assert wrapped.__name__ == "getsize"

    run(main)


def test_the_modules_import_as_aiofiles_does() -> None:
    import uringq.aio.os
    import uringq.aio.os.path
    from uringq.aio import os as aio_os

    assert aio_os is uringq.aio.os
    assert uringq.aio.os.path is uringq.aio.ospath is sys.modules["uringq.aio.os.path"]
    assert set(uringq.aio.os.__all__) >= {
        *("stat", "rename", "renames", "replace", "remove", "unlink", "mkdir", "makedirs"),
        *("rmdir", "removedirs", "link", "symlink", "readlink", "listdir", "scandir"),
        *("access", "getcwd", "sendfile", "statvfs", "path", "wrap"),
    }
    assert set(uringq.aio.ospath.__all__) >= {
        *("exists", "isfile", "isdir", "islink", "ismount", "getsize", "getmtime"),
        *("getatime", "getctime", "samefile", "sameopenfile", "abspath"),
    }
    from uringq.aio.tempfile import NamedTemporaryFile

    assert callable(NamedTemporaryFile)


# -- the driver's operations: both routes, and their seams --------------------------------------
def test_driver_operations_on_both_routes(run: Any, route: str, tmp_path: Path) -> None:
    async def main() -> None:
        driver = aio.get_driver()
        on_route(route)
        path = tmp_path / "op"
        fd = await driver.openat(path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            assert os.get_inheritable(fd) is False  # O_CLOEXEC
            assert stat.S_IMODE(os.fstat(fd).st_mode) == 0o640 & ~_umask()
            assert (await driver.statx(fd)).st_ino == os.fstat(fd).st_ino
            assert await driver.ftruncate(fd, 100) == 0
            assert os.fstat(fd).st_size == 100
        finally:
            assert await driver.close_fd(fd) == 0
        with pytest.raises(OSError):
            os.fstat(fd)
        with pytest.raises(FileExistsError) as info:
            await driver.openat(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        assert info.value.filename == path or info.value.filename == str(path)

    run(main)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_an_operation_the_provider_lacks_moves_to_the_workers(run: Any, tmp_path: Path) -> None:
    """A queue that has the method but a provider without it (NotImplementedError)."""
    (tmp_path / "f").write_bytes(b"abc")

    class Lacking:
        def __init__(self, queue: Any) -> None:
            self._queue = queue

        def __getattr__(self, name: str) -> Any:
            return getattr(self._queue, name)

        def prepare_statx(self, *args: Any, **kwargs: Any) -> None:
            raise NotImplementedError("no statx here")

    async def main() -> None:
        driver = aio.get_driver()
        real = driver.queue
        driver.queue = Lacking(real)  # type: ignore[assignment]
        driver._ops.add("prepare_statx")
        try:
            assert (await driver.statx(tmp_path / "f")).st_size == 3
            assert "prepare_statx" not in driver._ops
            assert (await driver.statx(tmp_path / "f")).st_size == 3
        finally:
            driver.queue = real

    run(main)


def test_the_python_settle_path_of_an_operation() -> None:
    """``Operation`` (no native reap): results, errors, stat, and a dropped fd closed.

    Completions are stand-ins with the attributes ``Operation.settle`` reads (``stat``
    is what the queue's statx completion carries)."""
    from types import SimpleNamespace

    from uringq.aio._ops import COUNT, NEW_FD, STAT, Operation

    def completion(result: int, error: Any = None, st: Any = None) -> Any:
        return SimpleNamespace(user_data=None, result=result, error=error, stat=st)

    loop = asyncio.new_event_loop()
    try:
        fut = loop.create_future()
        Operation(fut, COUNT).settle(completion(0))
        assert fut.result() == 0
        fut = loop.create_future()
        error = FileNotFoundError(errno.ENOENT, "No such file or directory", "p")
        Operation(fut, NEW_FD).settle(completion(-errno.ENOENT, error))
        assert fut.exception() is error
        fut = loop.create_future()
        Operation(fut, STAT).settle(completion(0, st=os.stat(".")))
        assert fut.result() == os.stat(".")
        fd = os.open(".", os.O_RDONLY)
        fut = loop.create_future()
        fut.cancel()
        Operation(fut, NEW_FD).settle(completion(fd))
        with pytest.raises(OSError):
            os.fstat(fd)  # nobody could take it: closed
    finally:
        loop.close()
