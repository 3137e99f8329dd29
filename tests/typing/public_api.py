"""The public API as users write it, for ``mypy --strict`` (``scripts/test.sh``): the
calls of the README and SPEC sections 8-10 must type-check as written. Never run."""

from __future__ import annotations

import os
import pathlib

import uringq
from uringq import aio


def queue_calls(q: uringq.IoQueue, fd: int, buf: bytearray) -> None:
    q.prepare_read(fd, 0, buf, "r", link=True, timeout=1.0)
    q.prepare_write(fd, 0, b"data", hardlink=True, timeout=0.5)
    q.prepare_readv(fd, 0, [buf, bytearray(4)], link=True)
    q.prepare_writev(fd, 0, [b"a", memoryview(b"b")], timeout=2)
    q.prepare_sync(fd, datasync=True, link=True)
    q.prepare_openat("f.txt", os.O_RDONLY, dir_fd=None, timeout=1.0, link=True)
    q.prepare_statx(pathlib.Path("f.txt"), follow_symlinks=False)
    q.prepare_close(fd, hardlink=True)
    q.prepare_timeout(0.1, user_data="tick")
    cancelled: int = q.cancel("r")
    for c in q.wait(1, timeout=1.0):
        st: os.stat_result | None = c.stat
        del st
    del cancelled


def whole_files() -> None:
    contents: list[bytes] = uringq.read_files(["a", b"b", pathlib.Path("c")])
    mixed: list[bytes | OSError] = uringq.read_files(["a"], return_exceptions=True)
    counts: list[int] = uringq.write_files({"a.txt": b"alpha", "b.bin": b"\x00" * 3})
    uringq.write_files({pathlib.Path("c"): memoryview(b"x")}, fsync=True)
    uringq.write_files([("d", b"x"), (b"e", b"y")])
    del contents, mixed, counts


async def aio_calls() -> None:
    async with aio.open("f.txt", "rb") as f:
        data: bytes = await f.read()
        del data
    async with aio.open("f.txt", encoding="utf-8") as t:
        async for line in t:
            text: str = line
            del text
    whole: bytes = await aio.read_file("f.txt")
    await aio.write_files({"a.txt": b"alpha"})
    await aio.write_file(pathlib.Path("b"), b"x", fsync=True)
    st: os.stat_result = await aio.os.stat("f.txt")
    del whole, st
