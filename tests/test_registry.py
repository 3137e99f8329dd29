"""The provider registry (SPEC section 2: providers, selection, register_provider).

Tests that change the registry or the environment run in a child interpreter so the
registry of this process stays as shipped.
"""

from __future__ import annotations

import pytest
import uringq
from helpers.proc import assert_child_ok, run_python

SHIPPED = ("io_uring", "threadpool")


def native_importable() -> bool:
    try:
        import uringq._native  # noqa: F401
    except ImportError:
        return False
    return True


# --- the shipped registry -------------------------------------------------------------------


def test_providers_lists_io_uring_before_threadpool():
    ids = [p.id for p in uringq.providers()]
    assert "io_uring" in ids and "threadpool" in ids
    assert ids.index("io_uring") < ids.index("threadpool")


def test_provider_ids_are_unique():
    ids = [p.id for p in uringq.providers()]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("info", uringq.providers(), ids=lambda p: p.id)
def test_provider_info_has_typed_fields(info):
    assert isinstance(info.id, str) and info.id
    assert isinstance(info.handle_type, str)
    assert isinstance(info.native, bool)
    assert isinstance(info.available, bool)
    if info.available:
        assert info.reason is None
    else:
        assert isinstance(info.reason, str) and info.reason.strip()


def test_shipped_providers_handle_files():
    for pid in SHIPPED:
        assert uringq.get_provider(pid).handle_type == "file"


def test_io_uring_is_native_and_threadpool_is_not():
    assert uringq.get_provider("io_uring").native is True
    assert uringq.get_provider("threadpool").native is False


def test_threadpool_is_always_available():
    info = uringq.get_provider("threadpool")
    assert info.available is True
    assert info.reason is None


@pytest.mark.skipif(native_importable(), reason="the native extension imports here")
def test_io_uring_without_the_extension_is_unavailable_with_a_reason():
    info = uringq.get_provider("io_uring")
    assert info.available is False
    assert info.reason and info.reason.strip()


@pytest.mark.skipif(not native_importable(), reason="the native extension does not import")
def test_io_uring_availability_agrees_with_the_native_probe():
    from uringq import _native

    ok, reason = _native.probe()
    info = uringq.get_provider("io_uring")
    assert info.available is ok
    if not ok:
        assert reason and reason in info.reason


def test_best_provider_is_the_first_available_file_provider():
    first = next(p for p in uringq.providers() if p.available and p.handle_type == "file")
    assert uringq.best_provider().id == first.id
    assert uringq.best_provider("file").id == first.id


def test_best_provider_is_io_uring_when_it_is_available():
    if uringq.get_provider("io_uring").available:
        assert uringq.best_provider().id == "io_uring"
    else:
        assert uringq.best_provider().id == "threadpool"


@pytest.mark.parametrize("pid", SHIPPED)
def test_get_provider_returns_the_listed_info(pid):
    listed = next(p for p in uringq.providers() if p.id == pid)
    got = uringq.get_provider(pid)
    assert (got.id, got.handle_type, got.native, got.available, got.reason) == (
        listed.id,
        listed.handle_type,
        listed.native,
        listed.available,
        listed.reason,
    )


def test_default_queue_uses_the_best_provider(monkeypatch):
    monkeypatch.delenv("URINGQ_PROVIDER", raising=False)
    with uringq.IoQueue() as q:
        assert q.provider_id == uringq.best_provider().id


def test_queue_accepts_a_provider_info(provider):
    with uringq.IoQueue(provider=uringq.get_provider(provider)) as q:
        assert q.provider_id == provider


def test_queue_accepts_a_provider_id(provider):
    with uringq.IoQueue(provider=provider) as q:
        assert q.provider_id == provider


# --- URINGQ_PROVIDER ------------------------------------------------------------------------

ROUND_TRIP = """
    import os, tempfile, uringq
    fd, path = tempfile.mkstemp()
    os.write(fd, b"0123456789")
    with uringq.IoQueue() as q:
        print(q.provider_id)
        q.register(fd)
        buf = bytearray(4)
        q.prepare_read(fd, 3, buf, "x")
        q.commit()
        (c,) = q.wait(1, None, 10)
        assert (c.user_data, c.result, bytes(buf)) == ("x", 4, b"3456"), c
    os.close(fd); os.unlink(path)
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("pid", SHIPPED)
def test_env_var_forces_an_available_provider(pid):
    if not uringq.get_provider(pid).available:
        pytest.skip(f"{pid} is unavailable here")
    proc = run_python(ROUND_TRIP, URINGQ_PROVIDER=pid)
    assert_child_ok(proc)
    assert proc.stdout.split() == [pid]


@pytest.mark.timeout(60)
def test_env_var_forcing_an_unavailable_io_uring_raises_ProviderUnavailable():
    if uringq.get_provider("io_uring").available:
        pytest.skip("io_uring is available here (see test_fallback for the blocked case)")
    proc = run_python(
        """
        import uringq
        reason = uringq.get_provider("io_uring").reason
        try:
            uringq.IoQueue()
        except uringq.ProviderUnavailable as e:
            assert reason in str(e), (reason, str(e))
        else:
            raise AssertionError("no ProviderUnavailable")
        """,
        URINGQ_PROVIDER="io_uring",
    )
    assert_child_ok(proc)


# --- register_provider with a toy provider --------------------------------------------------

TOY_PRELUDE = """
    import os, tempfile
    import uringq
    from helpers.toy_provider import ToyOffProvider, ToyProvider
    uringq.register_provider(ToyProvider)
    uringq.register_provider(ToyOffProvider)
    fd, path = tempfile.mkstemp()
    os.write(fd, bytes(range(256)) * 16)
    os.unlink(path)
