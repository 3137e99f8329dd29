"""Opens that block: a FIFO without its peer, with deadlines, cancel and close(cancel=True).

``os.open`` of a FIFO waits for its peer. The threadpool provider runs it so and
interrupts it (see ``providers/threadpool/fifos.py``); io_uring runs a write-only open in
io-wq (IOSQE_ASYNC) unless it has a deadline, and a read-only one inline (it returns at
once): both differences are in README's known differences and checked here as such.
Each case runs in a child process with a timeout, since the failure mode is a hang, and
checks there that no fd is left open.
"""

from __future__ import annotations

import errno
import json
import os
from typing import Any

import pytest
from helpers.proc import assert_child_ok, run_python

# The child's preamble: a FIFO in a fresh directory, a queue, the fds open before.
_PRELUDE = """
import errno, json, os, sys, tempfile, threading, time
import uringq
from helpers.proc import open_fds
PROVIDER = {provider!r}
d = tempfile.mkdtemp()
fifo = os.path.join(d, "f")
os.mkfifo(fifo)
q = uringq.IoQueue(8, provider=PROVIDER)
before = open_fds()
out = {{}}
def errno_of(c):
    return None if c.error is None else c.error.errno
def finish():
    t = time.monotonic()
    q.close(cancel=True)
    out["close_seconds"] = time.monotonic() - t
    out["leaked"] = sorted(open_fds() - before)
    print(json.dumps(out))
"""


def _child(provider: str, body: str, timeout: float = 30) -> dict[str, Any]:
    code = _PRELUDE.format(provider=provider) + body + "\nfinish()\n"
    proc = run_python(code, timeout=timeout)
    assert_child_ok(proc)
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["leaked"] == []
    assert result["close_seconds"] < 2.0
    return result


@pytest.mark.parametrize("flags", ["O_RDONLY", "O_WRONLY"])
def test_a_deadline_ends_a_blocked_fifo_open(provider: str, flags: str) -> None:
    out = _child(
        provider,
        f"""
t = time.monotonic()
q.prepare_openat(fifo, os.{flags}, user_data="o", timeout=0.2)
q.commit()
(c,) = q.wait(1, timeout=10)
out["seconds"] = time.monotonic() - t
out["errno"] = errno_of(c)
out["timeout_error"] = isinstance(c.error, TimeoutError)
if c.error is None:
    os.close(c.result)
out["result"] = c.result
""",
    )
    if provider == "io_uring" and flags == "O_RDONLY":
        # Known difference: the kernel's inline attempt opens at once (README).
        assert out["errno"] is None and out["result"] >= 0
    elif provider == "io_uring":
        # Known difference: a timed write-only open stays inline, so ENXIO at once
        # (a LINK_TIMEOUT never fires on an OPENAT blocked in io-wq; README).
        assert out["errno"] == errno.ENXIO and out["seconds"] < 0.2
    else:
        assert out["errno"] == errno.ETIMEDOUT and out["timeout_error"]
        assert 0.15 < out["seconds"] < 5.0


@pytest.mark.parametrize("flags", ["O_RDONLY", "O_WRONLY"])
def test_cancel_ends_a_blocked_fifo_open(provider: str, flags: str) -> None:
    if provider == "io_uring" and flags == "O_RDONLY":
        pytest.skip("io_uring opens a FIFO for reading at once (README)")
    out = _child(
        provider,
        f"""
q.prepare_openat(fifo, os.{flags}, user_data="o")
q.commit()
time.sleep(0.1)
assert q.wait(0, timeout=0) == []
out["matched"] = q.cancel("o")
(c,) = q.wait(1, timeout=10)
out["errno"] = errno_of(c)
out["more"] = len(q.wait(0, timeout=0.2))
""",
    )
    assert out["matched"] == 1
    assert out["errno"] == errno.ECANCELED
    assert out["more"] == 0


@pytest.mark.parametrize("flags", ["O_RDONLY", "O_WRONLY"])
def test_close_cancel_returns_with_a_blocked_fifo_open_running(provider: str, flags: str) -> None:
    if provider == "io_uring" and flags == "O_RDONLY":
        pytest.skip("io_uring opens a FIFO for reading at once (README)")
    _child(
        provider,
        f"""
q.prepare_openat(fifo, os.{flags}, user_data="o")
q.commit()
time.sleep(0.1)
""",
    )


def test_a_blocked_open_in_a_chain_breaks_it_at_its_deadline(provider: str) -> None:
    flags = "O_RDONLY" if provider == "threadpool" else "O_WRONLY"
    out = _child(
        provider,
        f"""
q.prepare_openat(fifo, os.{flags}, user_data="o", timeout=0.2, link=True)
q.prepare_statx(d, user_data="s")
q.commit()
got = {{c.user_data: errno_of(c) for c in q.wait(2, timeout=10)}}
out["open"], out["statx"] = got["o"], got["s"]
""",
    )
    want = errno.ETIMEDOUT if provider == "threadpool" else errno.ENXIO
    assert out["open"] == want
    assert out["statx"] == errno.ECANCELED


