"""The C ceilings: ``benches/uring_ceiling.c`` (W1) and ``benches/smallfiles_ceiling.c`` (W2).

They are compiled at run time with ``cc -O2 ... -luring`` into the run's work directory (no
binary is kept) and run once per round; each prints one line of ``key=value`` figures.
The sources live in ``benches/`` of a source checkout, not in the installed package: from
a wheel, ``--ceiling-src DIR`` (or ``$URINGQ_CEILING_SRC``) points at them, else the C rows
are skipped with that reason. A failed build (no compiler, no ``liburing.h``) skips them too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from uringq.bench.env import Env
from uringq.bench.skips import Skip
from uringq.bench.timing import W1_BLOCK, Runner, Timing

__all__ = ["CEILING_ENV", "Ceilings", "find_source_dir", "smallfiles_runner", "uring_runner"]

CEILING_ENV = "URINGQ_CEILING_SRC"
PROGRAMS = ("uring_ceiling", "smallfiles_ceiling")
# python/uringq/bench/ceilings.py -> the checkout's benches/ (editable installs); in a
# wheel install this names a directory next to site-packages that does not exist.
_HERE = Path(__file__).resolve()
CHECKOUT_DIR = (_HERE.parents[3] if len(_HERE.parents) > 3 else _HERE.parent) / "benches"


def find_source_dir(explicit: str | None) -> Path | None:
    """The directory with the C sources: ``explicit``, ``$URINGQ_CEILING_SRC``, the checkout.

    A path to one of the files stands for its directory.
    """
    candidates = [Path(p) for p in (explicit, os.environ.get(CEILING_ENV)) if p]
    candidates.append(CHECKOUT_DIR)
    for candidate in candidates:
        directory = candidate.parent if candidate.is_file() else candidate
        if any((directory / f"{name}.c").is_file() for name in PROGRAMS):
            return directory
    return None


class Ceilings:
    """Builds each C program on first use and runs it at most once per key (round)."""

    def __init__(self, source_dir: Path | None, workdir: str, disabled: str | None = None):
        self.source_dir = source_dir
        self.workdir = workdir
        self.disabled = disabled
        self.binaries: dict[str, str] = {}
        self.reasons: dict[str, str] = {}
        self.cache: dict[tuple[object, ...], dict[str, float]] = {}

    def binary(self, name: str) -> str:
        """The compiled ``name`` (e.g. ``"uring_ceiling"``), or :class:`Skip` saying why not."""
        if name not in self.binaries and name not in self.reasons:
            reason = self._build(name)
            if reason is not None:
                self.reasons[name] = reason
        if name in self.reasons:
            raise Skip(self.reasons[name])
        return self.binaries[name]

    def _build(self, name: str) -> str | None:
        if self.disabled:
            return self.disabled
        source = self.source_dir / f"{name}.c" if self.source_dir else None
        if source is None or not source.is_file():
            return (
                f"{name}.c not found: the C ceilings live in benches/ of a uringq source "
                f"checkout, not in the installed package (pass --ceiling-src DIR or set "
                f"{CEILING_ENV})"
            )
        compiler = shutil.which(os.environ.get("CC", "cc"))
        if compiler is None:
            return f"no C compiler (cc) to build {name}.c"
        binary = os.path.join(self.workdir, name)
        proc = subprocess.run(
            [compiler, "-O2", "-o", binary, str(source), "-luring"],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines()
            hint = (
                " (liburing.h missing: apt-get install liburing-dev)"
                if "liburing" in proc.stderr
                else ""
            )
            return f"building {name}.c failed{hint}: {lines[-1] if lines else '?'}"
        self.binaries[name] = binary
        return None

    def run(self, name: str, args: list[str], key: tuple[object, ...]) -> dict[str, float]:
        """The figures ``name`` prints for ``args`` (one run per ``key``)."""
        cached = self.cache.get((name, *key))
        if cached is not None:
            return cached
        proc = subprocess.run(
            [self.binary(name), *args], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise Skip(f"{name} failed: {(proc.stderr or proc.stdout).strip()}")
        figures = {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", proc.stdout)}
        self.cache[(name, *key)] = figures
        return figures

    def status(self) -> dict[str, str]:
        """For the JSON: each program "built", its skip reason, or "not used"."""
        return {
            name: "built"
            if name in self.binaries
            else self.reasons.get(name, self.disabled or "not used")
            for name in PROGRAMS
        }


def uring_runner(depth: int, figure: str) -> Runner:
    """A W1 row from ``uring_ceiling``'s ``figure`` (``pread_ops_s`` or ``uring_ops_s``).

    The program reads the offsets the Python paths read (written once to a file).
    """

    def run(env: Env, n: int) -> Timing:
        n = min(n, len(env.offsets))
        if env.offsets_file is None:
            env.offsets_file = os.path.join(env.workdir, "w1-offsets.bin")
            with open(env.offsets_file, "wb") as f:
                env.offsets.tofile(f)
        args = [env.path, str(n), str(depth), str(W1_BLOCK), env.offsets_file]
        figures = env.ceilings.run("uring_ceiling", args, key=(depth, n, env.round))
        return Timing(n / figures[figure], n, [])

    return run


def smallfiles_runner(inflight: int, figure: str) -> Runner:
    """A W2 row from ``smallfiles_ceiling``'s ``figure``: ``loop_files_s``/``uring_files_s``
    (reused buffers, nothing kept) or ``loop_keep_files_s``/``uring_keep_files_s`` (each
    file kept in a buffer of its size, as ``read_files`` keeps ``bytes``).

    The program reads every W2 file (the list the Python rows read) once per way and mode;
    one run per round gives every figure of its ``inflight``.
    """

    def run(env: Env, n: int) -> Timing:
        small = env.small
        if small is None:
            raise Skip("the W2 files were not created")
        args = [small.list_file, str(inflight)]
        figures = env.ceilings.run("smallfiles_ceiling", args, key=(inflight, env.round))
        files = len(small.paths)
        if figures.get("files") != files or figures.get("bytes") != small.total:
            raise RuntimeError(f"smallfiles_ceiling read {figures}, not {files} files")
        return Timing(files / figures[figure], files, [], nbytes=small.total)

    return run
