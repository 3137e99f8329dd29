"""Every error of SPEC section 2: what the kernel decides comes back as a completion
error carrying errno; what the caller got wrong raises before anything is queued."""

from __future__ import annotations

import errno
import mmap
import os

import pytest
import uringq
from helpers.odirect import open_direct
from helpers.patterns import pattern
from helpers.queueing import BLOCK, assert_rejected_before_queuing, collect

# --- errors the kernel reports: completion errors with errno ----------------------------


@pytest.mark.timeout(20)
def test_read_from_write_only_fd_completes_with_EBADF(queue, empty_file, open_fd):
    fd = open_fd(empty_file, os.O_WRONLY)
    queue.register(fd)
    queue.prepare_read(fd, 0, bytearray(16), "r")  # prepare does not judge the access mode
    queue.commit()
    (c,) = collect(queue, 1)
    assert isinstance(c.error, OSError)
    assert c.error.errno == errno.EBADF
    assert c.result == 0
    assert not c.ok


@pytest.mark.timeout(20)
def test_write_to_read_only_fd_completes_with_EBADF(queue, rfd):
    queue.prepare_write(rfd, 0, b"nope", "w")
    queue.commit()
    (c,) = collect(queue, 1)
    assert isinstance(c.error, OSError)
    assert c.error.errno == errno.EBADF
    assert c.result == 0


@pytest.mark.timeout(20)
def test_odirect_read_into_misaligned_buffer_completes_with_EINVAL(queue, tmp_path):
    fd = open_direct(tmp_path, BLOCK * 4)
    try:
        queue.register(fd)
        buf = uringq.aligned_buffer(BLOCK * 2)
        misaligned = memoryview(buf)[1 : 1 + BLOCK]
        queue.prepare_read(fd, 0, misaligned, "mis")  # no exception from prepare
        queue.commit()
        (c,) = collect(queue, 1)
        assert c.error is not None and c.error.errno == errno.EINVAL
        assert c.result == 0
    finally:
        queue.close(cancel=True)
        os.close(fd)


@pytest.mark.timeout(20)
def test_odirect_read_at_misaligned_offset_completes_with_EINVAL(queue, tmp_path):
    fd = open_direct(tmp_path, BLOCK * 4)
    try:
        queue.register(fd)
        queue.prepare_read(fd, 1, uringq.aligned_buffer(BLOCK), "mis")
        queue.commit()
        (c,) = collect(queue, 1)
        assert c.error is not None and c.error.errno == errno.EINVAL
        assert c.result == 0
    finally:
        queue.close(cancel=True)
        os.close(fd)


# --- queue sizes --------------------------------------------------------------------------

BAD_SQ = [0, -1, -128, 32769, 65536, 2**31, 2**63, 2**64 + 128, -(2**70), 10**30]


@pytest.mark.parametrize("sq", BAD_SQ)
def test_out_of_range_sq_entries_raise_ValueError(provider, sq):
    with pytest.raises(ValueError) as info:
        uringq.IoQueue(sq, provider=provider)
    assert not isinstance(info.value, OverflowError)


@pytest.mark.parametrize(
    ("sq", "cq"),
    [
        (8, 4),
        (128, 128 - 1),
        (128, 0),
        (128, -1),
        (16, 65537),
        (16, 2**64),
        (16, -(2**65)),
        (32768, 65537),
    ],
)
def test_out_of_range_cq_entries_raise_ValueError(provider, sq, cq):
    with pytest.raises(ValueError) as info:
        uringq.IoQueue(sq, cq, provider=provider)
    assert not isinstance(info.value, OverflowError)


@pytest.mark.parametrize(
    ("sq", "rounded"), [(1, 1), (2, 2), (3, 4), (100, 128), (129, 256), (32767, 32768)]
)
def test_sq_entries_round_up_to_a_power_of_two(make_queue, sq, rounded):
    q = make_queue(sq)
    assert q.sq_entries == rounded


@pytest.mark.parametrize(("sq", "cq"), [(100, 256), (1, 2), (128, 256), (32768, 65536)])
def test_cq_entries_default_to_twice_the_rounded_sq_entries(make_queue, sq, cq):
    q = make_queue(sq)
    assert q.cq_entries == cq


