"""``Completion``: the native class when the extension imports, else a pure-Python twin.

Both have the constructor ``Completion(user_data, result, error)``, the read-only fields
``user_data``, ``result`` (bytes transferred; 0 for sync and whenever ``error`` is set)
and ``error`` (an :class:`OSError` carrying ``errno``, or ``None``), and ``ok``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

from uringq._loader import NATIVE_IMPORT_ERROR

__all__ = ["Completion"]


class PyCompletion:
    """The result of one request (pure-Python twin of ``uringq._native.Completion``)."""

    __slots__ = ("error", "result", "user_data")

    user_data: Any
    result: int
    error: OSError | None

    def __init__(self, user_data: Any, result: int, error: OSError | None) -> None:
        _set_user_data(self, user_data)
        _set_result(self, result)
        _set_error(self, error)

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
        return (self.user_data, self.result, self.error) == (
            other.user_data,
            other.result,
            other.error,
        )

    def __hash__(self) -> int:
        return hash((self.user_data, self.result, self.error))

    def __repr__(self) -> str:
        return (
            f"Completion(user_data={self.user_data!r}, result={self.result}, error={self.error!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.user_data, self.result, self.error))


# The slot descriptors write the fields without going through the blocking __setattr__.
_set_user_data = PyCompletion.__dict__["user_data"].__set__
_set_result = PyCompletion.__dict__["result"].__set__
_set_error = PyCompletion.__dict__["error"].__set__

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
