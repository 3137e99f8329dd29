"""uringq.read_files against ``open(p, "rb").read()`` as the oracle, on every provider
(SPEC section 9): sizes around the first read, /proc and /sys files, duplicates, path
types, dir_fd, errors with ``filename``, ``return_exceptions``, provider selection."""

from __future__ import annotations

import errno
import os
import pathlib
from collections.abc import Callable
from typing import Any

import pytest
import uringq
from helpers.proc import open_fds
from helpers.whole_files import fds_after_warm_up
from uringq._inline_files import FIRST_READ

SIZES = [0, 1, 4095, 4096, 4097, FIRST_READ - 1, FIRST_READ, FIRST_READ + 1, 3 << 20]


def oracle(path: Any, dir_fd: int | None = None) -> bytes:
    fd = os.open(path, os.O_RDONLY, dir_fd=dir_fd)
    with open(fd, "rb") as f:
        return f.read()


@pytest.fixture
def make_file(tmp_path: pathlib.Path) -> Callable[..., pathlib.Path]:
    """``make_file(size, name=None)``: a file of ``size`` distinct-looking bytes."""
    counter = iter(range(10**9))

    def make(size: int, name: str | bytes | None = None) -> pathlib.Path:
        name = name if name is not None else f"f{next(counter)}-{size}"
        path = tmp_path / os.fsdecode(name)
        path.write_bytes(os.urandom(size))
        return path

    return make


def test_sizes_around_the_first_read_match_open(provider: str, make_file: Any) -> None:
    paths = [str(make_file(n)) for n in SIZES]
    got = uringq.read_files(paths, provider=provider)
    assert [len(b) for b in got] == SIZES
    assert got == [oracle(p) for p in paths]
    assert all(type(b) is bytes for b in got)


def test_a_file_larger_than_a_follow_up_chunk(provider: str, make_file: Any) -> None:
    path = make_file((9 << 20) + 3)
    assert uringq.read_files([path], provider=provider) == [oracle(path)]


def stable(path: str) -> bytes:
    """The content of a pseudo file, once two reads in a row agree."""
    previous = oracle(path)
    for _ in range(10):
        current = oracle(path)
        if current == previous:
            return current
        previous = current
    pytest.skip(f"{path} keeps changing")


@pytest.mark.parametrize(
    "path", ["/proc/self/mountinfo", "/proc/self/smaps", "/proc/self/maps", "/proc/cpuinfo"]
)
def test_proc_files_are_read_to_eof(provider: str, path: str) -> None:
    """st_size is 0 and seq files return a page per read: a short read is not EOF."""
    if not os.path.exists(path):
        pytest.skip(f"no {path}")
    for _ in range(5):  # these change with the process; retry until one read agrees
        expected = stable(path)
        if uringq.read_files([path], provider=provider) == [expected]:
            return
    got = uringq.read_files([path], provider=provider)[0]
    assert len(got) == len(expected), (len(got), len(expected))


def test_sys_files(provider: str) -> None:
    paths = [p for p in ("/sys/kernel/mm/transparent_hugepage/enabled",) if os.path.exists(p)]
    paths += [str(p) for p in sorted(pathlib.Path("/sys/class/net").glob("*/address"))[:5]]
    if not paths:
        pytest.skip("no /sys files to read")
    assert uringq.read_files(paths, provider=provider) == [oracle(p) for p in paths]


def test_duplicates_and_an_empty_list(provider: str, make_file: Any) -> None:
    a, b = str(make_file(100)), str(make_file(70_000))
    order = [a, b, a, a, b]
    assert uringq.read_files(order, provider=provider) == [oracle(p) for p in order]
    assert uringq.read_files([], provider=provider) == []


def test_path_types_and_iterables(provider: str, make_file: Any) -> None:
    path = make_file(333)

    class BytesPathLike:
        def __fspath__(self) -> bytes:
            return os.fsencode(path)

    forms: list[Any] = [str(path), os.fsencode(path), path, BytesPathLike()]
    expected = oracle(path)
    assert uringq.read_files(forms, provider=provider) == [expected] * 4
    assert uringq.read_files(iter(forms), provider=provider) == [expected] * 4
    assert uringq.read_files(tuple(forms), provider=provider) == [expected] * 4


def test_non_utf8_names(provider: str, tmp_path: pathlib.Path) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9-\xff"
    with open(raw, "wb") as f:
        f.write(b"latin-1 name")
    as_str = os.fsdecode(raw)  # surrogateescape, as os.listdir returns it
    assert uringq.read_files([raw, as_str], provider=provider) == [b"latin-1 name"] * 2


@pytest.mark.parametrize("bad", ["a\0b", b"a\0b", pathlib.PurePath("x") / "a\0b"])
def test_embedded_nul_raises_value_error_before_anything(
    provider: str, make_file: Any, bad: Any
) -> None:
    before = fds_after_warm_up(provider)
    with pytest.raises(ValueError, match="embedded null byte"):
        uringq.read_files([make_file(5), bad], provider=provider)
    assert open_fds() == before


