"""Run the same operations on a builtin file and on a ``uringq.aio`` file, and compare.

An outcome is ``("ok", value)`` or ``("error", exception type name, message)``; for
``readinto`` the value is the count and the bytes read. The builtin file is the oracle:
``uringq.aio`` must give the same outcome for every operation, and the same file at the
end.
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Sequence
from typing import Any

Outcome = tuple[Any, ...]


def describe(exc: BaseException) -> tuple[Any, ...]:
    """An exception as the tests compare it: type, message, errno and file names."""
    return (
        type(exc),
        str(exc),
        getattr(exc, "errno", None),
        getattr(exc, "filename", None),
        getattr(exc, "filename2", None),
    )


def outcome_of_exception(exc: BaseException) -> Outcome:
    return ("error", type(exc).__name__, str(exc))


def _args_for(name: str, args: Sequence[Any]) -> tuple[tuple[Any, ...], bytearray | None]:
    if name in ("readinto", "readinto1"):
        buf = bytearray(args[0])
        return (buf,), buf
    return tuple(args), None


def builtin_call(f: Any, name: str, args: Sequence[Any]) -> Outcome:
    call_args, buf = _args_for(name, args)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = getattr(f, name)(*call_args)
    except Exception as exc:
        return outcome_of_exception(exc)
    return ("ok", value, bytes(buf)) if buf is not None else ("ok", value)


async def aio_call(f: Any, name: str, args: Sequence[Any]) -> Outcome:
    call_args, buf = _args_for(name, args)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = await getattr(f, name)(*call_args)
    except Exception as exc:
        return outcome_of_exception(exc)
    return ("ok", value, bytes(buf)) if buf is not None else ("ok", value)


def pattern(size: int, seed: int, newline_every: int = 37) -> bytes:
    """``size`` bytes from ``seed``, with a ``b"\\n"`` about every ``newline_every``."""
    rng = random.Random(seed)
    data = bytearray(rng.randbytes(size))
    for i in range(size):
        if data[i] == 10:
            data[i] = 11
    if newline_every:
        for i in range(rng.randrange(newline_every) if size else 0, size, newline_every):
            data[i] = 10
    return bytes(data)


def fresh_paths(directory: str, counter: list[int]) -> tuple[str, str]:
    """Two new file names in ``directory`` (one for each side)."""
    counter[0] += 1
    n = counter[0]
    return os.path.join(directory, f"builtin-{n}"), os.path.join(directory, f"aio-{n}")


def file_bytes(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None
