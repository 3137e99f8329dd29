"""The bench's parts in-process: the C ceilings (build, skip reasons, figures), the W2 and
aiofiles-style runners against stand-ins with the SPEC's signatures, and the ratio anchors.
No timing assertions: only that each part measures what it says and checks what it got."""

from __future__ import annotations

import asyncio
import os
import sys
import types
from array import array
from pathlib import Path
from typing import Any

import pytest
import uringq
from uringq import aio, bench
from uringq.bench import aiofiles_style, smallfiles, timing
from uringq.bench import ceilings as ceilings_module
from uringq.bench.ceilings import CEILING_ENV, Ceilings, find_source_dir
from uringq.bench.data import make_small_files, make_text_file, prepare_file
from uringq.bench.env import Env
from uringq.bench.skips import Skip, probe
from uringq.bench.timing import Progress

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[1]
QUIET = Progress(0, enabled=False)


def make_env(tmp_path: Path, files: int = 120) -> Env:
    env = Env(
        workdir=str(tmp_path),
        tasks=8,
        repeat=1,
        batch=64,
        quick=True,
        base_ops=1000,
        ceilings=Ceilings(find_source_dir(None), str(tmp_path)),
    )
    env.small = make_small_files(str(tmp_path / "w2"), files, QUIET)
    return env


# -- C ceilings ------------------------------------------------------------------------------
def test_the_ceiling_sources_are_found_in_the_checkout_by_a_file_or_the_environment(
    tmp_path, monkeypatch
):
    monkeypatch.delenv(CEILING_ENV, raising=False)
    assert find_source_dir(None) == REPO / "benches"
    assert find_source_dir(str(REPO / "benches" / "uring_ceiling.c")) == REPO / "benches"
    (tmp_path / "smallfiles_ceiling.c").write_text("int main(void) { return 0; }\n")
    monkeypatch.setenv(CEILING_ENV, str(tmp_path))
    assert find_source_dir(None) == tmp_path
    assert find_source_dir(str(tmp_path / "nothing here")) == tmp_path
    # A wheel install: no checkout around the package, nothing named: no sources.
    monkeypatch.delenv(CEILING_ENV)
    monkeypatch.setattr(ceilings_module, "CHECKOUT_DIR", tmp_path / "lib" / "benches")
    assert find_source_dir(None) is None


def test_no_reference_to_the_shared_bench_directory_is_left():
    for path in [REPO / "README.md", REPO / "benches" / "README.md",
                 *sorted((REPO / "python" / "uringq" / "bench").glob("*.py"))]:  # fmt: skip
        assert "shared/bench" not in path.read_text(), path


def fake_compiler(tmp_path: Path, message: str) -> str:
    cc = tmp_path / "fake-cc"
    cc.write_text(f"#!/bin/sh\necho '{message}' >&2\nexit 1\n")
    cc.chmod(0o755)
    return str(cc)


