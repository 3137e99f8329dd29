"""Automatic fallback with io_uring really blocked by seccomp (SPEC section 2, Provider
selection; section 7, Availability).

Each scenario runs in a child interpreter that installs a seccomp filter (helpers.seccomp)
making io_uring_setup/enter/register fail with EPERM (Docker's default profile) or ENOSYS
(gVisor, old kernels) before it imports uringq. The child reports what it saw as JSON;
each test checks one part of that report.
"""

from __future__ import annotations

import errno
import json
import os

import pytest
from helpers import seccomp
from helpers.proc import run_python

pytestmark = pytest.mark.skipif(
    not seccomp.supported(), reason="seccomp filter knows x86_64 and aarch64 only"
)

CHILD = """
import errno, json, os, sys, tempfile, traceback

report = {}
def record(key, fn):
    try:
        report[key] = fn()
    except BaseException as e:
        report[key] = {"raised": type(e).__name__, "message": str(e),
                       "is_oserror": isinstance(e, OSError), "errno": getattr(e, "errno", None),
                       "traceback": traceback.format_exc()}

from helpers.seccomp import block_io_uring, io_uring_setup_errno
block_io_uring(BLOCK_ERRNO, BLOCK_SYSCALLS)
report["filter_errno"] = errno.errorcode.get(io_uring_setup_errno(), "0")

def do_import():
    import uringq
    return True
record("import", do_import)
import uringq

def io_uring_info():
    info = uringq.get_provider("io_uring")
    return {"available": info.available, "reason": info.reason}
record("io_uring_info", io_uring_info)
record("best", lambda: uringq.best_provider().id)
record("listed", lambda: [(p.id, p.available) for p in uringq.providers()])

def round_trip():
    fd, path = tempfile.mkstemp()
    os.unlink(path)
    os.write(fd, b"hello, fallback")
    with uringq.IoQueue() as q:
        q.register(fd)
        buf = bytearray(8)
        q.prepare_read(fd, 7, buf, "rt")
        q.commit()
        (c,) = q.wait(1, None, 10)
        result = {"provider": q.provider_id, "result": c.result, "data": bytes(buf).decode(),
                  "error": repr(c.error)}
    os.close(fd)
    return result
record("round_trip", round_trip)

def forced(how):
    def attempt():
        if how == "argument":
            uringq.IoQueue(provider="io_uring")
        else:
            uringq.IoQueue()
        return {"raised": None}
    return attempt
if os.environ.get("URINGQ_PROVIDER") == "io_uring":
    record("forced_env", forced("env"))
else:
    record("forced_argument", forced("argument"))
print(json.dumps(report))
"""


def run_blocked(
    block_errno: int, syscalls: tuple[int, ...] = seccomp.IO_URING_SYSCALLS, **env: str
) -> dict:
    code = CHILD.replace("BLOCK_ERRNO", str(block_errno))
    code = code.replace("BLOCK_SYSCALLS", repr(tuple(syscalls)))
    proc = run_python(code, timeout=60, **env)
    assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def eperm() -> dict:
    return run_blocked(errno.EPERM)


@pytest.fixture(scope="module")
def enosys() -> dict:
    return run_blocked(errno.ENOSYS)


@pytest.fixture(scope="module")
def eperm_forced_by_env() -> dict:
    return run_blocked(errno.EPERM, URINGQ_PROVIDER="io_uring")


@pytest.fixture(params=["EPERM", "ENOSYS"])
def blocked(request, eperm, enosys) -> tuple[str, dict]:
    return request.param, {"EPERM": eperm, "ENOSYS": enosys}[request.param]


def native_importable() -> bool:
    try:
        import uringq._native  # noqa: F401
    except ImportError:
        return False
    return True


def io_uring_usable_here() -> bool:
    import uringq

    return uringq.get_provider("io_uring").available


needs_native = pytest.mark.skipif(
    not native_importable(), reason="without the extension the reason is about the import"
)


