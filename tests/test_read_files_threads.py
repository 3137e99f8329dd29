"""io_uring ``read_files`` over several rings at once (one thread each, for big lists on
several CPUs): the same results, errors, order, Ctrl-C and descriptor guarantees as one
ring (SPEC section 9). ``_threads`` forces the number of rings."""

from __future__ import annotations

import os
import pathlib
import random
import threading
from typing import Any

import pytest
import uringq
from helpers.proc import open_fds
from helpers.whole_files import fds_after_warm_up, files_in_ring_tables
from test_whole_files_robustness import PROMPT, interrupt_after, oracle


def _direct_mode() -> bool:
    if not any(p.id == "io_uring" and p.available for p in uringq.providers()):
        return False
    from uringq import _native

    return bool(_native.whole_files_mode() == "direct")


pytestmark = pytest.mark.skipif(
    not _direct_mode(), reason="several rings read at once with direct descriptors (io_uring)"
)


def _native() -> Any:
    from uringq import _native

    return _native


@pytest.fixture
def files(tmp_path: pathlib.Path) -> list[str]:
    rng = random.Random(9)
    paths = []
    for i in range(120):
        path = tmp_path / f"f{i}"
        path.write_bytes(os.urandom(rng.choice([0, 1, 4096, 9000, 70_000])))
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("threads", [2, 3, 4])
def test_parts_match_open_in_input_order(
    threads: int, files: list[str], tmp_path: pathlib.Path
) -> None:
    paths: list[Any] = list(files)
    # Errors in every part, the later parts' before the earlier ones' in time.
    for at, bad in [(110, str(tmp_path / "missing")), (70, str(tmp_path)), (5, "/nonexistent/x")]:
        paths.insert(at, bad)
    paths += ["/proc/self/mountinfo", os.fsencode(files[0]), pathlib.Path(files[1])]
    before = fds_after_warm_up("io_uring")
    got = _native().read_files(paths, return_exceptions=True, _threads=threads)
    assert [g if isinstance(g, bytes) else type(g) for g in got] == [oracle(p) for p in paths]
    with pytest.raises(FileNotFoundError) as info:
        _native().read_files(paths, _threads=threads)
    assert info.value.filename == "/nonexistent/x"
    assert open_fds() == before
    assert files_in_ring_tables(tmp_path) == []


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_more_rings_than_files(threads: int, files: list[str]) -> None:
    assert _native().read_files(files[:2], _threads=threads) == [oracle(p) for p in files[:2]]
    assert _native().read_files([], _threads=threads) == []


@pytest.mark.parametrize("stuck_part", [0, 1])
def test_ctrl_c_ends_every_part_when_one_is_stuck_on_a_fifo(
    stuck_part: int, files: list[str], tmp_path: pathlib.Path, default_sigint: None
) -> None:
    """The FIFO (never completes) in this thread's part or in a helper thread's: the
    signal reaches the main thread, which stops every part."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    before = fds_after_warm_up("io_uring")
    paths = list(files[:40])
    paths.insert(5 if stuck_part == 0 else 35, str(fifo))
    raised, late = interrupt_after(0.3, lambda: _native().read_files(paths, _threads=2))
    assert isinstance(raised, KeyboardInterrupt), raised
    assert late < PROMPT, f"KeyboardInterrupt {late:.3f} s after SIGINT"
    assert open_fds() == before
    assert files_in_ring_tables(tmp_path) == []
    assert _native().read_files(files[:3], _threads=2) == [oracle(p) for p in files[:3]]


def test_ctrl_c_stops_a_long_run_on_several_rings(
    files: list[str], tmp_path: pathlib.Path, default_sigint: None
) -> None:
    before = fds_after_warm_up("io_uring")
    many = files * 3000
    raised, late = interrupt_after(0.3, lambda: _native().read_files(many, _threads=4))
    assert isinstance(raised, KeyboardInterrupt), raised
    assert late < PROMPT, f"KeyboardInterrupt {late:.3f} s after SIGINT"
    assert open_fds() == before
    assert files_in_ring_tables(tmp_path) == []


def test_a_big_list_from_several_threads_at_once(files: list[str]) -> None:
    """Callers in threads, each run spread over rings of its own threads."""
    paths = files * 10
    expected = [oracle(p) for p in paths]
    failures: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                assert _native().read_files(paths, _threads=2) == expected
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures


def test_the_public_call_spreads_big_lists_and_matches(files: list[str]) -> None:
    """Above 512 files a CPU, ``uringq.read_files`` may use several rings: whatever it
    picks here, the results are the loop's."""
    paths = files * 20
    assert uringq.read_files(paths, provider="io_uring") == [oracle(p) for p in paths]
