"""The provider protocol: the vtable behind :class:`uringq.IoQueue`.

A provider is a *class* (registered with :func:`uringq.register_provider`) whose class
attributes and constructor play the parts of IPRT's ``RTIOQUEUEPROVVTABLE``:

================================  ==========================================
vtable entry                      provider
================================  ==========================================
``szId``, ``enmHnd``              ``id`` (str), ``handle_type`` (``"file"``)
``pfnIsSupported``                ``probe()`` class method -> ``(ok, reason)``
``pfnQueueInit``                  ``Provider(sq_entries, cq_entries)`` -> queue
``pfnQueueDestroy``               ``queue.close(cancel=...)``
``pfnHandleRegister``/``Dereg``   ``queue.register(fd)`` / ``deregister(fd)``
``pfnReqPrepare``/``PrepareSg``   ``queue.prepare_read/write/sync/readv/writev``
``pfnCommit``                     ``queue.commit()``
``pfnEvtWait``                    ``queue.wait(min_events, max_events, timeout)``
``pfnEvtWaitWakeup``              ``queue.wakeup()``
================================  ==========================================

plus ``native`` (bool: runs outside Python), the queue's ``fileno()``, ``read_many``/
``write_many`` and the ``prepared``/``in_flight``/``closed`` properties.

``probe()`` returns ``(True, None)`` or ``(False, reason)``; the reason names the failing
call, the errno symbol and text and the likely cause. The registry caches it per process.

``IoQueue`` checks and rounds the sizes before calling the constructor. If the class sets
``validates_arguments = True``, its queue promises to check every per-request argument
itself with the rules of :mod:`uringq._checks` (types, offsets, buffers, registration,
capacity, closed queue, use after ``fork()``), so ``IoQueue`` binds the queue's methods
directly and adds no Python frame to the hot path. Otherwise (the default) ``IoQueue``
runs those checks and hands the provider plain ``int`` fds and offsets and byte
``memoryview`` objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from uringq._checks import HasFileno
    from uringq._completion import Completion

__all__ = ["Provider", "ProviderQueue"]


class ProviderQueue(Protocol):
    """The queue object a provider's constructor returns (SPEC section 2 semantics)."""

    @property
    def prepared(self) -> int:
        """Requests prepared and not yet committed."""

    @property
    def in_flight(self) -> int:
        """Requests committed whose completion has not been returned yet."""

    @property
    def closed(self) -> bool:
        """True once ``close()`` succeeded."""

    def register(self, fd: int | HasFileno) -> None:
        """Pin the open file behind ``fd`` for requests on that number."""

    def deregister(self, fd: int | HasFileno) -> None:
        """Unpin ``fd``; ``QueueBusy`` while requests use it."""

    def prepare_read(
        self, fd: int | HasFileno, offset: int, buf: Buffer, user_data: Any = None
    ) -> None:
        """Queue a read into ``buf`` at ``offset``."""

    def prepare_write(
        self, fd: int | HasFileno, offset: int, buf: Buffer, user_data: Any = None
    ) -> None:
        """Queue a write of ``buf`` at ``offset``."""

    def prepare_sync(
        self, fd: int | HasFileno, user_data: Any = None, *, datasync: bool = False
    ) -> None:
        """Queue an fsync (``datasync``: fdatasync)."""

    def prepare_readv(
        self, fd: int | HasFileno, offset: int, bufs: Sequence[Buffer], user_data: Any = None
    ) -> None:
        """Queue a scatter read."""

    def prepare_writev(
        self, fd: int | HasFileno, offset: int, bufs: Sequence[Buffer], user_data: Any = None
    ) -> None:
        """Queue a gather write."""

    def commit(self) -> int:
        """Submit what is prepared; return how many were submitted."""

    def wait(
        self, min_events: int = 1, max_events: int | None = None, timeout: float | None = None
    ) -> list[Completion]:
        """Return between ``min_events`` and ``max_events`` completions."""

    def wakeup(self) -> None:
        """Make a blocked (or the next) ``wait`` raise ``Interrupted``."""

    def fileno(self) -> int:
        """An fd that is readable whenever completions may be ready."""

    def read_many(self, fd: int | HasFileno, offsets: Any, size: int, out: Buffer) -> Any:
        """Read ``size`` bytes at each offset into ``out``; ``array('q')`` of results."""

    def write_many(self, fd: int | HasFileno, offsets: Any, size: int, data: Buffer) -> Any:
        """Write ``size`` bytes of ``data`` at each offset; ``array('q')`` of results."""

    def close(self, *, cancel: bool = False) -> None:
        """Free the queue; ``QueueBusy`` unless idle or ``cancel``."""

    # Optional: ``register_buffer(buf)`` / ``deregister_buffer()`` (a buffer kept
    # registered for the batch API). Without them ``IoQueue`` just holds the export.


class Provider(Protocol):
    """A provider class: metadata, ``probe()`` and a ``(sq_entries, cq_entries)`` constructor.

    Optional: ``validates_arguments: bool`` (default ``False``), see the module docstring.
    """

    id: str
    handle_type: str
    native: bool

    def probe(self) -> tuple[bool, str | None]:
        """``(True, None)`` if usable here, else ``(False, reason)`` (a class method)."""

    def __call__(self, sq_entries: int, cq_entries: int) -> ProviderQueue:
        """Create a queue (the class constructor)."""
