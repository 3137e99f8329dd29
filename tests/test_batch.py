"""The batch API: ``read_many`` / ``write_many`` (SPEC section 5), on every provider.

``read_many(fd, offsets, size, out)`` reads ``size`` bytes at each offset into
``out[i*size:(i+1)*size]`` and returns an ``array('q')`` holding, per request, the bytes
transferred or ``-errno``; ``write_many`` is its mirror. Every test runs once per available
provider through the ``queue`` fixture (conftest).
"""

from __future__ import annotations

import errno
import mmap
import os
import random
from array import array

import pytest
import uringq

pytestmark = pytest.mark.timeout(60)

FILE_SIZE = 1024 * 1024 + 123  # not a multiple of the block size: the last block is short
BLOCK = 4096


@pytest.fixture
def random_file(tmp_path):
    """(path, contents) of a file of random bytes."""
    data = random.Random(7).randbytes(FILE_SIZE)
    path = tmp_path / "random.bin"
    path.write_bytes(data)
    return str(path), data


@pytest.fixture
def rfile(queue, random_file, open_fd):
    """(fd, contents): the random file opened read-only and registered with ``queue``."""
    path, data = random_file
    fd = open_fd(path, os.O_RDONLY)
    queue.register(fd)
    return fd, data


def expected_results(data: bytes, offsets, size: int) -> list[int]:
    return [max(0, min(size, len(data) - off)) for off in offsets]


def mmap_with(data: bytes) -> mmap.mmap:
    m = mmap.mmap(-1, len(data))
    m.write(data)
    return m


def check_read(out, data: bytes, offsets, size: int) -> None:
    view = memoryview(out).cast("B")
    for i, off in enumerate(offsets):
        want = data[off : off + size]
        assert view[i * size : i * size + len(want)] == want, f"request {i} (offset {off})"


# -- correctness ----------------------------------------------------------------------------
def test_read_many_matches_os_pread_at_random_offsets(queue, rfile):
    fd, _ = rfile
    rng = random.Random(1)
    offsets = [rng.randrange(FILE_SIZE - BLOCK) for _ in range(2000)]  # unaligned too
    out = bytearray(len(offsets) * BLOCK)
    results = queue.read_many(fd, offsets, BLOCK, out)
    assert isinstance(results, array) and results.typecode == "q"
    assert list(results) == [BLOCK] * len(offsets)
    for i, off in enumerate(offsets):
        assert out[i * BLOCK : (i + 1) * BLOCK] == os.pread(fd, BLOCK, off), f"request {i}"


@pytest.mark.parametrize(
    "make_offsets",
    [list, tuple, lambda offs: array("q", offs), lambda offs: array("Q", offs)],
    ids=["list", "tuple", "array_q", "array_Q"],
)
def test_read_many_accepts_any_sequence_of_offsets(queue, rfile, make_offsets):
    fd, data = rfile
    offsets = [0, 5 * BLOCK, 3, 77 * BLOCK + 1]
    out = bytearray(len(offsets) * 100)
    results = queue.read_many(fd, make_offsets(offsets), 100, out)
    assert list(results) == [100] * 4
    check_read(out, data, offsets, 100)


def test_read_many_accepts_a_range(queue, rfile):
    fd, data = rfile
    offsets = range(0, 64 * BLOCK, BLOCK)
    out = bytearray(len(offsets) * BLOCK)
    assert list(queue.read_many(fd, offsets, BLOCK, out)) == [BLOCK] * 64
    assert bytes(out) == data[: 64 * BLOCK]


def test_read_many_accepts_offsets_with_index(queue, rfile):
    class Offset:
        def __init__(self, value: int) -> None:
            self.value = value

        def __index__(self) -> int:
            return self.value

    fd, data = rfile
    out = bytearray(2 * 16)
    assert list(queue.read_many(fd, [Offset(10), Offset(BLOCK)], 16, out)) == [16, 16]
    check_read(out, data, [10, BLOCK], 16)


