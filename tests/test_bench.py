"""``python -m uringq bench``: runs end to end and writes sane JSON (no timing assertions)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


def run_bench(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    out = tmp_path / "out.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO / "python"), env.get("PYTHONPATH")) if p
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
    _, data = quick_run
    results = {r["path"]: r for r in data["results"]}
    assert results["os.pread loop"]["ratio_pread"] == pytest.approx(1.0)
    for result in data["results"]:
        if result["skipped"] is None and result["ratio_pread"] is not None:
            expected = result["ops_s"] / results["os.pread loop"]["ops_s"]
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