def test_ceiling_skip_reasons(tmp_path, monkeypatch):
    with pytest.raises(Skip, match=r"^uring_ceiling\.c not found: the C ceilings live in benches/"):
        Ceilings(tmp_path / "nowhere", str(tmp_path)).binary("uring_ceiling")
    with pytest.raises(Skip, match=r"^--no-ceiling$"):
        Ceilings(REPO / "benches", str(tmp_path), "--no-ceiling").binary("uring_ceiling")
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with pytest.raises(Skip, match=r"^no C compiler \(cc\) to build smallfiles_ceiling\.c$"):
        Ceilings(REPO / "benches", str(tmp_path)).binary("smallfiles_ceiling")
    error = "u.c:9:10: fatal error: liburing.h: No such file or directory"
    monkeypatch.setenv("CC", fake_compiler(tmp_path, error))
    ceilings = Ceilings(REPO / "benches", str(tmp_path))
    expected = (
        "building uring_ceiling.c failed (liburing.h missing: apt-get install liburing-dev): "
        + error
    )
    for _ in range(2):  # built once: the reason is kept
        with pytest.raises(Skip) as info:
            ceilings.binary("uring_ceiling")
        assert str(info.value) == expected
    assert ceilings.status() == {"uring_ceiling": expected, "smallfiles_ceiling": "not used"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Ceilings:
    if not uringq.get_provider("io_uring").available:
        pytest.skip("io_uring unavailable here: the C ceilings cannot run")
    ceilings = Ceilings(REPO / "benches", str(tmp_path_factory.mktemp("ceilings")))
    for name in ("uring_ceiling", "smallfiles_ceiling"):
        try:
            ceilings.binary(name)
        except Skip as exc:
            pytest.skip(str(exc))
    return ceilings


def test_uring_ceiling_prints_sane_figures_on_the_given_offsets(built, tmp_path):
    path = prepare_file(str(tmp_path), 1024 * 1024, QUIET)
    figures = built.run("uring_ceiling", [path, "5000", "16", "4096"], key=(1,))
    assert figures["pread_ops_s"] > 0 and figures["uring_ops_s"] > 0
    assert (figures["ops"], figures["depth"], figures["bs"]) == (5000, 16, 4096)
    offsets = tmp_path / "offsets"
    offsets.write_bytes(array("q", [i * 4096 for i in range(256)] * 4).tobytes())
    figures = built.run("uring_ceiling", [path, "1024", "32", "4096", str(offsets)], key=(2,))
    assert figures["ops"] == 1024 and figures["uring_ops_s"] > 0
    assert built.run("uring_ceiling", [], key=(2,)) is figures  # once per key
    offsets.write_bytes(array("q", [1024 * 1024]).tobytes())  # the block past the end
    with pytest.raises(Skip, match="an offset in OFFSETS is past the end of FILE"):
        built.run("uring_ceiling", [path, "1", "1", "4096", str(offsets)], key=(3,))
    with pytest.raises(Skip, match="OFFSETS holds fewer than OPS offsets"):
        built.run("uring_ceiling", [path, "2", "1", "4096", str(offsets)], key=(4,))


def test_smallfiles_ceiling_reads_every_file_whole_both_ways(built, tmp_path):
    small = make_small_files(str(tmp_path / "w2"), 40, QUIET)
    Path(small.paths[7]).write_bytes(b"")  # an empty file is a read of 0, then the close
    sizes = [os.path.getsize(p) for p in small.paths]
    reuse, keep = ("loop_files_s", "uring_files_s"), ("loop_keep_files_s", "uring_keep_files_s")
    for inflight in ("1", "8", "128"):
        figures = built.run("smallfiles_ceiling", [small.list_file, inflight], key=(inflight,))
        assert figures["files"] == 40 and figures["bytes"] == sum(sizes)
        assert all(figures[name] > 0 for name in reuse + keep)  # both modes by default
        assert figures["inflight"] == int(inflight)
    for mode, shown, left_out in (("reuse", reuse, keep), ("keep", keep, reuse)):
        figures = built.run("smallfiles_ceiling", [small.list_file, "8", mode], key=(mode,))
        assert figures["files"] == 40 and figures["bytes"] == sum(sizes)
        assert all(figures[name] > 0 for name in shown)
        assert not any(name in figures for name in left_out)
    with pytest.raises(Skip, match="the mode is reuse, keep or both"):
        built.run("smallfiles_ceiling", [small.list_file, "8", "all"], key=("bad mode",))
    figures = built.run("smallfiles_ceiling", [small.directory, "4"], key=("dir",))
    assert figures["files"] == 40 and figures["bytes"] == sum(sizes)
    Path(small.paths[3]).write_bytes(b"x" * 65536)
    with pytest.raises(Skip, match="this ceiling reads files under 64 KiB"):
        built.run("smallfiles_ceiling", [small.list_file, "4"], key=("big",))
    os.unlink(small.paths[3])
    with pytest.raises(Skip, match=r"open .*f000003: No such file or directory"):
        built.run("smallfiles_ceiling", [small.list_file, "4"], key=("missing",))


# -- W2 runners against stand-ins with the SPEC section 9 signatures ---------------------------
def test_w2_rows_skip_while_the_functions_do_not_exist(tmp_path, monkeypatch):
    env = make_env(tmp_path)
    monkeypatch.delattr(uringq, "read_files", raising=False)
    monkeypatch.delattr(uringq, "write_files", raising=False)
    monkeypatch.delattr(aio, "read_file", raising=False)
    cases = [(smallfiles.read_files_run("io_uring"), "uringq.read_files"),
             (smallfiles.write_files_run("threadpool"), "uringq.write_files"),
             (smallfiles.aio_read_file_run, "uringq.aio.read_file")]  # fmt: skip
    for runner, name in cases:
        with pytest.raises(Skip) as info:
            runner(env, 120)
        assert str(info.value) == f"{name} does not exist in this uringq yet (SPEC section 9)"


def test_read_files_row_calls_the_spec_signature_and_checks_every_file(tmp_path, monkeypatch):
    env = make_env(tmp_path)
    assert env.small is not None
    providers: list[str | None] = []

    def read_files(paths, *, dir_fd=None, return_exceptions=False, provider=None):
        providers.append(provider)
        return [Path(p).read_bytes() for p in paths]

    monkeypatch.setattr(uringq, "read_files", read_files, raising=False)
    timing = smallfiles.read_files_run("threadpool")(env, 120)
    assert (timing.ops, timing.nbytes) == (120, env.small.total)
    assert providers == ["threadpool", "threadpool"]  # a warm-up call, then the timed one

    def short(paths, **kwargs):
        return [Path(p).read_bytes()[:-1] for p in paths]

    monkeypatch.setattr(uringq, "read_files", short)
    with pytest.raises(RuntimeError, match=r"read_files: .*f000000 gave \d+ bytes, not \d+ bytes"):
        smallfiles.read_files_run("io_uring")(env, 120)


def test_write_files_row_checks_what_was_written_and_leaves_nothing_behind(tmp_path, monkeypatch):
    env = make_env(tmp_path)
    seen: dict[str, bytes] = {}

    def write_files(files, *, mode=0o666, fsync=False, dir_fd=None, return_exceptions=False,
                    provider=None):  # fmt: skip
        assert isinstance(files, dict) and provider == "io_uring"
        assert not any(os.path.exists(p) for p in files)  # fresh files
        seen.update(files)
        return [Path(p).write_bytes(data) for p, data in files.items()]

    monkeypatch.setattr(uringq, "write_files", write_files, raising=False)
    timing = smallfiles.write_files_run("io_uring")(env, 100)
    assert timing.ops == 100 and len(seen) == 100
    assert timing.nbytes == sum(len(d) for d in seen.values())
    assert sorted(len(d) for d in seen.values()) == sorted(env.small.sizes[:100])  # type: ignore[union-attr]
    reference = smallfiles.open_write_loop(env, 100)
    assert (reference.ops, reference.nbytes) == (100, timing.nbytes)

    def lying(files, **kwargs):
        for path in files:
            Path(path).write_bytes(b"")
        return [len(d) for d in files.values()]

    monkeypatch.setattr(uringq, "write_files", lying)
    with pytest.raises(RuntimeError, match="does not hold what was written"):
        smallfiles.write_files_run("io_uring")(env, 100)
    assert not list(tmp_path.glob("w2-write-*"))  # every run's directory is removed


def test_the_w2_baselines_read_every_file(tmp_path):
    env = make_env(tmp_path)
    assert env.small is not None
    runners = [smallfiles.open_read_loop, smallfiles.os_read_loop,
               smallfiles.os_fstat_read_loop, smallfiles.pathlib_loop,
               smallfiles.thread_pool_run]  # fmt: skip
    for runner in runners:
        timing = runner(env, 120)
        assert (timing.ops, timing.nbytes) == (120, env.small.total), runner
        assert timing.seconds > 0


def resident_pages() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1])


