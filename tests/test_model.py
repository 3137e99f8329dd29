"""A model of the queue's books, driven by hypothesis (SPEC section 2, Commit and capacity,
Waiting; upstream defects 1-3).

Random sequences of prepare / commit / wait / wakeup against a small queue; after every
step the queue's counters must match the model, ``QueueFull`` must come exactly when the
SQ or the CQ has no room, and every completion must be returned exactly once with the
right data.
"""

from __future__ import annotations

import os

import pytest
import uringq
from helpers.patterns import pattern
from helpers.queueing import DATA_SIZE
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)


def make_machine(provider: str, path: str) -> type[RuleBasedStateMachine]:
    class QueueBooks(RuleBasedStateMachine):
        @initialize(sq=st.sampled_from([1, 2, 4]), factor=st.sampled_from([1, 2, 3]))
        def open_queue(self, sq: int, factor: int) -> None:
            self.q = uringq.IoQueue(sq, sq * factor, provider=provider)
            self.fd = os.open(path, os.O_RDONLY)
            self.q.register(self.fd)
            self.next_id = 0
            self.prepared: set[int] = set()
            self.in_flight: set[int] = set()
            self.requests: dict[int, tuple[int, bytearray]] = {}
            self.returned: set[int] = set()

        def take(self, completions) -> None:
            for c in completions:
                ud = c.user_data
                assert ud in self.in_flight, f"completion {ud} not in flight (twice? never sent?)"
                self.in_flight.remove(ud)
                self.returned.add(ud)
                off, buf = self.requests.pop(ud)
                assert c.error is None, c.error
                assert c.result == len(buf)
                assert buf == pattern(off, len(buf))

        @rule(size=st.sampled_from([0, 1, 100, 4096]), block=st.integers(0, 50))
        def prepare(self, size: int, block: int) -> None:
            room = (
                len(self.prepared) < self.q.sq_entries
                and len(self.prepared) + len(self.in_flight) < self.q.cq_entries
            )
            off, buf = block * 1000, bytearray(size)
            if not room:
                try:
                    self.q.prepare_read(self.fd, off, buf, "rejected")
                except uringq.QueueFull:
                    event("QueueFull")
                    return
                raise AssertionError("prepare accepted a request with no room for it")
            ud = self.next_id
            self.next_id += 1
            self.q.prepare_read(self.fd, off, buf, ud)
            self.prepared.add(ud)
            self.requests[ud] = (off, buf)

        @rule()
        def commit(self) -> None:
            if not self.prepared:
                try:
                    self.q.commit()
                except uringq.QueueEmpty:
                    return
                raise AssertionError("commit with nothing prepared did not raise QueueEmpty")
            before = len(self.prepared)
            n = self.q.commit()
            assert 0 <= n <= before
            event(f"commit took {n} of {before}")
            # commit submits in preparation order; what the kernel did not take stays prepared
            moved = sorted(self.prepared)[:n]
            self.prepared.difference_update(moved)
            self.in_flight.update(moved)

        @precondition(lambda self: self.in_flight)
        @rule(max_events=st.sampled_from([None, 1, 2]), all_of_them=st.booleans())
        def wait(self, max_events, all_of_them: bool) -> None:
            if all_of_them and max_events is None:
                self.take(self.q.wait(len(self.in_flight)))  # no timeout: must be met
            else:
                got = self.q.wait(1, max_events, 5)
                assert 1 <= len(got) <= (max_events or len(self.in_flight))
                self.take(got)

        @rule()
        def wait_for_too_many(self) -> None:
            try:
                self.q.wait(len(self.in_flight) + 1)
            except ValueError:
                return
            except uringq.QueueEmpty:
                assert not self.in_flight
                return
            raise AssertionError("wait(min_events > in_flight) without timeout returned")

        @rule(max_events=st.sampled_from([None, 1]))
        def wakeup_then_wait(self, max_events) -> None:
            self.q.wakeup()
            try:
                self.q.wait(1, max_events, 5)
            except uringq.Interrupted as e:
                assert len(e.completions) <= (max_events or len(e.completions))
                self.take(e.completions)
                return
            raise AssertionError("wait after wakeup() did not raise Interrupted")

        @invariant()
        def books_balance(self) -> None:
            if not hasattr(self, "q"):
                return
            assert self.q.prepared == len(self.prepared)
            assert self.q.in_flight == len(self.in_flight)

        def teardown(self) -> None:
            if hasattr(self, "q"):
                self.q.close(cancel=True)
                os.close(self.fd)

    return QueueBooks


@pytest.mark.timeout(120)
def test_queue_books_match_a_model_over_random_operation_sequences(provider, data_file):
    assert DATA_SIZE > 50 * 1000 + 4096
    machine = make_machine(provider, data_file)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=100,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        ),
    )
