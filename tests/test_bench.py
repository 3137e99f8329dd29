"""``python -m uringq bench``: runs end to end and writes sane JSON (no timing assertions)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from uringq import bench

pytestmark = pytest.mark.timeout(600)

REPO = Path(__file__).resolve().parents[1]

# Paths every run reports (when their provider is available); peers and the C ceiling
# may be skipped where they are not installed, with a reason.
CORE_PATHS = {
    "os.pread loop",
    "uringq read_many depth 32",
    "uringq read_many depth 128",
    "uringq prepare/commit/wait depth 32",
    "uringq.aio read 64 tasks (asyncio)",
    "threadpool prepare/commit/wait depth 32",
    "threadpool read_many depth 32",
    "run_in_executor(os.pread) 64 tasks",
    "bare asyncio future round trip 64 tasks (asyncio)",
}


def reference_of(data: dict, section: str) -> dict:
    """The one reference row of ``section``; it ran, and its ratio to itself is 1.0."""
    rows = [r for r in data["results"] if r["section"] == section and r["reference"]]
    assert len(rows) == 1, rows
    assert rows[0]["skipped"] is None, rows[0]
    assert rows[0]["ratio_pread"] == pytest.approx(1.0)
    return rows[0]


def run_bench(
    tmp_path: Path, *args: str, extra_env: dict[str, str] | None = None, path_first: str = ""
) -> tuple[subprocess.CompletedProcess[str], dict]:
    """A quick run in a subprocess; ``path_first`` goes before everything on PYTHONPATH."""
    out = tmp_path / "out.json"
    env = {**os.environ, **(extra_env or {})}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (path_first, str(REPO / "python"), env.get("PYTHONPATH")) if p
    )
    proc = subprocess.run(
        [sys.executable, "-m", "uringq", "bench", "--quick", "--size", "8M", "--json", str(out),
         "--dir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=540,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc, json.loads(out.read_text())


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    tmp = tmp_path_factory.mktemp("bench")
    proc, data = run_bench(tmp)
    return proc.stdout, data


def test_quick_bench_reports_every_core_path_with_positive_numbers(quick_run):
    _, data = quick_run
    results = {r["path"]: r for r in data["results"]}
    import uringq

    available = {p.id for p in uringq.providers() if p.available}
    for path in CORE_PATHS:
        assert path in results, f"{path} missing from the JSON"
        result = results[path]
        provider = "threadpool" if "threadpool" in path else "io_uring"
        if path.startswith(("uringq", "threadpool")) and provider not in available:
            assert result["skipped"]
            continue
        assert result["skipped"] is None, f"{path}: {result['skipped']}"
        assert result["ops"] > 0
        assert result["seconds"] > 0
        assert result["ops_s"] > 0
        assert result["mb_s"] > 0
        assert result["ratio_pread"] > 0


def test_quick_bench_ratios_are_relative_to_the_pread_loop(quick_run):
    # W1 rows against the os.pread loop; every other section against its own reference
    # row (the default run now has W2 and aiofiles-style sections too).
    _, data = quick_run
    results = {r["path"]: r for r in data["results"]}
    assert results["os.pread loop"]["ratio_pread"] == pytest.approx(1.0)
    references = {sec: reference_of(data, sec) for sec in {r["section"] for r in data["results"]}}
    assert references[bench.W1]["path"] == "os.pread loop"
    for result in data["results"]:
        if result["skipped"] is None:
            expected = result["ops_s"] / references[result["section"]]["ops_s"]
            assert result["ratio_pread"] == pytest.approx(expected)


def test_quick_bench_skips_come_with_a_reason(quick_run):
    _, data = quick_run
    for result in data["results"]:
        if result["skipped"] is not None:
            assert isinstance(result["skipped"], str) and result["skipped"]
            assert result["ops_s"] == 0


def test_quick_bench_prints_a_table_and_settings_land_in_the_json(quick_run):
    stdout, data = quick_run
    assert "os.pread loop" in stdout
    assert "ops/s" in stdout and "x pread" in stdout
    assert data["meta"]["file_size"] == 8 * 1024 * 1024
    assert data["meta"]["quick"] is True
    assert data["meta"]["cpu_affinity"] == "not pinned"  # the default, like the SPEC's figures


def test_c_ceiling_ratio_is_reported_when_the_ceiling_runs(quick_run):
    _, data = quick_run
    results = {r["path"]: r for r in data["results"]}
    ceiling = results["C io_uring depth 32"]
    if ceiling["skipped"]:
        pytest.skip(f"C ceiling not built here: {ceiling['skipped']}")
    assert results["os.pread loop"]["ratio_c"] > 0


def test_only_and_sections(tmp_path):
    _, data = run_bench(
        tmp_path, "--seq", "--only", "read_many depth 32", "--no-ceiling", "--cpu", "one"
    )
    assert data["meta"]["cpu_affinity"].startswith("pinned to CPU")
    paths = {(r["section"], r["path"]) for r in data["results"]}
    sections = {section for section, _ in paths}
    assert bench.SEQ_READ in sections and bench.SEQ_WRITE in sections
    assert (bench.W1, "uringq read_many depth 128") not in paths  # filtered out
    assert (bench.W1, "os.pread loop") in paths  # references always stay


@pytest.mark.parametrize(
    ("text", "expected"),
    [("8M", 8 * 1024**2), ("256M", 256 * 1024**2), ("1G", 1024**3), ("4096", 4096),
     ("64KiB", 64 * 1024), ("1.5G", 3 * 1024**3 // 2)],
)  # fmt: skip
def test_size_arguments(text, expected):
    assert bench.parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "M", "-1M", "12Q", "0"])
def test_bad_size_arguments(text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        bench.parse_size(text)


def test_repeats_run_in_rounds_and_the_best_run_is_kept(tmp_path):
    _, data = run_bench(
        tmp_path, "--only", "read_many depth 32|C io_uring depth 32", "--repeat", "2"
    )
    results = {r["path"]: r for r in data["results"]}
    assert not results["os.pread loop"]["skipped"]
    for path in ("os.pread loop", "uringq read_many depth 32", "C io_uring depth 32"):
        result = results[path]
        if result["skipped"]:  # io_uring blocked here, or no liburing for the C ceiling
            continue
        assert len(result["runs_ops_s"]) == 2, result
        assert result["ops_s"] == pytest.approx(max(result["runs_ops_s"]), rel=1e-9)


def test_read_many_is_compared_with_c_at_its_own_depth_the_rest_with_the_best_c():
    def spec(path: str, group: str, depth: int | None = None, reference: bool = False):
        return bench.Spec(bench.W1, path, group, 1.0, lambda e, n: None, reference=reference,
                          c_depth=depth)  # fmt: skip

    specs = [
        spec("os.pread loop", "baseline", reference=True),
        spec("uringq read_many depth 32", "uringq", 32),
        spec("uringq read_many depth 128", "uringq", 128),
        spec("uringq.aio read 64 tasks (asyncio)", "uringq"),
        spec("C io_uring depth 32", "ceiling", 32),
        spec("C io_uring depth 128", "ceiling", 128),
    ]
    rates = [1000.0, 900.0, 1100.0, 400.0, 1000.0, 1200.0]
    results = [
        bench.Result(s.section, s.path, s.group, ops_s=r) for s, r in zip(specs, rates, strict=True)
    ]
    bench.add_ratios(results, specs)
    ratio_c = {r.path: r.ratio_c for r in results}
    assert ratio_c["uringq read_many depth 32"] == pytest.approx(0.9)
    assert ratio_c["uringq read_many depth 128"] == pytest.approx(1100 / 1200)
    assert ratio_c["uringq.aio read 64 tasks (asyncio)"] == pytest.approx(400 / 1200)
    assert ratio_c["os.pread loop"] == pytest.approx(1000 / 1200)
    # Without the same-depth C row, the batch row falls back to the best C figure.
    results[4].skipped = "not built"
    bench.add_ratios(results, specs)
    assert results[1].ratio_c == pytest.approx(900 / 1200)
    assert all(r.ratio_c_reuse is None for r in results)  # W1 has no reuse rows


def test_w2_x_c_chain_is_against_the_keeping_chains_x_c_reuse_against_the_reusing_ones():
    def spec(path: str, group: str, depth: int | None = None, **kw: Any) -> bench.Spec:
        return bench.Spec(bench.W2_READ, path, group, 1.0, lambda e, n: None, c_depth=depth,
                          **kw)  # fmt: skip

    specs = [
        spec("open(p, 'rb').read() loop", "baseline", reference=True),
        spec("uringq.read_files (io_uring)", "uringq"),
        spec("C open/read/close loop (keep)", "ceiling"),
        spec("C io_uring chain 32 in flight (keep)", "ceiling", 32),
        spec("C io_uring chain 128 in flight (keep)", "ceiling", 128),
        spec("C open/read/close loop (reuse)", "ceiling", c_reuse=True),
        spec("C io_uring chain 32 in flight (reuse)", "ceiling", 32, c_reuse=True),
        spec("C io_uring chain 128 in flight (reuse)", "ceiling", 128, c_reuse=True),
    ]
    rates = [100.0, 180.0, 90.0, 200.0, 150.0, 250.0, 400.0, 300.0]
    results = [
        bench.Result(s.section, s.path, s.group, ops_s=r) for s, r in zip(specs, rates, strict=True)
    ]
    bench.add_ratios(results, specs)
    by_path = {r.path: r for r in results}
    read_files = by_path["uringq.read_files (io_uring)"]
    assert (read_files.ratio_c, read_files.ratio_c_reuse) == (pytest.approx(0.9), 0.45)
    assert by_path["C open/read/close loop (reuse)"].ratio_c == pytest.approx(250 / 200)
    assert by_path["C io_uring chain 32 in flight (keep)"].ratio_c_reuse == 0.5


# -- the sections of the default run: W2, aiofiles-style, x bare ---------------------------
W2_BASELINES = {
    "open(p, 'rb').read() loop",
    "os.open/os.read/os.close loop",
    "os.open/os.fstat/os.read/os.close loop",
    "pathlib.Path.read_bytes loop",
    "ThreadPoolExecutor(8) open().read()",
}
AIOFILES_SECTIONS = (bench.AIOF_FILES, bench.AIOF_SEQ, bench.AIOF_LINES, bench.AIOF_WHOLE)


def rows_of(data: dict, section: str) -> dict[str, dict]:
    return {r["path"]: r for r in data["results"] if r["section"] == section}


def test_quick_bench_runs_w1_w2_and_aiofiles_style_by_default(quick_run):
    _, data = quick_run
    assert data["meta"]["sections"] == ["w1", "w2", "aiofiles"]
    assert {r["section"] for r in data["results"]} == {
        bench.W1, bench.W2_READ, bench.W2_WRITE, *AIOFILES_SECTIONS
    }  # fmt: skip
    assert data["meta"]["small_files"] == 300  # --quick: a few hundred W2 files
    for section in {r["section"] for r in data["results"]}:
        reference_of(data, section)


def test_quick_w2_rows_count_files_and_the_bytes_of_the_files(quick_run):
    _, data = quick_run
    meta = data["meta"]
    average = meta["small_bytes"] / meta["small_files"]
    w2 = rows_of(data, bench.W2_READ)
    for path in W2_BASELINES:
        assert w2[path]["skipped"] is None, w2[path]
        assert w2[path]["unit"] == "files/s"
        assert w2[path]["ops"] > 0 and w2[path]["ops_s"] > 0
    for result in w2.values():
        if result["skipped"] is None and result["ops"] == meta["small_files"]:
            assert result["mb_s"] == pytest.approx(result["ops_s"] * average / 2**20, rel=1e-6)
    writes = rows_of(data, bench.W2_WRITE)
    assert writes["open(p, 'wb').write(data) loop"]["ops_s"] > 0


@pytest.mark.parametrize(
    ("path", "function"),
    [("uringq.read_files (io_uring)", "read_files"),
     ("uringq.read_files (threadpool)", "read_files"),
     ("uringq.write_files (io_uring)", "write_files"),
     ("uringq.write_files (threadpool)", "write_files"),
     ("uringq.aio.read_file 64 tasks (asyncio)", "aio.read_file")],
)  # fmt: skip
def test_quick_w2_uringq_rows_run_or_say_which_function_is_missing(quick_run, path, function):
    import uringq
    from uringq import aio

    _, data = quick_run
    result = {r["path"]: r for r in data["results"]}[path]
    provider = "threadpool" if "threadpool" in path else "io_uring"
    if not uringq.get_provider(provider).available:  # said first: before anything runs
        assert result["skipped"].startswith(f"provider {provider} unavailable")
        return
    owner, _, name = function.rpartition(".")
    if not hasattr(aio if owner else uringq, name):
        expected = f"uringq.{function} does not exist in this uringq yet (SPEC section 9)"
        assert result["skipped"] == expected
        return
    assert result["skipped"] is None, result
    assert result["ops_s"] > 0 and result["ratio_pread"] > 0


def test_quick_w2_x_c_chain_is_against_the_better_keeping_c_chain_x_c_reuse_the_other(
    quick_run,
):
    _, data = quick_run
    w2 = rows_of(data, bench.W2_READ)
    best = {}
    for mode in ("keep", "reuse"):
        chains = [w2[f"C io_uring chain {d} in flight ({mode})"] for d in (32, 128)]
        if any(c["skipped"] for c in chains):
            pytest.skip(f"C chain not run here: {chains[0]['skipped'] or chains[1]['skipped']}")
        best[mode] = max(c["ops_s"] for c in chains)
    for result in w2.values():
        if result["skipped"] is None:
            assert result["ratio_c"] == pytest.approx(result["ops_s"] / best["keep"])
            assert result["ratio_c_reuse"] == pytest.approx(result["ops_s"] / best["reuse"])
    for mode in ("keep", "reuse"):
        assert w2[f"C open/read/close loop ({mode})"]["ratio_c"] > 0


def test_quick_asyncio_rows_show_their_ratio_to_the_bare_round_trip_of_their_loop(quick_run):
    _, data = quick_run
    w1 = rows_of(data, bench.W1)
    name = "bare asyncio future round trip 64 tasks ({})"
    bare = {loop: w1[name.format(loop)] for loop in ("asyncio", "uvloop")}
    assert bare["asyncio"]["ratio_bare"] == pytest.approx(1.0)
    checked = 0
    for path, result in w1.items():
        if result["skipped"] is not None:
            continue
        if "task" not in path:  # loops, batches and C: no event loop
            assert result["ratio_bare"] is None, path
            continue
        anchor = bare["uvloop" if "(uvloop)" in path else "asyncio"]
        if anchor["skipped"]:
            assert result["ratio_bare"] is None
            continue
        assert result["ratio_bare"] == pytest.approx(result["ops_s"] / anchor["ops_s"]), path
        checked += 1
    assert checked >= 3  # uringq.aio read and read_into, run_in_executor at least


def test_quick_aiofiles_style_runs_the_same_code_on_uringq_aio_and_aiofiles(quick_run):
    import importlib.util

    _, data = quick_run
    have_aiofiles = importlib.util.find_spec("aiofiles") is not None
    for section in AIOFILES_SECTIONS:
        rows = rows_of(data, section)
        assert reference_of(data, section)["path"].startswith("builtin: ")
        ours = next(r for p, r in rows.items() if p.startswith("uringq.aio: "))
        theirs = next(r for p, r in rows.items() if p.startswith("aiofiles: "))
        assert ours["path"].removeprefix("uringq.aio: ") == theirs["path"].removeprefix(
            "aiofiles: "
        )
        if ours["skipped"]:  # uringq.aio.open does not take this call yet
            assert ours["skipped"].startswith("uringq.aio.open(p, ")
            assert "does not support this yet" in ours["skipped"]
        else:
            assert ours["ops_s"] > 0
        if not have_aiofiles:
            assert theirs["skipped"].startswith("aiofiles not installed")
            continue
        assert theirs["skipped"] is None, theirs
        for result in rows.values():
            if result["skipped"] is None:
                expected = result["ops_s"] / theirs["ops_s"]
                assert result["ratio_aiofiles"] == pytest.approx(expected)


def test_quick_table_has_the_new_columns(quick_run):
    stdout, _ = quick_run
    assert "x bare" in stdout
    assert "files/s" in stdout and "x open().read()" in stdout and "x C chain" in stdout
    assert "x C reuse" in stdout
    assert "x aiofiles" in stdout and "lines/s" in stdout


# -- options ---------------------------------------------------------------------------------
def test_sections_option_and_a_compiler_without_liburing(tmp_path):
    fake_cc = tmp_path / "cc"
    fake_cc.write_text(
        "#!/bin/sh\n"
        "echo 'x.c:1:10: fatal error: liburing.h: No such file or directory' >&2\n"
        "exit 1\n"
    )
    fake_cc.chmod(0o755)
    _, data = run_bench(tmp_path, "--sections", "w2", "--files", "150",
                        extra_env={"CC": str(fake_cc)})  # fmt: skip
    assert data["meta"]["sections"] == ["w2"]
    assert {r["section"] for r in data["results"]} == {bench.W2_READ, bench.W2_WRITE}
    assert data["meta"]["small_files"] == 150
    assert data["meta"]["file_size"] is None  # no W1 file made for W2 alone
    hint = "building smallfiles_ceiling.c failed (liburing.h missing: apt-get install liburing-dev)"
    for path in ("C open/read/close loop (keep)", "C io_uring chain 32 in flight (reuse)"):
        assert rows_of(data, bench.W2_READ)[path]["skipped"].startswith(hint)
    loop = rows_of(data, bench.W2_READ)["C open/read/close loop (keep)"]
    assert data["meta"]["ceilings"] == {
        "uring_ceiling": "not used",
        "smallfiles_ceiling": loop["skipped"],
    }


def test_all_runs_every_section_and_only_keeps_the_references(tmp_path):
    _, data = run_bench(tmp_path, "--all", "--only", "^$", "--no-ceiling", "--files", "100")
    assert data["meta"]["sections"] == ["w1", "w2", "aiofiles", "direct", "seq"]
    titles = [bench.W1, bench.W2_READ, bench.W2_WRITE, *AIOFILES_SECTIONS, bench.DIRECT,
              bench.SEQ_READ, bench.SEQ_WRITE]  # fmt: skip
    assert [r["section"] for r in data["results"]] == titles  # one reference each, in order
    for result in data["results"]:
        assert result["reference"]
        if result["section"] == bench.DIRECT and result["skipped"]:
            assert "O_DIRECT" in result["skipped"]  # e.g. tmpfs
            continue
        assert result["skipped"] is None and result["ratio_pread"] == pytest.approx(1.0)


def test_missing_aiofiles_skips_its_rows_with_the_reason(tmp_path):
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "aiofiles.py").write_text("raise ImportError('blocked for this test')\n")
    _, data = run_bench(tmp_path, "--sections", "aiofiles", "--files", "100", "--only",
                        "^aiofiles", path_first=str(blocked))  # fmt: skip
    peers = [r for r in data["results"] if r["path"].startswith("aiofiles: ")]
    assert len(peers) == 4
    for result in peers:
        assert result["skipped"] == "aiofiles not installed (blocked for this test)"
    for section in AIOFILES_SECTIONS:
        reference_of(data, section)


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--sections", "w9"], "unknown section 'w9' (choose from w1, w2, aiofiles, direct, seq)"),
     (["--sections", "w1,x"], "unknown section 'x' (choose from"),
     (["--sections", ","], "no section in ','"),
     (["--files", "0"], "uringq bench: --files must be positive")],
)  # fmt: skip
def test_bad_options_are_refused_before_anything_runs(args, message, capsys, tmp_path):
    try:
        status = bench.main([*args, "--dir", str(tmp_path)])
    except SystemExit as exc:  # argparse
        status = exc.code
    assert status == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no data made
