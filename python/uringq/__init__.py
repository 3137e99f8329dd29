"""uringq: fast, safe asynchronous file I/O for Python on Linux.

io_uring through a Rust core, with a pure-Python fallback (``threadpool``) that has the
same semantics. Start with :class:`IoQueue`::

    with uringq.IoQueue() as q:
        q.register(fd)
        q.prepare_read(fd, 0, buf, "first block")
        q.commit()
        for completion in q.wait():
            ...

:func:`providers` tells which providers exist here and why one is unavailable.
"""

from __future__ import annotations

from uringq._buffers import aligned_buffer
from uringq._completion import Completion
from uringq._errors import (
    HandleNotRegistered,
    Interrupted,
    IoQueueError,
    ProviderUnavailable,
    QueueBusy,
    QueueClosed,
    QueueEmpty,
    QueueFull,
)
from uringq._queue import IoQueue
from uringq._registry import (
    ProviderInfo,
    best_provider,
    get_provider,
    providers,
    register_provider,
    unregister_provider,
)
from uringq.files import read_files, write_files


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("uringq")
    except PackageNotFoundError:  # running from a source tree
        return "0+unknown"


__version__ = _version()

__all__ = [
    "Completion",
    "HandleNotRegistered",
    "Interrupted",
    "IoQueue",
    "IoQueueError",
    "ProviderInfo",
    "ProviderUnavailable",
    "QueueBusy",
    "QueueClosed",
    "QueueEmpty",
    "QueueFull",
    "__version__",
    "aligned_buffer",
    "best_provider",
    "get_provider",
    "providers",
    "read_files",
    "register_provider",
    "unregister_provider",
    "write_files",
]