def test_each_run_starts_with_the_allocators_free_memory_given_back():
    # Results freed under a live allocation stay in the heap (and reused, would spare the
    # next path its first-touch faults) until released before the next path runs.
    if not timing.release_free_memory():
        pytest.skip("no malloc_trim in this C library")
    results = [bytes(8192) for _ in range(4000)]  # about 32 MiB of fresh pages
    top = max(map(id, results))  # CPython: an object's address
    pinned = [bytes(8192)]
    while id(pinned[-1]) < top:  # one above them on the heap: no automatic trim
        if len(pinned) > 8000:  # the heap's free space below them is used up (64 MiB)
            # New blocks land below the results (they sit in mmap'd memory above the
            # heap, as the allocator's layout after the earlier tests may have them):
            # nothing can pin them here. Unbounded, this loop once took 24 GiB.
            pytest.skip("no allocation lands above the results in this heap's layout")
        pinned.append(bytes(8192))
    before = resident_pages()
    del results
    kept = resident_pages()
    assert timing.release_free_memory()
    after = resident_pages()
    assert before - kept < 4000 and kept - after > 6000, (before, kept, after)
    del pinned


@pytest.mark.skipif(not uringq.get_provider("io_uring").available, reason="needs io_uring")
def test_aio_read_file_row_runs_in_tasks_and_checks_every_file(tmp_path, monkeypatch):
    env = make_env(tmp_path)

    async def read_file(path):
        return Path(path).read_bytes()

    monkeypatch.setattr(aio, "read_file", read_file, raising=False)
    timing = smallfiles.aio_read_file_run(env, 120)
    assert timing.ops == 120 and timing.nbytes == env.small.total  # type: ignore[union-attr]