def test_default_sizes_are_128_and_256(queue):
    assert (queue.sq_entries, queue.cq_entries) == (128, 256)


def test_explicit_cq_entries_at_the_limits_are_accepted(make_queue):
    assert make_queue(16, 16).cq_entries == 16
    assert make_queue(16, 65536).cq_entries == 65536


@pytest.mark.parametrize("bad", ["8", 8.0, None, b"8", [8]])
def test_sq_entries_of_the_wrong_type_raise_TypeError(provider, bad):
    with pytest.raises(TypeError):
        uringq.IoQueue(bad, provider=provider)


@pytest.mark.parametrize("bad", ["16", 16.0, b"16"])
def test_cq_entries_of_the_wrong_type_raise_TypeError(provider, bad):
    with pytest.raises(TypeError):
        uringq.IoQueue(8, bad, provider=provider)


def test_sizes_accept_objects_with_index(make_queue):
    class Eight:
        def __index__(self) -> int:
            return 8

    q = make_queue(Eight(), Eight())
    assert (q.sq_entries, q.cq_entries) == (8, 8)


# --- per-request argument checks ------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda q, fd: q.prepare_read("0", 0, bytearray(8)),
        lambda q, fd: q.prepare_read(fd, 1.5, bytearray(8)),
        lambda q, fd: q.prepare_read(fd, None, bytearray(8)),
        lambda q, fd: q.prepare_read(fd, "0", bytearray(8)),
        lambda q, fd: q.prepare_read(fd, 0, 123),
        lambda q, fd: q.prepare_read(fd, 0, "text"),
        lambda q, fd: q.prepare_write(fd, 0, "text is not bytes"),
        lambda q, fd: q.prepare_write(fd, 0, 42),
        lambda q, fd: q.prepare_write(fd, 0.0, b"x"),
        lambda q, fd: q.prepare_readv(fd, 0, 5),
        lambda q, fd: q.prepare_readv(fd, 0, [bytearray(4), 5]),
        lambda q, fd: q.prepare_writev(fd, 0, [b"ok", "str"]),
        lambda q, fd: q.prepare_sync(None),
        lambda q, fd: q.register("3"),
        lambda q, fd: q.register(None),
    ],
    ids=[
        "read-fd-str",
        "read-offset-float",
        "read-offset-None",
        "read-offset-str",
        "read-buf-int",
        "read-buf-str",
        "write-buf-str",
        "write-buf-int",
        "write-offset-float",
        "readv-bufs-int",
        "readv-part-int",
        "writev-part-str",
        "sync-fd-None",
        "register-str",
        "register-None",
    ],
)
def test_wrong_argument_types_raise_TypeError_and_queue_nothing(queue, rfd, call):
    with pytest.raises(TypeError):
        call(queue, rfd)
    assert (queue.prepared, queue.in_flight) == (0, 0)


@pytest.mark.parametrize(
    "call",
    [
        lambda q, fd: q.prepare_read(fd, -1, bytearray(8)),
        lambda q, fd: q.prepare_write(fd, -4096, b"x"),
        lambda q, fd: q.prepare_readv(fd, -1, [bytearray(8)]),
        lambda q, fd: q.prepare_writev(fd, -(2**70), [b"x"]),
    ],
    ids=["read", "write", "readv", "writev-huge"],
)
def test_negative_offset_raises_ValueError_and_queues_nothing(queue, rfd, call):
    with pytest.raises(ValueError) as info:
        call(queue, rfd)
    assert not isinstance(info.value, OverflowError)
    assert (queue.prepared, queue.in_flight) == (0, 0)


@pytest.mark.parametrize("offset", [2**63, 2**64, 10**30])
def test_offset_too_large_for_the_kernel_raises_ValueError_not_OverflowError(queue, rfd, offset):
    with pytest.raises(ValueError) as info:
        queue.prepare_read(rfd, offset, bytearray(8))
    assert not isinstance(info.value, OverflowError)
    assert queue.prepared == 0


