"""uringq.write_files on every provider (SPEC section 9): mappings and pairs, any
C-contiguous buffer, mode before the umask, fsync, truncation, errors with ``filename``
in both error modes, and what is read back."""

from __future__ import annotations

import array
import errno
import os
import pathlib
import stat
from typing import Any

import pytest
import uringq
from helpers.proc import open_fds
from helpers.whole_files import fds_after_warm_up


def test_a_mapping_and_pairs_write_whole_files(provider: str, tmp_path: pathlib.Path) -> None:
    files = {str(tmp_path / f"m{i}"): os.urandom(i * 1000) for i in range(20)}
    assert uringq.write_files(files, provider=provider) == [len(d) for d in files.values()]
    for path, data in files.items():
        assert pathlib.Path(path).read_bytes() == data
    pairs = [(tmp_path / f"p{i}", os.urandom(5000 + i)) for i in range(10)]
    assert uringq.write_files(iter(pairs), provider=provider) == [len(d) for _, d in pairs]
    assert uringq.read_files([p for p, _ in pairs], provider=provider) == [d for _, d in pairs]
    assert uringq.write_files({}, provider=provider) == []


def test_any_c_contiguous_buffer(provider: str, tmp_path: pathlib.Path) -> None:
    ints = array.array("i", range(1000))
    view = memoryview(bytearray(b"0123456789"))[2:8]
    data: list[Any] = [b"bytes", bytearray(b"bytearray"), view, ints, memoryview(ints)]
    paths = [tmp_path / f"b{i}" for i in range(len(data))]
    got = uringq.write_files(zip(paths, data, strict=True), provider=provider)
    assert got == [5, 9, 6, 4000, 4000]
    assert [p.read_bytes() for p in paths] == [
        b"bytes",
        b"bytearray",
        b"234567",
        ints.tobytes(),
        ints.tobytes(),
    ]


def test_bad_data_raises_before_any_file_is_created(provider: str, tmp_path: pathlib.Path) -> None:
    first = tmp_path / "first"
    strided = memoryview(bytearray(100))[::2]
    with pytest.raises(BufferError):
        uringq.write_files([(first, b"x"), (tmp_path / "s", strided)], provider=provider)
    with pytest.raises(TypeError):
        uringq.write_files([(first, b"x"), (tmp_path / "t", "text")], provider=provider)
    with pytest.raises(ValueError, match="embedded null byte"):
        uringq.write_files([(first, b"x"), (str(tmp_path) + "/a\0b", b"y")], provider=provider)
    assert not first.exists()


def test_mode_applies_before_the_umask(provider: str, tmp_path: pathlib.Path) -> None:
    old = os.umask(0o027)
    try:
        files = {tmp_path / "a": b"", tmp_path / "b": b"x"}
        uringq.write_files(files, mode=0o751, provider=provider)
        uringq.write_files({tmp_path / "c": b"x"}, provider=provider)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "c").stat().st_mode) == 0o640


@pytest.mark.parametrize("mode", [-1, 0o10000, "0o644"])
def test_a_bad_mode_raises(provider: str, tmp_path: pathlib.Path, mode: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        uringq.write_files({tmp_path / "a": b""}, mode=mode, provider=provider)
    assert not (tmp_path / "a").exists()


def test_existing_files_are_truncated_and_mode_kept(provider: str, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "existing"
    path.write_bytes(b"a much longer old content" * 1000)
    path.chmod(0o600)
    assert uringq.write_files({path: b"new"}, mode=0o666, fsync=True, provider=provider) == [3]
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_fsync_and_a_file_larger_than_a_chunk(provider: str, tmp_path: pathlib.Path) -> None:
    big = os.urandom((9 << 20) + 17)
    files = {tmp_path / "big": big, tmp_path / "small": b"s" * 100}
    assert uringq.write_files(files, fsync=True, provider=provider) == [len(big), 100]
    assert (tmp_path / "big").read_bytes() == big


def test_errors_in_both_modes_and_the_rest_still_written(
    provider: str, tmp_path: pathlib.Path
) -> None:
    missing_dir = tmp_path / "no-such-dir" / "x"
    a_dir = str(tmp_path)
    after = tmp_path / "after"
    files: list[tuple[Any, bytes]] = [
        (tmp_path / "before", b"1"),
        (missing_dir, b"2"),
        (a_dir, b"3"),
        (after, b"4"),
    ]
    before = fds_after_warm_up(provider)
    with pytest.raises(FileNotFoundError) as info:
        uringq.write_files(files, provider=provider)
    assert info.value.filename is missing_dir
    assert info.value.errno == errno.ENOENT
    assert after.read_bytes() == b"4", "files after the failing one are written too"
    after.unlink()
    got = uringq.write_files(files, return_exceptions=True, provider=provider)
    assert open_fds() == before
    assert got[0] == 1
    assert got[3] == 1
    assert isinstance(got[1], FileNotFoundError)
    assert got[1].filename is missing_dir
    assert isinstance(got[2], IsADirectoryError)
    assert got[2].filename is a_dir
    assert str(got[2]) == f"[Errno {errno.EISDIR}] {os.strerror(errno.EISDIR)}: {a_dir!r}"


def test_dir_fd_and_path_types(provider: str, tmp_path: pathlib.Path) -> None:
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        got = uringq.write_files(
            [("rel", b"r"), (b"rel-bytes", b"rb"), (tmp_path / "abs", b"a")],
            dir_fd=dfd,
            provider=provider,
        )
    finally:
        os.close(dfd)
    assert got == [1, 2, 1]
    assert (tmp_path / "rel").read_bytes() == b"r"
    assert (tmp_path / "rel-bytes").read_bytes() == b"rb"
    assert (tmp_path / "abs").read_bytes() == b"a"


def test_a_path_given_twice_ends_with_the_last_data(provider: str, tmp_path: pathlib.Path) -> None:
    """As in a loop of ``open(p, "wb").write(d)``: the last data given wins."""
    path, other = tmp_path / "twice", tmp_path / "other"
    pairs = [(path, b"first and longest"), (other, b"o"), (str(path), b"second"), (path, b"3")]
    assert uringq.write_files(pairs, provider=provider) == [17, 1, 6, 1]
    assert path.read_bytes() == b"3"
    assert other.read_bytes() == b"o"
