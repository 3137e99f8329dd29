"""The uringq exception hierarchy (one definition, shared by every provider).

Every class is an :class:`OSError` whose ``errno`` is always set (each class has a
default), so ``str(exc)`` reads ``[Errno 11] submission queue full: ...``.

Constructor contract (the Rust extension calls these exactly so)::

    QueueFull("message")                      # errno = the class default
    QueueFull("message", errno=errno.EBUSY)   # explicit errno
    Interrupted("message", completions)       # completions: a list, kept as .completions
    QueueClosed("message", completions=())

OSError's own ``(errno, strerror)`` form is accepted too: ``QueueBusy(16, "busy")``.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Iterable
from typing import Any, ClassVar

__all__ = [
    "FORKED",
    "HandleNotRegistered",
    "Interrupted",
    "IoQueueError",
    "ProviderUnavailable",
    "QueueBusy",
    "QueueClosed",
    "QueueEmpty",
    "QueueFull",
]


# Any method of a queue used in a child process after fork() raises RuntimeError(FORKED).
FORKED = (
    "this queue was created in the parent process before fork(); create a new queue in the child"
)


class IoQueueError(OSError):
    """Base class of every uringq error; an :class:`OSError` with ``errno`` set."""

    default_errno: ClassVar[int] = _errno.EIO
    default_message: ClassVar[str] = "I/O queue error"

    def __init__(self, *args: Any, errno: int | None = None) -> None:
        # OSError.__new__ leaves argument parsing to __init__ for subclasses that define
        # one, so only this __init__ decides what errno/strerror/args become.
        code, message, rest = _split_args(type(self), args, errno)
        if rest:
            raise TypeError(f"{type(self).__name__}() takes a message and errno= only")
        super().__init__(code, message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.strerror, self.errno, {}), self.__dict__ or None)


class _WithCompletions(IoQueueError):
    """An error that hands completions back to the caller as ``.completions``."""

    completions: list[Any]

    def __init__(
        self,
        *args: Any,
        errno: int | None = None,
        completions: Iterable[Any] | None = None,
    ) -> None:
        code, message, rest = _split_args(type(self), args, errno)
        if rest:
            if completions is not None or len(rest) > 1:
                raise TypeError(f"{type(self).__name__}() got too many arguments")
            completions = rest[0]
        OSError.__init__(self, code, message)
        self.completions = [] if completions is None else list(completions)

    def __reduce__(self) -> tuple[Any, ...]:
        state = {k: v for k, v in self.__dict__.items() if k != "completions"}
        kwargs = {"completions": self.completions}
        return (_rebuild, (type(self), self.strerror, self.errno, kwargs), state or None)


class ProviderUnavailable(IoQueueError):
    """The requested provider cannot be used here; the message says why."""

    default_errno = _errno.ENOSYS
    default_message = "provider unavailable"


class HandleNotRegistered(IoQueueError):
    """The fd was not registered with this queue (``register(fd)`` first)."""

    default_errno = _errno.EBADF
    default_message = "fd is not registered with this queue"


class QueueFull(IoQueueError):
    """No free submission entry, or the completion queue could not hold one more request."""

    default_errno = _errno.EAGAIN
    default_message = "submission queue full"


class QueueEmpty(IoQueueError):
    """Nothing to commit, or nothing in flight to wait for."""

    default_errno = _errno.ENODATA
    default_message = "queue empty"


class QueueBusy(IoQueueError):
    """Requests are still prepared, in flight or unreaped."""

    default_errno = _errno.EBUSY
    default_message = "queue busy"


class Interrupted(_WithCompletions):
    """``wait`` was woken by ``wakeup()``; ``.completions`` were ready at that moment."""

    default_errno = _errno.EINTR
    default_message = "wait interrupted by wakeup()"


class QueueClosed(_WithCompletions):
    """The queue is closed; ``.completions`` holds what a waiter had already taken."""

    default_errno = _errno.EBADF
    default_message = "the queue is closed"


def _split_args(
    cls: type[IoQueueError], args: tuple[Any, ...], errno: int | None
) -> tuple[int, str, tuple[Any, ...]]:
    """``(errno, message, remaining args)`` from either accepted constructor form."""
    if len(args) >= 2 and type(args[0]) is int and isinstance(args[1], str):
        if errno is not None:
            raise TypeError(f"{cls.__name__}() got errno twice")
        return args[0], args[1], args[2:]
    if args:
        message = args[0] if isinstance(args[0], str) else str(args[0])
        rest = args[1:]
    else:
        message, rest = cls.default_message, ()
    return (cls.default_errno if errno is None else errno), message, rest


def _rebuild(
    cls: type[IoQueueError], message: str, errno: int, kwargs: dict[str, Any]
) -> IoQueueError:
    """Unpickle helper: the keyword form keeps ``errno`` and ``completions`` exact."""
    return cls(message, errno=errno, **kwargs)
