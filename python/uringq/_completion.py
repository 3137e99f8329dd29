"""``Completion``: the native class when the extension imports, else a pure-Python twin.

Both have the constructor ``Completion(user_data, result, error, stat=None)``, the
read-only fields ``user_data``, ``result`` (bytes transferred, the new fd of an open; 0
for other operations and whenever ``error`` is set), ``error`` (an :class:`OSError`
carrying ``errno``, or ``None``) and ``stat`` (the :class:`os.stat_result` of a statx
request, else ``None``), and ``ok``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, NoReturn

from uringq._loader import NATIVE_IMPORT_ERROR

__all__ = ["Completion"]


class PyCompletion:
    """The result of one request (pure-Python twin of ``uringq._native.Completion``)."""

    __slots__ = ("error", "result", "stat", "user_data")

    user_data: Any
    result: int
    error: OSError | None
    stat: os.stat_result | None

    def __init__(
        self,
        user_data: Any,
        result: int,
        error: OSError | None,
        stat: os.stat_result | None = None,
    ) -> None:
        _set_user_data(self, user_data)
        _set_result(self, result)
        _set_error(self, error)
        _set_stat(self, stat)

    @property
    def ok(self) -> bool:
        """True when the request succeeded (``error is None``)."""
        return self.error is None

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError(f"Completion is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"Completion is immutable (cannot delete {name!r})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PyCompletion):
            return NotImplemented
        return (self.user_data, self.result, self.error, self.stat) == (
            other.user_data,
            other.result,
            other.error,
            other.stat,
        )

    def __hash__(self) -> int:
        return hash((self.user_data, self.result, self.error, self.stat))

    def __repr__(self) -> str:
        stat = "" if self.stat is None else f", stat={self.stat!r}"
        return (
            f"Completion(user_data={self.user_data!r}, result={self.result},"
            f" error={self.error!r}{stat})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.user_data, self.result, self.error, self.stat))


# The slot descriptors write the fields without going through the blocking __setattr__.
_set_user_data = PyCompletion.__dict__["user_data"].__set__
_set_result = PyCompletion.__dict__["result"].__set__
_set_error = PyCompletion.__dict__["error"].__set__
_set_stat = PyCompletion.__dict__["stat"].__set__

if TYPE_CHECKING or NATIVE_IMPORT_ERROR is None:
    from uringq._native import Completion
else:
    Completion = PyCompletion
    # The public name, so that reprs, docs and pickles say uringq.Completion.
    Completion.__module__, Completion.__name__, Completion.__qualname__ = (
        "uringq",
        "Completion",
        "Completion",
    )
