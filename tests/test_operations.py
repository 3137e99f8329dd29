"""SPEC section 8: open, close, statx, timers, the path operations, linked chains,
deadlines and cancel, on every provider, with ``os`` as the oracle."""

from __future__ import annotations

import errno
import os
import pathlib
import stat
import time
from collections.abc import Callable
from typing import Any

import pytest
import uringq
from helpers.proc import O_CLOEXEC_FDINFO, assert_child_ok, fd_flags, open_fds, run_python
from helpers.queueing import collect, settle


def run(q: uringq.IoQueue, count: int, timeout: float = 10.0) -> list[uringq.Completion]:
    """Commit, then collect ``count`` completions in user_data order."""
    q.commit()
    done = collect(q, count, timeout)
    return sorted(done, key=lambda c: c.user_data)


def run_collected(q: uringq.IoQueue, count: int) -> list[uringq.Completion]:
    """Collect ``count`` completions of what was committed, in user_data order."""
    return sorted(collect(q, count), key=lambda c: c.user_data)


def one(q: uringq.IoQueue) -> uringq.Completion:
    [done] = run(q, 1)
    return done


@pytest.fixture
def sample(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "sample.txt"
    path.write_bytes(b"hello, operations")
    return path


STAT_FIELDS = [
    *("st_mode", "st_ino", "st_dev", "st_nlink", "st_uid", "st_gid", "st_size"),
    *("st_atime", "st_mtime", "st_ctime", "st_atime_ns", "st_mtime_ns", "st_ctime_ns"),
    *("st_blksize", "st_blocks", "st_rdev"),
]


def assert_stat_equal(got: os.stat_result | None, want: os.stat_result) -> None:
    assert isinstance(got, os.stat_result)
    assert tuple(got) == tuple(want)
    for field in STAT_FIELDS:
        assert getattr(got, field) == getattr(want, field), field


# -- openat / close -------------------------------------------------------------------------
def test_openat_result_is_a_new_cloexec_fd_the_caller_owns(
    queue: uringq.IoQueue, sample: pathlib.Path
) -> None:
    queue.prepare_openat(str(sample), user_data="open")
    done = one(queue)
    assert done.ok and done.stat is None
    fd = done.result
    try:
        assert os.read(fd, 100) == b"hello, operations"
        assert fd_flags(fd) & O_CLOEXEC_FDINFO
        assert os.get_inheritable(fd) is False
    finally:
        os.close(fd)


@pytest.mark.parametrize("kind", ["str", "bytes", "pathlike"])
def test_openat_takes_str_bytes_and_pathlike(
    queue: uringq.IoQueue, sample: pathlib.Path, kind: str
) -> None:
    path: Any = {"str": str(sample), "bytes": os.fsencode(sample), "pathlike": sample}[kind]
    queue.prepare_openat(path)
    fd = one(queue).result
    try:
        assert os.read(fd, 5) == b"hello"
    finally:
        os.close(fd)


def test_openat_creates_with_flags_and_mode(queue: uringq.IoQueue, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "new.bin"
    old = os.umask(0o022)
    try:
        queue.prepare_openat(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        fd = one(queue).result
    finally:
        os.umask(old)
    os.write(fd, b"x")
    os.close(fd)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    queue.prepare_openat(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    error = one(queue).error
    assert isinstance(error, FileExistsError) and error.filename == str(path)


def test_openat_relative_to_dir_fd(queue: uringq.IoQueue, sample: pathlib.Path) -> None:
    dirfd = os.open(sample.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        queue.prepare_openat(sample.name, dir_fd=dirfd)
        fd = one(queue).result
        os.close(fd)
        queue.prepare_openat(sample.name, dir_fd=os.open("/", os.O_RDONLY))
        assert isinstance(one(queue).error, FileNotFoundError)
    finally:
        os.close(dirfd)


def test_openat_of_a_non_utf8_name(queue: uringq.IoQueue, tmp_path: pathlib.Path) -> None:
    name = os.fsencode(tmp_path) + b"/caf\xe9"
    with open(name, "wb") as f:
        f.write(b"latin-1 name")
    queue.prepare_openat(name)
    fd = one(queue).result
    assert os.read(fd, 100) == b"latin-1 name"
    os.close(fd)
    queue.prepare_openat(os.fsdecode(name))  # surrogateescape, as os.open takes it
    fd = one(queue).result
    os.close(fd)


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda p: p / "missing", FileNotFoundError),
        (lambda p: p / "sample.txt" / "x", NotADirectoryError),
    ],
)
def test_openat_errors_arrive_as_completions_with_filename(
    queue: uringq.IoQueue, sample: pathlib.Path, make: Callable[[Any], Any], error: type
) -> None:
    path = make(sample.parent)
    with pytest.raises(error) as oracle:
        os.open(path, os.O_RDONLY)
    queue.prepare_openat(path)
    done = one(queue)
    assert type(done.error) is error
    assert done.error.errno == oracle.value.errno
    assert done.error.filename == oracle.value.filename == str(path)
    assert str(done.error) == str(oracle.value)
    assert done.result == 0


def test_opening_a_directory_for_writing_is_the_kernels_call(
    queue: uringq.IoQueue, tmp_path: pathlib.Path
) -> None:
    queue.prepare_openat(tmp_path, os.O_WRONLY)
    assert isinstance(one(queue).error, IsADirectoryError)


@pytest.mark.parametrize(
    ("call", "exc"),
    [
        (lambda q: q.prepare_openat(1.5), TypeError),
        (lambda q: q.prepare_openat("a\0b"), ValueError),
        (lambda q: q.prepare_openat(b"a\0b"), ValueError),
        (lambda q: q.prepare_openat("x", "r"), TypeError),
        (lambda q: q.prepare_openat("x", dir_fd="3"), TypeError),
        (lambda q: q.prepare_openat("x", link=True, hardlink=True), ValueError),
        (lambda q: q.prepare_openat("x", timeout=-1), ValueError),
        (lambda q: q.prepare_openat("x", timeout="soon"), TypeError),
        (lambda q: q.prepare_statx("x", follow_symlinks=None), TypeError),
        (lambda q: q.prepare_statx(3, dir_fd=4), ValueError),
        (lambda q: q.prepare_timeout(-0.5), ValueError),
        (lambda q: q.prepare_timeout(float("nan")), ValueError),
        (lambda q: q.prepare_timeout(None), TypeError),
        (lambda q: q.prepare_close("3"), TypeError),
        (lambda q: q.prepare_close(-1), ValueError),
        (lambda q: q.prepare_renameat("a", None), TypeError),
        (lambda q: q.prepare_ftruncate(0, -1), ValueError),
        (lambda q: q.prepare_mkdirat("d", "0o777"), TypeError),
        (lambda q: q.cancel(), TypeError),
    ],
)
def test_bad_arguments_raise_before_anything_is_queued(
    queue: uringq.IoQueue, call: Callable[[uringq.IoQueue], Any], exc: type
) -> None:
    with pytest.raises(exc):
        call(queue)
    assert (queue.prepared, queue.in_flight) == (0, 0)


def test_close_closes_any_fd(queue: uringq.IoQueue, sample: pathlib.Path) -> None:
    fd = os.open(sample, os.O_RDONLY)
    queue.prepare_close(fd, user_data="close")
    done = one(queue)
    assert (done.ok, done.result, done.stat) == (True, 0, None)
    with pytest.raises(OSError) as closed:
        os.fstat(fd)
    assert closed.value.errno == errno.EBADF
    queue.prepare_close(fd)
    assert one(queue).error.errno == errno.EBADF  # type: ignore[union-attr]


def test_closing_a_registered_fd_keeps_the_registration(
    queue: uringq.IoQueue, sample: pathlib.Path
) -> None:
    fd = os.open(sample, os.O_RDONLY)
    queue.register(fd)
    queue.prepare_close(fd)
    assert one(queue).ok
    buf = bytearray(5)
    queue.prepare_read(fd, 0, buf)
    assert one(queue).result == 5 and buf == b"hello"
    queue.deregister(fd)


def test_unreaped_opens_are_closed_with_the_queue(
    make_queue: Callable[..., uringq.IoQueue], sample: pathlib.Path
) -> None:
    before = open_fds()
    q = make_queue()
    for i in range(8):
        q.prepare_openat(sample, user_data=i)
    q.commit()
    settle()
    q.wait(2, 2)[0]  # two taken (closed below), six left unreaped
    for c in q.wait(0, 2, 0):
        os.close(c.result)
    q.close(cancel=True)
    leaked = open_fds() - before
    assert len(leaked) <= 2  # the two taken completions' fds, still the caller's
    for fd in leaked:
        os.close(fd)


# -- statx ----------------------------------------------------------------------------------
def test_statx_is_os_stat(queue: uringq.IoQueue, sample: pathlib.Path) -> None:
    link = sample.parent / "link"
    link.symlink_to(sample)
    # lstat first: following the link touches the link's own atime.
    queue.prepare_statx(link, follow_symlinks=False)
    assert_stat_equal(one(queue).stat, os.lstat(link))
    queue.prepare_statx(sample, user_data=1)
    queue.prepare_statx(link, user_data=2)
    queue.prepare_statx(sample.parent, user_data=3)
    queue.prepare_statx("/dev/null", user_data=4)
    got = run(queue, 4)
    assert all(c.ok and c.result == 0 for c in got)
    assert_stat_equal(got[0].stat, os.stat(sample))
    assert_stat_equal(got[1].stat, os.stat(link))
    assert_stat_equal(got[2].stat, os.stat(sample.parent))
    assert_stat_equal(got[3].stat, os.stat("/dev/null"))


def test_statx_of_an_fd_and_relative_to_dir_fd(queue: uringq.IoQueue, sample: pathlib.Path) -> None:
    fd = os.open(sample, os.O_RDONLY)
    dirfd = os.open(sample.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        queue.prepare_statx(fd, user_data=1)
        queue.prepare_statx(sample.name, dir_fd=dirfd, user_data=2)
        got = run(queue, 2)
        assert_stat_equal(got[0].stat, os.stat(fd))
        assert_stat_equal(got[1].stat, os.stat(sample.name, dir_fd=dirfd))
    finally:
        os.close(fd)
        os.close(dirfd)


def test_statx_errors_name_the_path(queue: uringq.IoQueue, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "missing"
    queue.prepare_statx(path)
    done = one(queue)
    with pytest.raises(FileNotFoundError) as oracle:
        os.stat(path)
    assert str(done.error) == str(oracle.value)
    assert done.stat is None


# -- the path operations --------------------------------------------------------------------
def test_path_operations_do_what_os_does(queue: uringq.IoQueue, tmp_path: pathlib.Path) -> None:
    (tmp_path / "a").write_bytes(b"data")
    queue.prepare_mkdirat(tmp_path / "d", 0o750, user_data=1, link=True)
    queue.prepare_renameat(tmp_path / "a", tmp_path / "d" / "b", user_data=2, link=True)
    queue.prepare_linkat(tmp_path / "d" / "b", tmp_path / "c", user_data=3, link=True)
    queue.prepare_symlinkat("d/b", tmp_path / "s", user_data=4, link=True)
    queue.prepare_unlinkat(tmp_path / "c", user_data=5)
    assert [c.error for c in run(queue, 5)] == [None] * 5
    assert (tmp_path / "s").read_bytes() == b"data"
    assert os.readlink(tmp_path / "s") == "d/b"
    assert not (tmp_path / "c").exists()
    assert stat.S_ISDIR(os.stat(tmp_path / "d").st_mode)
    fd = os.open(tmp_path / "d" / "b", os.O_RDWR)
    queue.prepare_ftruncate(fd, 2)
    assert one(queue).ok
    os.close(fd)
    assert (tmp_path / "d" / "b").read_bytes() == b"da"
    queue.prepare_unlinkat(tmp_path / "d", rmdir=True)
    error = one(queue).error
    with pytest.raises(OSError) as oracle:
        os.rmdir(tmp_path / "d")
    assert type(error) is type(oracle.value) and str(error) == str(oracle.value)


def test_two_path_errors_name_both_paths(queue: uringq.IoQueue, tmp_path: pathlib.Path) -> None:
    src, dst = tmp_path / "nope", tmp_path / "x"
    queue.prepare_renameat(src, dst)
    error = one(queue).error
    with pytest.raises(FileNotFoundError) as oracle:
        os.rename(src, dst)
    assert (error.filename, error.filename2) == (str(src), str(dst))  # type: ignore[union-attr]
    assert str(error) == str(oracle.value)


# -- timers ---------------------------------------------------------------------------------
def test_a_timer_completes_after_its_time(queue: uringq.IoQueue) -> None:
    start = time.monotonic()
    queue.prepare_timeout(0.05, user_data="t")
    done = one(queue)
    assert (done.ok, done.result, done.user_data) == (True, 0, "t")
    assert time.monotonic() - start >= 0.05


def test_a_linked_timer_delays_the_next_request(
    queue: uringq.IoQueue, sample: pathlib.Path
) -> None:
    start = time.monotonic()
    queue.prepare_timeout(0.08, user_data=1, link=True)
    queue.prepare_statx(sample, user_data=2)
    got = run(queue, 2)
    assert [c.error for c in got] == [None, None]
    assert time.monotonic() - start >= 0.08


def test_a_cancelled_timer_completes_with_ecanceled(queue: uringq.IoQueue) -> None:
    queue.prepare_timeout(60, user_data="long")
    queue.commit()
    assert queue.cancel("long") == 1
    done = collect(queue, 1)[0]
    assert done.error is not None and done.error.errno == errno.ECANCELED


# -- links ----------------------------------------------------------------------------------
def test_a_failure_cancels_the_rest_of_a_chain(
    queue: uringq.IoQueue, sample: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    queue.prepare_openat(tmp_path / "missing", user_data=1, link=True)
    queue.prepare_statx(sample, user_data=2, link=True)
    queue.prepare_timeout(0, user_data=3)
    queue.prepare_statx(sample, user_data=4)  # not part of the chain
    got = run(queue, 4)
    assert isinstance(got[0].error, FileNotFoundError)
    assert [c.error.errno if c.error else 0 for c in got[1:]] == [errno.ECANCELED] * 2 + [0]


@pytest.mark.parametrize("first", ["statx", "mkdirat", "renameat", "unlinkat", "linkat"])
def test_every_failing_operation_breaks_a_soft_link(
    queue: uringq.IoQueue, tmp_path: pathlib.Path, first: str
) -> None:
    missing = tmp_path / "missing"
    failing = {
        "statx": lambda: queue.prepare_statx(missing, user_data=1, link=True),
        "mkdirat": lambda: queue.prepare_mkdirat(tmp_path, user_data=1, link=True),
        "renameat": lambda: queue.prepare_renameat(missing, tmp_path / "x", user_data=1, link=True),
        "unlinkat": lambda: queue.prepare_unlinkat(missing, user_data=1, link=True),
        "linkat": lambda: queue.prepare_linkat(missing, tmp_path / "x", user_data=1, link=True),
    }
    failing[first]()
    queue.prepare_mkdirat(tmp_path / "made", user_data=2)
    got = run(queue, 2)
    assert got[0].error is not None
    assert got[1].error is not None and got[1].error.errno == errno.ECANCELED
    assert not (tmp_path / "made").exists()


def test_a_hardlink_goes_on_after_a_failure(queue: uringq.IoQueue, tmp_path: pathlib.Path) -> None:
    queue.prepare_statx(tmp_path / "missing", user_data=1, hardlink=True)
    queue.prepare_mkdirat(tmp_path / "made", user_data=2)
    got = run(queue, 2)
    assert isinstance(got[0].error, FileNotFoundError) and got[1].ok
    assert (tmp_path / "made").is_dir()


def test_a_short_read_breaks_a_soft_link_not_a_hard_one(
    queue: uringq.IoQueue, sample: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    fd = os.open(sample, os.O_RDONLY)
    queue.register(fd)
    buf = bytearray(1000)
    queue.prepare_read(fd, 0, buf, 1, link=True)
    queue.prepare_mkdirat(tmp_path / "soft", user_data=2)
    queue.prepare_read(fd, 0, bytearray(1000), 3, hardlink=True)
    queue.prepare_mkdirat(tmp_path / "hard", user_data=4)
    got = run(queue, 4)
    assert got[0].result == len(b"hello, operations")
    assert got[1].error is not None and got[1].error.errno == errno.ECANCELED
    assert got[3].ok and (tmp_path / "hard").is_dir()
    queue.deregister(fd)
    os.close(fd)


def test_a_chain_ends_at_the_end_of_a_commit(queue: uringq.IoQueue, tmp_path: pathlib.Path) -> None:
    queue.prepare_statx(tmp_path / "missing", user_data=1, link=True)
    assert isinstance(one(queue).error, FileNotFoundError)
    queue.prepare_mkdirat(tmp_path / "made", user_data=2)
    assert one(queue).ok


def test_write_then_fsync_as_a_chain(queue: uringq.IoQueue, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "out"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    queue.register(fd)
    queue.prepare_write(fd, 0, b"durable", 1, link=True)
    queue.prepare_sync(fd, 2, link=True)
    queue.prepare_close(fd, user_data=3)
    got = run(queue, 3)
    assert [c.result for c in got] == [7, 0, 0] and all(c.ok for c in got)
    queue.deregister(fd)
    assert path.read_bytes() == b"durable"


# -- deadlines ------------------------------------------------------------------------------
def test_a_deadline_on_a_pipe_read_times_out_once(
    queue: uringq.IoQueue, pipe_fds: tuple[int, int]
) -> None:
    r, _ = pipe_fds
    queue.register(r)
    start = time.monotonic()
    queue.prepare_read(r, 0, bytearray(16), "slow", timeout=0.05)
    done = one(queue)
    elapsed = time.monotonic() - start
    assert isinstance(done.error, TimeoutError) and done.error.errno == errno.ETIMEDOUT
    assert 0.04 <= elapsed < 5
    assert queue.in_flight == 0
    assert queue.wait(0, None, 0.1) == []  # exactly one completion for the request
    queue.deregister(r)


def test_a_deadline_met_keeps_the_result(queue: uringq.IoQueue, sample: pathlib.Path) -> None:
    queue.prepare_statx(sample, user_data=1, timeout=5, link=True)
    queue.prepare_openat(sample, user_data=2, timeout=5)
    got = run(queue, 2)
    assert got[0].ok and got[1].ok
    os.close(got[1].result)
    assert queue.wait(0, None, 0.05) == []


def test_a_timed_out_link_cancels_the_rest(
    queue: uringq.IoQueue, pipe_fds: tuple[int, int], tmp_path: pathlib.Path
) -> None:
    r, _ = pipe_fds
    queue.register(r)
    queue.prepare_read(r, 0, bytearray(4), 1, timeout=0.03, link=True)
    queue.prepare_mkdirat(tmp_path / "never", user_data=2)
    got = run(queue, 2)
    assert isinstance(got[0].error, TimeoutError)
    assert got[1].error is not None and got[1].error.errno == errno.ECANCELED
    queue.deregister(r)


def test_a_deadline_takes_a_second_submission_entry(
    make_queue: Callable[..., uringq.IoQueue], pipe_fds: tuple[int, int]
) -> None:
    q = make_queue(2, 4)
    r, _ = pipe_fds
    q.register(r)
    q.prepare_read(r, 0, bytearray(4), timeout=0.01)
    with pytest.raises(uringq.QueueFull):
        q.prepare_read(r, 0, bytearray(4))
    assert q.prepared == 1
    assert isinstance(one(q).error, TimeoutError)


# -- cancel ---------------------------------------------------------------------------------
def test_cancel_stops_a_pending_read_and_spares_a_finished_one(
    queue: uringq.IoQueue, pipe_fds: tuple[int, int], sample: pathlib.Path
) -> None:
    r, _ = pipe_fds
    queue.register(r)
    buf = bytearray(8)
    queue.prepare_read(r, 0, buf, "x")
    queue.prepare_statx(sample, user_data="x")
    queue.commit()
    settle()
    assert queue.cancel("x") == 2
    assert queue.cancel("nobody") == 0
    got = collect(queue, 2)
    errors = sorted((c.error.errno if c.error else 0) for c in got)
    assert errors == [0, errno.ECANCELED]
    assert queue.in_flight == 0
    queue.deregister(r)


def test_cancel_compares_with_eq_and_survives_a_raising_eq(
    queue: uringq.IoQueue, pipe_fds: tuple[int, int]
) -> None:
    class Touchy:
        def __eq__(self, other: object) -> bool:
            raise RuntimeError("no comparing")

        __hash__ = object.__hash__

    r, _ = pipe_fds
    queue.register(r)
    queue.prepare_read(r, 0, bytearray(8), Touchy())
    queue.commit()
    with pytest.raises(RuntimeError, match="no comparing"):
        queue.cancel("x")
    assert queue.in_flight == 1  # nothing lost, nothing cancelled
    queue.close(cancel=True)


def test_cancel_matches_by_equality(queue: uringq.IoQueue, pipe_fds: tuple[int, int]) -> None:
    r, _ = pipe_fds
    queue.register(r)
    queue.prepare_read(r, 0, bytearray(8), 42)
    queue.prepare_read(r, 0, bytearray(8), 42)
    queue.prepare_read(r, 0, bytearray(8), 43)
    queue.commit()
    assert queue.cancel(42.0) == 2  # 42 == 42.0
    got = collect(queue, 2)
    assert sorted(c.user_data for c in got) == [42, 42]
    assert all(c.error is not None and c.error.errno == errno.ECANCELED for c in got)
    assert queue.in_flight == 1
    queue.close(cancel=True)


def test_cancelling_a_chains_running_request_cancels_the_rest(
    queue: uringq.IoQueue, tmp_path: pathlib.Path
) -> None:
    queue.prepare_timeout(60, user_data=1, link=True)
    queue.prepare_mkdirat(tmp_path / "never", user_data=2)
    queue.commit()
    assert queue.cancel(1) == 1
    got = run_collected(queue, 2)
    assert [c.error.errno if c.error else 0 for c in got] == [errno.ECANCELED] * 2
    assert not (tmp_path / "never").exists()


def test_cancelled_reads_keep_their_buffers_pinned(
    queue: uringq.IoQueue, pipe_fds: tuple[int, int]
) -> None:
    r, _ = pipe_fds
    queue.register(r)
    buf = bytearray(8)
    queue.prepare_read(r, 0, buf, "pinned")
    queue.commit()
    queue.cancel("pinned")
    with pytest.raises(BufferError):
        buf.extend(b"x")  # still exported until the completion is returned
    collect(queue, 1)
    buf.extend(b"x")


# -- the emulator (io_uring only) -----------------------------------------------------------
def test_missing_opcodes_run_on_a_thread_with_the_same_results(tmp_path: pathlib.Path) -> None:
    if not uringq.get_provider("io_uring").available:
        pytest.skip("io_uring unavailable here")
    proc = run_python(
        f"""
        import errno, os, uringq
        from helpers.queueing import collect
        base = {str(tmp_path)!r}
        with uringq.IoQueue(provider="io_uring") as q:
            q.prepare_mkdirat(base + "/d", user_data=1, link=True)
            q.prepare_statx(base + "/d", user_data=2, link=True)
            q.prepare_openat(base + "/d/f", os.O_CREAT | os.O_WRONLY, user_data=3)
            q.prepare_mkdirat(base + "/d", user_data=4, link=True)
            q.prepare_unlinkat(base + "/d", user_data=5)
            q.commit()
            got = {{c.user_data: c for c in collect(q, 5)}}
            assert got[1].ok and got[2].stat.st_ino == os.stat(base + "/d").st_ino
            assert got[3].ok
            os.close(got[3].result)
            assert got[4].error.errno == errno.EEXIST
            assert got[5].error.errno == errno.ECANCELED
        print("ok")
        """,
        URINGQ_HIDE_OPCODES="MKDIRAT,STATX,OPENAT,UNLINKAT",
    )
    assert_child_ok(proc)
    assert proc.stdout.strip() == "ok"
