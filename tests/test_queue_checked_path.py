"""``IoQueue``'s own checked path (a provider that does not validate its arguments, such
as a third-party one): the data requests take ``link``, ``hardlink`` and ``timeout`` as
the shipped providers' bound methods do (SPEC 8), check them before anything is queued,
and hand them on. Runs in a child that registers a threadpool provider without
``validates_arguments``."""

from __future__ import annotations

import textwrap

import pytest
from helpers.proc import assert_child_ok, run_python

CHILD = """
    import errno, os, tempfile
    import uringq
    from uringq.providers.threadpool.provider import ThreadPoolProvider

    class Checked(ThreadPoolProvider):
        id = "checked_threadpool"
        validates_arguments = False

    uringq.register_provider(Checked)
    q = uringq.IoQueue(8, provider="checked_threadpool")
    assert q.provider_id == "checked_threadpool"
    assert "prepare_read" not in vars(q)  # IoQueue's checked method, not the provider's

    fd, path = tempfile.mkstemp()
    os.write(fd, b"0123456789")
    q.register(fd)

    # Bad flags and deadlines raise before anything is queued.
    for kwargs, error in [
        ({"link": True, "hardlink": True}, ValueError),
        ({"link": 1}, TypeError),
        ({"timeout": -1}, ValueError),
        ({"timeout": "x"}, TypeError),
    ]:
        try:
            q.prepare_read(fd, 0, bytearray(4), **kwargs)
        except error:
            pass
        else:
            raise AssertionError(kwargs)
        assert q.prepared == 0, kwargs

    # A short read breaks a link=True chain; hardlink=True keeps it going.
    short, after = bytearray(64), bytearray(2)
    q.prepare_read(fd, 0, short, "short", link=True)
    q.prepare_write(fd, 20, b"xy", "cancelled")
    q.prepare_read(fd, 0, bytearray(64), "short2", hardlink=True)
    q.prepare_readv(fd, 0, [after], "runs")
    q.commit()
    got = {c.user_data: c for c in q.wait(4, timeout=5)}
    assert got["short"].result == 10
    assert got["cancelled"].error.errno == errno.ECANCELED, got
    assert got["runs"].result == 2 and bytes(after) == b"01", got
    q.prepare_sync(fd, "sync", link=True)
    q.prepare_writev(fd, 0, [b"ab"], "w")
    q.commit()
    assert sorted(c.user_data for c in q.wait(2, timeout=5)) == ["sync", "w"]

    # A deadline on a read that never completes (an empty pipe).
    r, w = os.pipe()
    q.register(r)
    q.prepare_read(r, 0, bytearray(4), "pipe", timeout=0.1)
    q.commit()
    [c] = q.wait(1, timeout=5)
    assert isinstance(c.error, TimeoutError) and c.error.errno == errno.ETIMEDOUT, c
    q.deregister(r)
    q.deregister(fd)
    q.close()
    print("ok")
"""


@pytest.mark.timeout(60)
def test_the_checked_path_takes_links_and_deadlines() -> None:
    proc = run_python(textwrap.dedent(CHILD))
    assert_child_ok(proc)
    assert proc.stdout.strip() == "ok"
