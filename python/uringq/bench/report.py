"""The report: ratios within one run, the table, the JSON and the plot."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from dataclasses import asdict
from typing import Any

import uringq
from uringq.bench.env import Env
from uringq.bench.sections import section as section_of
from uringq.bench.timing import Result, Spec

__all__ = ["FOOTNOTES", "add_ratios", "meta", "plot", "render_table", "write_json"]

FOOTNOTES = """\
ops/s (files/s, reads/s, lines/s), MB/s: best of the repeats. p50/p99: time per operation
within windows (1024 ops for loops and per-request paths, one call for read_many (--batch
requests), 5 ms for asyncio tasks); a request at depth D is in flight about D times that;
"-" where a path is one call (read_files, write_files) or runs in C.
x pread (x preadv, x pwrite, x open().read(), x open().write(), x builtin): ratio to the
reference loop of the same section. x C: W1, ratio to C io_uring (uring_ceiling.c: the same
offsets, registered file and buffers) at the same depth for read_many, to the better C
io_uring figure for every other path; x C chain: W2, ratio to the better C io_uring chain
figure (smallfiles_ceiling.c) keeping each file in a malloc'd buffer of its size, as
read_files and every Python row keep theirs (fresh memory: a page fault per 4 KiB); x C
reuse: to the better chain reading into reused buffers and keeping nothing. x bare: an
asyncio path against the bare future round trip of its own loop (no I/O; the ceiling of
any asyncio API). x aiofiles: the same code on aiofiles.
Repeats run in rounds (each path once per round), so slow phases hit every path alike.
Not pinned by default, like the SPEC's reference figures; with --cpu one, helper threads
(run_in_executor, caio's thread backends, the threadpool provider) and caio linux_uring's
SQPOLL kernel thread share the one CPU, which halves caio linux_uring and doubles
run_in_executor."""


def add_ratios(results: list[Result], specs: list[Spec]) -> None:
    """Fill in every ratio of ``results`` from the anchors of its section in this run."""
    by_key = {(r.section, r.path): r for r in results}

    def rate(spec: Spec) -> float | None:
        result = by_key[(spec.section, spec.path)]
        return None if result.skipped or not result.ops_s else result.ops_s

    for title in dict.fromkeys(spec.section for spec in specs):
        mine = [spec for spec in specs if spec.section == title]
        reference = next((rate(s) for s in mine if s.reference), None)
        c_by_depth = {
            s.c_depth: r
            for s in mine
            if s.group == "ceiling" and s.c_depth is not None and not s.c_reuse and (r := rate(s))
        }
        c_best = max(c_by_depth.values()) if c_by_depth else None
        reuse = [
            r
            for s in mine
            if s.group == "ceiling" and s.c_depth is not None and s.c_reuse and (r := rate(s))
        ]
        c_reuse_best = max(reuse) if reuse else None
        bare = {s.loop: r for s in mine if s.anchor == "bare" and (r := rate(s))}
        aiofiles = next((rate(s) for s in mine if s.anchor == "aiofiles"), None)
        for spec in mine:
            result = by_key[(spec.section, spec.path)]
            if result.skipped or not result.ops_s:
                continue
            ops_s = result.ops_s
            if reference:
                result.ratio_pread = ops_s / reference
            if c_best:
                # The batch API against C at its own depth (the same work); the rest
                # against the better C figure.
                depth = spec.c_depth if spec.group != "ceiling" else None
                c_same = c_by_depth.get(depth) if depth is not None else None
                result.ratio_c = ops_s / (c_same or c_best)
            if c_reuse_best:
                result.ratio_c_reuse = ops_s / c_reuse_best
            if spec.loop in bare:
                result.ratio_bare = ops_s / bare[spec.loop]
            if aiofiles:
                result.ratio_aiofiles = ops_s / aiofiles


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    if digits == 0 or value >= 10_000:  # e.g. a whole 256 MiB read: microseconds, no decimals
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def render_table(results: list[Result]) -> str:
    """One table per section: rate, MB/s, p50/p99 and the section's ratio columns."""
    lines: list[str] = []
    width = max([len(r.path) for r in results] + [len("path")])
    for title in dict.fromkeys(r.section for r in results):
        sec = section_of(title)
        columns: list[tuple[str, str]] = [("ratio_pread", sec.reference)]
        if sec.ceiling:
            columns.append(("ratio_c", sec.ceiling))
        if sec.ceiling_reuse:
            columns.append(("ratio_c_reuse", sec.ceiling_reuse))
        if sec.bare:
            columns.append(("ratio_bare", "x bare"))
        if sec.aiofiles:
            columns.append(("ratio_aiofiles", "x aiofiles"))
        header = ["path", sec.unit, "MB/s", "p50 us", "p99 us", *(label for _, label in columns)]
        widths = [width, 11, 8, 7, 7, *(max(7, len(label)) for _, label in columns)]

        def row(cells: list[str], widths: list[int] = widths) -> str:
            first = cells[0].ljust(widths[0])
            return "  ".join(
                [first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))]
            )

        lines += ["", f"== {title}", row(header), row(["-" * len(h) for h in header])]
        for r in results:
            if r.section != title or r.skipped:
                continue
            ratios = [_num(getattr(r, field), 2) for field, _ in columns]
            cells = [r.path, _num(r.ops_s), _num(r.mb_s, 1), _num(r.p50_us, 2), _num(r.p99_us, 2)]
            lines.append(row(cells + ratios))
    skipped = [r for r in results if r.skipped]
    if skipped:
        lines += ["", "skipped:"]
        lines += [f"  {r.path}: {r.skipped}" for r in skipped]
    return "\n".join(lines)