@pytest.mark.parametrize(
    "make_out",
    [
        bytearray,
        lambda n: memoryview(bytearray(n)),
        lambda n: mmap.mmap(-1, n),
        lambda n: array("d", bytes(n)),  # raw bytes whatever the item format
        uringq.aligned_buffer,
    ],
    ids=["bytearray", "memoryview", "mmap", "array_d", "aligned_buffer"],
)
def test_read_many_fills_any_writable_buffer(queue, rfile, make_out):
    fd, data = rfile
    offsets = [BLOCK * i for i in (9, 2, 0, 100)]
    out = make_out(len(offsets) * BLOCK)
    assert list(queue.read_many(fd, offsets, BLOCK, out)) == [BLOCK] * 4
    check_read(out, data, offsets, BLOCK)


def test_read_many_leaves_the_rest_of_a_larger_out_buffer_alone(queue, rfile):
    fd, data = rfile
    out = bytearray(b"\xaa" * (3 * 64 + 50))
    queue.read_many(fd, [0, 64, 128], 64, out)
    assert out[:192] == data[:192]
    assert out[192:] == b"\xaa" * 50


def test_read_many_in_place_of_many_ring_entries(make_queue, random_file, open_fd):
    """More requests than the ring holds: the batch keeps the ring full, loses none."""
    q = make_queue(4)
    path, data = random_file
    fd = open_fd(path)
    q.register(fd)
    rng = random.Random(2)
    offsets = [rng.randrange(FILE_SIZE - 512) for _ in range(5000)]
    out = bytearray(len(offsets) * 512)
    assert list(q.read_many(fd, offsets, 512, out)) == [512] * len(offsets)
    check_read(out, data, offsets, 512)


@pytest.mark.parametrize("depth", [1, 3, 32, 128, 10_000])
def test_read_many_depth_caps_requests_in_flight_without_changing_results(queue, rfile, depth):
    fd, data = rfile
    offsets = list(range(0, 300 * 1000, 1000))
    out = bytearray(len(offsets) * 700)
    results = queue.read_many(fd, offsets, 700, out, depth=depth)
    assert list(results) == [700] * len(offsets)
    check_read(out, data, offsets, 700)


@pytest.mark.parametrize("depth", [0, -1])
def test_read_many_rejects_a_depth_below_one(queue, rfile, depth):
    fd, _ = rfile
    with pytest.raises(ValueError):
        queue.read_many(fd, [0], 8, bytearray(8), depth=depth)


# -- end of file, sizes, empty batches --------------------------------------------------
def test_read_many_reports_short_reads_at_eof_and_zero_past_it(queue, rfile):
    fd, data = rfile
    offsets = [FILE_SIZE - BLOCK, FILE_SIZE - 123, FILE_SIZE - 1, FILE_SIZE, FILE_SIZE + BLOCK]
    out = bytearray(len(offsets) * BLOCK)
    results = queue.read_many(fd, offsets, BLOCK, out)
    assert list(results) == expected_results(data, offsets, BLOCK) == [BLOCK, 123, 1, 0, 0]
    check_read(out, data, offsets, BLOCK)


def test_read_many_on_an_empty_file_returns_zero_per_request(queue, empty_file, open_fd):
    fd = open_fd(empty_file)
    queue.register(fd)
    assert list(queue.read_many(fd, [0, 10, BLOCK], 16, bytearray(48))) == [0, 0, 0]


def test_read_many_with_size_zero_completes_every_request_with_zero(queue, rfile):
    fd, _ = rfile
    results = queue.read_many(fd, [0, 10, FILE_SIZE + 5], 0, bytearray(0))
    assert list(results) == [0, 0, 0]


@pytest.mark.parametrize("offsets", [[], (), array("q"), range(0)], ids=repr)
def test_read_many_with_no_offsets_returns_an_empty_array(queue, rfile, offsets):
    fd, _ = rfile
    results = queue.read_many(fd, offsets, BLOCK, bytearray(0))
    assert isinstance(results, array) and results.typecode == "q"
    assert len(results) == 0


def test_write_many_with_no_offsets_returns_an_empty_array(queue, wfd):
    results = queue.write_many(wfd, [], BLOCK, b"")
    assert isinstance(results, array) and results.typecode == "q"
    assert len(results) == 0


def test_write_many_with_size_zero_never_extends_the_file(queue, wfd):
    assert list(queue.write_many(wfd, [0, 1000, 10**9], 0, b"")) == [0, 0, 0]
    assert os.fstat(wfd).st_size == 0


