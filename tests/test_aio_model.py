"""``uringq.aio`` against a plain model, with hypothesis (every available provider).

io_uring's driver reads into ``bytes`` it allocates and settles futures natively; other
providers read into a ``bytearray`` and settle in Python. Both must give what a plain
``pread``/``pwrite`` model gives, request by request: the same bytes, counts and
exception types, cancelled futures cancelled, and the same file at the end.

Each example is a list of rounds. A round of reads runs concurrently (``gather``), some
of its futures cancelled at once; a write round runs alone, so results never depend on
timing. Rounds stay below the queue's size: nothing waits in the backlog, so a cancelled
write still runs on every provider (its future is cancelled, its request is not).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from uringq import aio

FILE_SIZE = 12_000
SQ_ENTRIES = 64
# URINGQ_FUZZ=long (see docs/TESTING.md) runs many more examples.
EXAMPLES = 1000 if os.environ.get("URINGQ_FUZZ") == "long" else 40

read_op = st.tuples(
    st.sampled_from(["read", "read_into"]),
    st.integers(-2, 6000),  # size; negative ones must fail from the await
    st.integers(-2, FILE_SIZE + 3000),  # offset
    st.booleans(),  # cancel it at once
)
write_op = st.tuples(
    st.just("write"),
    st.integers(0, 5000),
    st.integers(0, FILE_SIZE + 3000),
    st.booleans(),
)
rounds = st.lists(
    st.one_of(st.lists(read_op, min_size=1, max_size=SQ_ENTRIES // 2), write_op.map(lambda w: [w])),
    min_size=1,
    max_size=6,
)


def outcome_of(fut: asyncio.Future[Any], buf: bytearray | None) -> tuple[Any, ...]:
    if fut.cancelled():
        return ("cancelled",)
    exc = fut.exception()
    if exc is not None:
        return ("error", type(exc), getattr(exc, "errno", None))
    if buf is not None:
        return ("ok", fut.result(), bytes(buf[: fut.result()]))
    return ("ok", fut.result())


class Model:
    """What each request must give: plain reads and writes on a bytearray."""

    def __init__(self, data: bytes) -> None:
        self.data = bytearray(data)

    def apply(self, kind: str, size: int, offset: int, cancel: bool, seed: int) -> tuple[Any, ...]:
        if size < 0 or offset < 0:  # refused at once: the future is done before cancel()
            return ("error", ValueError, None)
        if kind == "write":
            payload = payload_for(seed, size)
            end = offset + size
            if size and end > len(self.data):  # an empty write does not grow the file
                self.data.extend(bytes(end - len(self.data)))
            self.data[offset:end] = payload  # runs even when its future is cancelled
            outcome: tuple[Any, ...] = ("ok", size)
        else:
            chunk = bytes(self.data[offset : offset + size])
            outcome = ("ok", chunk) if kind == "read" else ("ok", len(chunk), chunk)
        return ("cancelled",) if cancel else outcome


def payload_for(seed: int, size: int) -> bytes:
    return bytes((seed * 31 + i) % 251 for i in range(size))


async def run_rounds(path: str, plan: list[list[tuple[str, int, int, bool]]]) -> list[Any]:
    results: list[Any] = []
    async with aio.open(path, "r+b") as f:
        seed = 0
        for round_ in plan:
            futs: list[tuple[asyncio.Future[Any], bytearray | None]] = []
            for kind, size, offset, cancel in round_:
                seed += 1
                buf: bytearray | None = None
                if kind == "read":
                    fut = f.read(size, offset)
                elif kind == "read_into" and size >= 0:
                    buf = bytearray(size)
                    fut = f.read_into(buf, offset)
                elif kind == "read_into":
                    fut = f.read(size, offset)  # a bad size: through read()
                else:
                    fut = f.write(payload_for(seed, size), offset)
                if cancel:
                    fut.cancel()
                futs.append((fut, buf))
            await asyncio.gather(*(fut for fut, _ in futs), return_exceptions=True)
            # Let cancelled requests finish in the kernel before the next round.
            while f.driver.queue.in_flight or f.driver.backlog:
                await asyncio.sleep(0.001)
            for fut, buf in futs:
                outcome = outcome_of(fut, buf)
                if outcome[0] == "ok" and buf is None and isinstance(outcome[1], bytes):
                    outcome = ("ok", outcome[1])
                results.append(outcome)
    return results


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=rounds)
def test_aio_matches_the_model(provider: str, tmp_path_factory, plan) -> None:
    directory = tmp_path_factory.mktemp("aio-model")
    path = os.path.join(directory, "data")
    initial = bytes((i * 7) % 256 for i in range(FILE_SIZE))
    with open(path, "wb") as out:
        out.write(initial)

    model = Model(initial)
    expected: list[Any] = []
    seed = 0
    for round_ in plan:
        for kind, size, offset, cancel in round_:
            seed += 1
            as_kind = "read" if kind == "read_into" and size < 0 else kind
            expected.append(model.apply(as_kind, size, offset, cancel, seed))

    loop = asyncio.new_event_loop()
    try:
        aio.get_driver(loop, provider=provider, sq_entries=SQ_ENTRIES)
        got = loop.run_until_complete(run_rounds(path, plan))
    finally:
        loop.close()
    assert got == expected
    with open(path, "rb") as f:
        assert f.read() == bytes(model.data)


def test_the_native_hooks_are_what_io_uring_runs(provider: str) -> None:
    loop = asyncio.new_event_loop()
    try:
        driver = aio.get_driver(loop, provider=provider)
        native = driver._settle_futures is not None
        assert native == (provider == "io_uring")
        assert (driver._prepare_read_bytes is not None) == native
    finally:
        loop.close()


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q"])
