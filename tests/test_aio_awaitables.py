"""What the file objects' async methods return, as aiofiles' callers use it.

aiofiles' methods are coroutines: they run when awaited, in the order awaited, and
``asyncio.create_task`` / ``TaskGroup.create_task`` take them. ``uringq.aio``'s methods
may return lighter awaitables (a close that finished at once, the close of an fd on the
queue), but each must behave as such a coroutine does. The builtin file, called in the
order of the awaits, is the oracle. Every provider, the default loop and uvloop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from uringq import aio

pytestmark = pytest.mark.timeout(60)

LINES = b"".join(b"line %d\n" % i for i in range(500))

# (mode, buffering, method, args): every method aiofiles runs on its executor.
CALLS = [
    (mode, buffering, name, args)
    for mode, buffering in [("rb", -1), ("rb", 0), ("r+b", -1), ("r", -1), ("r+", -1), ("wb", -1)]
    for name, args in [
        ("read", ()),
        ("read", (3,)),
        ("readline", ()),
        ("readlines", ()),
        ("read1", (3,)),
        ("readinto", (3,)),
        ("peek", (1,)),
        ("readall", ()),
        ("write", ("xy",)),
        ("writelines", (["ab", "cd"],)),
        ("seek", (7,)),
        ("tell", ()),
        ("truncate", (50,)),
        ("flush", ()),
        ("isatty", ()),
        ("seekable", ()),
        ("writable", ()),
        ("close", ()),
    ]
]


def _args(mode: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The call's arguments for this mode: bytes for a binary file, a fresh buffer."""
    if "b" not in mode:
        return args
    return tuple(
        arg.encode()
        if isinstance(arg, str)
        else [a.encode() for a in arg]
        if isinstance(arg, list)
        else arg
        for arg in args
    )


def _outcome(call: Any) -> tuple[str, Any]:
    try:
        result = call()
    except Exception as exc:
        return ("raised", type(exc))
    if isinstance(result, (bytearray, memoryview)):
        result = bytes(result)
    return ("returned", result)


@pytest.mark.parametrize("call", CALLS, ids=lambda c: f"{c[0]}{c[1]}-{c[2]}{c[3]}")
def test_every_method_runs_as_a_task_as_with_the_builtin(
    run: Any, tmp_path: Path, call: tuple[str, int, str, tuple[Any, ...]]
) -> None:
    """``asyncio.create_task(f.method(...))`` is accepted and its result (or error) is the
    builtin's; the file is then where the builtin's is."""
    mode, buffering, name, args = call
    if mode.startswith("r") and "b" not in mode and buffering == 0:
        pytest.skip("text needs buffering")
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    for path in (ours, theirs):
        path.write_bytes(LINES)
    call_args = (bytearray(3),) if name == "readinto" else _args(mode, args)
    with open(theirs, mode, buffering=buffering) as f:
        method = getattr(f, name, None)
        expected = None if method is None else _outcome(lambda: method(*call_args))
        after = None if f.closed else f.tell() if f.seekable() else None

    async def main() -> tuple[Any, Any]:
        async with aio.open(ours, mode, buffering=buffering) as f:
            method = getattr(f, name, None)
            if method is None:
                return None, None
            try:
                task = asyncio.create_task(method(*call_args))
            except Exception as exc:  # the call itself raised (as a coroutine would not)
                return ("raised", type(exc)), None
            try:
                value = await task
            except Exception as exc:
                got = ("raised", type(exc))
            else:
                got = ("returned", bytes(value) if isinstance(value, bytearray) else value)
            where = None if f.closed else await f.tell() if await f.seekable() else None
            return got, where

    got, where = run(main)
    if expected is None:
        assert got is None
        return
    assert got == expected
    assert where == after
    assert ours.read_bytes() == theirs.read_bytes()


def test_reads_run_when_awaited_in_the_order_awaited(run: Any, tmp_path: Path) -> None:
    """Two reads made before either is awaited: each runs when awaited (aiofiles' order),
    also on a small file whose first read takes it whole at once."""
    for size in (100, 70_000):
        path = tmp_path / f"f{size}"
        path.write_bytes(LINES * (size // len(LINES) + 1))

        async def main(path: Path = path) -> list[bytes]:
            async with aio.open(path, "rb") as f:
                first, rest = f.read(5), f.read()
                return [await first, await rest]

        data = path.read_bytes()
        assert run(main) == [data[:5], data[5:]]

        async def in_reverse(path: Path = path) -> list[bytes]:
            async with aio.open(path, "rb") as f:
                first, rest = f.read(5), f.read()
                whole = await rest
                return [whole, await first]

        assert run(in_reverse) == [data, b""]


def test_task_group_and_gather_take_the_methods(run: Any, tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(LINES)

    async def main() -> list[Any]:
        f = await aio.open(path, "rb")
        async with asyncio.TaskGroup() as tg:
            read = tg.create_task(f.read())
        closed = await asyncio.gather(f.close())
        return [read.result(), closed, f.closed]

    assert run(main) == [LINES, [None], True]
