"""Signals during wait(): Python's handlers run promptly, also for a signal delivered to
another thread; an exception from a handler propagates; no completion is lost
(SPEC section 2, Waiting; upstream defect 4)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from helpers.queueing import settle

PROMPT = 1.0  # seconds within which a signal must interrupt a wait
DELAY = 0.2  # when the signal is sent, after the wait started


class Custom(Exception):
    pass


@pytest.fixture(autouse=True)
def restore_signal_handlers(default_sigint):
    saved = signal.getsignal(signal.SIGUSR1)
    yield
    signal.signal(signal.SIGUSR1, saved)


def run_while_signalled(call: Callable[[], Any], send: Callable[[], None]) -> dict[str, Any]:
    """Run ``call()`` here while another thread runs ``send()`` after DELAY.

    Returns ``{"value" | "error": ..., "elapsed": seconds}``; a signal handled only after
    ``call`` returned is caught here (``"late"``) instead of escaping into pytest.
    """
    outcome: dict[str, Any] = {}
    sender = threading.Thread(target=lambda: (time.sleep(DELAY), send()), daemon=True)
    start = time.monotonic()
    try:
        sender.start()
        try:
            outcome["value"] = call()
        except BaseException as e:
            outcome["error"] = e
        outcome["elapsed"] = time.monotonic() - start
        sender.join()
        for _ in range(20):  # let a signal that is still pending run its handler here
            time.sleep(0.01)
    except (KeyboardInterrupt, Custom) as late:
        outcome["late"] = late
    return outcome


def assert_interrupted_by(outcome: dict[str, Any], exc_type: type[BaseException]) -> None:
    assert "late" not in outcome, f"the handler ran only after wait returned: {outcome}"
    assert isinstance(outcome.get("error"), exc_type), (
        f"wait did not raise {exc_type.__name__}: {outcome}"
    )
    assert outcome["elapsed"] < DELAY + PROMPT, f"took {outcome['elapsed']:.2f}s to interrupt"


def to_main_thread() -> None:
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)


def to_process() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def to_sending_thread() -> None:
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)


@pytest.mark.timeout(20)
def test_sigint_to_the_waiting_thread_raises_KeyboardInterrupt_promptly(queue):
    outcome = run_while_signalled(lambda: queue.wait(1, None, 30), to_main_thread)
    assert_interrupted_by(outcome, KeyboardInterrupt)


@pytest.mark.timeout(20)
def test_sigint_to_the_process_raises_KeyboardInterrupt_promptly(queue):
    outcome = run_while_signalled(lambda: queue.wait(1, None, 30), to_process)
    assert_interrupted_by(outcome, KeyboardInterrupt)


@pytest.mark.timeout(20)
def test_sigint_delivered_to_another_thread_raises_KeyboardInterrupt_in_the_waiter(queue):
    outcome = run_while_signalled(lambda: queue.wait(1, None, 30), to_sending_thread)
    assert_interrupted_by(outcome, KeyboardInterrupt)


@pytest.mark.timeout(20)
def test_sigint_interrupts_a_wait_without_timeout(queue, pending_read):
    outcome = run_while_signalled(queue.wait, to_main_thread)
    assert_interrupted_by(outcome, KeyboardInterrupt)


@pytest.mark.timeout(20)
def test_no_completion_is_lost_when_KeyboardInterrupt_interrupts_a_wait(queue, rfd):
    buf = bytearray(64)
    queue.prepare_read(rfd, 0, buf, "kept")
    queue.commit()
    settle()
    outcome = run_while_signalled(lambda: queue.wait(2, None, 30), to_main_thread)
    assert_interrupted_by(outcome, KeyboardInterrupt)
    assert queue.in_flight == 1
    got = queue.wait(1, None, 5)
    assert [(c.user_data, c.result) for c in got] == [("kept", 64)]
    assert queue.wait(1, None, 0.1) == []


@pytest.mark.timeout(20)
def test_request_stays_in_flight_after_KeyboardInterrupt_and_completes_later(queue, pending_read):
    outcome = run_while_signalled(queue.wait, to_process)
    assert_interrupted_by(outcome, KeyboardInterrupt)
    assert queue.in_flight == 1
    pending_read.release(b"after")
    (c,) = queue.wait()
    assert (c.user_data, c.result) == ("pending", 5)
    assert pending_read.buf[:5] == b"after"


@pytest.mark.timeout(20)
def test_exception_raised_by_a_custom_handler_propagates_from_wait(queue):
    def handler(signum, frame):
        raise Custom(signum)

    signal.signal(signal.SIGUSR1, handler)
    send = lambda: signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)  # noqa: E731
    outcome = run_while_signalled(lambda: queue.wait(1, None, 30), send)
    assert_interrupted_by(outcome, Custom)
    assert outcome["error"].args == (signal.SIGUSR1,)


@pytest.mark.timeout(20)
def test_handler_that_returns_runs_promptly_and_wait_does_not_raise(queue, rfd):
    handled: list[float] = []
    signal.signal(signal.SIGUSR1, lambda signum, frame: handled.append(time.monotonic()))
    queue.prepare_read(rfd, 0, bytearray(64), "one")
    queue.commit()
    settle()
    sent: list[float] = []

    def send() -> None:
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGUSR1)

    outcome = run_while_signalled(lambda: queue.wait(2, None, 1.5), send)
    assert "error" not in outcome, outcome
    assert [c.user_data for c in outcome["value"]] == ["one"]
    assert len(handled) == 1
    assert handled[0] - sent[0] < PROMPT, "the handler ran only when wait returned"
