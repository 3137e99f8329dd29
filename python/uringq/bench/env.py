"""What the paths of one run share: the data files, the settings and the C ceilings."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from uringq.bench.ceilings import Ceilings

__all__ = ["Env", "SmallFiles"]


@dataclass
class SmallFiles:
    """The W2 file set: every path (as the Python rows open it) and its size."""

    directory: str
    paths: list[str]
    sizes: list[int]
    list_file: str  # the paths, one a line, for smallfiles_ceiling.c
    contents_seed: int  # write rows draw their data from the same generator

    @property
    def total(self) -> int:
        return sum(self.sizes)


@dataclass
class Env:
    """The settings of the run and the data its sections need (created per section)."""

    workdir: str
    tasks: int
    repeat: int
    batch: int
    quick: bool
    base_ops: int
    ceilings: Ceilings
    path: str = ""  # the W1 data file (empty when no section reads it)
    size: int = 0
    offsets: array[int] = field(default_factory=lambda: array("q"))  # W1, the longest run's
    offsets_file: str | None = None  # the same offsets, for uring_ceiling.c
    direct_path: str | None = None
    direct_offsets: array[int] | None = None
    small: SmallFiles | None = None  # W2 and the aiofiles-style W2 rows
    big_path: str | None = None  # aiofiles-style whole-file and read(4096) rows
    text_path: str | None = None  # aiofiles-style line iteration
    round: int = 0  # which round of the repeats is running
