"""The W1 peers, where installed: caio (every backend, 64 tasks), aiofile (64 tasks) and
aiofiles (one task: seek + read), on the same file and offsets as uringq's paths."""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import partial

from uringq.bench.asyncrun import drive, run_async
from uringq.bench.env import Env
from uringq.bench.sections import W1
from uringq.bench.skips import optional_import
from uringq.bench.timing import W1_BLOCK, Spec, Timing

__all__ = ["CAIO_BACKENDS", "aiofile_run", "aiofiles_run", "caio_run", "peer_specs"]

CAIO_BACKENDS = (
    ("linux_uring", 0.3),
    ("linux_aio", 0.3),
    ("thread_aio", 0.05),
    ("python_aio", 0.02),
)


def caio_run(env: Env, n: int, *, backend: str) -> Timing:
    module = optional_import(f"caio.{backend}_asyncio")
    offsets = env.offsets[:n]

    async def main() -> Timing:
        fd = os.open(env.path, os.O_RDONLY)
        context = module.AsyncioContext()
        try:
            read = context.read

            async def worker(it: Iterator[int]) -> None:
                for off in it:
                    await read(W1_BLOCK, fd, off)

            return await drive(offsets, env.tasks, worker)
        finally:
            context.close()
            os.close(fd)

    return run_async("asyncio", main())


def aiofile_run(env: Env, n: int) -> Timing:
    aiofile = optional_import("aiofile")
    offsets = env.offsets[:n]

    async def main() -> Timing:
        async with aiofile.AIOFile(env.path, "rb") as afp:
            read = afp.read

            async def worker(it: Iterator[int]) -> None:
                for off in it:
                    await read(W1_BLOCK, off)

            return await drive(offsets, env.tasks, worker)

    return run_async("asyncio", main())


def aiofiles_run(env: Env, n: int) -> Timing:
    aiofiles = optional_import("aiofiles")
    offsets = env.offsets[:n]

    async def main() -> Timing:
        async with aiofiles.open(env.path, "rb") as f:

            async def worker(it: Iterator[int]) -> None:
                for off in it:
                    await f.seek(off)
                    await f.read(W1_BLOCK)

            return await drive(offsets, 1, worker)

    return run_async("asyncio", main())


def peer_specs() -> list[Spec]:
    specs = [
        Spec(W1, f"caio {backend} 64 tasks", "peer", weight,
             partial(caio_run, backend=backend), loop="asyncio",
             note="with its SQPOLL kernel thread" if backend == "linux_uring" else None)
        for backend, weight in CAIO_BACKENDS
    ]  # fmt: skip
    specs += [
        Spec(W1, "aiofile 64 tasks", "peer", 0.2, aiofile_run, note="caio's default backend",
             loop="asyncio"),
        Spec(W1, "aiofiles 1 task (seek + read)", "peer", 0.005, aiofiles_run, loop="asyncio"),
    ]  # fmt: skip
    return specs
