"""Timing and rounds: what a path is (:class:`Spec`), what one run of it gives
(:class:`Timing`), what the report keeps (:class:`Result`), and :func:`run_all`, which runs
every path once per round and keeps each path's best run."""

from __future__ import annotations

import ctypes
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from uringq.bench.env import Env
from uringq.bench.sections import section as section_of
from uringq.bench.skips import Skip, provider_reason

__all__ = [
    "KIB",
    "MIB",
    "W1_BLOCK",
    "WINDOW",
    "Progress",
    "Result",
    "Runner",
    "Spec",
    "Timing",
    "Windows",
    "percentile",
    "release_free_memory",
    "run_all",
    "windowed",
    "windows_from_stamps",
]

KIB = 1024
MIB = 1024 * KIB
W1_BLOCK = 4 * KIB
WINDOW = 1024  # operations per latency window in loops


@dataclass
class Timing:
    """One run of one path: elapsed seconds, operations, per-op seconds of each window.

    ``nbytes`` is the data moved, where it is not ``ops`` times the path's block (W2
    files, lines of text).
    """

    seconds: float
    ops: int
    windows: list[float]
    nbytes: int | None = None


@dataclass
class Result:
    """One path of one section: what ran, how fast, and its ratios."""

    section: str
    path: str
    group: str  # uringq | baseline | peer | ceiling
    ops: int = 0
    seconds: float = 0.0
    ops_s: float = 0.0
    mb_s: float = 0.0
    p50_us: float | None = None
    p99_us: float | None = None
    ratio_pread: float | None = None  # to the section's reference row (os.pread in W1)
    ratio_c: float | None = None  # to C io_uring (W1) or the C chain keeping results (W2)
    ratio_c_reuse: float | None = None  # W2: to the C chain reusing its buffers
    runs_ops_s: list[float] = field(default_factory=list)
    skipped: str | None = None
    note: str | None = None
    unit: str = "ops/s"  # what ops_s counts: ops, files, reads, lines
    ratio_bare: float | None = None  # asyncio paths: to the bare round trip of their loop
    ratio_aiofiles: float | None = None  # aiofiles-style: to the same code on aiofiles
    reference: bool = False  # the section's reference row (its ratio_pread is 1.0)


Runner = Callable[[Env, int], Timing]


@dataclass
class Spec:
    """A path to measure: its section, name, op count and how to run it."""

    section: str
    path: str
    group: str
    weight: float  # fraction of the basis this path runs (see ``count``)
    run: Runner
    block: int = W1_BLOCK  # bytes per op, for MB/s (unless the Timing says ``nbytes``)
    reference: bool = False
    note: str | None = None
    # io_uring depth: on a C io_uring row, the depth it ran at; on a batch row, the C
    # row its "x C" ratio compares with.
    c_depth: int | None = None
    # A C row that reuses its buffers and keeps no result (W2): the anchor of the
    # section's second ceiling column, not of the first.
    c_reuse: bool = False
    loop: str | None = None  # asyncio paths: the loop ("asyncio" or "uvloop")
    anchor: str | None = None  # "bare" (the loop's bare round trip) or "aiofiles"
    provider: str | None = None  # the uringq provider this path needs
    basis: str = "ops"  # ops: --ops; files: the W2 file count; fixed: ``weight`` ops

    def count(self, env: Env) -> int:
        """How many operations one run of this path does."""
        if self.basis == "fixed":
            return max(1, int(self.weight))
        if self.basis == "files":
            total = len(env.small.paths) if env.small is not None else 0
            return min(total, max(100, int(total * self.weight)))
        return max(200 if env.quick else 1000, int(env.base_ops * self.weight))


