"""A tiny provider following the protocol of SPEC section 2 (``register_provider``).

It runs every request synchronously with ``os.preadv``/``os.pwritev`` at ``commit`` and
keeps completions in a list: just enough to show what ``IoQueue`` adds on top of a
provider (size checks and rounding, per-request argument checks, the context manager, the
fork guard). It records every call in ``ToyProvider.calls`` so tests can see what
reached the provider.
"""

from __future__ import annotations

import os
from array import array
from typing import Any, ClassVar


def _completion(user_data: Any, result: int, error: OSError | None) -> Any:
    import uringq

    return uringq.Completion(user_data, result, error)


class ToyQueue:
    provider_id = "toy"

    def __init__(self, owner: type[ToyProvider], sq_entries: int, cq_entries: int) -> None:
        self._owner = owner
        self.provider_id = owner.id
        self.sq_entries = sq_entries
        self.cq_entries = cq_entries
        self._prepared: list[tuple[Any, ...]] = []
        self._in_flight: list[tuple[Any, ...]] = []
        self._ready: list[Any] = []
        self._files: dict[int, int] = {}
        self._closed = False
        self._woken = False
        self._event_r, self._event_w = os.pipe()

    def _log(self, name: str, *args: Any) -> None:
        self._owner.calls.append((name, *args))

    # properties ---------------------------------------------------------------------
    @property
    def prepared(self) -> int:
        return len(self._prepared)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight) + len(self._ready)

    @property
    def closed(self) -> bool:
        return self._closed

    # files --------------------------------------------------------------------------
    @staticmethod
    def _fd(fd: Any) -> int:
        return fd if isinstance(fd, int) else fd.fileno()

    def register(self, fd: Any) -> None:
        self._log("register", fd)
        fd = self._fd(fd)
        self._files[fd] = os.dup(fd)

    def deregister(self, fd: Any) -> None:
        self._log("deregister", fd)
        os.close(self._files.pop(self._fd(fd)))

    # requests -----------------------------------------------------------------------
    def prepare_read(self, fd: Any, offset: int, buf: Any, user_data: Any = None) -> None:
        self._log("prepare_read", fd, offset)
        self._prepared.append(("readv", self._files[self._fd(fd)], offset, [buf], user_data))

    def prepare_write(self, fd: Any, offset: int, buf: Any, user_data: Any = None) -> None:
        self._log("prepare_write", fd, offset)
        self._prepared.append(("writev", self._files[self._fd(fd)], offset, [buf], user_data))

    def prepare_readv(self, fd: Any, offset: int, bufs: Any, user_data: Any = None) -> None:
        self._log("prepare_readv", fd, offset)
        self._prepared.append(("readv", self._files[self._fd(fd)], offset, list(bufs), user_data))

    def prepare_writev(self, fd: Any, offset: int, bufs: Any, user_data: Any = None) -> None:
        self._log("prepare_writev", fd, offset)
        self._prepared.append(("writev", self._files[self._fd(fd)], offset, list(bufs), user_data))

    def prepare_sync(self, fd: Any, user_data: Any = None, *, datasync: bool = False) -> None:
        self._log("prepare_sync", fd)
        self._prepared.append(("sync", self._files[self._fd(fd)], 0, [], user_data))

    def commit(self) -> int:
        self._log("commit")
        batch, self._prepared = self._prepared, []
        for op, fd, offset, bufs, user_data in batch:
            try:
                if op == "readv":
                    result = os.preadv(fd, bufs, offset)
                elif op == "writev":
                    result = os.pwritev(fd, bufs, offset)
                else:
                    os.fsync(fd)
                    result = 0
                self._ready.append(_completion(user_data, result, None))
            except OSError as e:
                self._ready.append(_completion(user_data, 0, e))
        os.write(self._event_w, b"x")
        return len(batch)

    def wait(
        self, min_events: int = 1, max_events: int | None = None, timeout: float | None = None
    ) -> list[Any]:
        self._log("wait", min_events, max_events, timeout)
        if self._woken:
            import uringq

            self._woken = False
            raise uringq.Interrupted(4, "woken")
        n = len(self._ready) if max_events is None else min(max_events, len(self._ready))
        out, self._ready = self._ready[:n], self._ready[n:]
        return out

    def wakeup(self) -> None:
        self._log("wakeup")
        self._woken = True

    def fileno(self) -> int:
        return self._event_r

    def read_many(self, fd: Any, offsets: Any, size: int, out: Any) -> array:
        self._log("read_many", fd)
        view = memoryview(out).cast("B")
        fd = self._files[self._fd(fd)]
        return array(
            "q",
            (
                os.preadv(fd, [view[i * size : (i + 1) * size]], off)
                for i, off in enumerate(offsets)
            ),
        )

    def write_many(self, fd: Any, offsets: Any, size: int, data: Any) -> array:
        self._log("write_many", fd)
        view = memoryview(data).cast("B")
        fd = self._files[self._fd(fd)]
        return array(
            "q",
            (
                os.pwritev(fd, [view[i * size : (i + 1) * size]], off)
                for i, off in enumerate(offsets)
            ),
        )

    def close(self, *, cancel: bool = False) -> None:
        self._log("close", cancel)
        if self._closed:
            return
        self._closed = True
        for dup in self._files.values():
            os.close(dup)
        self._files.clear()
        os.close(self._event_r)
        os.close(self._event_w)


class ToyProvider:
    """Available everywhere; records calls."""

    id = "toy"
    handle_type = "file"
    native = False
    calls: ClassVar[list[tuple[Any, ...]]] = []
    constructed: ClassVar[list[tuple[int, int]]] = []

    @classmethod
    def probe(cls) -> tuple[bool, str | None]:
        return True, None

    def __new__(cls, sq_entries: int, cq_entries: int) -> Any:  # type: ignore[misc]
        cls.constructed.append((sq_entries, cq_entries))
        return ToyQueue(cls, sq_entries, cq_entries)


class ToyOffProvider(ToyProvider):
    """Never available, with a reason."""

    id = "toy_off"
    REASON = "toy_setup failed: ENOTSUP (Operation not supported): switched off for the test"

    @classmethod
    def probe(cls) -> tuple[bool, str | None]:
        return False, cls.REASON
