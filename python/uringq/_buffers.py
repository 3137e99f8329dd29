"""``aligned_buffer``: page-aligned (or more) memory for ``O_DIRECT`` I/O."""

from __future__ import annotations

import ctypes
import mmap

from uringq import _checks

__all__ = ["aligned_buffer"]


def aligned_buffer(size: int, alignment: int = 4096) -> memoryview:
    """A writable buffer of exactly ``size`` bytes whose address is a multiple of ``alignment``.

    ``alignment`` must be a power of two (``ValueError`` otherwise); ``size`` may be 0.
    The memory is a private anonymous mapping, zero-filled, released when the last view
    of it goes away; it suits ``O_DIRECT`` reads and writes.
    """
    size = _checks.count(size, "size")
    alignment = _checks.count(alignment, "alignment", minimum=1)
    if alignment & (alignment - 1):
        raise ValueError(f"alignment must be a power of two, got {alignment}")
    page = mmap.PAGESIZE
    # mmap returns page-aligned memory; larger alignments need room to slide forward.
    length = -(-max(size, 1) // page) * page + max(alignment - page, 0)
    mapping = mmap.mmap(-1, length, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    skip = 0
    if alignment > page:
        anchor = ctypes.c_char.from_buffer(mapping)
        skip = -ctypes.addressof(anchor) % alignment
        del anchor  # release the export so only the returned view pins the mapping
    return memoryview(mapping)[skip : skip + size]