@pytest.mark.parametrize("flags", ["O_RDONLY", "O_WRONLY"])
def test_a_peer_racing_the_deadline_gives_an_fd_or_a_timeout_never_both(
    provider: str, flags: str
) -> None:
    """The peer arrives about when the deadline passes (and the pokes start): each open
    completes once, with its fd (a working one) or with ETIMEDOUT, and no fd leaks."""
    if provider == "io_uring":
        pytest.skip("io_uring never blocks a timed FIFO open (README)")
    out = _child(
        provider,
        f"""
peer = os.O_WRONLY if os.{flags} == os.O_RDONLY else os.O_RDONLY
counts = {{"fd": 0, "timeout": 0}}
for i in range(40):
    q.prepare_openat(fifo, os.{flags}, user_data=i, timeout=0.02)
    q.commit()
    time.sleep(0.015 + (i % 10) * 0.001)
    try:
        other = os.open(fifo, peer | os.O_NONBLOCK)
    except OSError as exc:  # ENXIO: no reader waits any more
        assert exc.errno == errno.ENXIO, exc
        other = None
    done = q.wait(1, timeout=10)
    assert len(done) == 1, done
    (c,) = done
    if c.error is None:
        assert os.path.samestat(os.fstat(c.result), os.stat(fifo))
        os.close(c.result)
        counts["fd"] += 1
    else:
        assert c.error.errno == errno.ETIMEDOUT, c
        counts["timeout"] += 1
    if other is not None:
        os.close(other)
    assert q.wait(0, timeout=0) == []
out.update(counts)
""",
        timeout=60,
    )
    assert out["fd"] + out["timeout"] == 40


def test_a_peer_arriving_before_the_deadline_opens(provider: str) -> None:
    out = _child(
        provider,
        """
q.prepare_openat(fifo, os.O_RDONLY, user_data="o", timeout=5)
q.commit()
time.sleep(0.1)
w = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
(c,) = q.wait(1, timeout=10)
out["errno"] = errno_of(c)
os.write(w, b"x")
out["read"] = os.read(c.result, 1).decode()
os.close(c.result)
os.close(w)
""",
    )
    assert out["errno"] is None
    assert out["read"] == "x"


@pytest.mark.parametrize("mode", ["rb", "wb"])
def test_aio_open_of_a_fifo_cancelled_by_wait_for(mode: str) -> None:
    """uringq.aio.open goes through prepare_openat: wait_for's cancel reaches it."""
    code = f"""
import asyncio, json, os, tempfile, time
import uringq.aio
from helpers.proc import open_fds
d = tempfile.mkdtemp()
fifo = os.path.join(d, "f")
os.mkfifo(fifo)
async def main():
    async with await uringq.aio.open(os.devnull, "rb", provider="threadpool"):
        pass  # the driver is up
    before = open_fds()
    t = time.monotonic()
    try:
        await asyncio.wait_for(uringq.aio.open(fifo, {mode!r}, provider="threadpool"), 0.2)
        raised = None
    except BaseException as exc:
        raised = type(exc).__name__
    seconds = time.monotonic() - t
    for _ in range(50):  # the worker closes what the interrupted open got
        if open_fds() == before:
            break
        await asyncio.sleep(0.02)
    return {{"raised": raised, "seconds": seconds, "leaked": sorted(open_fds() - before)}}
print(json.dumps(asyncio.run(main())))
"""
    proc = run_python(code, timeout=30)
    assert_child_ok(proc)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["raised"] == "TimeoutError"
    assert out["seconds"] < 2.0
    assert out["leaked"] == []


def test_opens_that_never_block_on_a_fifo_are_not_poked(tmp_path: Any) -> None:
    """O_RDWR and O_NONBLOCK opens of a FIFO return at once; regular files open as
    usual (the poke machinery is never involved: same result as os.open)."""
    import uringq

    fifos = tmp_path / "a", tmp_path / "b"
    for fifo in fifos:
        os.mkfifo(fifo)
    q = uringq.IoQueue(8, provider="threadpool")
    try:
        q.prepare_openat(fifos[0], os.O_RDWR, user_data="rw", timeout=5)
        q.prepare_openat(fifos[1], os.O_WRONLY | os.O_NONBLOCK, user_data="nb", timeout=5)
        q.commit()
        got = {c.user_data: c for c in q.wait(2, timeout=10)}
        assert got["rw"].error is None
        os.close(got["rw"].result)
        assert got["nb"].error is not None and got["nb"].error.errno == errno.ENXIO
    finally:
        q.close(cancel=True)


