"""Helpers for driving a queue in tests: collecting completions, rejection checks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

DATA_SIZE = 256 * 1024  # size of the pattern file: 64 blocks of 4 KiB
BLOCK = 4096

# A read target that is not writable, or a buffer that is not C-contiguous, must be
# rejected before anything is queued. SPEC section 3 says "reject" without naming the
# exception; this is the one place that decides which ones count.
REJECTED_BUFFER_ERRORS: tuple[type[BaseException], ...] = (TypeError, ValueError, BufferError)


class WatchableBuffer(bytearray):
    """A bytearray that can be watched with a weakref (plain bytearray cannot)."""


def collect(q: Any, count: int, timeout: float = 10.0) -> list[Any]:
    """Wait until exactly ``count`` completions have been returned; fail on a deadline."""
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {len(got)} of {count} completions within {timeout}s"
        got.extend(q.wait(1, None, remaining))
    assert len(got) == count, f"wanted {count} completions, wait returned {len(got)}"
    return got


def settle(delay: float = 0.25) -> None:
    """Give requests already committed on a regular file time to complete.

    Nothing in the API tells whether a completion is ready without taking it, so tests
    that need "a completion is ready but not yet returned" sleep a little: reads of a
    cached file take microseconds on both providers.
    """
    time.sleep(delay)


def assert_rejected_before_queuing(q: Any, call: Callable[[], Any]) -> None:
    """``call`` must raise one of REJECTED_BUFFER_ERRORS and queue nothing."""
    before = (q.prepared, q.in_flight)
    with pytest.raises(REJECTED_BUFFER_ERRORS):
        call()
    assert (q.prepared, q.in_flight) == before