# -- aiofiles-style runners, on a module with aiofiles' API ---------------------------------
class _AsyncFile:
    def __init__(self, f: Any, truncate: bool) -> None:
        self._f = f
        self._truncate = truncate

    async def read(self, *args: int) -> Any:
        data = self._f.read(*args)
        return data[:-1] if self._truncate and data else data

    def __aiter__(self) -> _AsyncFile:
        return self

    async def __anext__(self) -> Any:
        line = self._f.readline()
        if not line:
            raise StopAsyncIteration
        return line


def async_files_module(name: str, truncate: bool = False) -> types.ModuleType:
    """A module with aiofiles' ``open`` (an async context manager of async files)."""

    class Opener:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.args, self.kwargs = args, kwargs

        async def __aenter__(self) -> _AsyncFile:
            self.f = open(*self.args, **self.kwargs)  # noqa: SIM115
            return _AsyncFile(self.f, truncate)

        async def __aexit__(self, *exc: object) -> None:
            self.f.close()

    module = types.ModuleType(name)
    module.open = Opener  # type: ignore[attr-defined]
    return module


@pytest.fixture
def styled_env(tmp_path, monkeypatch) -> Env:
    monkeypatch.setitem(sys.modules, "fake_aiofiles", async_files_module("fake_aiofiles"))
    monkeypatch.setitem(sys.modules, "lossy_aiofiles", async_files_module("lossy", True))
    env = make_env(tmp_path)
    env.big_path = prepare_file(str(tmp_path), 1024 * 1024, QUIET, what="large")
    env.text_path = make_text_file(str(tmp_path), 200_000, QUIET)
    return env


def test_aiofiles_style_code_runs_on_any_module_with_that_api(styled_env):
    env = styled_env
    lines = aiofiles_style.line_lengths(env.text_path)
    cases = [
        (smallfiles.open_read_tasks("fake_aiofiles"), 120, 120, env.small.total),
        (lambda e, n: aiofiles_style.async_seq("fake_aiofiles", e, n), 100, 100, 100 * 4096),
        (lambda e, n: aiofiles_style.async_seq("fake_aiofiles", e, n), 10**6, 256, 2**20),
        (lambda e, n: aiofiles_style.async_lines("fake_aiofiles", e, n), 3000, 3000,
         sum(lines[:3000])),
        (lambda e, n: aiofiles_style.async_whole("fake_aiofiles", e, n), 2, 2, 2 * 2**20),
    ]  # fmt: skip
    for runner, n, ops, nbytes in cases:
        timing = runner(env, n)
        assert timing.ops == ops
        if timing.nbytes is not None:
            assert timing.nbytes == nbytes
    builtin = [(aiofiles_style.builtin_seq, 100), (aiofiles_style.builtin_lines, 3000),
               (aiofiles_style.builtin_whole, 2)]  # fmt: skip
    for runner, n in builtin:
        assert runner(env, n).ops == n
    assert aiofiles_style.builtin_lines(env, 10**9).ops == len(lines)  # capped at the file


