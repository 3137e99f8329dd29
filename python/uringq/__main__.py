"""Command line: ``python -m uringq [demo|info|bench]`` (also installed as ``uringq``).

* ``demo`` (the default): write a temporary file through :class:`uringq.IoQueue`, read it
  back in random 4 KiB order, verify it and print the provider used and the speed.
* ``info [--json]``: every provider with its availability and reason, the kernel,
  ``kernel.io_uring_disabled`` and every io_uring opcode the kernel's probe reports,
  marking those uringq uses.
* ``bench ...``: the benchmark suite (:mod:`uringq.bench`); ``bench --help`` for options.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Iterable
from typing import Any

import uringq
from uringq._loader import NATIVE_IMPORT_ERROR

__all__ = ["main"]

_DEMO_SIZE = 64 * 1024 * 1024
_WRITE_CHUNK = 128 * 1024
_READ_BLOCK = 4096
_DEPTH = 32
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


# -- info ---------------------------------------------------------------------------------
def _io_uring_disabled() -> str:
    try:
        with open("/proc/sys/kernel/io_uring_disabled") as f:
            return f.read().strip()
    except FileNotFoundError:
        return "absent (kernel before 6.6: io_uring not switchable)"
    except OSError as exc:
        return f"unreadable ({exc.strerror})"


def _opcodes() -> tuple[list[dict[str, Any]] | None, str | None]:
    """Every opcode the kernel's probe reports, and whether uringq uses it."""
    if NATIVE_IMPORT_ERROR is not None:
        return None, NATIVE_IMPORT_ERROR
    from uringq import _native

    return [{"name": name, "used": used} for name, used in _native.probed_opcodes()], None


def _selected() -> str:
    try:
        return uringq.best_provider().id
    except uringq.ProviderUnavailable as exc:
        return f"none: {exc.strerror}"


def info_report() -> dict[str, Any]:
    """Everything ``info`` prints, as plain data."""
    opcodes, opcodes_error = _opcodes()
    return {
        "uringq": uringq.__version__,
        "python": sys.version.split()[0],
        "kernel": os.uname().release,
        "io_uring_disabled": _io_uring_disabled(),
        "URINGQ_PROVIDER": os.environ.get("URINGQ_PROVIDER"),
        "selected": _selected(),
        "providers": [
            {
                "id": p.id,
                "handle_type": p.handle_type,
                "native": p.native,
                "available": p.available,
                "reason": p.reason,
            }
            for p in uringq.providers()
        ],
        "opcodes": opcodes,
        "opcodes_error": opcodes_error,
    }


def _print_info(report: dict[str, Any]) -> None:
    print(f"uringq {report['uringq']} on Python {report['python']}, Linux {report['kernel']}")
    print(f"kernel.io_uring_disabled: {report['io_uring_disabled']}")
    if report["URINGQ_PROVIDER"]:
        print(f"URINGQ_PROVIDER={report['URINGQ_PROVIDER']}")
    print(f"selected provider: {report['selected']}")
    print("providers (in order of preference):")
    for p in report["providers"]:
        kind = "native" if p["native"] else "Python"
        state = "available" if p["available"] else f"unavailable: {p['reason']}"
        print(f"  {p['id']:<12} {p['handle_type']:<5} {kind:<7} {state}")
    if report["opcodes"] is None:
        print(f"io_uring opcodes: unknown ({report['opcodes_error']})")
    else:
        names = [op["name"] + ("*" if op["used"] else "") for op in report["opcodes"]]
        print(f"io_uring opcodes ({len(names)}): {' '.join(names) or 'none'}")
        if names:
            print("  (* = used by uringq; a missing one makes only its calls run on a thread)")


def _cmd_info(args: argparse.Namespace) -> int:
    report = info_report()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_info(report)
    return 0


# -- demo ---------------------------------------------------------------------------------
def _size(text: str) -> int:
    """``65536``, ``64K``, ``64M``, ``1G`` (binary units) -> bytes."""
    unit = text[-1:].upper() if text[-1:].isalpha() else ""
    try:
        number = int(text[: len(text) - len(unit)] if unit else text)
        size = number * _UNITS[unit]
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(
            f"not a size: {text!r} (e.g. 4096, 64K, 64M, 1G)"
        ) from None
    if size < _READ_BLOCK:
        raise argparse.ArgumentTypeError(f"size must be at least {_READ_BLOCK} bytes")
    return size