@pytest.mark.timeout(20)
def test_readv_with_more_parts_than_the_kernel_takes_completes_without_raising(queue, rfd):
    """IOV_MAX is 1024: the kernel refuses more parts with EINVAL. That is the kernel's
    decision, so it comes back on the completion (or the provider splits the request and
    reads everything); prepare never raises for it."""
    parts = [bytearray(4) for _ in range(1100)]
    queue.prepare_readv(rfd, 0, parts, "many")
    queue.commit()
    (c,) = collect(queue, 1)
    if c.error is not None:
        assert (c.error.errno, c.result) == (errno.EINVAL, 0)
    else:
        assert c.result == 4400
        assert b"".join(parts) == pattern(0, 4400)


@pytest.mark.parametrize(
    "target",
    [b"immutable", memoryview(bytearray(8)).toreadonly(), memoryview(b"readonly")],
    ids=["bytes", "readonly-memoryview", "memoryview-of-bytes"],
)
def test_read_into_a_non_writable_buffer_is_rejected_before_queuing(queue, rfd, target):
    assert_rejected_before_queuing(queue, lambda: queue.prepare_read(rfd, 0, target))


def test_readv_with_one_non_writable_part_is_rejected_before_queuing(queue, rfd):
    parts = [bytearray(8), b"immutable", bytearray(8)]
    assert_rejected_before_queuing(queue, lambda: queue.prepare_readv(rfd, 0, parts))


def test_read_into_a_read_only_mmap_is_rejected_before_queuing(queue, rfd, data_file):
    with open(data_file, "rb") as f, mmap.mmap(f.fileno(), 4096, access=mmap.ACCESS_READ) as m:
        assert_rejected_before_queuing(queue, lambda: queue.prepare_read(rfd, 0, m))


def test_non_contiguous_read_target_is_rejected_before_queuing(queue, rfd):
    strided = memoryview(bytearray(64))[::2]
    assert_rejected_before_queuing(queue, lambda: queue.prepare_read(rfd, 0, strided))


def test_non_contiguous_write_source_is_rejected_before_queuing(queue, rfd):
    strided = memoryview(b"0123456789abcdef")[::3]
    assert_rejected_before_queuing(queue, lambda: queue.prepare_write(rfd, 0, strided))


def test_non_contiguous_part_of_writev_is_rejected_before_queuing(queue, rfd):
    parts = [b"ok", memoryview(bytearray(32))[::4]]
    assert_rejected_before_queuing(queue, lambda: queue.prepare_writev(rfd, 0, parts))


# --- HandleNotRegistered --------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda q, fd: q.prepare_read(fd, 0, bytearray(8)),
        lambda q, fd: q.prepare_write(fd, 0, b"x"),
        lambda q, fd: q.prepare_readv(fd, 0, [bytearray(8)]),
        lambda q, fd: q.prepare_writev(fd, 0, [b"x"]),
        lambda q, fd: q.prepare_sync(fd),
    ],
    ids=["read", "write", "readv", "writev", "sync"],
)
def test_prepare_on_an_unregistered_fd_raises_HandleNotRegistered(queue, data_fd, call):
    with pytest.raises(uringq.HandleNotRegistered):
        call(queue, data_fd)
    assert queue.prepared == 0


def test_deregister_of_an_unknown_fd_raises_HandleNotRegistered(queue, data_fd):
    with pytest.raises(uringq.HandleNotRegistered):
        queue.deregister(data_fd)


# --- QueueFull ------------------------------------------------------------------------------


def test_prepare_past_sq_entries_raises_QueueFull_and_queues_nothing(make_queue, data_fd):
    q = make_queue(4)
    q.register(data_fd)
    for i in range(4):
        q.prepare_read(data_fd, 0, bytearray(8), i)
    with pytest.raises(uringq.QueueFull):
        q.prepare_read(data_fd, 0, bytearray(8), "extra")
    assert q.prepared == 4


