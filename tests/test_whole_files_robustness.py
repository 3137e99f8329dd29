"""Whole files under stress, on every provider: no descriptor left open on any path,
thousands of files under a low RLIMIT_NOFILE, Ctrl-C during a long run and on a run
stuck on a FIFO, threads, fork, a fuzz of random lists (SPEC section 9)."""

from __future__ import annotations

import os
import pathlib
import random
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import uringq
from helpers.proc import assert_child_ok, open_fds, run_python
from helpers.whole_files import fds_after_warm_up, files_in_ring_tables

PROMPT = 1.0  # seconds from the signal to KeyboardInterrupt (SPEC: about 100 ms; loaded CI)
IO_URING = [p.id for p in uringq.providers() if p.available and p.id == "io_uring"]


def oracle(path: Any) -> bytes | type[OSError]:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        return type(exc)


@pytest.fixture
def small_files(tmp_path: pathlib.Path) -> list[str]:
    rng = random.Random(5)
    paths = []
    for i in range(200):
        path = tmp_path / f"s{i}"
        path.write_bytes(os.urandom(rng.randrange(0, 12_288)))
        paths.append(str(path))
    return paths


def test_a_fuzz_of_random_lists_never_leaks_and_matches_open(
    provider: str, tmp_path: pathlib.Path
) -> None:
    rng = random.Random(1234)
    pool: list[Any] = [str(tmp_path), str(tmp_path / "missing"), "/proc/self/mountinfo"]
    for i, size in enumerate([0, 1, 100, 4096, 65_535, 65_536, 65_537, 200_000]):
        path = tmp_path / f"z{i}"
        path.write_bytes(os.urandom(size))
        pool += [str(path), path, os.fsencode(path), str(path) + "/not-a-dir"]
    before = fds_after_warm_up(provider)
    for _ in range(40):
        paths = [rng.choice(pool) for _ in range(rng.randrange(0, 60))]
        got = uringq.read_files(paths, return_exceptions=True, provider=provider)
        want = [oracle(p) for p in paths]
        assert [g if isinstance(g, bytes) else type(g) for g in got] == want
        for path, value in zip(paths, got, strict=True):
            if isinstance(value, OSError):
                assert value.filename is path
        if any(isinstance(g, OSError) for g in got):
            with pytest.raises(OSError) as info:
                uringq.read_files(paths, provider=provider)
            first = next(p for p, g in zip(paths, got, strict=True) if isinstance(g, OSError))
            assert info.value.filename is first
        assert files_in_ring_tables(tmp_path) == []
    assert open_fds() == before


@pytest.mark.parametrize("plain", [False, True])
def test_thousands_of_files_under_a_low_descriptor_limit(
    provider: str, plain: bool, tmp_path: pathlib.Path
) -> None:
    """At most a bounded number of files is open at once: 3000 files under
    RLIMIT_NOFILE=40 (io_uring also in plain-descriptor mode, which meets EMFILE)."""
    if plain and provider != "io_uring":
        pytest.skip("plain descriptors are an io_uring mode")
    proc = run_python(
        f"""
        import os, resource, uringq
        from uringq import _native
        root = {str(tmp_path)!r}
        paths = []
        for i in range(3000):
            p = os.path.join(root, f"n{{i}}")
            with open(p, "wb") as f:
                f.write(bytes([i % 256]) * (i % 5000))
            paths.append(p)
        expected = [bytes([i % 256]) * (i % 5000) for i in range(3000)]
        resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))
        if {plain!r}:
            got = _native.read_files(paths, _plain=True, _window=64)
        else:
            got = uringq.read_files(paths, provider={provider!r})
        assert got == expected, "mismatch"
        written = uringq.write_files(zip(paths, expected, strict=True), provider={provider!r})
        assert written == [len(d) for d in expected]
        print("ok")
        """
    )
    assert_child_ok(proc)
    assert proc.stdout.strip() == "ok"


def interrupt_after(delay: float, call: Callable[[], Any]) -> tuple[BaseException | None, float]:
    """Run ``call()`` while SIGINT hits the main thread after ``delay``; return what it
    raised and how long after the signal it returned."""
    main = threading.get_ident()
    sent: list[float] = []

    def send() -> None:
        sent.append(time.monotonic())
        signal.pthread_kill(main, signal.SIGINT)

    timer = threading.Timer(delay, send)
    timer.start()
    raised: BaseException | None = None
    try:
        call()
    except BaseException as exc:
        raised = exc
    done = time.monotonic()
    timer.join()
    return raised, done - (sent[0] if sent else done)


def test_ctrl_c_stops_a_long_read_promptly(
    provider: str, small_files: list[str], default_sigint: None
) -> None:
    before = fds_after_warm_up(provider)
    many = small_files * 2000  # 400 000 reads: seconds of work
    raised, late = interrupt_after(0.3, lambda: uringq.read_files(many, provider=provider))
    assert isinstance(raised, KeyboardInterrupt), raised
    assert late < PROMPT, f"KeyboardInterrupt {late:.3f} s after SIGINT"
    assert open_fds() == before
    assert files_in_ring_tables(os.path.dirname(small_files[0])) == []
    assert uringq.read_files(small_files[:3], provider=provider) == [
        oracle(p) for p in small_files[:3]
    ]