@pytest.mark.parametrize("single", ["/etc/passwd", b"/etc/passwd", pathlib.Path("/etc/passwd")])
def test_a_single_path_instead_of_a_list_raises_type_error(provider: str, single: Any) -> None:
    with pytest.raises(TypeError, match="iterable of paths"):
        uringq.read_files(single, provider=provider)


@pytest.mark.parametrize("bad", [3, None, 1.5, bytearray(b"/etc/passwd")])
def test_a_non_path_raises_type_error(provider: str, bad: Any) -> None:
    with pytest.raises(TypeError, match=r"str, bytes or os\.PathLike"):
        uringq.read_files(["/etc/passwd", bad], provider=provider)


def test_dir_fd_resolves_relative_paths(
    provider: str, make_file: Any, tmp_path: pathlib.Path
) -> None:
    rel = make_file(1234, "relative")
    absolute = str(make_file(55))
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        got = uringq.read_files(["relative", b"relative", absolute], dir_fd=dfd, provider=provider)
        assert got == [oracle(rel), oracle(rel), oracle(absolute)]
    finally:
        os.close(dfd)


@pytest.mark.parametrize(("dir_fd", "exc"), [(-1, ValueError), ("3", TypeError), (2.0, TypeError)])
def test_a_bad_dir_fd_raises(provider: str, dir_fd: Any, exc: type[Exception]) -> None:
    with pytest.raises(exc):
        uringq.read_files(["/etc/passwd"], dir_fd=dir_fd, provider=provider)


def expected_error(call: Callable[[], Any]) -> OSError:
    """What ``open(path, "rb").read()`` raises."""
    with pytest.raises(OSError) as info:
        call()
    return info.value


def failing_paths(tmp_path: pathlib.Path) -> list[Any]:
    return [
        str(tmp_path / "missing"),  # ENOENT
        pathlib.Path(tmp_path),  # a directory: EISDIR
        str(tmp_path / "f0-10") + "/below",  # ENOTDIR
        os.fsencode(tmp_path) + b"/" + b"x" * 300,  # ENAMETOOLONG
    ]


def test_errors_match_open_with_filename_as_given(
    provider: str, make_file: Any, tmp_path: pathlib.Path
) -> None:
    make_file(10, "f0-10")
    for bad in failing_paths(tmp_path):
        want = expected_error(lambda bad=bad: oracle(bad))
        with pytest.raises(OSError) as info:
            uringq.read_files([bad], provider=provider)
        got = info.value
        assert type(got) is type(want), (bad, got, want)
        assert (got.errno, got.strerror) == (want.errno, want.strerror)
        assert got.filename is bad
        assert str(got) == f"[Errno {want.errno}] {want.strerror}: {bad!r}"


def test_permission_denied(provider: str, make_file: Any) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    path = make_file(10)
    path.chmod(0)
    with pytest.raises(PermissionError) as info:
        uringq.read_files([path], provider=provider)
    assert info.value.filename is path


def test_the_first_failure_in_input_order_is_raised(
    provider: str, make_file: Any, tmp_path: pathlib.Path
) -> None:
    make_file(10, "f0-10")
    good = [str(make_file(n)) for n in (5, 70_000, 0)]
    bad = failing_paths(tmp_path)
    mixed = [good[0], bad[1], good[1], bad[0], good[2], bad[3]]
    before = fds_after_warm_up(provider)
    with pytest.raises(IsADirectoryError) as info:
        uringq.read_files(mixed, provider=provider)
    assert info.value.filename is bad[1]
    got = uringq.read_files(mixed, return_exceptions=True, provider=provider)
    assert open_fds() == before
    assert got[0] == oracle(good[0])
    assert got[2] == oracle(good[1])
    assert got[4] == b""
    assert isinstance(got[1], IsADirectoryError)
    assert got[1].filename is bad[1]
    assert isinstance(got[3], FileNotFoundError)
    assert got[3].filename is bad[0]
    assert isinstance(got[5], OSError)
    assert got[5].errno == errno.ENAMETOOLONG


def test_provider_argument_and_environment(monkeypatch: pytest.MonkeyPatch, make_file: Any) -> None:
    """``provider=`` wins, then URINGQ_PROVIDER, as for IoQueue; a forced unknown or
    unavailable provider raises ProviderUnavailable."""
    path = str(make_file(7))
    used: list[str] = []
    for info in uringq.providers():
        original = getattr(info.provider_class, "read_files", None)
        if original is None:
            continue
        monkeypatch.setattr(
            info.provider_class,
            "read_files",
            staticmethod(lambda *a, _id=info.id, _f=original, **k: used.append(_id) or _f(*a, **k)),
        )
    available = [p.id for p in uringq.providers() if p.available]
    for pid in available:
        monkeypatch.setenv("URINGQ_PROVIDER", pid)
        used.clear()
        assert uringq.read_files([path]) == [oracle(path)]
        native = getattr(uringq.get_provider(pid).provider_class, "read_files", None)
        assert used == ([pid] if native else [])
    monkeypatch.setenv("URINGQ_PROVIDER", "no-such-provider")
    with pytest.raises(uringq.ProviderUnavailable):
        uringq.read_files([path])
    used.clear()
    assert uringq.read_files([path], provider=available[-1]) == [oracle(path)]
    with pytest.raises(LookupError):
        uringq.read_files([path], provider="no-such-provider")
