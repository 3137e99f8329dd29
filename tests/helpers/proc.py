"""Process-level probes: open fds, fd flags, threads, RSS, running Python in a child
process."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

O_CLOEXEC_FDINFO = 0o2000000  # the O_CLOEXEC bit as /proc/self/fdinfo shows it (octal)
RSS_TOLERANCE = 8 * 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")

TESTS_DIR = Path(__file__).resolve().parent.parent
PYTHON_DIR = TESTS_DIR.parent / "python"


def open_fds() -> set[int]:
    """The fd numbers open in this process right now."""
    fds = set()
    for name in os.listdir("/proc/self/fd"):
        fds.add(int(name))
    # listdir itself opened (and closed) one; drop any that vanished meanwhile
    return {fd for fd in fds if _is_open(fd)}


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def fd_flags(fd: int) -> int:
    """The ``flags:`` field of /proc/self/fdinfo/<fd> (octal in the file)."""
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("flags:"):
                return int(line.split()[1], 8)
    raise AssertionError(f"no flags line in /proc/self/fdinfo/{fd}")


def child_env(**overrides: str | None) -> dict[str, str]:
    """An environment for a child Python that finds uringq and the test helpers."""
    env = dict(os.environ)
    paths = [str(PYTHON_DIR), str(TESTS_DIR)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.pop("URINGQ_PROVIDER", None)
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_python(
    code: str, *, timeout: float = 60, **env: str | None
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter; return the finished process (text output)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_child_ok(proc: subprocess.CompletedProcess[str]) -> None:
    """Fail with the child's output unless it exited 0."""
    assert proc.returncode == 0, (
        f"child exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )


def run_in_child(body: Callable[[], str], timeout: float = 15) -> tuple[int, str]:
    """Fork; run ``body()`` in the child, which returns a message ('' = success).

    The child reports through a pipe and leaves with ``os._exit`` (never returning into
    pytest). Returns (exit status, message); a child still running after ``timeout`` is
    killed and reported as a hang.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(r)
            message = body()
            code = 1 if message else 0
        except BaseException as e:
            message, code = f"child raised {type(e).__name__}: {e}", 2
        try:
            os.write(w, message.encode()[:4000])
        finally:
            os._exit(code)
    os.close(w)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            os.close(r)
            return -1, f"child hung for more than {timeout}s"
        time.sleep(0.02)
    message = os.read(r, 8192).decode()
    os.close(r)
    return os.waitstatus_to_exitcode(status), message


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def os_threads() -> int:
    """Threads of this process, io_uring's own kernel workers (iou-*) left out."""
    count = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                if not f.read().startswith("iou-"):
                    count += 1
        except OSError:  # the thread ended meanwhile
            pass
    return count


class Gauge:
    """fds, threads and RSS once settled; ``assert_flat`` compares after letting threads
    settle again."""

    def __init__(self, settle: float = 5.0) -> None:
        # Queues collected or closed just before (a warm-up) may still be releasing their
        # fds and threads: take the baseline once nothing has changed for 60 ms.
        gc.collect()
        deadline = time.monotonic() + settle
        seen = (open_fds(), threading.active_count(), os_threads())
        quiet = 0
        while quiet < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
            gc.collect()
            now = (open_fds(), threading.active_count(), os_threads())
            quiet = quiet + 1 if now == seen else 0
            seen = now
        self.fds, self.py_threads, self.threads = seen
        self.rss = rss()

    def assert_flat(self, what: str, settle: float = 5.0) -> None:
        gc.collect()
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:  # workers of closed queues leave on their own
            if (
                open_fds() == self.fds
                and threading.active_count() <= self.py_threads
                and os_threads() <= self.threads
            ):
                break
            time.sleep(0.02)
            gc.collect()
        fds = open_fds()
        assert fds == self.fds, (
            f"{what}: fds leaked {sorted(fds - self.fds)}, lost {sorted(self.fds - fds)}"
        )
        assert threading.active_count() <= self.py_threads, (
            f"{what}: Python threads {self.py_threads} -> {threading.active_count()}:"
            f" {[t.name for t in threading.enumerate()]}"
        )
        assert os_threads() <= self.threads, f"{what}: threads {self.threads} -> {os_threads()}"
        grown = rss() - self.rss
        assert grown < RSS_TOLERANCE, f"{what}: RSS grew by {grown / 2**20:.1f} MiB"