# -- errors come back per request -------------------------------------------------------
def test_write_many_to_a_read_only_fd_reports_minus_ebadf(queue, rfile):
    fd, data = rfile
    results = queue.write_many(fd, [0, BLOCK], 16, bytes(32))
    assert list(results) == [-errno.EBADF, -errno.EBADF]
    assert os.pread(fd, 16, 0) == data[:16]  # nothing written


def test_read_many_from_a_write_only_fd_reports_minus_ebadf(queue, empty_file, open_fd):
    fd = open_fd(empty_file, os.O_WRONLY)
    queue.register(fd)
    assert list(queue.read_many(fd, [0, 8, 16], 8, bytearray(24))) == [-errno.EBADF] * 3


def test_read_many_from_a_directory_reports_minus_eisdir(queue, tmp_path, open_fd):
    fd = open_fd(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    queue.register(fd)
    assert list(queue.read_many(fd, [0], 8, bytearray(8))) == [-errno.EISDIR]


# -- writes -------------------------------------------------------------------------------
def test_write_many_writes_each_slice_at_its_offset(queue, wfd):
    rng = random.Random(3)
    offsets = rng.sample(range(0, 200 * BLOCK, BLOCK), 150)
    data = rng.randbytes(len(offsets) * BLOCK)
    results = queue.write_many(wfd, offsets, BLOCK, data)
    assert isinstance(results, array) and results.typecode == "q"
    assert list(results) == [BLOCK] * len(offsets)
    for i, off in enumerate(offsets):
        assert os.pread(wfd, BLOCK, off) == data[i * BLOCK : (i + 1) * BLOCK]


@pytest.mark.parametrize(
    "make_offsets",
    [list, tuple, lambda offs: array("q", offs), lambda offs: range(offs[0], 4 * 64, 64)],
    ids=["list", "tuple", "array_q", "range"],
)
def test_write_many_accepts_any_sequence_of_offsets(queue, wfd, make_offsets):
    offsets = [0, 64, 128, 192]
    data = bytes(range(256))
    assert list(queue.write_many(wfd, make_offsets(offsets), 64, data)) == [64] * 4
    assert os.pread(wfd, 256, 0) == data


@pytest.mark.parametrize(
    "make_data",
    [bytes, bytearray, memoryview, lambda b: array("B", b), mmap_with],
    ids=["bytes", "bytearray", "memoryview", "array", "mmap"],
)
def test_write_many_accepts_any_buffer(queue, wfd, make_data):
    data = bytes(range(200))
    assert list(queue.write_many(wfd, [100, 0], 100, make_data(data))) == [100, 100]
    assert os.pread(wfd, 200, 0) == data[100:] + data[:100]


def test_write_many_then_read_many_round_trip(queue, wfd):
    offsets = list(range(0, 1000 * 512, 512))
    data = random.Random(4).randbytes(len(offsets) * 512)
    assert list(queue.write_many(wfd, offsets, 512, data, depth=16)) == [512] * len(offsets)
    out = bytearray(len(data))
    assert list(queue.read_many(wfd, offsets[::-1], 512, out)) == [512] * len(offsets)
    back = b"".join(out[i * 512 : (i + 1) * 512] for i in reversed(range(len(offsets))))
    assert back == data


# -- argument checks: nothing runs --------------------------------------------------------
def test_read_many_rejects_an_out_buffer_that_is_too_small(queue, rfile):
    fd, _ = rfile
    out = bytearray(b"\xaa" * (3 * 64 - 1))
    with pytest.raises(ValueError):
        queue.read_many(fd, [0, 64, 128], 64, out)
    assert out == b"\xaa" * (3 * 64 - 1)  # nothing was read


def test_write_many_rejects_data_that_is_too_small(queue, wfd):
    with pytest.raises(ValueError):
        queue.write_many(wfd, [0, 64], 64, bytes(127))
    assert os.fstat(wfd).st_size == 0


def test_read_many_on_an_unregistered_fd_raises_handle_not_registered(queue, random_file, open_fd):
    fd = open_fd(random_file[0])
    with pytest.raises(uringq.HandleNotRegistered):
        queue.read_many(fd, [0], 8, bytearray(8))


def test_write_many_on_an_unregistered_fd_raises_handle_not_registered(queue, empty_file, open_fd):
    fd = open_fd(empty_file, os.O_RDWR)
    with pytest.raises(uringq.HandleNotRegistered):
        queue.write_many(fd, [0], 8, bytes(8))
    assert os.fstat(fd).st_size == 0


def test_read_many_rejects_a_negative_offset(queue, rfile):
    fd, _ = rfile
    out = bytearray(b"\xaa" * 24)
    with pytest.raises(ValueError):
        queue.read_many(fd, [0, -1, 8], 8, out)
    assert out == b"\xaa" * 24  # checked before anything ran


def test_write_many_rejects_a_negative_offset(queue, wfd):
    with pytest.raises(ValueError):
        queue.write_many(wfd, [0, -4096], 8, bytes(16))
    assert os.fstat(wfd).st_size == 0


def test_read_many_rejects_a_negative_size(queue, rfile):
    fd, _ = rfile
    with pytest.raises(ValueError):
        queue.read_many(fd, [0], -1, bytearray(8))


@pytest.mark.parametrize("offsets", ["abc", [0, "8"], [0.0], None, 5], ids=repr)
def test_read_many_rejects_offsets_that_are_not_ints(queue, rfile, offsets):
    fd, _ = rfile
    with pytest.raises(TypeError):
        queue.read_many(fd, offsets, 8, bytearray(64))


@pytest.mark.parametrize("out", [b"x" * 64, memoryview(bytearray(64)).toreadonly()], ids=repr)
def test_read_many_rejects_a_read_only_out_buffer(queue, rfile, out):
    fd, _ = rfile
    with pytest.raises(TypeError):
        queue.read_many(fd, [0], 8, out)


def test_read_many_rejects_an_object_without_the_buffer_protocol(queue, rfile):
    fd, _ = rfile
    with pytest.raises(TypeError):
        queue.read_many(fd, [0], 8, [0] * 8)


def test_batches_on_a_closed_queue_raise_queue_closed(queue, rfile):
    fd, _ = rfile
    queue.close()
    with pytest.raises(uringq.QueueClosed):
        queue.read_many(fd, [0], 8, bytearray(8))
    with pytest.raises(uringq.QueueClosed):
        queue.write_many(fd, [0], 8, bytes(8))


# -- interplay with the per-request API ----------------------------------------------------
def test_a_batch_leaves_nothing_in_flight(queue, rfile):
    fd, _ = rfile
    queue.read_many(fd, range(0, 100 * BLOCK, BLOCK), BLOCK, bytearray(100 * BLOCK))
    assert queue.in_flight == 0
    assert queue.prepared == 0
    queue.close()  # no QueueBusy: nothing is left behind


def test_a_batch_does_not_take_completions_of_requests_in_flight(queue, rfile):
    fd, data = rfile
    buf = bytearray(16)
    queue.prepare_read(fd, 100, buf, "single")
    queue.commit()
    out = bytearray(10 * 16)
    assert list(queue.read_many(fd, range(0, 160, 16), 16, out)) == [16] * 10
    (completion,) = queue.wait(1, None, 10)
    assert (completion.user_data, completion.result, completion.error) == ("single", 16, None)
    assert bytes(buf) == data[100:116]


def test_a_batch_does_not_commit_requests_that_are_only_prepared(queue, rfile):
    fd, _ = rfile
    queue.prepare_read(fd, 0, bytearray(8), "prepared")
    queue.read_many(fd, [0, 8], 8, bytearray(16))
    assert queue.prepared == 1
    assert queue.commit() == 1
    (completion,) = queue.wait(1, None, 10)
    assert completion.user_data == "prepared"


def test_the_out_buffer_is_released_after_the_batch(queue, rfile):
    fd, _ = rfile
    out = bytearray(64)
    queue.read_many(fd, [0, 32], 32, out)
    out.extend(b"more")  # no export is held any more: resizing works
    assert len(out) == 68


@pytest.mark.timeout(20)
def test_ctrl_c_ends_a_read_many_stuck_on_an_empty_pipe_and_the_queue_stays_usable(
    queue, pipe_fds, rfd, default_sigint
):
    """A batch that cannot finish (io_uring waits for pipe data) still sees SIGINT within
    about 100 ms: the kernel gives its requests back and KeyboardInterrupt propagates."""
    import signal
    import threading
    import time

    if queue.provider_id != "io_uring":
        pytest.skip("only io_uring's batch waits for pipe data (threadpool: -ESPIPE at once)")
    r, _ = pipe_fds
    queue.register(r)
    main = threading.get_ident()
    timer = threading.Timer(0.3, signal.pthread_kill, (main, signal.SIGINT))
    start = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        queue.read_many(r, [0, 0], 16, bytearray(32))
    assert time.monotonic() - start < 3
    timer.join()
    out = bytearray(8)
    assert list(queue.read_many(rfd, [0], 8, out)) == [8], "the queue is still usable"


# -- a buffer registered for the batch API (io_uring's registered buffers) ---------------


def test_read_many_into_a_registered_buffer_matches_os_pread(queue, rfile):
    fd, data = rfile
    rng = random.Random(7)
    offsets = [rng.randrange(0, len(data) + 4096) for _ in range(300)]
    whole = bytearray(len(offsets) * 512 + 4096)
    queue.register_buffer(whole)
    try:
        for start in (0, 100, 4096):  # the whole buffer, or a part inside it
            out = memoryview(whole)[start : start + len(offsets) * 512]
            results = queue.read_many(fd, offsets, 512, out)
            assert list(results) == expected_results(data, offsets, 512)
            check_read(out, data, offsets, 512)
    finally:
        queue.deregister_buffer()


def test_write_many_from_a_registered_buffer(queue, random_file, open_fd):
    fd = open_fd(random_file[0], os.O_RDWR)
    queue.register(fd)
    src = bytearray(os.urandom(4 * 256))
    queue.register_buffer(src)
    assert list(queue.write_many(fd, [0, 1024, 2048, 3072], 256, src)) == [256] * 4
    queue.deregister_buffer()
    for i in range(4):
        assert os.pread(fd, 256, i * 1024) == src[i * 256 : (i + 1) * 256]


def test_a_registered_buffer_is_pinned_until_deregistered(queue):
    buf = bytearray(64)
    queue.register_buffer(buf)
    with pytest.raises(BufferError):
        buf.extend(b"x")
    queue.deregister_buffer()
    buf.extend(b"resizable again")
    queue.deregister_buffer()  # a no-op when nothing is registered


def test_a_new_registration_replaces_the_old_and_close_releases_it(make_queue):
    q = make_queue(4)
    first, second = bytearray(16), bytearray(16)
    q.register_buffer(first)
    q.register_buffer(second)
    first.extend(b"released")
    with pytest.raises(BufferError):
        second.extend(b"x")
    q.close()
    second.extend(b"released by close")


def test_register_buffer_refuses_a_read_only_buffer_and_a_closed_queue(make_queue):
    q = make_queue(4)
    with pytest.raises(TypeError):
        q.register_buffer(b"read-only")
    q.close()
    with pytest.raises(uringq.QueueClosed):
        q.register_buffer(bytearray(4))


def test_reads_outside_the_registered_buffer_still_work(queue, rfile):
    fd, data = rfile
    queue.register_buffer(bytearray(4096))
    out = bytearray(3 * 100)
    offsets = [0, 50, 1000]
    assert list(queue.read_many(fd, offsets, 100, out)) == expected_results(data, offsets, 100)
    check_read(out, data, offsets, 100)
    queue.deregister_buffer()


def test_a_registered_buffer_released_and_reused_at_the_same_address_reads_correctly(queue, rfile):
    """A ring keeps a registration between batches; after the buffer is released, another
    buffer (possibly at the same address) must never be served through the stale one."""
    fd, data = rfile
    offsets = [0, 4096, 8192]
    for _ in range(20):
        out = bytearray(len(offsets) * 64)
        queue.register_buffer(out)
        results = queue.read_many(fd, offsets, 64, out)
        assert list(results) == expected_results(data, offsets, 64)
        check_read(out, data, offsets, 64)
        queue.deregister_buffer()
        del out
