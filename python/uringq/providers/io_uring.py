"""The ``io_uring`` provider: a thin adapter over the Rust extension ``uringq._native``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from uringq import _inline_files
from uringq._loader import NATIVE_IMPORT_ERROR

if TYPE_CHECKING:
    from typing_extensions import Buffer

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

    @staticmethod
    def read_files(paths: list[Any], *, dir_fd: int | None, return_exceptions: bool) -> list[Any]:
        """``uringq.read_files``: one linked chain per file in the kernel (the pure-Python
        loop on a kernel without OPENAT/CLOSE)."""
        from uringq import _native

        read = _native.read_files if _native.whole_files_mode() else _inline_files.read_files
        return read(paths, dir_fd=dir_fd, return_exceptions=return_exceptions)

    @staticmethod
    def write_files(
        paths: list[Any],
        data: list[Buffer],
        *,
        mode: int,
        fsync: bool,
        dir_fd: int | None,
        return_exceptions: bool,
    ) -> list[Any]:
        """``uringq.write_files``: one linked chain per file in the kernel."""
        from uringq import _native

        write = _native.write_files if _native.whole_files_mode() else _inline_files.write_files
        return write(
            paths, data, mode=mode, fsync=fsync, dir_fd=dir_fd, return_exceptions=return_exceptions
        )