def _pattern(offset: int, length: int) -> bytes:
    """The demo file's bytes at ``offset``: each 8-byte word holds its own word index."""
    return array("Q", range(offset // 8, (offset + length) // 8)).tobytes()


def _in_batches(
    q: uringq.IoQueue, items: Iterable[int], prepare: Callable[[int], None]
) -> list[uringq.Completion]:
    """Prepare up to ``_DEPTH`` requests, commit, collect; return every completion."""
    done: list[uringq.Completion] = []
    pending = 0
    for item in items:
        prepare(item)
        pending += 1
        if pending == _DEPTH:
            q.commit()
            done += _collect(q, pending)
            pending = 0
    if pending:
        q.commit()
        done += _collect(q, pending)
    return done


def _collect(q: uringq.IoQueue, count: int) -> list[uringq.Completion]:
    got: list[uringq.Completion] = []
    while len(got) < count:
        got += q.wait(count - len(got))
    return got


def _failures(done: list[uringq.Completion], expected: Callable[[Any], int]) -> list[str]:
    """What went wrong: errors and short transfers (``expected(user_data)`` bytes each)."""
    return [
        f"{c.user_data}: {c.error or f'{c.result} of {expected(c.user_data)} bytes'}"
        for c in done
        if not c.ok or c.result != expected(c.user_data)
    ]


def _cmd_demo(args: argparse.Namespace) -> int:
    size = args.size - args.size % _READ_BLOCK
    try:
        q = uringq.IoQueue(_DEPTH, provider=args.provider)
    except uringq.ProviderUnavailable as exc:
        print(f"uringq demo: {exc.strerror}", file=sys.stderr)
        return 1
    with q:
        print(f"provider: {q.provider_id} ({'native' if q.provider.native else 'pure Python'})")
        for p in uringq.providers():
            if p.id != q.provider_id:
                print(f"  also {p.id}: {'available' if p.available else p.reason}")
        fd, path = tempfile.mkstemp(prefix="uringq-demo-")
        try:
            return _demo_io(q, fd, size)
        finally:
            os.close(fd)
            os.unlink(path)


def _demo_io(q: uringq.IoQueue, fd: int, size: int) -> int:
    q.register(fd)
    chunks = range(0, size, _WRITE_CHUNK)
    start = time.perf_counter()
    done = _in_batches(
        q,
        chunks,
        lambda off: q.prepare_write(fd, off, _pattern(off, min(_WRITE_CHUNK, size - off)), off),
    )
    q.prepare_sync(fd, "fsync")
    q.commit()
    done += _collect(q, 1)
    elapsed = time.perf_counter() - start
    errors = _failures(done, lambda off: 0 if off == "fsync" else min(_WRITE_CHUNK, size - off))
    print(
        f"wrote {size / 2**20:.1f} MiB in {_WRITE_CHUNK // 1024} KiB requests, depth {_DEPTH}:"
        f" {size / elapsed / 1e6:.1f} MB/s (including fsync)"
    )
    out = bytearray(size)
    view = memoryview(out)
    blocks = list(range(0, size, _READ_BLOCK))
    random.shuffle(blocks)
    start = time.perf_counter()
    done = _in_batches(
        q, blocks, lambda off: q.prepare_read(fd, off, view[off : off + _READ_BLOCK], off)
    )
    elapsed = time.perf_counter() - start
    view.release()
    errors += _failures(done, lambda _: _READ_BLOCK)
    print(
        f"read {len(blocks)} random {_READ_BLOCK // 1024} KiB blocks, depth {_DEPTH}:"
        f" {len(blocks) / elapsed:,.0f} ops/s, {size / elapsed / 1e6:.1f} MB/s"
    )
    for off in range(0, size, _WRITE_CHUNK):
        length = min(_WRITE_CHUNK, size - off)
        if out[off : off + length] != _pattern(off, length):
            errors.append(f"{off}: data differs from what was written")
    q.deregister(fd)
    if errors:
        print(f"FAILED: {len(errors)} error(s); first: {errors[0]}", file=sys.stderr)
        return 1
    print("verified: every byte read back matches what was written")
    return 0


# -- bench --------------------------------------------------------------------------------
def _cmd_bench(argv: list[str]) -> int:
    try:
        bench = importlib.import_module("uringq.bench")
    except ModuleNotFoundError as exc:
        if exc.name != "uringq.bench":
            raise
        print("uringq bench: uringq.bench is not part of this installation", file=sys.stderr)
        return 2
    result = bench.main(argv)
    return 0 if result is None else int(result)


# -- entry point --------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m uringq", description="uringq: asynchronous file I/O for Python on Linux."
    )
    sub = parser.add_subparsers(dest="command", metavar="{demo,info,bench}")
    demo = sub.add_parser("demo", help="write, read back and verify a temporary file (default)")
    demo.add_argument(
        "--size",
        type=_size,
        default=_DEMO_SIZE,
        help="file size: bytes or 64K/64M/1G (default 64M)",
    )
    demo.add_argument("--provider", metavar="ID", help="provider id (default: the best available)")
    demo.set_defaults(run=_cmd_demo)
    info = sub.add_parser("info", help="providers, availability and reasons, kernel, opcodes")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(run=_cmd_info)
    sub.add_parser("bench", help="benchmarks (python -m uringq bench --help)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args_list = sys.argv[1:] if argv is None else list(argv)
    if args_list[:1] == ["bench"]:
        return _cmd_bench(args_list[1:])
    parser = _parser()
    args = parser.parse_args(args_list or ["demo"])
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except BrokenPipeError:  # e.g. piped into head: not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
