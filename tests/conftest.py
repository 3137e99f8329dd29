"""Fixtures shared by the whole suite.

Every behavioural test runs once per *available* provider: the ``provider`` fixture is
parametrized over ``uringq.providers()`` that are available (ids = provider id), and
``queue`` is an ``IoQueue`` on that provider, closed with ``cancel=True`` afterwards.
When ``uringq._native`` cannot be imported, io_uring is unavailable and its parameters
simply do not appear.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
import uringq
from helpers.patterns import write_pattern_file
from helpers.queueing import DATA_SIZE, WatchableBuffer
from uringq import aio

T = TypeVar("T")


def available_provider_ids() -> list[str]:
    return [p.id for p in uringq.providers() if p.available]


@pytest.fixture(params=available_provider_ids())
def provider(request: pytest.FixtureRequest) -> str:
    """The id of one available provider (each test runs once per provider)."""
    return request.param


@pytest.fixture
def make_queue(provider: str) -> Iterator[Callable[..., uringq.IoQueue]]:
    """Factory for extra queues on the current provider, all closed at teardown."""
    made: list[uringq.IoQueue] = []

    def make(*args: Any, **kwargs: Any) -> uringq.IoQueue:
        q = uringq.IoQueue(*args, provider=provider, **kwargs)
        made.append(q)
        return q

    yield make
    for q in made:
        q.close(cancel=True)


@pytest.fixture
def queue(make_queue: Callable[..., uringq.IoQueue]) -> uringq.IoQueue:
    """An ``IoQueue()`` with default sizes on the current provider."""
    return make_queue()


@pytest.fixture
def open_fd(tmp_path: Any) -> Iterator[Callable[..., int]]:
    """``open_fd(path, flags)`` opens an fd that is closed at teardown (if still open)."""
    fds: list[int] = []

    def opener(path: Any, flags: int = os.O_RDONLY, mode: int = 0o600) -> int:
        fd = os.open(path, flags, mode)
        fds.append(fd)
        return fd

    yield opener
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


@pytest.fixture
def data_file(tmp_path: Any) -> str:
    """Path of a DATA_SIZE-byte file holding ``pattern(0, DATA_SIZE)``."""
    path = str(tmp_path / "pattern.bin")
    write_pattern_file(path, DATA_SIZE)
    return path


@pytest.fixture
def data_fd(data_file: str, open_fd: Callable[..., int]) -> int:
    """The pattern file opened read-only (not registered)."""
    return open_fd(data_file, os.O_RDONLY)


@pytest.fixture
def rfd(queue: uringq.IoQueue, data_fd: int) -> int:
    """The pattern file opened read-only and registered with ``queue``."""
    queue.register(data_fd)
    return data_fd


@pytest.fixture
def empty_file(tmp_path: Any) -> str:
    path = str(tmp_path / "empty.bin")
    open(path, "wb").close()
    return path


@pytest.fixture
def wfd(queue: uringq.IoQueue, empty_file: str, open_fd: Callable[..., int]) -> int:
    """An empty file opened read-write and registered with ``queue``."""
    fd = open_fd(empty_file, os.O_RDWR)
    queue.register(fd)
    return fd


@pytest.fixture
def pipe_fds() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        with contextlib.suppress(OSError):
            os.close(fd)


@dataclass
class PendingRead:
    """A read committed on a pipe that stays in flight until ``release()`` writes to it."""

    queue: uringq.IoQueue
    read_fd: int
    write_fd: int
    buf: Any  # a WatchableBuffer; tests may drop it (None) to leave the queue the only owner
    user_data: str = "pending"

    def release(self, data: bytes = b"released") -> None:
        os.write(self.write_fd, data)


@pytest.fixture
def pending_read(queue: uringq.IoQueue, pipe_fds: tuple[int, int]) -> PendingRead:
    """A request that will not complete by itself (a read on an empty pipe).

    Skips where the provider completes the read at once (a provider that serves reads
    with ``pread`` gets ESPIPE on a pipe): SPEC is about files, pipes are just the one way
    to hold a request in flight for as long as a test needs.
    """
    r, w = pipe_fds
    queue.register(r)
    pending = PendingRead(queue, r, w, WatchableBuffer(16))
    queue.prepare_read(r, 0, pending.buf, pending.user_data)
    queue.commit()
    early = queue.wait(1, None, 0.1)
    if early:
        pytest.skip(f"{queue.provider_id} does not keep a pipe read pending: {early[0].error!r}")
    return pending


@pytest.fixture
def default_sigint() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt for the test's duration, also where the runner
    started with SIGINT ignored (Python then installs no handler: a background job)."""
    saved = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, saved)


# -- uringq.aio: every test on the default loop and on uvloop ---------------------------------
def _loop_factories() -> list[Any]:
    params: list[Any] = [pytest.param(asyncio.new_event_loop, id="asyncio")]
    try:
        import uvloop
    except ImportError:
        params.append(pytest.param(None, id="uvloop", marks=pytest.mark.skip("uvloop missing")))
    else:
        params.append(pytest.param(uvloop.new_event_loop, id="uvloop"))
    return params


@pytest.fixture(params=_loop_factories())
def loop_factory(request: pytest.FixtureRequest) -> Callable[[], asyncio.AbstractEventLoop]:
    return request.param


@pytest.fixture
def run(
    loop_factory: Callable[[], asyncio.AbstractEventLoop], provider: str
) -> Iterator[Callable[[Callable[[], Awaitable[T]]], T]]:
    """``run(async_fn)``: run ``async_fn()`` on a fresh loop whose driver uses ``provider``."""

    def runner(async_fn: Callable[[], Awaitable[T]]) -> T:
        async def main() -> T:
            aio.get_driver(provider=provider)
            return await async_fn()

        with asyncio.Runner(loop_factory=loop_factory) as r:
            return r.run(main())

    yield runner


@pytest.fixture
def arun(
    loop_factory: Callable[[], asyncio.AbstractEventLoop], provider: str
) -> Iterator[Callable[[Awaitable[T]], T]]:
    """``arun(coro)``: one loop for the whole test (hypothesis examples share it, and its
    driver on ``provider``)."""
    with asyncio.Runner(loop_factory=loop_factory) as r:

        async def start() -> None:
            aio.get_driver(provider=provider)

        r.run(start())
        yield r.run
