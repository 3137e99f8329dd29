"""Buffers and memory safety (SPEC section 3): any C-contiguous buffer, viewed as raw
bytes; pinned while the kernel may use it; aligned_buffer for O_DIRECT."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import mmap
import os
import select
import weakref
from array import array

import pytest
import uringq
from helpers.odirect import open_direct
from helpers.patterns import pattern
from helpers.queueing import BLOCK, WatchableBuffer, collect, settle

SIZE = 256


def address_of(buf) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


# --- pinning --------------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_read_target_cannot_be_resized_while_in_flight(queue, rfd):
    buf = bytearray(SIZE)
    queue.prepare_read(rfd, 0, buf, "r")
    queue.commit()
    with pytest.raises(BufferError):
        buf.extend(b"more")
    with pytest.raises(BufferError):
        del buf[:10]
    collect(queue, 1)
    assert len(buf) == SIZE


def test_read_target_cannot_be_resized_once_prepared(queue, rfd):
    """The address is in the request from prepare on: resizing before commit would leave
    the kernel a dangling pointer."""
    buf = bytearray(SIZE)
    queue.prepare_read(rfd, 0, buf, "r")
    with pytest.raises(BufferError):
        buf.extend(b"more")


@pytest.mark.timeout(20)
def test_releasing_a_memoryview_in_flight_keeps_the_memory_pinned(queue, rfd):
    """Releasing the caller's view may fail (BufferError) or succeed (the queue holds its
    own export of the same memory); either way the bytearray behind it stays pinned."""
    base = bytearray(SIZE)
    view = memoryview(base)
    queue.prepare_read(rfd, 0, view, "view")
    queue.commit()
    with contextlib.suppress(BufferError):
        view.release()
    with pytest.raises(BufferError):
        base.extend(b"more")
    collect(queue, 1)
    assert base == pattern(0, SIZE)


@pytest.mark.timeout(20)
def test_mmap_cannot_be_closed_while_in_flight(queue, rfd):
    m = mmap.mmap(-1, SIZE)
    queue.prepare_read(rfd, 0, m, "mmap")
    queue.commit()
    with pytest.raises(BufferError):
        m.close()
    collect(queue, 1)
    assert m[:SIZE] == pattern(0, SIZE)
    m.close()


@pytest.mark.timeout(20)
def test_write_source_cannot_be_resized_while_in_flight(queue, wfd):
    buf = bytearray(pattern(0, SIZE))
    queue.prepare_write(wfd, 0, buf, "w")
    queue.commit()
    with pytest.raises(BufferError):
        buf.clear()
    collect(queue, 1)
    assert os.pread(wfd, SIZE, 0) == pattern(0, SIZE)


@pytest.mark.timeout(20)
def test_readv_parts_cannot_be_resized_while_in_flight(queue, rfd):
    parts = [bytearray(8), bytearray(8)]
    queue.prepare_readv(rfd, 0, parts, "v")
    queue.commit()
    for part in parts:
        with pytest.raises(BufferError):
            part.append(0)
    collect(queue, 1)


def prepare_op(q: uringq.IoQueue, fd: int, op: str, buf, user_data) -> None:
    """Queue one request of kind ``op`` that uses ``buf`` (read target or write source)."""
    if op == "read":
        q.prepare_read(fd, 0, buf, user_data)
    elif op == "write":
        q.prepare_write(fd, 0, buf, user_data)
    elif op == "readv":
        q.prepare_readv(fd, 0, [bytearray(4), buf], user_data)
    else:
        q.prepare_writev(fd, 0, [b"abcd", buf], user_data)


OPS = ["read", "write", "readv", "writev"]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("op", OPS)
def test_buffer_can_be_resized_as_soon_as_its_completion_is_returned(queue, wfd, op):
    """Many rounds, so a provider that lets go of the buffer only a moment after
    returning the completion (a worker still holding it) is caught."""
    pinned_after_return = 0
    for i in range(200):
        buf = bytearray(SIZE)
        prepare_op(queue, wfd, op, buf, i)
        queue.commit()
        collect(queue, 1)
        try:
            buf.extend(b"more")
        except BufferError:
            pinned_after_return += 1
    assert pinned_after_return == 0, f"still pinned after return in {pinned_after_return}/200"


@pytest.mark.timeout(20)
def test_buffer_can_be_resized_once_its_completion_came_with_Interrupted(queue, rfd):
    buf = bytearray(SIZE)
    queue.prepare_read(rfd, 0, buf, "r")
    queue.commit()
    collect_via_interrupted = []
    while not collect_via_interrupted:
        queue.wakeup()
        with pytest.raises(uringq.Interrupted) as info:
            queue.wait(1, None, 5)
        collect_via_interrupted += info.value.completions
    buf.extend(b"more")


@pytest.mark.timeout(20)
def test_buffer_can_be_resized_after_close_cancel(queue, pending_read):
    queue.close(cancel=True)
    pending_read.buf.extend(b"more")


@pytest.mark.timeout(20)
def test_read_into_a_buffer_with_no_other_reference_completes_into_it(queue, rfd):
    buf = WatchableBuffer(SIZE)
    watch = weakref.ref(buf)
    queue.prepare_read(rfd, 0, buf, "orphan")
    queue.commit()
    del buf
    gc.collect()
    assert watch() is not None, "the queue must keep the buffer alive while in flight"
    settle()
    assert bytes(watch()) == pattern(0, SIZE)
    (c,) = collect(queue, 1)
    assert (c.user_data, c.result, c.error) == ("orphan", SIZE, None)


@pytest.mark.timeout(20)
def test_pending_read_into_a_buffer_with_no_other_reference_receives_the_data(queue, pending_read):
    watch = weakref.ref(pending_read.buf)
    pending_read.buf = None  # the queue now holds the only reference
    gc.collect()
    assert watch() is not None, "the queue must keep the buffer alive while in flight"
    junk = [bytearray(16) for _ in range(10000)]  # memory freed too early would be reused here
    del junk
    pending_read.release(b"into the orphan")
    select.select([queue.fileno()], [], [], 5)
    settle(0.1)
    assert bytes(watch())[:15] == b"into the orphan"
    (c,) = queue.wait(1, None, 5)
    assert (c.result, c.error) == (15, None)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("op", OPS)
def test_queue_drops_its_reference_to_the_buffer_once_the_completion_is_returned(queue, wfd, op):
    alive_after_return = 0
    for i in range(100):
        buf = WatchableBuffer(SIZE)
        watch = weakref.ref(buf)
        prepare_op(queue, wfd, op, buf, i)
        queue.commit()
        del buf
        collect(queue, 1)
        if watch() is not None:
            alive_after_return += 1
    assert alive_after_return == 0, f"buffer still referenced in {alive_after_return}/100 rounds"


@pytest.mark.timeout(20)
def test_queue_releases_buffers_of_requests_dropped_by_close_cancel(queue, rfd):
    bufs = [WatchableBuffer(SIZE) for _ in range(3)]
    watches = [weakref.ref(b) for b in bufs]
    queue.prepare_read(rfd, 0, bufs[0], "in flight")
    queue.commit()
    queue.prepare_read(rfd, 0, bufs[1], "prepared")
    queue.prepare_readv(rfd, 0, [bufs[2]], "prepared v")
    del bufs
    queue.close(cancel=True)
    gc.collect()
    assert [w() for w in watches] == [None, None, None]


@pytest.mark.timeout(20)
def test_memoryview_of_a_buffer_with_no_other_reference_keeps_it_alive(queue, rfd):
    base = WatchableBuffer(SIZE)
    watch = weakref.ref(base)
    view = memoryview(base)[16:]
    queue.prepare_read(rfd, 0, view, "view")
    queue.commit()
    del base, view
    gc.collect()
    assert watch() is not None
    (c,) = collect(queue, 1)
    assert c.result == SIZE - 16


# --- buffer types ---------------------------------------------------------------------------


def read_targets():
    return {
        "bytearray": lambda: bytearray(SIZE),
        "memoryview": lambda: memoryview(bytearray(SIZE)),
        "memoryview-slice": lambda: memoryview(bytearray(SIZE + 64))[32 : 32 + SIZE],
        "memoryview-cast-d": lambda: memoryview(bytearray(SIZE)).cast("d"),
        "memoryview-2d": lambda: memoryview(bytearray(SIZE)).cast("B", (16, SIZE // 16)),
        "mmap": lambda: mmap.mmap(-1, SIZE),
        "array-i": lambda: array("i", bytes(SIZE)),
        "array-d": lambda: array("d", bytes(SIZE)),
        "ctypes": ctypes.c_char * SIZE,
        "aligned_buffer": lambda: uringq.aligned_buffer(SIZE),
    }


def raw(buf) -> bytes:
    """The bytes of any C-contiguous buffer, whatever its format and shape."""
    return memoryview(buf).tobytes()


def fill(buf, data: bytes) -> None:
    """Copy ``data`` into the raw bytes of ``buf``."""
    assert memoryview(buf).nbytes == len(data)
    ctypes.memmove((ctypes.c_char * len(data)).from_buffer(buf), data, len(data))


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", list(read_targets()))
def test_read_fills_any_writable_buffer_as_raw_bytes(queue, rfd, kind):
    buf = read_targets()[kind]()
    queue.prepare_read(rfd, 8, buf, kind)
    queue.commit()
    (c,) = collect(queue, 1)
    assert (c.result, c.error) == (SIZE, None)
    assert raw(buf) == pattern(8, SIZE)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", ["bytes", *read_targets()])
def test_write_takes_any_buffer_as_raw_bytes(queue, wfd, kind):
    data = pattern(0, SIZE)
    if kind == "bytes":
        buf = bytes(data)
    else:
        buf = read_targets()[kind]()
        fill(buf, data)
    queue.prepare_write(wfd, 0, buf, kind)
    queue.commit()
    (c,) = collect(queue, 1)
    assert (c.result, c.error) == (SIZE, None)
    assert os.pread(wfd, SIZE * 2, 0) == data


@pytest.mark.timeout(20)
def test_readv_takes_buffers_of_mixed_types(queue, rfd):
    parts = [bytearray(10), array("h", bytes(20)), mmap.mmap(-1, 30), memoryview(bytearray(40))]
    queue.prepare_readv(rfd, 0, parts, "mixed")
    queue.commit()
    (c,) = collect(queue, 1)
    assert c.result == 100
    assert b"".join(raw(p) for p in parts) == pattern(0, 100)


@pytest.mark.timeout(20)
def test_numpy_arrays_are_accepted(queue, rfd):
    np = pytest.importorskip("numpy")
    target = np.zeros(SIZE // 8, dtype=np.uint64)
    queue.prepare_read(rfd, 0, target, "np")
    queue.commit()
    (c,) = collect(queue, 1)
    assert c.result == SIZE
    assert target.tobytes() == pattern(0, SIZE)


def test_fortran_ordered_buffer_is_rejected(queue, rfd):
    np = pytest.importorskip("numpy")
    target = np.zeros((4, 8), order="F")
    with pytest.raises((TypeError, ValueError, BufferError)):
        queue.prepare_read(rfd, 0, target)
    assert queue.prepared == 0


# --- aligned_buffer -------------------------------------------------------------------------


@pytest.mark.parametrize("alignment", [512, 4096, 65536])
@pytest.mark.parametrize("size", [1, 4096, 12345])
def test_aligned_buffer_has_exact_size_and_aligned_address(size, alignment):
    buf = uringq.aligned_buffer(size, alignment)
    view = memoryview(buf)
    assert view.nbytes == size
    assert not view.readonly
    assert view.c_contiguous
    assert address_of(buf) % alignment == 0


def test_aligned_buffer_defaults_to_4096_byte_alignment():
    buf = uringq.aligned_buffer(100)
    assert memoryview(buf).nbytes == 100
    assert address_of(buf) % 4096 == 0


def test_aligned_buffer_is_writable_and_readable():
    buf = uringq.aligned_buffer(BLOCK)
    memoryview(buf)[:] = pattern(0, BLOCK)
    assert bytes(buf) == pattern(0, BLOCK)


def test_aligned_buffer_takes_alignment_as_keyword():
    buf = uringq.aligned_buffer(64, alignment=8192)
    assert address_of(buf) % 8192 == 0


@pytest.mark.timeout(20)
def test_odirect_read_into_aligned_buffer_returns_the_data(queue, tmp_path):
    fd = open_direct(tmp_path, BLOCK * 8)
    try:
        queue.register(fd)
        buf = uringq.aligned_buffer(BLOCK * 2)
        queue.prepare_read(fd, BLOCK * 3, buf, "direct")
        queue.commit()
        (c,) = collect(queue, 1)
        assert (c.result, c.error) == (BLOCK * 2, None)
        assert bytes(buf) == pattern(BLOCK * 3, BLOCK * 2)
    finally:
        queue.close(cancel=True)
        os.close(fd)


@pytest.mark.timeout(20)
def test_odirect_write_from_aligned_buffer_reaches_the_file(queue, tmp_path):
    fd = open_direct(tmp_path, BLOCK * 8)
    try:
        queue.register(fd)
        src = uringq.aligned_buffer(BLOCK)
        new = pattern(BLOCK * 100, BLOCK)
        memoryview(src)[:] = new
        queue.prepare_write(fd, BLOCK * 2, src, "direct-w")
        queue.commit()
        (w,) = collect(queue, 1)
        assert (w.result, w.error) == (BLOCK, None)
        back = uringq.aligned_buffer(BLOCK)
        queue.prepare_read(fd, BLOCK * 2, back, "direct-r")
        queue.commit()
        (r,) = collect(queue, 1)
        assert r.result == BLOCK
        assert bytes(back) == new
    finally:
        queue.close(cancel=True)
        os.close(fd)


@pytest.mark.timeout(20)
def test_odirect_readv_into_aligned_buffers(queue, tmp_path):
    fd = open_direct(tmp_path, BLOCK * 8)
    try:
        queue.register(fd)
        parts = [uringq.aligned_buffer(BLOCK) for _ in range(3)]
        queue.prepare_readv(fd, BLOCK, parts, "direct-v")
        queue.commit()
        (c,) = collect(queue, 1)
        assert c.result == BLOCK * 3
        assert b"".join(bytes(p) for p in parts) == pattern(BLOCK, BLOCK * 3)
    finally:
        queue.close(cancel=True)
        os.close(fd)