def test_a_read_of_a_nonblocking_fifo_that_never_had_a_writer_is_eof(provider: str) -> None:
    """Such a FIFO is at EOF (``os.read`` gives b"") though ``poll`` never says it is
    ready; a read request completes with 0 on both providers, and ``uringq.aio`` reads
    b"" as the builtin does (through an ``O_NONBLOCK`` opener)."""
    out = _child(
        provider,
        """
import asyncio, uringq.aio
fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
q.register(fd)
buf = bytearray(8)
q.prepare_read(fd, 0, buf, user_data="r")
q.commit()
(c,) = q.wait(1, timeout=5)
out["queue"] = [c.result, errno_of(c)]
q.deregister(fd)
os.close(fd)
def opener(path, flags):
    return os.open(path, flags | os.O_NONBLOCK)
async def main():
    uringq.aio.get_driver(provider=PROVIDER)
    got = []
    for buffering in (-1, 0):
        async with uringq.aio.open(fifo, "rb", buffering=buffering, opener=opener) as f:
            got.append((await asyncio.wait_for(f.read(), 5)).decode())
    return got
with open(fifo, "rb", opener=opener) as f:
    out["builtin"] = f.read().decode()
out["aio"] = asyncio.run(main())
""",
    )
    assert out["queue"] == [0, None]
    assert out["builtin"] == ""
    assert out["aio"] == ["", ""]


def test_opens_waiting_for_a_fifo_s_peer_hold_back_no_other_request(provider: str) -> None:
    """Two write-only opens waiting in the kernel's io-wq (or in workers) for a reader:
    an open for writing of a regular file (also sent to io-wq on io_uring) and a
    buffered write still complete at once. (A thread's io-wq took its worker limit from
    the first ring it used: the 2-entry probe ring allowed two.)"""
    out = _child(
        provider,
        """
for i in range(2):
    os.mkfifo(fifo + str(i))
    q.prepare_openat(fifo + str(i), os.O_WRONLY, user_data=f"fifo{i}")
q.commit()
time.sleep(0.2)
regular = os.path.join(d, "regular")
open(regular, "wb").close()
q.prepare_openat(regular, os.O_WRONLY, user_data="regular")
q.commit()
t = time.monotonic()
(c,) = q.wait(1, timeout=5)
out["first"] = [c.user_data, errno_of(c)]
fd = c.result
q.register(fd)
q.prepare_write(fd, 0, b"data", user_data="write")
q.commit()
(w,) = q.wait(1, timeout=5)
out["write"] = [w.user_data, w.result]
out["seconds"] = time.monotonic() - t
q.deregister(fd)
os.close(fd)
for i in range(2):
    os.close(os.open(fifo + str(i), os.O_RDWR))  # the readers: the FIFO opens return
for c in q.wait(2, timeout=10):
    if c.error is None:
        os.close(c.result)
""",
    )
    assert out["first"] == ["regular", None]
    assert out["write"] == ["write", 4]
    assert out["seconds"] < 2.0


@pytest.mark.parametrize("mode", ["rb", "wb"])
def test_cancelled_aio_opens_of_fifos_release_what_they_held(provider: str, mode: str) -> None:
    """Eight tasks cancelled while ``uringq.aio.open`` waits for a FIFO's peer: the opens
    are cancelled in the queue too, so the loop's next open and write run at once."""
    code = f"""
import asyncio, json, os, tempfile, time
import uringq.aio
from helpers.proc import open_fds
d = tempfile.mkdtemp()
async def main():
    uringq.aio.get_driver(provider={provider!r})
    before = open_fds()
    tasks = []
    for i in range(8):
        fifo = os.path.join(d, f"f{{i}}")
        os.mkfifo(fifo)
        tasks.append(asyncio.ensure_future(uringq.aio.open(fifo, {mode!r}).__aenter__()))
    await asyncio.sleep(0.2)
    for task in tasks:
        task.cancel()
    for result in await asyncio.gather(*tasks, return_exceptions=True):
        if not isinstance(result, BaseException):  # io_uring: a read-only one returns at once
            await result.close()
    t = time.monotonic()
    async def other():
        async with uringq.aio.open(os.path.join(d, "regular"), "wb") as f:
            await f.write(b"data")
    await asyncio.wait_for(other(), 10)
    seconds = time.monotonic() - t
    for _ in range(100):  # the cancelled opens' completions land
        if open_fds() == before:
            break
        await asyncio.sleep(0.02)
    return {{"seconds": seconds, "leaked": sorted(open_fds() - before)}}
print(json.dumps(asyncio.run(main())))
"""
    proc = run_python(code, timeout=60)
    assert_child_ok(proc)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["seconds"] < 2.0
    assert out["leaked"] == []