class Progress:
    """One line on stderr: ``[ 3/21 0:42] path ... round 2/3`` (the time since the start;
    rewritten in place on a tty)."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.total = total
        self.count = 0
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.width = 0
        self.start = time.monotonic()

    def step(self, label: str) -> None:
        self.count += 1
        minutes, seconds = divmod(int(time.monotonic() - self.start), 60)
        self.show(f"[{self.count:2d}/{self.total} {minutes}:{seconds:02d}] {label}")

    def show(self, text: str) -> None:
        if not self.enabled:
            return
        if self.tty:
            pad = max(0, self.width - len(text))
            sys.stderr.write("\r" + text + " " * pad)
            self.width = len(text)
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def note(self, text: str) -> None:
        if not self.enabled:
            return
        self.done()
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self.tty and self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()
            self.width = 0


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


def windows_from_stamps(
    start: float, stamps: Sequence[float], counts: Sequence[int]
) -> list[float]:
    """Per-op seconds of each window, from the time stamp and op count at its end."""
    windows = []
    previous = start
    for stamp, count in zip(stamps, counts, strict=True):
        if count:
            windows.append((stamp - previous) / count)
        previous = stamp
    return windows


class Windows:
    """Stamps taken at the end of each window of ops; started when created."""

    def __init__(self) -> None:
        self.stamps: list[float] = []
        self.counts: list[int] = []
        self.start = time.perf_counter()

    def mark(self, count: int) -> None:
        """A window of ``count`` ops ends now."""
        self.stamps.append(time.perf_counter())
        self.counts.append(count)

    def timing(self, ops: int) -> Timing:
        """The run: from the start to the last stamp (or now), with per-op windows."""
        end = self.stamps[-1] if self.stamps else time.perf_counter()
        return Timing(
            end - self.start, ops, windows_from_stamps(self.start, self.stamps, self.counts)
        )


def windowed(n: int, chunk: Callable[[int, int], object]) -> Timing:
    """Times ``chunk(i, j)`` over ``range(n)`` in windows of WINDOW ops.

    ``chunk`` runs ops ``i`` to ``j - 1`` in its own inner loop, so the per-op cost of
    the loop being measured stays what it is; a stamp is taken after each window.
    """
    windows = Windows()
    for i in range(0, n, WINDOW):
        j = min(n, i + WINDOW)
        chunk(i, j)
        windows.mark(j - i)
    return windows.timing(n)


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None
    return trim


_MALLOC_TRIM = _find_malloc_trim()


def release_free_memory() -> bool:
    """Gives the C allocator's free memory back to the kernel (glibc ``malloc_trim(0)``).

    Run before each path: results (W2's 20 000 ``bytes`` a round) then land on fresh pages
    whatever the paths before left behind, so every path pays the same first-touch page
    faults (about two a W2 file, a large part of its cost on a VM), as the C ceilings do
    in their new process. Without it a path whose predecessor left an allocation on top
    of its freed results reuses them without faults (measured: 1.1 against 2.0 faults a
    file). False where the C library has no ``malloc_trim``.
    """
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True


def _unit_word(unit: str) -> str:
    return unit.removesuffix("/s")


def run_all(
    specs: list[Spec],
    env: Env,
    progress: Progress,
    section_reasons: dict[str, str] | None = None,
) -> list[Result]:
    """Runs every path ``env.repeat`` times, in rounds: round ``r`` runs each path once.

    Interleaving the repeats spreads slow phases of the machine over every path instead
    of one path's whole series, so the ratios of one run hold better. A path keeps its
    best run. Each run starts with the allocator's free memory released
    (:func:`release_free_memory`). ``section_reasons`` skips whole sections (why they
    could not be set up).
    """
    reasons = section_reasons or {}
    results = []
    for spec in specs:
        unit = section_of(spec.section).unit
        result = Result(
            spec.section, spec.path, spec.group, note=spec.note, unit=unit, reference=spec.reference
        )
        result.skipped = reasons.get(spec.section) or (
            provider_reason(spec.provider) if spec.provider else None
        )
        results.append(result)
    best: list[Timing | None] = [None] * len(specs)
    progress.total = env.repeat * sum(1 for r in results if not r.skipped)
    for round_no in range(env.repeat):
        env.round = round_no
        for i, spec in enumerate(specs):
            result = results[i]
            if result.skipped:
                continue
            n = spec.count(env)
            label = f"{spec.path} ({n} {_unit_word(result.unit)})"
            progress.step(
                label if env.repeat == 1 else f"{label} round {round_no + 1}/{env.repeat}"
            )
            release_free_memory()
            try:
                timing = spec.run(env, n)
            except Skip as exc:
                result.skipped = str(exc)
            except Exception as exc:  # a broken peer must not end the whole run
                result.skipped = f"failed: {type(exc).__name__}: {exc}"
            if result.skipped:
                progress.total -= env.repeat - round_no - 1  # its later rounds do not run
                continue
            result.runs_ops_s.append(timing.ops / timing.seconds)
            kept = best[i]
            if kept is None or timing.ops / timing.seconds > kept.ops / kept.seconds:
                best[i] = timing
    for spec, result, kept in zip(specs, results, best, strict=True):
        if result.skipped or kept is None:
            continue
        result.ops = kept.ops
        result.seconds = kept.seconds
        result.ops_s = kept.ops / kept.seconds
        nbytes = kept.nbytes if kept.nbytes is not None else kept.ops * spec.block
        result.mb_s = nbytes / kept.seconds / MIB
        if kept.windows:
            result.p50_us = percentile(kept.windows, 0.50) * 1e6
            result.p99_us = percentile(kept.windows, 0.99) * 1e6
    return results
