"""The command line: ``python -m uringq bench [options]``: options, pinning, the data each
chosen section needs, the rounds, and the report."""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import re
import shutil
import sys
import tempfile

import uringq
from uringq.bench.aiofiles_style import aiofiles_specs
from uringq.bench.ceilings import CEILING_ENV, Ceilings, find_source_dir
from uringq.bench.data import (
    choose_size,
    fmt_size,
    make_small_files,
    make_text_file,
    parse_size,
    prepare_file,
    random_offsets,
    warm,
    warm_small_files,
)
from uringq.bench.direct import direct_specs, setup_direct
from uringq.bench.env import Env
from uringq.bench.queue_paths import CALL
from uringq.bench.report import FOOTNOTES, add_ratios, meta, plot, render_table, write_json
from uringq.bench.sections import CHOICES, DEFAULT_CHOICES, DIRECT
from uringq.bench.sequential import seq_specs
from uringq.bench.smallfiles import w2_specs
from uringq.bench.timing import MIB, W1_BLOCK, Progress, Spec, run_all
from uringq.bench.w1 import w1_specs

__all__ = ["main", "parser", "pin"]

TASKS = 64
DEFAULT_OPS = 1_000_000
QUICK_OPS = 20_000
DEFAULT_FILES = 20_000
QUICK_FILES = 300
BIG_SIZE = 256 * MIB  # aiofiles-style whole-file and read(4096) rows (--quick: 16 MiB)
TEXT_SIZE = 64 * MIB  # aiofiles-style lines (--quick: 2 MiB)
BIG_READS = 4  # whole-file reads per run


def _sections(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = ", ".join(repr(name) for name in names if name not in CHOICES)
    if unknown or not names:
        what = f"unknown section {unknown}" if unknown else f"no section in {text!r}"
        raise argparse.ArgumentTypeError(f"{what} (choose from {', '.join(CHOICES)})")
    return names


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m uringq bench",
        description="uringq against its baselines and peers; all claims are ratios in one run.",
        epilog=FOOTNOTES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = p.add_argument
    add(
        "--sections",
        type=_sections,
        metavar="LIST",
        help=f"comma-separated sections to run, from {', '.join(CHOICES)} "
        f"(default: {','.join(DEFAULT_CHOICES)})",
    )
    add("--all", action="store_true", help="every section")
    add("--direct", action="store_true", help="add O_DIRECT random reads (depth 1 vs 128)")
    add("--seq", action="store_true", help="add sequential 128 KiB reads and writes")
    add(
        "--quick",
        action="store_true",
        help="a short run (small files, few ops and files, one repeat)",
    )
    add(
        "--size",
        type=parse_size,
        help="W1 data file size, e.g. 256M (default 1G, "
        "shrunk to fit half the free disk and memory; --quick: 64M)",
    )
    add("--file", help="use this existing file for W1 instead of creating one")
    add(
        "--files",
        type=int,
        default=None,
        help=f"W2 file count (default {DEFAULT_FILES}; --quick {QUICK_FILES})",
    )
    add("--dir", default=None, help="where to create the data (default: $TMPDIR)")
    add(
        "--ops",
        type=int,
        default=None,
        help=f"base operation count per path (default {DEFAULT_OPS}; --quick {QUICK_OPS}); "
        "slow paths run a fraction of it",
    )
    add("--repeat", type=int, default=None, help="runs per path, best kept (default 3; --quick 1)")
    add("--tasks", type=int, default=TASKS, help="concurrent tasks in asyncio paths (default 64)")
    add("--batch", type=int, default=CALL, help=f"W1 read_many requests per call (default {CALL})")
    add(
        "--only",
        metavar="REGEX",
        help="run only the paths whose name matches (and each section's reference)",
    )
    add(
        "--ceiling-src",
        metavar="DIR",
        help="the directory with uring_ceiling.c and smallfiles_ceiling.c (default: benches/ "
        f"of the source checkout uringq runs from, or ${CEILING_ENV})",
    )
    add("--no-ceiling", action="store_true", help="do not build or run the C ceilings")
    add("--json", metavar="FILE", help="write every result (and the run's settings) as JSON")
    add("--plot", metavar="FILE.png", help="draw the ratios (needs matplotlib)")
    add(
        "--cpu",
        default="all",
        help="'all' (default: no pinning, as the SPEC's reference figures were taken), or pin "
        "the whole run (helper threads, SQPOLL threads and the C ceilings included) to one "
        "CPU: 'one' (the last CPU allowed) or a number",
    )
    add("--no-progress", action="store_true", help="no progress lines on stderr")
    return p  # fmt: skip


def pin(choice: str) -> str:
    """Apply ``--cpu``; returns a description for the report."""
    if choice == "all" or not hasattr(os, "sched_setaffinity"):
        return "not pinned"
    allowed = sorted(os.sched_getaffinity(0))
    if choice == "one":
        cpu = allowed[-1]
    else:
        try:
            cpu = int(choice)
        except ValueError:
            message = f"uringq bench: --cpu wants a number, 'one' or 'all', not {choice!r}"
            raise SystemExit(message) from None
        if cpu not in allowed:
            raise SystemExit(f"uringq bench: CPU {cpu} is not available (allowed: {allowed})")
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu}"


