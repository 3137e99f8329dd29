"""W1, 4 KiB random reads of a cached file: uringq's batch, per-request and asyncio paths
against an ``os.pread`` loop, ``run_in_executor``, a bare future round trip per loop (the
ceiling of any asyncio API), the peers and the C ceiling, all on the same offsets."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from uringq import aio
from uringq.bench.asyncrun import drive, run_async
from uringq.bench.ceilings import uring_runner
from uringq.bench.env import Env
from uringq.bench.loops import pread_loop
from uringq.bench.peers import peer_specs
from uringq.bench.queue_paths import per_request_file, read_many_run
from uringq.bench.sections import W1
from uringq.bench.timing import W1_BLOCK, Runner, Spec, Timing

__all__ = ["aio_run", "bare_run", "executor_run", "w1_specs"]


def aio_run(env: Env, n: int, *, provider: str, loop: str, method: str) -> Timing:
    offsets = env.offsets[:n]
    block = W1_BLOCK

    async def main() -> Timing:
        aio.get_driver(provider=provider)  # this loop's queue, on that provider
        async with aio.open(env.path, "rb") as f:
            assert await f.read(block, offsets[0]) is not None
            if method == "read":
                read = f.read

                async def worker(it: Iterator[int]) -> None:
                    for off in it:
                        await read(block, off)

            else:
                read_into = f.read_into

                async def worker(it: Iterator[int]) -> None:
                    buf = bytearray(block)
                    for off in it:
                        await read_into(buf, off)

            return await drive(offsets, env.tasks, worker)

    return run_async(loop, main())


def executor_run(env: Env, n: int) -> Timing:
    offsets = env.offsets[:n]

    async def main() -> Timing:
        loop = asyncio.get_running_loop()
        fd = os.open(env.path, os.O_RDONLY)
        try:
            run_in_executor, pread = loop.run_in_executor, os.pread

            async def worker(it: Iterator[int]) -> None:
                for off in it:
                    await run_in_executor(None, pread, fd, W1_BLOCK, off)

            return await drive(offsets, env.tasks, worker)
        finally:
            os.close(fd)

    return run_async("asyncio", main())


def bare_run(env: Env, n: int, *, loop: str) -> Timing:
    """A future per request, all resolved by one callback per iteration; no I/O at all."""
    offsets = env.offsets[:n]

    async def main() -> Timing:
        ev = asyncio.get_running_loop()
        create_future, call_soon = ev.create_future, ev.call_soon
        pending: list[asyncio.Future[int]] = []
        scheduled = [False]

        def resolve() -> None:
            scheduled[0] = False
            batch = pending[:]
            pending.clear()
            for fut in batch:
                fut.set_result(W1_BLOCK)

        async def worker(it: Iterator[int]) -> None:
            for _off in it:
                fut = create_future()
                pending.append(fut)
                if not scheduled[0]:
                    scheduled[0] = True
                    call_soon(resolve)
                await fut

        return await drive(offsets, env.tasks, worker)

    return run_async(loop, main())


def on_offsets(fn: Callable[..., Timing], **kwargs: Any) -> Runner:
    """A runner calling ``fn(path, offsets[:n], 4096, **kwargs)`` on the W1 file and offsets."""
    return lambda e, n: fn(e.path, e.offsets[:n], W1_BLOCK, **kwargs)


def _read_many(provider: str, depth: int) -> Runner:
    return lambda e, n: read_many_run(
        e.path, e.offsets[:n], W1_BLOCK, provider=provider, depth=depth, per_call=e.batch
    )


def _aio(provider: str, loop: str, method: str) -> Runner:
    return partial(aio_run, provider=provider, loop=loop, method=method)


def w1_specs() -> list[Spec]:
    fallback = "pure-Python fallback"
    per_call = "io_uring, --batch requests per call"
    registered = "registered file and buffers"
    specs = [
        Spec(W1, "os.pread loop", "baseline", 1.0, on_offsets(pread_loop), reference=True),
        Spec(W1, "uringq read_many depth 32", "uringq", 1.0, _read_many("io_uring", 32),
             note=per_call, c_depth=32, provider="io_uring"),
        Spec(W1, "uringq read_many depth 128", "uringq", 1.0, _read_many("io_uring", 128),
             note=per_call, c_depth=128, provider="io_uring"),
        Spec(W1, "uringq prepare/commit/wait depth 32", "uringq", 1.0,
             on_offsets(per_request_file, provider="io_uring", depth=32), note="io_uring",
             provider="io_uring"),
    ]  # fmt: skip
    for loop in ("asyncio", "uvloop"):
        specs.append(
            Spec(W1, f"uringq.aio read 64 tasks ({loop})", "uringq", 0.4,
                 _aio("io_uring", loop, "read"), note="await f.read(4096, off) -> bytes",
                 loop=loop, provider="io_uring")
        )  # fmt: skip
    specs += [
        Spec(W1, "uringq.aio read_into 64 tasks (asyncio)", "uringq", 0.4,
             _aio("io_uring", "asyncio", "read_into"), note="await f.read_into(buf, off) -> int",
             loop="asyncio", provider="io_uring"),
        Spec(W1, "threadpool prepare/commit/wait depth 32", "uringq", 0.5,
             on_offsets(per_request_file, provider="threadpool", depth=32), note=fallback,
             provider="threadpool"),
        Spec(W1, "threadpool read_many depth 32", "uringq", 0.5,
             _read_many("threadpool", 32), note=fallback, provider="threadpool"),
        Spec(W1, "uringq.aio read 64 tasks (asyncio, threadpool)", "uringq", 0.3,
             _aio("threadpool", "asyncio", "read"), note=fallback, loop="asyncio",
             provider="threadpool"),
        Spec(W1, "run_in_executor(os.pread) 64 tasks", "baseline", 0.03, executor_run,
             loop="asyncio"),
        Spec(W1, "bare asyncio future round trip 64 tasks (asyncio)", "baseline", 1.0,
             partial(bare_run, loop="asyncio"), note="no I/O: the asyncio ceiling",
             loop="asyncio", anchor="bare"),
        Spec(W1, "bare asyncio future round trip 64 tasks (uvloop)", "baseline", 1.0,
             partial(bare_run, loop="uvloop"), note="no I/O: the uvloop ceiling",
             loop="uvloop", anchor="bare"),
    ]  # fmt: skip
    specs += peer_specs()
    specs += [
        Spec(W1, "C pread loop", "ceiling", 1.0, uring_runner(32, "pread_ops_s"),
             note="uring_ceiling.c"),
        Spec(W1, "C io_uring depth 32", "ceiling", 1.0, uring_runner(32, "uring_ops_s"),
             note=registered, c_depth=32),
        Spec(W1, "C io_uring depth 128", "ceiling", 1.0, uring_runner(128, "uring_ops_s"),
             note=registered, c_depth=128),
    ]  # fmt: skip
    return specs
