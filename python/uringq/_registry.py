"""The provider registry: which providers exist, in which order, and which one to use.

Preference order: providers registered with ``preferred=True`` (the most recent first),
then ``io_uring``, ``threadpool``, then other registered providers in registration
order. Probe results are cached per process (a forked child probes again). A probe that
raises counts as unavailable, with the exception as its reason.

``URINGQ_PROVIDER=<id>`` (read each time a provider is selected) forces a provider;
forcing an unknown or unavailable one raises :class:`~uringq.ProviderUnavailable`.
"""

from __future__ import annotations

import inspect
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from uringq._errors import ProviderUnavailable
from uringq.providers.io_uring import IoUringProvider
from uringq.providers.threadpool import ThreadPoolProvider

if TYPE_CHECKING:
    from uringq.providers import Provider

__all__ = [
    "ENV_VAR",
    "ProviderInfo",
    "best_provider",
    "get_provider",
    "providers",
    "register_provider",
    "resolve_provider",
    "unregister_provider",
]

ENV_VAR = "URINGQ_PROVIDER"
_BUILTIN = ("io_uring", "threadpool")
_C = TypeVar("_C")


@dataclass(frozen=True)
class ProviderInfo:
    """One provider as the registry sees it: identity, kind and availability here."""

    id: str
    handle_type: str
    native: bool
    available: bool
    reason: str | None
    provider_class: Provider = field(repr=False, compare=False)

    @property
    def validates_arguments(self) -> bool:
        """True if the provider's queue checks every per-request argument itself."""
        return bool(getattr(self.provider_class, "validates_arguments", False))


_lock = threading.Lock()
_order: list[Provider] = []  # preference order
_probes: dict[str, tuple[bool, str | None]] = {}  # id -> probe result, this process


def _forget_probes() -> None:
    _probes.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_probes)


def _probe(cls: Provider) -> tuple[bool, str | None]:
    cached = _probes.get(cls.id)
    if cached is not None:
        return cached
    try:
        result = cls.probe()
        ok, reason = result
        if ok is not True and ok is not False:
            raise TypeError(f"probe() must return (bool, str | None), got {result!r}")
        outcome = (True, None) if ok else (False, str(reason) if reason else "probe() said no")
    except Exception as exc:
        outcome = (False, f"{cls.id}.probe() raised {type(exc).__name__}: {exc}")
    _probes[cls.id] = outcome
    return outcome


def _info(cls: Provider) -> ProviderInfo:
    available, reason = _probe(cls)
    return ProviderInfo(cls.id, cls.handle_type, bool(cls.native), available, reason, cls)


def providers() -> list[ProviderInfo]:
    """Every registered provider, in preference order, with its availability here."""
    with _lock:
        order = list(_order)
    return [_info(cls) for cls in order]


def get_provider(id: str) -> ProviderInfo:
    """The provider registered as ``id``; :class:`LookupError` for an unknown id."""
    with _lock:
        for cls in _order:
            if cls.id == id:
                break
        else:
            known = ", ".join(c.id for c in _order)
            raise LookupError(f"no provider {id!r} (known: {known})")
    return _info(cls)


def best_provider(handle_type: str = "file") -> ProviderInfo:
    """The provider to use for ``handle_type``: ``$URINGQ_PROVIDER`` or the first available.

    Raises :class:`~uringq.ProviderUnavailable` if the forced provider is unknown,
    unavailable or for another handle type, or if no provider is available.
    """
    forced = os.environ.get(ENV_VAR)
    if forced:
        try:
            info = get_provider(forced)
        except LookupError as exc:
            raise ProviderUnavailable(f"{ENV_VAR}={forced}: {exc.args[0]}") from None
        if info.handle_type != handle_type:
            raise ProviderUnavailable(
                f"{ENV_VAR}={forced}: provider handles {info.handle_type!r}, not {handle_type!r}"
            )
        if not info.available:
            raise ProviderUnavailable(f"{ENV_VAR}={forced}: provider unavailable: {info.reason}")
        return info
    candidates = [info for info in providers() if info.handle_type == handle_type]
    for info in candidates:
        if info.available:
            return info
    reasons = "; ".join(f"{info.id}: {info.reason}" for info in candidates) or "none registered"
    raise ProviderUnavailable(f"no provider available for {handle_type!r} handles ({reasons})")


def resolve_provider(provider: str | ProviderInfo | None) -> ProviderInfo:
    """The available provider ``IoQueue(provider=...)`` asks for, or ProviderUnavailable."""
    if provider is None:
        return best_provider("file")
    if isinstance(provider, ProviderInfo):
        info = _info(provider.provider_class)
    elif isinstance(provider, str):
        info = get_provider(provider)
    else:
        raise TypeError(
            f"provider must be None, a provider id or a ProviderInfo, not {type(provider).__name__}"
        )
    if not info.available:
        raise ProviderUnavailable(f"provider {info.id!r} is unavailable: {info.reason}")
    return info


def register_provider(provider_class: _C, *, preferred: bool = False) -> _C:
    """Add a third-party provider (see :mod:`uringq.providers` for the protocol).

    It goes after the built-in providers, or before every other provider with
    ``preferred=True``. Returns the class, so this works as a decorator. A duplicate id
    raises :class:`ValueError`; a class that does not follow the protocol, :class:`TypeError`.
    """
    cls = _check_protocol(provider_class)
    with _lock:
        if any(known.id == cls.id for known in _order):
            raise ValueError(f"a provider with id {cls.id!r} is already registered")
        if preferred:
            _order.insert(0, cls)
        else:
            _order.append(cls)
        _probes.pop(cls.id, None)
    return provider_class


def unregister_provider(id: str) -> None:
    """Remove a third-party provider (``LookupError`` if unknown; built-ins stay)."""
    if id in _BUILTIN:
        raise ValueError(f"the built-in provider {id!r} cannot be unregistered")
    with _lock:
        for index, cls in enumerate(_order):
            if cls.id == id:
                del _order[index]
                _probes.pop(id, None)
                return
    raise LookupError(f"no provider {id!r}")


def _check_protocol(cls: Any) -> Provider:
    """``cls`` if it follows the provider protocol, else TypeError saying what is wrong."""
    provider: Provider = cls
    name = getattr(cls, "__name__", repr(cls))
    if not isinstance(cls, type):
        raise TypeError(f"a provider must be a class, not {type(cls).__name__}")
    for attr, kind in (("id", str), ("handle_type", str), ("native", bool)):
        value = getattr(cls, attr, None)
        if not isinstance(value, kind):
            raise TypeError(f"provider {name}.{attr} must be a {kind.__name__}, got {value!r}")
    if not provider.id:
        raise TypeError(f"provider {name}.id must not be empty")
    probe = inspect.getattr_static(cls, "probe", None)
    if not isinstance(probe, classmethod | staticmethod):
        raise TypeError(f"provider {name}.probe must be a classmethod returning (bool, str | None)")
    validates = getattr(cls, "validates_arguments", False)
    if not isinstance(validates, bool):
        raise TypeError(f"provider {name}.validates_arguments must be a bool, got {validates!r}")
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return provider  # no visible signature: trust the constructor
    try:
        signature.bind(128, 256)
    except TypeError:
        raise TypeError(
            f"provider {name}() must accept (sq_entries, cq_entries), its signature is {signature}"
        ) from None
    return provider


register_provider(IoUringProvider)
register_provider(ThreadPoolProvider)