def chosen(args: argparse.Namespace) -> list[str]:
    """The ``--sections`` names to run, in report order."""
    names = set(CHOICES if args.all else args.sections or DEFAULT_CHOICES)
    names |= {"direct"} if args.direct else set()
    names |= {"seq"} if args.seq else set()
    return [name for name in CHOICES if name in names]


def _check_args(args: argparse.Namespace) -> str | None:
    """Fill in the --quick dependent defaults; the complaint about a bad option, if any."""
    if args.plot:
        try:
            importlib.import_module("matplotlib")
        except ImportError:
            return (
                "--plot needs matplotlib: pip install matplotlib (or pip install 'uringq[bench]')"
            )
    if args.ops is None:
        args.ops = QUICK_OPS if args.quick else DEFAULT_OPS
    if args.files is None:
        args.files = QUICK_FILES if args.quick else DEFAULT_FILES
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    for name in ("batch", "tasks", "ops", "files", "repeat"):
        if getattr(args, name) < 1:
            return f"--{name} must be positive"
    return None


def _prepare(
    env: Env, names: list[str], args: argparse.Namespace, progress: Progress
) -> tuple[str, str | None]:
    """Create and warm the data the sections need: its description, why W1's shrank."""
    described = []
    note = None
    directory = args.dir or tempfile.gettempdir()
    if {"w1", "direct", "seq"} & set(names):
        if args.file:
            env.path, env.size = args.file, os.path.getsize(args.file)
        else:
            env.size, note = choose_size(args.size, args.quick, directory)
            if note:
                progress.note(note)
            env.path = prepare_file(env.workdir, env.size, progress)
        env.offsets = random_offsets(env.size, W1_BLOCK, max(args.ops, 1000), seed=42)
        described.append(f"{fmt_size(env.size)} file")
    if {"w2", "aiofiles"} & set(names):
        env.small = make_small_files(os.path.join(env.workdir, "w2"), args.files, progress)
        described.append(f"{args.files} small files ({env.small.total / MIB:.0f} MiB)")
    if "aiofiles" in names:
        big = BIG_SIZE // 16 if args.quick else BIG_SIZE
        env.big_path = prepare_file(env.workdir, big, progress, what="large")
        text = TEXT_SIZE // 32 if args.quick else TEXT_SIZE
        env.text_path = make_text_file(env.workdir, text, progress)
        described.append(f"{fmt_size(big)} large file, {fmt_size(text)} text file")
    progress.show("syncing the new files")
    os.sync()  # no writeback of them during the timed runs
    for path in (env.path, env.big_path, env.text_path):
        if path:
            warm(path, progress)
    if env.small:
        warm_small_files(env.small, progress)
    return ", ".join(described), note


def _specs(
    names: list[str], env: Env, args: argparse.Namespace, progress: Progress
) -> tuple[list[Spec], dict[str, str]]:
    """The paths of the chosen sections, and the sections that could not be set up."""
    reasons: dict[str, str] = {}
    specs: list[Spec] = []
    for name in names:
        if name == "w1":
            specs += w1_specs()
        elif name == "w2":
            specs += w2_specs()
        elif name == "aiofiles":
            specs += aiofiles_specs(2 if args.quick else BIG_READS)
        elif name == "direct":
            reason = setup_direct(env, args.dir or tempfile.gettempdir(), progress)
            if reason:
                reasons[DIRECT] = reason
            specs += direct_specs()
        elif name == "seq":
            specs += seq_specs()
    if args.only:
        pattern = re.compile(args.only)
        specs = [s for s in specs if pattern.search(s.path) or s.reference]
    return specs, reasons


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    args = parser().parse_args(argv)
    complaint = _check_args(args)
    if complaint:
        print(f"uringq bench: {complaint}", file=sys.stderr)
        return 2
    names = chosen(args)
    pinned = pin(args.cpu)
    progress = Progress(0, enabled=not args.no_progress)
    workdir = tempfile.mkdtemp(prefix="uringq-bench-", dir=args.dir or tempfile.gettempdir())
    try:
        disabled = "--no-ceiling" if args.no_ceiling else None
        env = Env(
            workdir=workdir,
            tasks=args.tasks,
            repeat=args.repeat,
            batch=args.batch,
            quick=args.quick,
            base_ops=args.ops,
            ceilings=Ceilings(find_source_dir(args.ceiling_src), workdir, disabled),
        )
        data, size_note = _prepare(env, names, args, progress)
        specs, reasons = _specs(names, env, args, progress)
        results = run_all(specs, env, progress, reasons)
        progress.done()
        add_ratios(results, specs)
        print(
            f"uringq {uringq.__version__} bench: {data}, Python {sys.version.split()[0]}, "
            f"kernel {platform.release()}, {os.cpu_count()} CPUs ({pinned}), best of "
            f"{args.repeat}"
        )
        print(render_table(results))
        print()
        print(FOOTNOTES)
        if args.json:
            info = meta(
                env, args, cpu_affinity=pinned, sections=names, data=data, size_note=size_note
            )
            write_json(args.json, info, results)
        if args.plot:
            plot(results, args.plot)
            print(f"plot written to {args.plot}")
        return 0
    except KeyboardInterrupt:
        progress.done()
        print("uringq bench: interrupted", file=sys.stderr)
        return 130
    finally:
        progress.show("removing the data files")
        shutil.rmtree(workdir, ignore_errors=True)
        progress.done()