def test_ctrl_c_stops_a_long_write_promptly(
    provider: str, tmp_path: pathlib.Path, default_sigint: None
) -> None:
    before = fds_after_warm_up(provider)
    files = [(tmp_path / f"w{i % 300}", b"x" * 4000) for i in range(300_000)]
    raised, late = interrupt_after(0.3, lambda: uringq.write_files(files, provider=provider))
    assert isinstance(raised, KeyboardInterrupt), raised
    assert late < PROMPT, f"KeyboardInterrupt {late:.3f} s after SIGINT"
    assert open_fds() == before


def test_ctrl_c_ends_a_read_stuck_on_a_fifo(
    provider: str, tmp_path: pathlib.Path, small_files: list[str], default_sigint: None
) -> None:
    """A FIFO without a writer never completes (as ``open(fifo).read()`` blocks)."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    before = fds_after_warm_up(provider)
    paths = [*small_files[:5], str(fifo), *small_files[5:10]]
    raised, late = interrupt_after(0.3, lambda: uringq.read_files(paths, provider=provider))
    assert isinstance(raised, KeyboardInterrupt), raised
    assert late < PROMPT, f"KeyboardInterrupt {late:.3f} s after SIGINT"
    assert open_fds() == before
    assert files_in_ring_tables(tmp_path) == []


def test_a_timer_signal_whose_handler_raises(provider: str, small_files: list[str]) -> None:
    class Alarm(Exception):
        pass

    armed = [True]
    package = os.path.dirname(uringq.__file__) + os.sep

    def handler(signum: int, frame: Any) -> None:
        # Raises only where it interrupts uringq's own code (read_files and what it
        # calls): an alarm landing in a gc callback (hypothesis registers one) or in
        # pytest's hook for the exception Python then swallows would go astray; the next
        # alarm, 50 ms later, lands in read_files again.
        if armed[0] and frame is not None and frame.f_code.co_filename.startswith(package):
            raise Alarm

    saved = signal.signal(signal.SIGALRM, handler)
    before = fds_after_warm_up(provider)
    start = time.monotonic()
    caught = False
    try:
        # Again every 50 ms, until one lands in uringq's code (see the handler).
        signal.setitimer(signal.ITIMER_REAL, 0.2, 0.05)
        try:
            uringq.read_files(small_files * 2000, provider=provider)
        except Alarm:
            # Disarmed before any call: handlers run only at calls and backward jumps, so
            # a later alarm cannot raise again here (it did inside pytest.raises' __exit__).
            armed[0] = False
            caught = True
    finally:
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, saved)
    assert caught, "read_files finished before any alarm"
    assert time.monotonic() - start < 0.2 + PROMPT
    assert open_fds() == before


def test_threads_read_and_write_at_once(provider: str, small_files: list[str]) -> None:
    expected = [oracle(p) for p in small_files]
    failures: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for _ in range(5):
                assert uringq.read_files(small_files, provider=provider) == expected
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures


def test_a_forked_child_reads_with_its_own_ring(provider: str, small_files: list[str]) -> None:
    expected = [oracle(p) for p in small_files]
    assert uringq.read_files(small_files, provider=provider) == expected  # caches a ring
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if uringq.read_files(small_files, provider=provider) == expected else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert uringq.read_files(small_files, provider=provider) == expected


@pytest.mark.parametrize("provider_id", IO_URING)
@pytest.mark.parametrize(("window", "buffer"), [(1, 1), (3, 100), (7, 4096), (200, 65536)])
def test_native_modes_and_sizes_agree(
    provider_id: str, window: int, buffer: int, small_files: list[str], tmp_path: pathlib.Path
) -> None:
    """The io_uring engine's plain-descriptor mode and tiny windows and slots (each file
    then takes the follow-up path) give the same results as the default."""
    from uringq import _native

    paths: list[Any] = [*small_files[:40], str(tmp_path / "missing"), str(tmp_path)]
    want = [oracle(p) for p in paths]
    _native.read_files(paths[:1], _window=window)  # a ring of this size, kept by the thread
    before = open_fds()
    for plain in (False, True):
        got = _native.read_files(
            paths, return_exceptions=True, _window=window, _buffer=buffer, _plain=plain
        )
        assert [g if isinstance(g, bytes) else type(g) for g in got] == want
        data = [os.urandom(i * 10) for i in range(10)]
        targets = [tmp_path / f"t{i}" for i in range(10)]
        written = _native.write_files(targets, data, _window=window, _plain=plain)
        assert written == [len(d) for d in data]
        assert [t.read_bytes() for t in targets] == data
        assert files_in_ring_tables(tmp_path) == []
    assert open_fds() == before
