"""Round trips in the style of IPRT's IoPerf, on every available provider.

Buffers carry a pattern derived from the file offset (helpers.patterns) and are verified
after the completion comes back; requests go in sequential, reverse and random order, up
to ``sq_entries`` deep, over several commit/wait cycles.
"""

from __future__ import annotations

import errno
import gc
import os
import random
import tempfile
import weakref
from array import array
from collections import Counter

import pytest
import uringq
from helpers.patterns import pattern
from helpers.queueing import BLOCK, DATA_SIZE, collect

BLOCKS = DATA_SIZE // BLOCK
ORDERS = ["sequential", "reverse", "random"]


def block_offsets(order: str, count: int = BLOCKS, seed: int = 1234) -> list[int]:
    offsets = [i * BLOCK for i in range(count)]
    if order == "reverse":
        offsets.reverse()
    elif order == "random":
        random.Random(seed).shuffle(offsets)
    return offsets


def run_in_cycles(q: uringq.IoQueue, requests: list, prepare) -> dict:
    """Prepare up to sq_entries per cycle, commit, wait for the cycle.

    Returns the completions by user_data.
    """
    done: dict = {}
    for start in range(0, len(requests), q.sq_entries):
        cycle = requests[start : start + q.sq_entries]
        for req in cycle:
            prepare(req)
        assert q.prepared == len(cycle)
        assert q.commit() == len(cycle)
        for c in collect(q, len(cycle)):
            assert c.user_data not in done, f"completion for {c.user_data!r} returned twice"
            done[c.user_data] = c
    assert q.prepared == 0
    assert q.in_flight == 0
    return done


@pytest.mark.timeout(30)
@pytest.mark.parametrize("order", ORDERS)
def test_reads_in_any_order_return_the_pattern(make_queue, data_fd, order):
    q = make_queue(16)  # 64 blocks -> 4 full commit/wait cycles
    q.register(data_fd)
    bufs = {off: bytearray(BLOCK) for off in block_offsets(order)}
    done = run_in_cycles(
        q, block_offsets(order), lambda off: q.prepare_read(data_fd, off, bufs[off], off)
    )
    assert sorted(done) == sorted(bufs)
    for off, c in done.items():
        assert c.error is None and c.ok
        assert c.result == BLOCK
        assert bufs[off] == pattern(off, BLOCK), f"wrong data at offset {off}"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("order", ORDERS)
def test_writes_in_any_order_store_the_pattern(make_queue, empty_file, open_fd, order):
    q = make_queue(16)
    fd = open_fd(empty_file, os.O_RDWR)
    q.register(fd)
    done = run_in_cycles(
        q,
        block_offsets(order),
        lambda off: q.prepare_write(fd, off, pattern(off, BLOCK), off),
    )
    assert all(c.ok and c.result == BLOCK for c in done.values())
    assert os.pread(fd, DATA_SIZE + 1, 0) == pattern(0, DATA_SIZE)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("order", ORDERS)