def plot(results: list[Result], filename: str) -> None:
    """Bars of each section's ratios to its reference row (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in results if not r.skipped and r.ratio_pread is not None]
    sections = list(dict.fromkeys(r.section for r in shown))
    heights = [sum(1 for r in shown if r.section == s) for s in sections]
    fig, axes = plt.subplots(
        len(sections),
        1,
        figsize=(10, 1.2 + 0.32 * sum(heights) + 0.8 * len(sections)),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    colors = {"uringq": "#1f77b4", "baseline": "#7f7f7f", "peer": "#ff7f0e", "ceiling": "#2ca02c"}
    for ax, title in zip(axes[:, 0], sections, strict=True):
        rows = [r for r in shown if r.section == title][::-1]
        values = [r.ratio_pread or 0.0 for r in rows]
        ax.barh([r.path for r in rows], values, color=[colors.get(r.group, "#333") for r in rows])
        ax.axvline(1.0, color="black", linewidth=0.8)
        for y, value in enumerate(values):
            ax.text(value, y, f" {value:.2f}", va="center", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(
            "ratio to the reference loop of the section (gray, 1.0); higher is faster", fontsize=8
        )
        ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    fig.savefig(filename, dpi=120)
    plt.close(fig)


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


def meta(env: Env, args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    """The run's settings and machine, for the JSON."""
    status = env.ceilings.status()
    return {
        "uringq": uringq.__version__,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "cpu": _cpu_model(),
        "file_size": env.size or None,
        "file": env.path or None,
        "base_ops": args.ops,
        "repeat": env.repeat,
        "tasks": env.tasks,
        "batch": env.batch,
        "quick": env.quick,
        "small_files": len(env.small.paths) if env.small else None,
        "small_bytes": env.small.total if env.small else None,
        "big_file_size": os.path.getsize(env.big_path) if env.big_path else None,
        "text_file_size": os.path.getsize(env.text_path) if env.text_path else None,
        "ceiling": status["uring_ceiling"],
        "ceilings": status,
        "providers": {p.id: (p.available, p.reason) for p in uringq.providers()},
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **extra,
    }


def write_json(filename: str, meta: dict[str, Any], results: list[Result]) -> None:
    with open(filename, "w") as f:
        json.dump({"meta": meta, "results": [asdict(r) for r in results]}, f, indent=2)