@pytest.mark.timeout(20)
def test_prepare_raises_QueueFull_when_prepared_plus_in_flight_would_pass_cq_entries(
    make_queue, data_fd
):
    q = make_queue(4, 6)
    q.register(data_fd)
    for i in range(4):
        q.prepare_read(data_fd, 0, bytearray(8), i)
    q.commit()
    q.prepare_read(data_fd, 0, bytearray(8), 4)
    q.prepare_read(data_fd, 0, bytearray(8), 5)
    with pytest.raises(uringq.QueueFull):
        q.prepare_read(data_fd, 0, bytearray(8), 6)
    assert (q.prepared, q.in_flight) == (2, 4)
    q.commit()
    assert len(collect(q, 6)) == 6


# --- QueueEmpty -----------------------------------------------------------------------------


def test_commit_with_nothing_prepared_raises_QueueEmpty(queue):
    with pytest.raises(uringq.QueueEmpty):
        queue.commit()


@pytest.mark.timeout(10)
def test_wait_with_nothing_in_flight_and_no_timeout_raises_QueueEmpty(queue):
    with pytest.raises(uringq.QueueEmpty):
        queue.wait()


@pytest.mark.timeout(10)
def test_wait_with_only_prepared_requests_and_no_timeout_raises_QueueEmpty(queue, rfd):
    queue.prepare_read(rfd, 0, bytearray(8))
    with pytest.raises(uringq.QueueEmpty):
        queue.wait()
    assert queue.prepared == 1


# --- QueueBusy ------------------------------------------------------------------------------


def test_close_with_prepared_requests_raises_QueueBusy_and_keeps_the_queue(queue, rfd):
    queue.prepare_read(rfd, 0, bytearray(8), "kept")
    with pytest.raises(uringq.QueueBusy):
        queue.close()
    assert queue.prepared == 1
    queue.commit()
    assert [c.user_data for c in collect(queue, 1)] == ["kept"]


@pytest.mark.timeout(20)
def test_close_with_unreaped_completions_raises_QueueBusy_and_keeps_them(queue, rfd):
    queue.prepare_read(rfd, 0, bytearray(8), "unreaped")
    queue.commit()
    with pytest.raises(uringq.QueueBusy):
        queue.close()
    assert queue.in_flight == 1
    assert [c.user_data for c in collect(queue, 1)] == ["unreaped"]
    queue.close()


@pytest.mark.timeout(20)
def test_close_with_a_read_in_flight_raises_QueueBusy(queue, pipe_fds):
    r, _w = pipe_fds
    queue.register(r)
    queue.prepare_read(r, 0, bytearray(8), "pipe")
    queue.commit()
    with pytest.raises(uringq.QueueBusy):
        queue.close()


def test_deregister_of_an_fd_with_prepared_requests_raises_QueueBusy(queue, rfd):
    queue.prepare_read(rfd, 0, bytearray(8))
    with pytest.raises(uringq.QueueBusy):
        queue.deregister(rfd)


@pytest.mark.timeout(20)
def test_deregister_of_an_fd_with_requests_in_flight_raises_QueueBusy(queue, rfd):
    queue.prepare_read(rfd, 0, bytearray(8))
    queue.commit()
    with pytest.raises(uringq.QueueBusy):
        queue.deregister(rfd)
    collect(queue, 1)
    queue.deregister(rfd)  # allowed once the completion has been returned


# --- QueueClosed ----------------------------------------------------------------------------

CLOSED_CALLS = {
    "register": lambda q, fd: q.register(fd),
    "deregister": lambda q, fd: q.deregister(fd),
    "prepare_read": lambda q, fd: q.prepare_read(fd, 0, bytearray(8)),
    "prepare_write": lambda q, fd: q.prepare_write(fd, 0, b"x"),
    "prepare_sync": lambda q, fd: q.prepare_sync(fd),
    "prepare_readv": lambda q, fd: q.prepare_readv(fd, 0, [bytearray(8)]),
    "prepare_writev": lambda q, fd: q.prepare_writev(fd, 0, [b"x"]),
    "commit": lambda q, fd: q.commit(),
    "wait": lambda q, fd: q.wait(),
    "wait-timeout": lambda q, fd: q.wait(1, None, 0.1),
    "wakeup": lambda q, fd: q.wakeup(),
    "fileno": lambda q, fd: q.fileno(),
    "read_many": lambda q, fd: q.read_many(fd, [0], 8, bytearray(8)),
    "write_many": lambda q, fd: q.write_many(fd, [0], 1, b"x"),
    "enter": lambda q, fd: q.__enter__(),
}