def test_mixed_reads_and_writes_in_one_batch_each_see_their_own_data(
    make_queue, data_file, open_fd, order
):
    """Even blocks are rewritten with a shifted pattern while odd blocks are read."""
    q = make_queue(32)
    fd = open_fd(data_file, os.O_RDWR)
    q.register(fd)
    bufs: dict[int, bytearray] = {}

    def shifted(off: int) -> bytes:
        return pattern(off + DATA_SIZE, BLOCK)

    def prepare(off: int) -> None:
        if (off // BLOCK) % 2 == 0:
            q.prepare_write(fd, off, shifted(off), ("w", off))
        else:
            bufs[off] = bytearray(BLOCK)
            q.prepare_read(fd, off, bufs[off], ("r", off))

    done = run_in_cycles(q, block_offsets(order), prepare)
    assert len(done) == BLOCKS
    assert all(c.ok and c.result == BLOCK for c in done.values())
    for off, buf in bufs.items():
        assert buf == pattern(off, BLOCK)
    for off in block_offsets("sequential"):
        expected = shifted(off) if (off // BLOCK) % 2 == 0 else pattern(off, BLOCK)
        assert os.pread(fd, BLOCK, off) == expected


@pytest.mark.timeout(30)
def test_depth_of_sq_entries_runs_over_several_commit_wait_cycles(make_queue, data_fd):
    q = make_queue(8)
    q.register(data_fd)
    for cycle in range(6):
        bufs = [bytearray(512) for _ in range(q.sq_entries)]
        offsets = [(cycle * 8 + i) * 512 for i in range(q.sq_entries)]
        for i, (off, buf) in enumerate(zip(offsets, bufs, strict=False)):
            q.prepare_read(data_fd, off, buf, i)
        assert q.prepared == q.sq_entries
        assert q.commit() == q.sq_entries
        got = collect(q, q.sq_entries)
        assert sorted(c.user_data for c in got) == list(range(q.sq_entries))
        for off, buf in zip(offsets, bufs, strict=False):
            assert buf == pattern(off, 512)


@pytest.mark.timeout(20)
def test_readv_scatters_consecutive_bytes_into_each_buffer(queue, rfd):
    bufs = [bytearray(100), bytearray(4096), bytearray(1), bytearray(3000)]
    queue.prepare_readv(rfd, 777, bufs, "v")
    queue.commit()
    (c,) = collect(queue, 1)
    assert c.ok and c.result == sum(map(len, bufs))
    assert b"".join(bufs) == pattern(777, c.result)


@pytest.mark.timeout(20)
def test_writev_gathers_every_buffer_in_order(queue, wfd):
    whole = pattern(1000, 9000)
    parts = [whole[:10], bytearray(whole[10:5000]), memoryview(whole)[5000:]]
    queue.prepare_writev(wfd, 1000, parts, "v")
    queue.commit()
    (c,) = collect(queue, 1)
    assert c.ok and c.result == len(whole)
    assert os.pread(wfd, 20000, 1000) == whole
    assert os.fstat(wfd).st_size == 10000


@pytest.mark.timeout(20)
def test_sync_completes_ok_with_result_zero(queue, wfd):
    queue.prepare_write(wfd, 0, b"data", "w")
    queue.commit()
    collect(queue, 1)
    queue.prepare_sync(wfd, "s")
    queue.commit()
    (c,) = collect(queue, 1)
    assert (c.user_data, c.result, c.error) == ("s", 0, None)


@pytest.mark.timeout(20)
def test_datasync_completes_ok_with_result_zero(queue, wfd):
    queue.prepare_sync(wfd, "d", datasync=True)
    queue.commit()
    (c,) = collect(queue, 1)
    assert (c.user_data, c.result, c.error) == ("d", 0, None)


@pytest.mark.timeout(20)
def test_zero_length_read_completes_with_result_zero(queue, rfd):
    queue.prepare_read(rfd, 10, bytearray(0), "z")
    queue.commit()
    (c,) = collect(queue, 1)
    assert (c.user_data, c.result, c.error) == ("z", 0, None)


@pytest.mark.timeout(20)
def test_zero_length_write_past_eof_does_not_extend_the_file(queue, wfd):
    queue.prepare_write(wfd, 1 << 20, b"", "z")
    queue.commit()
    (c,) = collect(queue, 1)
    assert (c.result, c.error) == (0, None)
    assert os.fstat(wfd).st_size == 0


@pytest.mark.timeout(20)
def test_zero_length_parts_of_readv_and_writev_are_valid(queue, wfd):
    queue.prepare_writev(wfd, 0, [b"", b"abc", b"", b"de", b""], "w")
    queue.commit()
    (w,) = collect(queue, 1)
    assert (w.result, w.error) == (5, None)
    bufs = [bytearray(0), bytearray(2), bytearray(0), bytearray(3)]
    queue.prepare_readv(wfd, 0, bufs, "r")
    queue.commit()
    (r,) = collect(queue, 1)
    assert (r.result, r.error) == (5, None)
    assert b"".join(bufs) == b"abcde"


@pytest.mark.timeout(20)
def test_empty_writev_past_eof_does_not_extend_the_file(queue, wfd):
    queue.prepare_writev(wfd, 5000, [b"", bytearray()], "w")
    queue.commit()
    (c,) = collect(queue, 1)
    assert (c.result, c.error) == (0, None)
    assert os.fstat(wfd).st_size == 0


@pytest.mark.timeout(30)
def test_user_data_is_any_object_not_unique_and_returned_exactly_once_each(make_queue, data_fd):
    q = make_queue(32)
    q.register(data_fd)
    shared = ["the same list object"]  # unhashable, used by many requests
    user_datas = [None, None, 0, 0, "s", "s", shared, shared, shared, (1, 2), object(), q]
    user_datas += [shared] * 10
    bufs = [bytearray(64) for _ in user_datas]
    for i, (ud, buf) in enumerate(zip(user_datas, bufs, strict=False)):
        q.prepare_read(data_fd, i * 64, buf, ud)
    q.commit()
    got = collect(q, len(user_datas))
    assert Counter(id(c.user_data) for c in got) == Counter(id(ud) for ud in user_datas)
    assert q.wait(1, None, 0.05) == []  # nothing left over, nothing returned twice


@pytest.mark.timeout(20)
def test_user_data_may_be_passed_positionally_or_by_keyword(queue, rfd):
    queue.prepare_read(rfd, 0, bytearray(8), "positional")
    queue.prepare_read(rfd, 0, bytearray(8), user_data="keyword")
    queue.prepare_sync(rfd, "sync-positional")
    queue.commit()
    assert {c.user_data for c in collect(queue, 3)} == {
        "positional",
        "keyword",
        "sync-positional",
    }


@pytest.mark.timeout(20)
def test_short_read_at_eof_reports_bytes_read_and_no_error(queue, rfd):
    buf = bytearray(BLOCK)
    queue.prepare_read(rfd, DATA_SIZE - 100, buf, "short")
    queue.commit()
    (c,) = collect(queue, 1)
    assert c.error is None and c.ok
    assert c.result == 100
    assert buf[:100] == pattern(DATA_SIZE - 100, 100)


@pytest.mark.timeout(20)
def test_read_past_eof_returns_zero(queue, rfd):
    queue.prepare_read(rfd, DATA_SIZE + BLOCK, bytearray(BLOCK), "past")
    queue.commit()
    (c,) = collect(queue, 1)
    assert (c.result, c.error) == (0, None)


@pytest.mark.timeout(20)
def test_counters_follow_a_request_from_prepared_to_returned(queue, rfd):
    assert (queue.prepared, queue.in_flight) == (0, 0)
    queue.prepare_read(rfd, 0, bytearray(8))
    queue.prepare_read(rfd, 8, bytearray(8))
    assert (queue.prepared, queue.in_flight) == (2, 0)
    assert queue.commit() == 2
    assert (queue.prepared, queue.in_flight) == (0, 2)
    collect(queue, 2)
    assert (queue.prepared, queue.in_flight) == (0, 0)


def test_queue_reports_its_provider_and_sizes(queue, provider):
    assert queue.provider_id == provider
    assert (queue.sq_entries, queue.cq_entries) == (128, 256)


@pytest.mark.timeout(20)
def test_completion_is_frozen(queue, rfd):
    queue.prepare_read(rfd, 0, bytearray(8), "u")
    queue.commit()
    (c,) = collect(queue, 1)
    for name, value in (("result", 5), ("error", None), ("user_data", "x")):
        with pytest.raises((AttributeError, TypeError)):
            setattr(c, name, value)
    with pytest.raises((AttributeError, TypeError)):
        c.extra = 1  # slotted: no __dict__
    assert (c.user_data, c.result, c.error, c.ok) == ("u", 8, None, True)


@pytest.mark.timeout(20)
def test_read_many_reads_size_bytes_at_each_offset(queue, rfd):
    offsets = [BLOCK * i for i in (5, 0, 63, 17)]
    out = bytearray(len(offsets) * BLOCK)
    results = queue.read_many(rfd, offsets, BLOCK, out)
    assert isinstance(results, array) and results.typecode == "q"
    assert list(results) == [BLOCK] * len(offsets)
    for i, off in enumerate(offsets):
        assert out[i * BLOCK : (i + 1) * BLOCK] == pattern(off, BLOCK)


@pytest.mark.timeout(20)
def test_read_many_reports_short_reads_and_eof_per_request(queue, rfd):
    offsets = array("q", [0, DATA_SIZE - 10, DATA_SIZE + 10])
    out = bytearray(3 * 64)
    assert list(queue.read_many(rfd, offsets, 64, out)) == [64, 10, 0]


@pytest.mark.timeout(20)
def test_read_many_reports_minus_errno_for_failed_requests(queue, empty_file, open_fd):
    fd = open_fd(empty_file, os.O_WRONLY)
    queue.register(fd)
    results = queue.read_many(fd, [0, 64], 64, bytearray(128))
    assert list(results) == [-errno.EBADF, -errno.EBADF]


@pytest.mark.timeout(20)
def test_read_many_rejects_an_output_buffer_that_is_too_small(queue, rfd):
    with pytest.raises(ValueError):
        queue.read_many(rfd, [0, 64, 128], 64, bytearray(3 * 64 - 1))


@pytest.mark.timeout(20)
def test_write_many_writes_each_slice_at_its_offset(queue, wfd):
    offsets = [3 * BLOCK, 0, BLOCK]
    data = b"".join(pattern(off, BLOCK) for off in offsets)
    results = queue.write_many(wfd, offsets, BLOCK, data)
    assert isinstance(results, array) and results.typecode == "q"
    assert list(results) == [BLOCK] * 3
    for off in offsets:
        assert os.pread(wfd, BLOCK, off) == pattern(off, BLOCK)


@pytest.mark.timeout(20)
def test_write_many_rejects_data_that_is_too_small(queue, wfd):
    with pytest.raises(ValueError):
        queue.write_many(wfd, [0, 64], 64, bytes(127))
    assert os.fstat(wfd).st_size == 0


ROUNDS = 300  # a reference dropped a moment late (by a worker thread) shows up in some rounds


@pytest.mark.timeout(30)
@pytest.mark.parametrize("op", ["read", "write", "sync"])
def test_queue_releases_user_data_once_its_completion_is_returned(queue, wfd, op):
    class Marker:
        pass

    alive_after_return = 0
    for i in range(ROUNDS):
        marker = Marker()
        watch = weakref.ref(marker)
        if op == "read":
            queue.prepare_read(wfd, 0, bytearray(64), marker)
        elif op == "write":
            queue.prepare_write(wfd, 0, b"data", marker)
        else:
            queue.prepare_sync(wfd, marker, datasync=True)
        queue.commit()
        del marker
        if i == 0:
            gc.collect()
            assert watch() is not None, "the queue must keep user_data alive until returned"
        (c,) = collect(queue, 1)
        assert c.user_data is watch()
        del c
        if watch() is not None:
            alive_after_return += 1
    assert alive_after_return == 0, f"user_data still referenced in {alive_after_return}/{ROUNDS}"


@pytest.mark.timeout(20)
def test_read_of_a_partly_cached_range_returns_every_byte(queue, data_file, open_fd):
    """The second half of the range is dropped from the page cache, so a non-blocking
    first try can only deliver part of it: the rest must still arrive (SPEC section 7)."""
    fd = open_fd(data_file, os.O_RDONLY)
    os.fsync(fd)
    os.pread(fd, 64 * 1024, 0)  # first half cached
    os.posix_fadvise(fd, 32 * 1024, 32 * 1024, os.POSIX_FADV_DONTNEED)
    queue.register(fd)
    buf = bytearray(64 * 1024)
    queue.prepare_read(fd, 0, buf, "partly cached")
    queue.commit()
    (c,) = collect(queue, 1)
    assert (c.result, c.error) == (64 * 1024, None)
    assert buf == pattern(0, 64 * 1024)


@pytest.mark.timeout(20)
def test_read_of_an_uncached_file_returns_the_pattern(queue, data_file, open_fd):
    fd = open_fd(data_file, os.O_RDONLY)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    queue.register(fd)
    bufs = [bytearray(BLOCK) for _ in range(8)]
    for i, buf in enumerate(bufs):
        queue.prepare_read(fd, i * 7 * BLOCK, buf, i)
    queue.commit()
    for c in collect(queue, 8):
        assert (c.result, c.error) == (BLOCK, None)
    for i, buf in enumerate(bufs):
        assert buf == pattern(i * 7 * BLOCK, BLOCK)


@pytest.mark.timeout(20)
def test_reads_and_writes_on_a_tmpfs_file_round_trip(queue):
    """tmpfs refuses RWF_NOWAIT reads on some kernels (EOPNOTSUPP): the request must still
    be served."""
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm")
    fd, path = tempfile.mkstemp(dir="/dev/shm", prefix="uringq-test-")
    try:
        os.unlink(path)
        queue.register(fd)
        queue.prepare_write(fd, 0, pattern(0, 3 * BLOCK), "w")
        queue.commit()
        (w,) = collect(queue, 1)
        assert (w.result, w.error) == (3 * BLOCK, None)
        buf = bytearray(2 * BLOCK)
        queue.prepare_read(fd, BLOCK // 2, buf, "r")
        queue.commit()
        (r,) = collect(queue, 1)
        assert (r.result, r.error) == (2 * BLOCK, None)
        assert buf == pattern(BLOCK // 2, 2 * BLOCK)
    finally:
        queue.close(cancel=True)
        os.close(fd)
