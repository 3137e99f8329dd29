"""Process-level probes: open fds, fd flags, running Python in a child process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

O_CLOEXEC_FDINFO = 0o2000000  # the O_CLOEXEC bit as /proc/self/fdinfo shows it (octal)

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
