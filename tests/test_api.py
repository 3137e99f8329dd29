"""The public surface named in SPEC section 2: names, positional parameters, and extra
parameters keyword-only ("any parameter added beyond them is keyword-only")."""

from __future__ import annotations

import pytest
import uringq

PUBLIC = [
    "providers",
    "best_provider",
    "get_provider",
    "register_provider",
    "ProviderInfo",
    "IoQueue",
    "Completion",
    "aligned_buffer",
    "IoQueueError",
    "ProviderUnavailable",
    "HandleNotRegistered",
    "QueueFull",
    "QueueEmpty",
    "QueueBusy",
    "Interrupted",
    "QueueClosed",
]


@pytest.mark.parametrize("name", PUBLIC)
def test_public_name_is_exported(name):
    assert hasattr(uringq, name)
    assert name in uringq.__all__


def test_provider_is_keyword_only(provider):
    with pytest.raises(TypeError):
        uringq.IoQueue(8, 16, provider)


EXTRA_POSITIONAL = {
    "prepare_read": lambda q, fd: q.prepare_read(fd, 0, bytearray(8), "ud", "extra"),
    "prepare_write": lambda q, fd: q.prepare_write(fd, 0, b"x", "ud", "extra"),
    "prepare_readv": lambda q, fd: q.prepare_readv(fd, 0, [bytearray(8)], "ud", "extra"),
    "prepare_writev": lambda q, fd: q.prepare_writev(fd, 0, [b"x"], "ud", "extra"),
    "prepare_sync": lambda q, fd: q.prepare_sync(fd, "ud", True),
    "wait": lambda q, fd: q.wait(1, None, 0.01, "extra"),
    "read_many": lambda q, fd: q.read_many(fd, [0], 8, bytearray(8), 4),
    "write_many": lambda q, fd: q.write_many(fd, [0], 1, b"x", 4),
    "close": lambda q, fd: q.close(True),
    "register": lambda q, fd: q.register(fd, "extra"),
    "commit": lambda q, fd: q.commit("extra"),
}


@pytest.mark.parametrize("method", list(EXTRA_POSITIONAL))
def test_parameters_beyond_the_spec_are_keyword_only(queue, rfd, method):
    with pytest.raises(TypeError):
        EXTRA_POSITIONAL[method](queue, rfd)
    assert (queue.prepared, queue.in_flight) == (0, 0)


def test_datasync_is_accepted_as_keyword(queue, rfd):
    queue.prepare_sync(rfd, datasync=True)
    queue.prepare_sync(rfd, "ud", datasync=False)
    assert queue.prepared == 2