@pytest.mark.timeout(10)
@pytest.mark.parametrize("method", list(CLOSED_CALLS))
def test_every_method_of_a_closed_queue_raises_QueueClosed(queue, rfd, method):
    queue.close()
    with pytest.raises(uringq.QueueClosed):
        CLOSED_CALLS[method](queue, rfd)


def test_close_of_a_closed_queue_does_nothing(queue):
    queue.close()
    queue.close()
    queue.close(cancel=True)


# --- the exception hierarchy ----------------------------------------------------------------


def _raised(call) -> BaseException:
    try:
        call()
    except Exception as e:
        return e
    raise AssertionError("nothing was raised")


@pytest.mark.timeout(20)
def test_every_queue_error_is_an_OSError_with_errno(make_queue, data_fd):
    q = make_queue(1, 1)
    errors = {
        "HandleNotRegistered": _raised(lambda: q.prepare_read(data_fd, 0, bytearray(8))),
        "QueueEmpty": _raised(q.commit),
    }
    q.register(data_fd)
    q.prepare_read(data_fd, 0, bytearray(8))
    errors["QueueFull"] = _raised(lambda: q.prepare_read(data_fd, 0, bytearray(8)))
    errors["QueueBusy"] = _raised(q.close)
    q.wakeup()
    q.commit()
    errors["Interrupted"] = _raised(lambda: q.wait(1, None, 5))
    q.close(cancel=True)
    errors["QueueClosed"] = _raised(q.commit)
    for name, err in errors.items():
        assert type(err) is getattr(uringq, name) or isinstance(err, getattr(uringq, name)), (
            name,
            err,
        )
        assert isinstance(err, uringq.IoQueueError), name
        assert isinstance(err, OSError), name
        assert isinstance(err.errno, int) and err.errno > 0, (name, err.errno)


def test_exception_classes_form_one_hierarchy():
    assert issubclass(uringq.IoQueueError, OSError)
    for name in (
        "ProviderUnavailable",
        "HandleNotRegistered",
        "QueueFull",
        "QueueEmpty",
        "QueueBusy",
        "Interrupted",
        "QueueClosed",
    ):
        assert issubclass(getattr(uringq, name), uringq.IoQueueError), name


# --- provider lookup ------------------------------------------------------------------------


def test_get_provider_of_an_unknown_id_raises_LookupError():
    with pytest.raises(LookupError):
        uringq.get_provider("no-such-provider")


def test_ioqueue_with_an_unknown_provider_id_raises_LookupError():
    with pytest.raises(LookupError):
        uringq.IoQueue(provider="no-such-provider")


@pytest.mark.skipif(uringq.get_provider("io_uring").available, reason="io_uring is available here")
def test_forcing_unavailable_io_uring_raises_ProviderUnavailable_with_the_reason():
    reason = uringq.get_provider("io_uring").reason
    with pytest.raises(uringq.ProviderUnavailable) as info:
        uringq.IoQueue(provider="io_uring")
    assert reason and reason in str(info.value)


# --- exceptions from user objects propagate -------------------------------------------------


class Boom(Exception):
    pass


class RaisingIndex:
    def __index__(self) -> int:
        raise Boom("__index__")


class RaisingFileno:
    def fileno(self) -> int:
        raise Boom("fileno")


def test_exception_from_offset_index_propagates_and_queues_nothing(queue, rfd):
    with pytest.raises(Boom):
        queue.prepare_read(rfd, RaisingIndex(), bytearray(8))
    assert queue.prepared == 0


def test_exception_from_fileno_propagates_from_register(queue):
    with pytest.raises(Boom):
        queue.register(RaisingFileno())


def test_exception_from_fileno_propagates_from_prepare(queue, rfd):
    with pytest.raises(Boom):
        queue.prepare_write(RaisingFileno(), 0, b"x")
    assert queue.prepared == 0


def test_exception_from_sq_entries_index_propagates(provider):
    with pytest.raises(Boom):
        uringq.IoQueue(RaisingIndex(), provider=provider)
