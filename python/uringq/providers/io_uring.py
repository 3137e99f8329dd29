"""The ``io_uring`` provider: a thin adapter over the Rust extension ``uringq._native``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from uringq._loader import NATIVE_IMPORT_ERROR

if TYPE_CHECKING:
    from uringq._native import NativeQueue

__all__ = ["IoUringProvider"]


class IoUringProvider:
    """io_uring with registered files, run by ``uringq._native.NativeQueue``.

    ``NativeQueue`` checks every per-request argument itself, pins buffers while the
    kernel may use them and releases the GIL in every blocking call.
    """

    id = "io_uring"
    handle_type = "file"
    native = True
    validates_arguments = True

    @classmethod
    def probe(cls) -> tuple[bool, str | None]:
        """io_uring usable here? The reason names the failing call and the likely cause."""
        if NATIVE_IMPORT_ERROR is not None:
            return False, NATIVE_IMPORT_ERROR
        from uringq import _native

        return _native.probe()

    def __new__(cls, sq_entries: int, cq_entries: int) -> NativeQueue:  # type: ignore[misc]
        from uringq import _native

        return _native.NativeQueue(sq_entries, cq_entries)
