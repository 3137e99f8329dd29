"""``python -m uringq bench``: uringq side by side with its baselines and peers (SPEC section 6).

Every claim is a ratio within one run, on the same data, in the same process. Sections
(``--sections``; default ``w1,w2,aiofiles``, ``--all`` for every one):

* ``w1`` (:mod:`.w1`, :mod:`.peers`): 4 KiB random reads of a cached file: uringq's batch,
  per-request and asyncio paths against an ``os.pread`` loop, ``run_in_executor``, the
  bare future round trip of each loop, caio, aiofile, aiofiles and ``uring_ceiling.c``;
* ``w2`` (:mod:`.smallfiles`): many small files read whole and written whole;
* ``aiofiles`` (:mod:`.aiofiles_style`): the same aiofiles-style code on ``uringq.aio``
  and on aiofiles;
* ``direct`` (:mod:`.direct`) and ``seq`` (:mod:`.sequential`): O_DIRECT random reads,
  sequential 128 KiB reads and writes.

How it measures is in :mod:`.timing` (rounds, windows, best of ``--repeat``), the C
ceilings in :mod:`.ceilings`, the table, ratios and JSON in :mod:`.report`, the options in
:mod:`.cli`. ``benches/README.md`` describes each section in full.
"""

from __future__ import annotations

from uringq.bench.cli import main
from uringq.bench.data import parse_size
from uringq.bench.report import add_ratios
from uringq.bench.sections import (
    AIOF_FILES,
    AIOF_LINES,
    AIOF_SEQ,
    AIOF_WHOLE,
    DIRECT,
    SEQ_READ,
    SEQ_WRITE,
    W1,
    W2_READ,
    W2_WRITE,
)
from uringq.bench.skips import Skip
from uringq.bench.timing import Result, Spec, Timing

__all__ = [
    "AIOF_FILES",
    "AIOF_LINES",
    "AIOF_SEQ",
    "AIOF_WHOLE",
    "DIRECT",
    "SEQ_READ",
    "SEQ_WRITE",
    "W1",
    "W2_READ",
    "W2_WRITE",
    "Result",
    "Skip",
    "Spec",
    "Timing",
    "add_ratios",
    "main",
    "parse_size",
]