def test_aiofiles_style_rows_check_what_they_read(styled_env):
    runners = [smallfiles.open_read_tasks("lossy_aiofiles"),
               lambda e, n: aiofiles_style.async_seq("lossy_aiofiles", e, n),
               lambda e, n: aiofiles_style.async_whole("lossy_aiofiles", e, n)]  # fmt: skip
    for runner in runners:
        with pytest.raises(RuntimeError):
            runner(styled_env, 100 if runner is not runners[2] else 1)


def test_an_unsupported_call_is_a_skip_and_a_real_failure_is_not():
    async def unsupported() -> None:
        raise TypeError("read() missing 1 required positional argument: 'offset'")

    with pytest.raises(Skip) as info:
        asyncio.run(probe("uringq.aio.open(p, 'rb') + await f.read()", unsupported()))
    assert str(info.value) == (
        "uringq.aio.open(p, 'rb') + await f.read() does not support this yet: "
        "TypeError: read() missing 1 required positional argument: 'offset'"
    )

    async def failing() -> None:
        raise FileNotFoundError(2, "No such file or directory")

    with pytest.raises(FileNotFoundError):
        asyncio.run(probe("uringq.aio.read_file", failing()))


def test_a_missing_aiofiles_is_a_skip_with_the_reason(styled_env, monkeypatch):
    monkeypatch.setitem(sys.modules, "aiofiles", None)  # import raises ImportError
    with pytest.raises(Skip, match=r"^aiofiles not installed \("):
        aiofiles_style.async_whole("aiofiles", styled_env, 1)


# -- ratio anchors ---------------------------------------------------------------------------
def spec(section: str, path: str, group: str = "uringq", **kwargs: Any) -> bench.Spec:
    return bench.Spec(section, path, group, 1.0, lambda e, n: None, **kwargs)  # type: ignore[arg-type,return-value]


def results_of(specs: list[bench.Spec], rates: list[float]) -> list[bench.Result]:
    return [
        bench.Result(s.section, s.path, s.group, ops_s=r) for s, r in zip(specs, rates, strict=True)
    ]


def test_asyncio_paths_are_compared_with_the_bare_round_trip_of_their_own_loop():
    specs = [
        spec(bench.W1, "os.pread loop", "baseline", reference=True),
        spec(bench.W1, "aio (asyncio)", loop="asyncio"),
        spec(bench.W1, "aio (uvloop)", loop="uvloop"),
        spec(bench.W1, "read_many"),
        spec(bench.W1, "bare (asyncio)", "baseline", loop="asyncio", anchor="bare"),
        spec(bench.W1, "bare (uvloop)", "baseline", loop="uvloop", anchor="bare"),
    ]
    rates = [1000.0, 300.0, 450.0, 1200.0, 600.0, 1500.0]
    results = results_of(specs, rates)
    bench.add_ratios(results, specs)
    bare = {r.path: r.ratio_bare for r in results}
    assert bare["aio (asyncio)"] == pytest.approx(0.5)
    assert bare["aio (uvloop)"] == pytest.approx(0.3)
    assert bare["bare (asyncio)"] == pytest.approx(1.0)
    assert bare["read_many"] is None and bare["os.pread loop"] is None
    results[5].skipped = "uvloop not installed"
    results[2].ratio_bare = None
    bench.add_ratios(results, specs)
    assert results[2].ratio_bare is None  # no uvloop anchor in this run
    assert results[1].ratio_bare == pytest.approx(0.5)


def test_aiofiles_style_rows_are_compared_with_the_same_code_on_aiofiles():
    specs = [
        spec(bench.AIOF_LINES, "builtin", "baseline", reference=True),
        spec(bench.AIOF_LINES, "uringq.aio", loop="asyncio"),
        spec(bench.AIOF_LINES, "aiofiles", "peer", loop="asyncio", anchor="aiofiles"),
        spec(bench.W1, "os.pread loop", "baseline", reference=True),
    ]
    rates = [8_000_000.0, 400_000.0, 10_000.0, 900_000.0]
    results = results_of(specs, rates)
    bench.add_ratios(results, specs)
    assert [r.ratio_aiofiles for r in results] == [pytest.approx(800), pytest.approx(40),
                                                   pytest.approx(1.0), None]  # fmt: skip
    assert results[1].ratio_pread == pytest.approx(0.05)
    assert results[3].ratio_pread == pytest.approx(1.0)  # its own section's reference