"""


def run_toy(body: str) -> None:
    import textwrap

    assert_child_ok(run_python(textwrap.dedent(TOY_PRELUDE) + textwrap.dedent(body)))


@pytest.mark.timeout(60)
def test_registered_provider_is_listed_with_its_fields():
    run_toy(
        """
        infos = {p.id: p for p in uringq.providers()}
        toy, off = infos["toy"], infos["toy_off"]
        fields = (toy.handle_type, toy.native, toy.available, toy.reason)
        assert fields == ("file", False, True, None), toy
        assert (off.available, off.reason) == (False, ToyOffProvider.REASON), off
        assert uringq.get_provider("toy").id == "toy"
        """
    )


@pytest.mark.timeout(60)
def test_registered_provider_does_a_round_trip_through_ioqueue():
    run_toy(
        """
        q = uringq.IoQueue(provider="toy")
        assert q.provider_id == "toy"
        q.register(fd)
        buf = bytearray(8)
        q.prepare_read(fd, 16, buf, "toy-read")
        assert q.commit() == 1
        (c,) = q.wait(1, None, 5)
        assert (c.user_data, c.result, bytes(buf)) == ("toy-read", 8, bytes(range(16, 24))), c
        q.close()
        """
    )


@pytest.mark.timeout(60)
def test_ioqueue_rounds_sizes_before_constructing_a_registered_provider():
    run_toy(
        """
        q = uringq.IoQueue(100, provider="toy")
        assert ToyProvider.constructed == [(128, 256)], ToyProvider.constructed
        assert (q.sq_entries, q.cq_entries) == (128, 256)
        """
    )


@pytest.mark.timeout(60)
def test_ioqueue_rejects_bad_sizes_without_constructing_a_registered_provider():
    run_toy(
        """
        for args in [(0,), (-1,), (32769,), (8, 4), (8, 65537), (2**64,)]:
            try:
                uringq.IoQueue(*args, provider="toy")
            except ValueError:
                pass
            else:
                raise AssertionError(f"IoQueue{args} accepted")
        assert ToyProvider.constructed == [], ToyProvider.constructed
        """
    )


@pytest.mark.timeout(60)
def test_ioqueue_checks_request_arguments_for_a_registered_provider():
    run_toy(
        """
        q = uringq.IoQueue(provider="toy")
        q.register(fd)
        for call, expected in [
            (lambda: q.prepare_read(fd, -1, bytearray(8)), ValueError),
            (lambda: q.prepare_write(fd, -5, b"x"), ValueError),
            (lambda: q.prepare_read(fd, 0, b"read-only"), (TypeError, ValueError, BufferError)),
            (lambda: q.prepare_read(fd, 0, 12), TypeError),
        ]:
            try:
                call()
            except expected:
                pass
            else:
                raise AssertionError("accepted a bad request")
        seen = [name for name, *_ in ToyProvider.calls]
        assert not any(name.startswith("prepare") for name in seen), seen
        """
    )


@pytest.mark.timeout(60)
def test_context_exit_closes_a_registered_provider_with_cancel():
    run_toy(
        """
        with uringq.IoQueue(provider="toy") as q:
            q.register(fd)
            q.prepare_read(fd, 0, bytearray(8))
        assert ("close", True) in ToyProvider.calls, ToyProvider.calls
        """
    )


@pytest.mark.timeout(60)
def test_fork_guard_applies_to_a_registered_provider():
    run_toy(
        """
        q = uringq.IoQueue(provider="toy")
        q.register(fd)
        pid = os.fork()
        if pid == 0:
            try:
                q.prepare_read(fd, 0, bytearray(8))
            except RuntimeError:
                os._exit(0)
            except BaseException:
                os._exit(2)
            os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        q.close()
        """
    )


@pytest.mark.timeout(60)
def test_forcing_an_unavailable_registered_provider_raises_ProviderUnavailable_with_the_reason():
    run_toy(
        """
        for choice in ("toy_off", uringq.get_provider("toy_off")):
            try:
                uringq.IoQueue(provider=choice)
            except uringq.ProviderUnavailable as e:
                assert ToyOffProvider.REASON in str(e), str(e)
                assert isinstance(e, OSError) and isinstance(e.errno, int) and e.errno > 0
            else:
                raise AssertionError("no ProviderUnavailable")
        assert ToyProvider.constructed == []
        """
    )


@pytest.mark.timeout(60)
def test_unavailable_registered_provider_is_never_the_best():
    run_toy(
        """
        assert uringq.best_provider().id != "toy_off"
        with uringq.IoQueue() as q:
            assert q.provider_id != "toy_off"
        """
    )