def no_raise(value) -> None:
    assert not (isinstance(value, dict) and value.get("raised")), value.get("traceback", value)


@pytest.mark.timeout(120)
def test_filter_really_blocks_io_uring(blocked):
    name, report = blocked
    assert report["filter_errno"] == name


@pytest.mark.timeout(120)
def test_uringq_imports_with_io_uring_blocked(blocked):
    _, report = blocked
    no_raise(report["import"])
    assert report["import"] is True


@pytest.mark.timeout(120)
def test_best_provider_falls_back_to_threadpool(blocked):
    _, report = blocked
    no_raise(report["best"])
    assert report["best"] == "threadpool"


@pytest.mark.timeout(120)
def test_io_uring_is_listed_as_unavailable(blocked):
    _, report = blocked
    no_raise(report["io_uring_info"])
    assert report["io_uring_info"]["available"] is False
    assert ["threadpool", True] in report["listed"]


@pytest.mark.timeout(120)
def test_default_queue_does_a_round_trip_on_the_fallback(blocked):
    _, report = blocked
    no_raise(report["round_trip"])
    assert report["round_trip"] == {
        "provider": "threadpool",
        "result": 8,
        "data": "fallback",
        "error": "None",
    }


@needs_native
@pytest.mark.timeout(120)
def test_reason_names_EPERM_and_seccomp(eperm):
    reason = eperm["io_uring_info"]["reason"]
    assert "EPERM" in reason
    assert os.strerror(errno.EPERM) in reason  # "Operation not permitted"
    assert "seccomp" in reason.lower()
    assert "io_uring" in reason


@needs_native
@pytest.mark.timeout(120)
def test_reason_names_ENOSYS(enosys):
    reason = enosys["io_uring_info"]["reason"]
    assert "ENOSYS" in reason
    assert os.strerror(errno.ENOSYS) in reason  # "Function not implemented"
    assert "io_uring" in reason


@pytest.mark.timeout(120)
def test_forcing_io_uring_by_argument_raises_ProviderUnavailable_with_the_reason(eperm):
    outcome = eperm["forced_argument"]
    assert outcome["raised"] == "ProviderUnavailable", outcome
    assert outcome["is_oserror"] and isinstance(outcome["errno"], int) and outcome["errno"] > 0
    assert eperm["io_uring_info"]["reason"] in outcome["message"]


@pytest.mark.timeout(120)
def test_forcing_io_uring_by_env_raises_ProviderUnavailable_with_the_reason(eperm_forced_by_env):
    report = eperm_forced_by_env
    no_raise(report["import"])
    outcome = report["forced_env"]
    assert outcome["raised"] == "ProviderUnavailable", outcome
    assert report["io_uring_info"]["reason"] in outcome["message"]


# Some profiles block only part of io_uring; every one of the three calls must work for
# io_uring to be chosen, and the reason names the one that failed.
PARTIAL = {426: "io_uring_enter", 427: "io_uring_register"}


@pytest.fixture(scope="module", params=sorted(PARTIAL), ids=lambda nr: PARTIAL[nr])
def partly_blocked(request) -> tuple[str, dict]:
    return PARTIAL[request.param], run_blocked(errno.EPERM, (request.param,))


@needs_native
@pytest.mark.skipif(
    not io_uring_usable_here(),
    reason="io_uring is already blocked in this process (e.g. the seccomp CI run): "
    "a child cannot show which single call a partial block refuses",
)
@pytest.mark.timeout(120)
def test_blocking_one_io_uring_call_falls_back_and_names_that_call(partly_blocked):
    call, report = partly_blocked
    no_raise(report["io_uring_info"])
    assert report["io_uring_info"]["available"] is False
    assert report["io_uring_info"]["reason"].startswith(f"{call}"), report["io_uring_info"]
    assert "EPERM" in report["io_uring_info"]["reason"]
    assert report["best"] == "threadpool"
    no_raise(report["round_trip"])
    assert report["round_trip"]["provider"] == "threadpool"
