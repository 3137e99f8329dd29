"""A byte pattern derived from the file offset, in the style of IPRT's IoPerf.

The 8-byte little-endian word that starts at every multiple of 8 encodes its own word
index (mixed so that no byte is constant), so a block read from the wrong offset, a
shifted copy or a stale buffer never matches.
"""

from __future__ import annotations

import functools
from array import array

PATTERN_SPAN = 4 * 1024 * 1024  # offsets covered by pattern(); tests stay below this
_MIX = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1


@functools.cache
def _span() -> bytes:
    words = array("Q", ((i * _MIX + 0x5A5A) & _MASK for i in range(PATTERN_SPAN // 8)))
    if words.itemsize != 8:  # pragma: no cover - every Linux target has 8-byte 'Q'
        raise RuntimeError("array('Q') is not 8 bytes here")
    return words.tobytes()


def pattern(offset: int, size: int) -> bytes:
    """The bytes the pattern file holds at ``offset .. offset + size``."""
    if offset < 0 or offset + size > PATTERN_SPAN:
        raise ValueError(f"pattern covers 0..{PATTERN_SPAN}, asked {offset}+{size}")
    return _span()[offset : offset + size]


def write_pattern_file(path: str, size: int) -> None:
    """Create ``path`` holding ``pattern(0, size)``."""
    with open(path, "wb") as f:
        f.write(pattern(0, size))
