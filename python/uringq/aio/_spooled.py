"""``AsyncSpooledTemporaryFile``: in memory until it outgrows ``max_size``, as the stdlib's
``SpooledTemporaryFile`` (and aiofiles' wrapper of it) behaves.

In memory, every method works on an ``io.BytesIO`` (or an ``io.TextIOWrapper`` over one,
for text modes) at once; when a write takes the size past ``max_size``, or ``fileno()``
or ``rollover()`` is called, the data moves to a :func:`uringq.aio.tempfile.TemporaryFile`
at the same position and every method is that file's from then on.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from uringq.aio._base import LineIteration

__all__ = ["AsyncSpooledTemporaryFile"]


class AsyncSpooledTemporaryFile(LineIteration):
    """See the module docstring. ``_file`` is the current file object, ``_rolled``
    tells which kind it is (as in the stdlib)."""

    def __init__(  # noqa: PLR0917
        self,
        max_size: int,
        mode: str,
        encoding: str | None,
        newline: str | None,
        errors: str | None,
        make_file: Callable[[], Awaitable[Any]],
    ) -> None:
        if "b" in mode:
            self._file: Any = io.BytesIO()
        else:
            encoding = io.text_encoding(encoding)
            self._file = io.TextIOWrapper(
                io.BytesIO(), encoding=encoding, errors=errors, newline=newline
            )
        self._max_size = max_size
        self._rolled = False
        self._mode = mode
        self._make_file = make_file

    # -- rolling over -----------------------------------------------------------------------
    async def _check(self) -> None:
        if not self._rolled and self._max_size and self._file.tell() > self._max_size:
            await self.rollover()

    async def rollover(self) -> None:
        """Move the data to a real temporary file (nothing happens if it is one already)."""
        if self._rolled:
            return
        memory = self._file
        new = await self._make_file()
        try:
            position = memory.tell()
            if hasattr(new, "buffer"):
                await new.buffer.write(memory.detach().getvalue())
            else:
                await new.write(memory.getvalue())
            await new.seek(position, 0)
        except BaseException:
            await new.close()
            raise
        self._file = new
        self._rolled = True

    # -- attributes ---------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return bool(self._file.closed)

    @property
    def encoding(self) -> Any:
        return self._file.encoding if not self._rolled or hasattr(self._file, "encoding") else None

    @property
    def errors(self) -> Any:
        return getattr(self._file, "errors", None)

    @property
    def mode(self) -> str:
        return self._file.mode if self._rolled else self._mode

    @property
    def name(self) -> Any:
        return self._file.name if self._rolled else None

    @property
    def newlines(self) -> Any:
        return getattr(self._file, "newlines", None)

    # -- methods: in memory at once, else the real file's ---------------------------------------
    async def _call(self, name: str, *args: Any) -> Any:
        method = getattr(self._file, name)
        return await method(*args) if self._rolled else method(*args)

    async def write(self, data: Any) -> int:
        n = await self._call("write", data)
        await self._check()
        return int(n)

    async def writelines(self, lines: Iterable[Any]) -> None:
        await self._call("writelines", lines)
        await self._check()

    async def read(self, *args: Any) -> Any:
        return await self._call("read", *args)

    async def readline(self, *args: Any) -> Any:
        return await self._call("readline", *args)

    async def readlines(self, *args: Any) -> Any:
        return await self._call("readlines", *args)

    async def seek(self, *args: Any) -> Any:
        return await self._call("seek", *args)

    async def tell(self) -> Any:
        return await self._call("tell")

    async def truncate(self, size: int | None = None) -> Any:
        if not self._rolled:
            return self._file.truncate(size)
        return await self._file.truncate(size)

    async def flush(self) -> None:
        await self._call("flush")

    async def isatty(self) -> bool:
        return bool(await self._call("isatty"))

    async def fileno(self) -> int:
        """The fd (rolls the data over to a real file first, as the stdlib does)."""
        await self.rollover()
        return int(self._file.fileno())

    async def close(self) -> None:
        if self._rolled:
            await self._file.close()
        else:
            self._file.close()

    async def __aenter__(self) -> AsyncSpooledTemporaryFile:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()
