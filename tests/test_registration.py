"""register/deregister (SPEC section 2, Registration): register pins the open file, like
io_uring's fixed files; the fallback dup()s the fd to match."""

from __future__ import annotations

import errno
import os
import resource

import pytest
import uringq
from helpers.proc import open_fds
from helpers.queueing import collect


@pytest.fixture
def two_files(tmp_path):
    a, b = tmp_path / "first", tmp_path / "second"
    a.write_bytes(b"FIRST FILE " * 10)
    b.write_bytes(b"second file " * 10)
    return str(a), str(b)


def read_via(q: uringq.IoQueue, fd, size: int = 11, offset: int = 0) -> bytes:
    buf = bytearray(size)
    q.prepare_read(fd, offset, buf, "read")
    q.commit()
    (c,) = collect(q, 1)
    assert c.error is None, c.error
    return bytes(buf[: c.result])


@pytest.mark.timeout(20)
def test_registered_fd_keeps_reaching_its_file_after_the_number_is_closed_and_reused(
    queue, two_files
):
    first, second = two_files
    fd = os.open(first, os.O_RDONLY)
    queue.register(fd)
    os.close(fd)
    other = os.open(second, os.O_RDONLY)
    try:
        if other != fd:  # make the reuse certain
            os.dup2(other, fd)
        assert os.pread(fd, 11, 0) == b"second file"  # the number now means the other file
        assert read_via(queue, fd) == b"FIRST FILE "
    finally:
        queue.close(cancel=True)
        os.close(other)
        if other != fd:
            os.close(fd)


@pytest.mark.timeout(20)
def test_write_through_a_reused_fd_number_reaches_the_registered_file(queue, two_files):
    first, second = two_files
    fd = os.open(first, os.O_RDWR)
    queue.register(fd)
    os.close(fd)
    other = os.open(second, os.O_RDWR)
    try:
        if other != fd:
            os.dup2(other, fd)
        queue.prepare_write(fd, 0, b"PINNED", "w")
        queue.commit()
        (c,) = collect(queue, 1)
        assert (c.result, c.error) == (6, None)
    finally:
        queue.close(cancel=True)
        os.close(other)
        if other != fd:
            os.close(fd)
    with open(first, "rb") as f:
        assert f.read(6) == b"PINNED"
    with open(second, "rb") as f:
        assert f.read(6) == b"second"


@pytest.mark.timeout(20)
def test_after_deregister_the_number_can_be_registered_for_another_file(queue, two_files):
    first, second = two_files
    fd = os.open(first, os.O_RDONLY)
    queue.register(fd)
    queue.deregister(fd)
    os.close(fd)
    other = os.open(second, os.O_RDONLY)
    try:
        if other != fd:
            os.dup2(other, fd)
        queue.register(fd)
        assert read_via(queue, fd) == b"second file"
    finally:
        queue.close(cancel=True)
        os.close(other)
        if other != fd:
            os.close(fd)


def test_prepare_after_deregister_raises_HandleNotRegistered(queue, rfd):
    queue.deregister(rfd)
    with pytest.raises(uringq.HandleNotRegistered):
        queue.prepare_read(rfd, 0, bytearray(8))
    assert queue.prepared == 0


def test_deregister_twice_raises_HandleNotRegistered(queue, rfd):
    queue.deregister(rfd)
    with pytest.raises(uringq.HandleNotRegistered):
        queue.deregister(rfd)


@pytest.mark.timeout(20)
def test_register_and_prepare_accept_objects_with_fileno(queue, two_files):
    first, _ = two_files
    with open(first, "rb") as f:
        queue.register(f)
        assert read_via(queue, f) == b"FIRST FILE "
        assert read_via(queue, f.fileno()) == b"FIRST FILE "
        queue.deregister(f)
        with pytest.raises(uringq.HandleNotRegistered):
            queue.prepare_read(f, 0, bytearray(4))


def test_deregister_releases_what_register_pinned(queue, two_files):
    first, _ = two_files
    fd = os.open(first, os.O_RDONLY)
    try:
        before = open_fds()
        queue.register(fd)
        queue.deregister(fd)
        assert open_fds() == before
    finally:
        os.close(fd)


def test_register_of_a_closed_fd_raises_EBADF(queue, two_files):
    fd = os.open(two_files[0], os.O_RDONLY)
    os.close(fd)
    with pytest.raises(OSError) as info:
        queue.register(fd)
    assert info.value.errno == errno.EBADF
    with pytest.raises(uringq.HandleNotRegistered):
        queue.prepare_read(fd, 0, bytearray(4))


@pytest.mark.timeout(20)
def test_many_files_can_be_registered_at_once(queue, tmp_path):
    fds = []
    try:
        for i in range(40):
            path = tmp_path / f"f{i}"
            path.write_bytes(f"file {i:03d}".encode())
            fds.append(os.open(path, os.O_RDONLY))
            queue.register(fds[-1])
        bufs = [bytearray(8) for _ in fds]
        for i, (fd, buf) in enumerate(zip(fds, bufs, strict=True)):
            queue.prepare_read(fd, 0, buf, i)
        queue.commit()
        assert sorted(c.user_data for c in collect(queue, len(fds))) == list(range(len(fds)))
        assert [bytes(b) for b in bufs] == [f"file {i:03d}".encode() for i in range(len(fds))]
    finally:
        queue.close(cancel=True)
        for fd in fds:
            os.close(fd)


@pytest.mark.timeout(30)
def test_register_deregister_cycles_do_not_exhaust_the_file_table(queue, two_files):
    first, _ = two_files
    fd = os.open(first, os.O_RDONLY)
    try:
        before = open_fds()
        for i in range(2000):
            queue.register(fd)
            if i % 100 == 0:
                assert read_via(queue, fd) == b"FIRST FILE "
            queue.deregister(fd)
        assert open_fds() == before
    finally:
        os.close(fd)


@pytest.mark.timeout(30)
def test_many_distinct_fds_registered_together_all_work(queue, two_files):
    first, _ = two_files
    fds = [os.open(first, os.O_RDONLY) for _ in range(300)]
    try:
        for fd in fds:
            queue.register(fd)
        for fd in fds[::37]:
            assert read_via(queue, fd) == b"FIRST FILE "
        for fd in fds:
            queue.deregister(fd)
    finally:
        for fd in fds:
            os.close(fd)


@pytest.mark.timeout(30)
def test_an_fd_with_a_high_number_can_be_registered(queue, two_files):
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = os.open(two_files[0], os.O_RDONLY)
    high = os.dup2(low, soft - 1)
    try:
        queue.register(high)
        assert read_via(queue, high) == b"FIRST FILE "
        queue.deregister(high)
    finally:
        os.close(high)
        os.close(low)


def test_adopt_registers_the_fd_itself_for_its_owner(queue, two_files):
    """``_adopt`` (uringq.aio's file objects): no duplicate, requests use the fd, and
    neither deregister nor closing the queue closes it."""
    first, _ = two_files
    fd = os.open(first, os.O_RDONLY)
    try:
        before = open_fds()
        queue._adopt(fd)
        queue._adopt(fd)  # again: nothing changes
        assert open_fds() == before
        assert read_via(queue, fd) == b"FIRST FILE "
        queue.deregister(fd)
        assert open_fds() == before
        with pytest.raises(uringq.HandleNotRegistered):
            queue.prepare_read(fd, 0, bytearray(1))
        queue._adopt(fd)
        queue.close()
        assert fd in open_fds()  # the queue's close leaves the owner's fd open
        assert os.pread(fd, 5, 0) == b"FIRST"
    finally:
        os.close(fd)
