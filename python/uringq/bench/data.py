"""The data the sections read, created in the run's work directory and warmed into the
page cache: the W1 file, the W2 small files, a large file and a text file."""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import shutil
import tempfile
from array import array

from uringq.bench.env import SmallFiles
from uringq.bench.timing import KIB, MIB, Progress

__all__ = [
    "GIB",
    "choose_size",
    "fmt_size",
    "make_small_files",
    "make_text_file",
    "parse_size",
    "prepare_file",
    "random_offsets",
    "warm",
    "warm_small_files",
]

GIB = 1024 * MIB
DEFAULT_SIZE = GIB
QUICK_SIZE = 64 * MIB
SMALL_MIN = 4 * KIB  # W2 file sizes, uniform in [SMALL_MIN, SMALL_MAX]
SMALL_MAX = 12 * KIB
SMALL_SEED = 2

_UNITS = {"": 1, "K": KIB, "M": MIB, "G": GIB, "T": 1024 * GIB}


def parse_size(text: str) -> int:
    """``"256M"`` -> bytes (K, M, G, T are powers of 1024; an optional ``iB``/``B``)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", text.upper())
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 8M, 256M, 1G)")
    value = float(match.group(1)) * _UNITS[match.group(2)]
    if value < 1:
        raise argparse.ArgumentTypeError(f"size must be positive: {text!r}")
    return int(value)


def fmt_size(n: int) -> str:
    for unit, scale in (("G", GIB), ("M", MIB), ("K", KIB)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return f"{n}B"


def _mem_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * KIB
    except OSError:
        pass
    return None


def choose_size(requested: int | None, quick: bool, directory: str) -> tuple[int, str | None]:
    """The W1 file size: the request, or the default shrunk to what disk and memory allow."""
    if requested is not None:
        return requested, None
    size = QUICK_SIZE if quick else DEFAULT_SIZE
    free = shutil.disk_usage(directory).free
    available = _mem_available()
    while size > 16 * MIB and (
        size > free // 2 or (available is not None and size > available // 2)
    ):
        size //= 2
    if size < (QUICK_SIZE if quick else DEFAULT_SIZE):
        return size, (
            f"data file shrunk to {fmt_size(size)} (free disk {free // MIB} MiB, available "
            f"memory {'?' if available is None else available // MIB} MiB)"
        )
    return size, None


def prepare_file(directory: str, size: int, progress: Progress, what: str = "data") -> str:
    """A new file of ``size`` random-ish bytes in ``directory`` (the caller deletes it)."""
    fd, path = tempfile.mkstemp(prefix=f"uringq-bench-{what}-", suffix=".dat", dir=directory)
    try:
        chunk = random.Random(1).randbytes(MIB)
        written = 0
        while written < size:
            n = min(MIB, size - written)
            # Vary each chunk a little so that no two blocks are identical.
            piece = written.to_bytes(8, "little") + chunk[8:n] if n >= 8 else chunk[:n]
            os.pwrite(fd, piece, written)
            written += n
            if written % (64 * MIB) == 0:
                progress.show(f"creating {fmt_size(size)} {what} file: {written * 100 // size}%")
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)
    return path


def warm(path: str, progress: Progress) -> None:
    """Read the whole file once so that it is read from the page cache afterwards."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        with contextlib.suppress(AttributeError, OSError):
            os.posix_fadvise(fd, 0, size, os.POSIX_FADV_WILLNEED)
        buf = bytearray(4 * MIB)
        offset = 0
        while offset < size:
            n = os.preadv(fd, [buf], offset)
            if n <= 0:
                break
            offset += n
            if offset % (256 * MIB) < 4 * MIB:
                progress.show(f"warming the page cache: {offset * 100 // size}%")
    finally:
        os.close(fd)


def random_offsets(size: int, block: int, count: int, seed: int) -> array[int]:
    blocks = size // block
    if blocks < 1:
        raise SystemExit(f"the data file ({size} bytes) is smaller than one {block}-byte block")
    rng = random.Random(seed)
    return array("q", [rng.randrange(blocks) * block for _ in range(count)])


def small_contents(rng: random.Random, sizes: list[int]) -> list[bytes]:
    """Contents for files of ``sizes``: slices of one random pool, each with its own prefix."""
    pool = rng.randbytes(SMALL_MAX + 4 * KIB)
    out = []
    for i, size in enumerate(sizes):
        start = rng.randrange(4 * KIB)
        out.append(i.to_bytes(8, "little") + pool[start + 8 : start + size])
    return out


def make_small_files(directory: str, count: int, progress: Progress) -> SmallFiles:
    """``count`` files of 4-12 KiB (uniform sizes, fixed seed) in ``directory``, synced."""
    os.makedirs(directory)
    rng = random.Random(SMALL_SEED)
    sizes = [rng.randint(SMALL_MIN, SMALL_MAX) for _ in range(count)]
    paths = [os.path.join(directory, f"f{i:06d}") for i in range(count)]
    for i, (path, data) in enumerate(zip(paths, small_contents(rng, sizes), strict=True)):
        with open(path, "wb") as f:
            f.write(data)
        if i % 2000 == 0:
            progress.show(f"creating {count} small files: {i * 100 // count}%")
    list_file = os.path.join(os.path.dirname(directory), "smallfiles.txt")
    with open(list_file, "w") as f:
        f.write("".join(p + "\n" for p in paths))
    return SmallFiles(directory, paths, sizes, list_file, contents_seed=SMALL_SEED + 1)


def warm_small_files(small: SmallFiles, progress: Progress) -> None:
    """Read every file once (pages and dentries cached) and check its size."""
    progress.show(f"warming {len(small.paths)} small files")
    for path, size in zip(small.paths, small.sizes, strict=True):
        with open(path, "rb") as f:
            if len(f.read()) != size:
                raise RuntimeError(f"{path}: not {size} bytes after writing")


def make_text_file(directory: str, size: int, progress: Progress) -> str:
    """A text file of about ``size`` bytes of numbered lines, 10-120 characters each."""
    rng = random.Random(5)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choices(letters, k=rng.randint(1, 9))) for _ in range(2000)]
    pool = [" ".join(rng.choices(words, k=rng.randint(1, 20))) for _ in range(5000)]
    path = os.path.join(directory, "uringq-bench-text.txt")
    progress.show(f"creating {fmt_size(size)} text file")
    written = 0
    number = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < size:
            lines = [f"{number + k} {pool[(number + k) % len(pool)]}\n" for k in range(4096)]
            number += len(lines)
            chunk = "".join(lines)
            f.write(chunk)
            written += len(chunk)
    return path
