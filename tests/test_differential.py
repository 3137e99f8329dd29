"""Differential fuzzing: io_uring, threadpool and a plain model in lockstep (SPEC sections
1-3 and 8).

A hypothesis ``RuleBasedStateMachine`` drives every available provider and
:class:`~helpers.model_queue.ModelQueue` - a plain synchronous restatement of the SPEC
(requests run with the plain ``os`` calls on the model's own copy of the files, chain by
chain in preparation order, at ``commit``) - with the same random steps: register,
deregister, prepare (read, write, sync, readv, writev, with ``link``/``hardlink`` and far
deadlines, and bad inputs), the operations (openat, close, statx, short and long timers,
renameat, unlinkat, mkdirat, symlinkat, linkat, ftruncate, and bad inputs), commit, wait
(exact, timed, polling, impossible ``min_events`` with and without timeout), cancel,
wakeup, close, reopen and ``read_many``/``write_many``. Each side works on its own copy
of the files and its own namespace directory (see ``helpers/differential.py``).

What must be identical on every side, after every step:

* the outcome of each call: the same exception type (and ``errno`` for ``OSError``
  subclasses), or success with the same value (``commit``, ``cancel``, ``read_many``);
* the ``prepared`` and ``in_flight`` counters;
* each completion, as soon as it is returned: it belongs to a request in flight on that
  side; its result (a successful open's fd is checked close-on-exec, closed, and
  compared as "opened"), ``errno``, error type, ``filename``/``filename2`` and stat
  result (type, permissions, size, links) are the model's; a read buffer holds the
  model's bytes (guard bytes around a slice untouched) and no buffer is pinned any more;
* once nothing is prepared or in flight: the multiset of completions returned since the
  last such point, the bytes of every file, the namespace (names, types, permissions,
  sizes, links, link targets), and every fd a close request closed is closed.

Which completions a wait returns, and how many when it may return "what is ready", is up
to the provider: such a wait is followed by a top-up (``wait(n, n)`` on the sides that
returned fewer) so that every side has returned the same number before the next step.
Requests that are prepared or in flight together never race unless they are in one chain
(which runs in order): they never touch overlapping bytes when one of them writes (nor
does a read race a write that grows the file, nor anything a truncate), nor namespace
names one of them changes; a drawn data request that would race is moved to a free
block, any other one is skipped. What only timing decides is kept out: deadlines are far
(they never pass; they do take two entries, and a step whose QueueFull would depend on
whether a provider has noticed such a request complete is skipped), a long timer (only
at the head of a chain) waits for its ``cancel``, and ``cancel`` is asked only of such a
timer, of requests already returned everywhere or of nobody - never of a request
waiting behind an unfinished one in its chain, which io_uring's kernel cannot reach
(the threadpool can: the one documented difference).

Divergences the fuzz found (check order, closed-queue counters, a kept exception pinning
buffers) are fixed; explicit tests at the end of this file keep them fixed.

Profiles (``URINGQ_FUZZ``): ``short`` (default, CI: a few seconds) and ``long``
(>= 100k steps in total); see docs/TESTING.md.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

import pytest
import uringq
from helpers.differential import (
    BLOCK,
    BLOCKS,
    DATA_KINDS,
    DEADLINE,
    FDS,
    INITIAL,
    NAMES,
    READ_KINDS,
    TARGETS,
    WRITE_KINDS,
    Outcome,
    Part,
    Request,
    Side,
    completion_key,
    conflicts,
    make_part,
)
from helpers.model_queue import LONG
from helpers.proc import open_fds
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

PROVIDERS = [p.id for p in uringq.providers() if p.available]

# -- profiles --------------------------------------------------------------------------------

FUZZ_PROFILE = os.environ.get("URINGQ_FUZZ", "short")
LONG_STEPS = int(os.environ.get("URINGQ_FUZZ_STEPS", "100000"))

_COMMON: dict[str, Any] = {
    "deadline": None,
    "database": None,
    "suppress_health_check": list(HealthCheck),
}
settings.register_profile("uringq-fuzz-short", max_examples=60, stateful_step_count=50, **_COMMON)
settings.register_profile("uringq-fuzz-long", max_examples=2000, stateful_step_count=80, **_COMMON)
if FUZZ_PROFILE not in ("short", "long"):
    raise RuntimeError(f"URINGQ_FUZZ must be 'short' or 'long', not {FUZZ_PROFILE!r}")
FUZZ_SETTINGS = settings.get_profile(f"uringq-fuzz-{FUZZ_PROFILE}")

# -- what the steps draw from ------------------------------------------------------------------

REGISTRABLE = [name for name in FDS if name != "never"]
FD_CHOICES = ["a_rw", "b_rw", "a_rw", "a_ro", "b_wo", "b_rw", "never"]
WAIT_MODES = ["exact", "impossible", "exact", "timed", "exact", "bad", "timed"]
MISC_OPS = [
    *("register", "deregister", "wakeup", "commit", "batch", "batch", "close", "close"),
    "cancel",
]
LINKS = [None, None, None, None, "link", "hardlink"]
BATCH_ARGS = st.fixed_dictionaries(
    {
        "write": st.booleans(),
        "name": st.sampled_from(FD_CHOICES),
        "blocks": st.lists(st.integers(0, BLOCKS + 1), max_size=6, unique=True),
        "size": st.sampled_from([0, 1, 100, 4096]),
        "bad": st.sampled_from([None] * 6 + ["offset", "small", "readonly"]),
        "seed": st.integers(0, 255),
    }
)
OPERATIONS = [
    *("openat", "openat", "statx", "statx", "mkdirat", "mkdirat", "unlinkat", "renameat"),
    *("symlinkat", "linkat", "close", "ftruncate", "timeout", "long"),
]
OPEN_FLAGS = [  # an open that creates never follows a link: TARGETS never exist
    os.O_RDONLY,
    os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW,
    os.O_RDWR | os.O_CREAT | os.O_EXCL,
    os.O_RDONLY | os.O_DIRECTORY,
    os.O_WRONLY,
]
DATA_ARGS = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["read", "write", "readv", "writev", "sync"]),
        "name": st.sampled_from(FD_CHOICES),
        "block": st.integers(0, BLOCKS - 1),
        "inner": st.sampled_from([0, 0, 1, 100, 4000]),
        "sizes": st.lists(st.sampled_from([0, 1, 512, 4096]), max_size=2),
        "kinds": st.lists(
            st.sampled_from(["bytearray", "array", "bytes", "slice"]), min_size=3, max_size=3
        ),
        "seed": st.integers(0, 255),
        "timed": st.sampled_from([False] * 4 + [True]),
    }
)
OPERATION_ARGS = st.fixed_dictionaries(
    {
        "names": st.lists(st.sampled_from(NAMES), min_size=2, max_size=2),
        "target": st.sampled_from(TARGETS),
        "flags": st.sampled_from(OPEN_FLAGS),
        "mode": st.sampled_from([0o755, 0o700, 0o644]),
        "follow": st.booleans(),
        "fdname": st.sampled_from(FD_CHOICES),
        "length": st.sampled_from([0, 1, BLOCK, 3 * BLOCK + 5, INITIAL["a"]]),
        "seconds": st.sampled_from([0, 0.001, 0.005]),
        "link": st.sampled_from(LINKS),
        "timed": st.sampled_from([False] * 4 + [True]),
        "bad": st.sampled_from([None] * 10 + ["nul", "both links", "dir_fd"]),
    }
)


# -- the state machine ---------------------------------------------------------------------

BAD_PREPARES = {
    # bad input -> request kinds it applies to
    "offset": ("read", "write", "readv", "writev"),
    "readonly": READ_KINDS,
    "nonbuffer": ("read", "write", "readv", "writev"),
    "noncontig": ("read", "write", "readv", "writev"),
    "single": ("readv", "writev"),
    "fdtype": ("read", "write", "readv", "writev", "sync"),
}


class StepCounter:
    steps = 0
    events: ClassVar[Counter[str]] = Counter()


def note(what: str) -> None:
    """``hypothesis.event`` plus a tally printed at the end of the run."""
    event(what)
    StepCounter.events[what] += 1


def link_kwargs(link: str | None) -> dict[str, Any]:
    return {} if link is None else {link: True}


def prepare_args(
    side: Side, rid: int, kind: str, *, name: str, offset: int, parts: list[Part], bad: str | None
) -> tuple[Any, ...]:
    """The positional arguments of ``prepare_<kind>`` on ``side``, spoiled as ``bad`` says."""
    objs: list[Any] = [p.obj for p in parts]
    fd: Any = side.fds[name]
    if bad == "offset":
        offset = -1 - offset
    elif bad == "readonly":
        objs = [*objs[:-1], b"read-only"]
    elif bad == "nonbuffer":
        objs = [*objs[:-1], 12345]
    elif bad == "noncontig":
        objs = [*objs[:-1], memoryview(bytearray(64))[::2]]
    elif bad == "fdtype":
        fd = "not an fd"
    if kind == "sync":
        return (fd, rid)
    if kind in ("read", "write"):
        return (fd, offset, objs[0], rid)
    if bad == "single":
        return (fd, offset, bytearray(8), rid)
    return (fd, offset, objs, rid)


def operation(kind: str, args: dict[str, Any]) -> tuple[Request, Callable[[Side, int], None]]:
    """The request a drawn operation is (what it touches) and how to prepare it on a side."""
    first, second = args["names"]
    target, follow, bad = args["target"], args["follow"], args["bad"]
    extra: dict[str, Any] = link_kwargs(args["link"])
    if bad == "both links":
        extra = {"link": True, "hardlink": True}
    if bad == "nul":
        first = first + "\0"
    if args["timed"] and kind in ("openat", "statx"):
        extra["timeout"] = DEADLINE
    req = Request(-1, kind)
    if kind == "openat":
        flags, mode = args["flags"], args["mode"]
        req.names, req.mutates = (first,), bool(flags & os.O_CREAT)

        def call(side: Side, rid: int) -> None:
            side.q.prepare_openat(first, flags, mode, dir_fd=ns(side, bad), user_data=rid, **extra)

    elif kind == "statx":
        req.names = (first,)

        def call(side: Side, rid: int) -> None:
            side.q.prepare_statx(
                first, dir_fd=ns(side, bad), follow_symlinks=follow, user_data=rid, **extra
            )

    elif kind == "mkdirat":
        mode = args["mode"]
        req.names, req.mutates = (first,), True

        def call(side: Side, rid: int) -> None:
            side.q.prepare_mkdirat(first, mode, dir_fd=ns(side, bad), user_data=rid, **extra)

    elif kind == "unlinkat":
        req.names, req.mutates = (first,), True

        def call(side: Side, rid: int) -> None:
            side.q.prepare_unlinkat(
                first, dir_fd=ns(side, bad), rmdir=follow, user_data=rid, **extra
            )

    elif kind == "renameat":
        req.names, req.mutates = (first, second), True

        def call(side: Side, rid: int) -> None:
            side.q.prepare_renameat(
                first, second, src_dir_fd=ns(side, bad), dst_dir_fd=side.nsfd,
                user_data=rid, **extra,
            )  # fmt: skip

    elif kind == "symlinkat":
        req.names, req.mutates = (first,), True

        def call(side: Side, rid: int) -> None:
            side.q.prepare_symlinkat(target, first, dir_fd=ns(side, bad), user_data=rid, **extra)

    elif kind == "linkat":
        req.names, req.mutates = (first, second), True

        def call(side: Side, rid: int) -> None:
            side.q.prepare_linkat(
                first, second, src_dir_fd=ns(side, bad), dst_dir_fd=side.nsfd,
                follow_symlinks=follow, user_data=rid, **extra,
            )  # fmt: skip

    elif kind == "close":

        def call(side: Side, rid: int) -> None:
            fd = 2**31 - 1 if follow else side.fd_to_close(rid)  # EBADF, or a fresh fd
            side.q.prepare_close(fd, user_data=rid, **extra)

    elif kind == "ftruncate":
        req.fdname, length = args["fdname"], args["length"]

        def call(side: Side, rid: int) -> None:
            side.q.prepare_ftruncate(side.fds[req.fdname], length, user_data=rid, **extra)

    else:  # a short timer, or a long one (waits for its cancel)
        seconds = LONG if kind == "long" else args["seconds"]

        def call(side: Side, rid: int) -> None:
            side.q.prepare_timeout(seconds, user_data=rid, **extra)

    return req, call


def ns(side: Side, bad: str | None) -> Any:
    """The namespace's dir fd on ``side`` (or a bad one)."""
    return "not a dir fd" if bad == "dir_fd" else side.nsfd


def make_machine(providers: list[str]) -> type[RuleBasedStateMachine]:
    class Differential(RuleBasedStateMachine):
        @initialize(
            sq=st.sampled_from([1, 2, 4, 8]),
            extra=st.sampled_from([0, 1, 3, 8]),
            registered=st.sets(st.sampled_from(REGISTRABLE)),
        )
        def setup(self, sq: int, extra: int, registered: set[str]) -> None:
            self.fds_before = open_fds()
            self.root = tempfile.mkdtemp(prefix="uringq-differential-")
            cq = (1 << (sq - 1).bit_length()) + extra
            self.sides = [Side(name, self.root, sq, cq) for name in ["model", *providers]]
            self.model = self.sides[0]
            self.registered: set[str] = set()
            self.prepared: list[int] = []
            self.requests: dict[int, Request] = {}
            self.next_id = 0
            self.chains = 0  # chain ids handed out
            self.linking = False  # the last request prepared links to the next one
            self.long_timers: set[int] = set()  # committed, waiting for their cancel
            self.woken = False
            self.closed = False
            self.frozen: dict[str, int | None] = dict.fromkeys(INITIAL)
            self.dirty = False
            self.age = 0  # steps since the queues were opened
            for name in ["a_rw", *sorted(registered)]:
                self.register(name)

        # -- plumbing -----------------------------------------------------------------------
        def each(self, action: Callable[[Side], Any]) -> list[Outcome]:
            out = []
            for side in self.sides:
                try:
                    out.append(Outcome(action(side)))
                except Exception as exc:
                    # without its traceback: threadpool's frames would pin buffers (see
                    # test_a_kept_prepare_error_does_not_pin_other_requests_buffers)
                    out.append(Outcome(exc=exc.with_traceback(None)))
            return out

        def agree(self, what: str, outcomes: list[Outcome], same_value: bool = False) -> Outcome:
            ref = outcomes[0]
            for side, o in zip(self.sides[1:], outcomes[1:], strict=True):
                assert o.shape() == ref.shape(), (
                    f"{what}: {side.name} gave {o.exc or o.value!r},"
                    f" the model {ref.exc or ref.value!r}"
                )
                if same_value and ref.ok:
                    assert o.value == ref.value, (
                        f"{what}: {side.name} returned {o.value!r}, the model {ref.value!r}"
                    )
            note(f"{what.split('(', maxsplit=1)[0]}: {type(ref.exc).__name__ if ref.exc else 'ok'}")
            return ref

        def in_flight(self) -> int:
            return len(self.model.unreturned)

        def completable(self) -> int:
            """In flight and not waiting for a long timer's cancel."""
            return self.in_flight() - self.model.q.waiting

        def full(self, sqes: int = 1) -> bool:
            return not self.model.q.room(sqes)

        def room_is_timing(self, sqes: int) -> bool:
            """QueueFull or not depends on whether a provider noticed a request with a
            deadline complete (it then counts one CQ entry, not two): with every request
            with a deadline still unreturned on some side counted twice, or only the ones
            waiting for a long timer's cancel (sides may have returned different ones)."""
            if self.closed:
                return False
            q = self.model.q
            most = max(sum(self.requests[i].timed for i in side.unreturned) for side in self.sides)
            return q.room(sqes, most) != q.room(sqes, q.waiting_extra)

        def pending_requests(self) -> list[Request]:
            ids = set(self.prepared)
            for side in self.sides:
                ids |= side.unreturned
            return [self.requests[i] for i in ids]

        def size_floor(self, f: str | None) -> int:
            if f is None:
                return 0
            frozen = self.frozen[f]
            return frozen if frozen is not None else os.path.getsize(self.model.paths[f])

        def refresh_frozen(self) -> None:
            """Forget a file's frozen size once no write on it is in flight on any side."""
            in_flight = [self.requests[i] for side in self.sides for i in side.unreturned]
            for f in INITIAL:
                if not any(r.file == f and r.footprint() in ("w", "t") for r in in_flight):
                    self.frozen[f] = None

        def races(self, req: Request) -> bool:
            floor = self.size_floor(req.file)
            return any(conflicts(req, old, floor) for old in self.pending_requests())

        def place(self, req: Request) -> bool:
            """Move ``req`` to a block where it conflicts with nothing pending; False if none."""
            block, inner = divmod(req.offset, BLOCK)
            for k in range(BLOCKS):
                req.offset = (block + k) % BLOCKS * BLOCK + inner
                if not self.races(req):
                    if k:
                        note("prepare: moved to avoid a conflict")
                    return True
            return False

        def chain_of_next(self) -> int:
            """The chain a request prepared now joins: the last one's, if that links."""
            if not self.linking:
                self.chains += 1
            return self.chains

        def prepared_ok(self, req: Request, link: str | None) -> None:
            self.requests[req.rid] = req
            self.prepared.append(req.rid)
            self.linking = link is not None

        def take(self, side: Side, completions: list[Any]) -> None:
            results = self.model.q.results
            for c in completions:
                rid = c.user_data
                assert rid in side.unreturned, (
                    f"{side.name}: completion {c!r} is not in flight"
                    " (returned twice? never committed?)"
                )
                side.unreturned.discard(rid)
                kind = self.requests[rid].kind
                if kind == "openat" and c.ok and side is not self.model:
                    side.settle_open(c)
                elif kind == "close":
                    side.closed_by(rid, c)
                key = completion_key(c, kind)
                expected = completion_key(results[rid], kind)
                assert key == expected, f"{side.name}: {key} where the model gave {expected}"
                for mine, model in zip(side.parts[rid], self.model.parts[rid], strict=True):
                    assert mine.data() == model.data(), f"{side.name}: request {rid}'s data"
                    assert mine.guards_intact(), f"{side.name}: request {rid} wrote off its slice"
                    assert mine.resizable(), f"{side.name}: request {rid}'s buffer still pinned"
                side.returned.append(key)
            self.dirty = True

        def wait_all(
            self, low: int, high: int | None, timeout: float | None, exact: int | None
        ) -> None:
            outcomes = self.each(lambda s: s.q.wait(low, high, timeout))
            ref = self.agree(f"wait({low}, {high}, {timeout})", outcomes)
            if isinstance(ref.exc, uringq.Interrupted):
                self.woken = False
            counts = []
            for side, o in zip(self.sides, outcomes, strict=True):
                if o.ok:
                    got = list(o.value)
                elif isinstance(o.exc, uringq.Interrupted | uringq.QueueClosed):
                    got = list(o.exc.completions)
                else:
                    got = []
                if high is not None:
                    assert len(got) <= high, f"{side.name}: {len(got)} completions > max_events"
                self.take(side, got)
                counts.append(len(got))
            if ref.ok and exact is not None:
                assert counts == [exact] * len(counts), f"exact wait returned {counts}"
            self.top_up(counts)
            self.refresh_frozen()

        def top_up(self, counts: list[int]) -> None:
            """Make every side return as many completions as the one that returned most."""
            most = max(counts)
            for side, n in zip(self.sides, counts, strict=True):
                if n < most:
                    note("wait: top-up (how many were ready was the provider's timing)")
                    got = side.q.wait(most - n, most - n, 10)
                    assert len(got) == most - n, f"{side.name}: top-up got {len(got)}"
                    self.take(side, got)

        # -- rules: files --------------------------------------------------------------------
        def register(self, name: str) -> None:
            def action(side: Side) -> None:
                if name == "closed fd":
                    fd = os.open(side.paths["a"], os.O_RDONLY)
                    os.close(fd)
                    side.q.register(fd)  # OSError(EBADF) on every side
                else:
                    side.q.register(side.fds[name])

            ref = self.agree("register", self.each(action))
            if ref.ok:
                self.registered.add(name)

        def deregister(self, name: str) -> None:
            def uses(rid: int) -> bool:
                req = self.requests[rid]
                return req.fdname == name and req.kind in DATA_KINDS

            in_use = {any(map(uses, (*self.prepared, *side.unreturned))) for side in self.sides}
            if len(in_use) > 1:
                note("deregister: skipped (in use on some sides only, by timing)")
                return
            ref = self.agree("deregister", self.each(lambda s: s.q.deregister(s.fds[name])))
            if ref.ok:
                self.registered.discard(name)

        # -- rules: prepare ------------------------------------------------------------------
        @rule(
            kind=st.sampled_from(["read", "write", "readv", "writev", "sync"]),
            name=st.sampled_from(FD_CHOICES),
            block=st.integers(0, BLOCKS - 1),
            inner=st.sampled_from([0, 0, 1, 100, 511, 4000]),
            sizes=st.lists(st.sampled_from([0, 1, 7, 512, 1000, 4096]), max_size=3),
            kinds=st.lists(
                st.sampled_from(["bytearray", "array", "bytes", "slice"]), min_size=3, max_size=3
            ),
            seed=st.integers(0, 255),
            link=st.sampled_from(LINKS),
            timed=st.sampled_from([False] * 4 + [True]),
        )
        def prepare_request(self, **kw: Any) -> None:
            self.prepare(bad=None, **kw)

        @rule(
            kind=st.sampled_from(["read", "write"]),
            name=st.sampled_from(FD_CHOICES),
            block=st.integers(0, BLOCKS - 1),
            inner=st.sampled_from([0, 1, 100, 4000]),
            sizes=st.lists(st.sampled_from([0, 1, 512, 4096]), min_size=1, max_size=1),
            kinds=st.lists(
                st.sampled_from(["bytearray", "array", "bytes", "slice"]), min_size=3, max_size=3
            ),
            seed=st.integers(0, 255),
        )
        def prepare_read_or_write(self, **kw: Any) -> None:
            self.prepare(bad=None, link=None, timed=False, **kw)

        @rule(
            kind=st.sampled_from(["read", "write", "readv", "writev", "sync"]),
            name=st.sampled_from(FD_CHOICES),
            sizes=st.lists(st.sampled_from([0, 1, 512]), max_size=2),
            bad=st.sampled_from(list(BAD_PREPARES)),
            seed=st.integers(0, 255),
        )
        def prepare_bad_input(self, **kw: Any) -> None:
            self.prepare(block=0, inner=0, kinds=["bytearray"] * 3, link=None, timed=False, **kw)

        def prepare(
            self,
            *,
            kind: str,
            name: str,
            block: int,
            inner: int,
            sizes: list[int],
            kinds: list[str],
            bad: str | None,
            seed: int,
            link: str | None,
            timed: bool,
        ) -> None:
            if kind in ("read", "write"):
                sizes = sizes[:1] or [0]
            elif kind == "sync":
                sizes = []
            timed = timed and kind != "sync"
            sqes = 2 if timed else 1
            if bad is not None and (self.closed or kind not in BAD_PREPARES[bad]):
                # on a closed queue threadpool checks arguments first: see
                # test_a_closed_queue_raises_QueueClosed_before_checking_arguments
                bad = None
            if name not in self.registered and self.full(sqes) and not self.closed:
                # io_uring checks capacity first: see test_registration_is_checked_before_capacity
                return
            if self.room_is_timing(sqes):
                note("prepare: skipped (QueueFull would be the providers' timing)")
                return
            rid = self.next_id
            self.next_id += 1
            req = Request(rid, kind, name, block * BLOCK + inner, list(sizes), timed=timed)
            req.chain = self.chain_of_next() if not self.closed else -1
            if (
                bad is None
                and not self.closed
                and name in self.registered
                and not self.full(sqes)
                and not self.place(req)
            ):
                note("prepare: skipped (no conflict-free block)")
                return
            rng = random.Random(seed)
            datas = [rng.randbytes(n) if kind in WRITE_KINDS else None for n in sizes]
            part_kinds = [
                "bytearray" if kind in READ_KINDS and k == "bytes" else k
                for k in (kinds * 2)[: len(sizes)]
            ]
            extra = link_kwargs(link)
            if timed:
                extra["timeout"] = DEADLINE

            def action(side: Side) -> None:
                parts = [
                    make_part(k, n, d) for k, n, d in zip(part_kinds, sizes, datas, strict=True)
                ]
                side.parts[rid] = parts
                args = prepare_args(
                    side, rid, kind, name=name, offset=req.offset, parts=parts, bad=bad
                )
                if kind == "sync":
                    side.q.prepare_sync(*args, datasync=bool(seed & 1), **extra)
                else:
                    getattr(side.q, f"prepare_{kind}")(*args, **extra)

            ref = self.agree(f"prepare_{kind}(bad={bad})", self.each(action))
            if ref.ok:
                self.prepared_ok(req, link)
            else:
                for side in self.sides:
                    side.parts.pop(rid, None)

        @rule(kind=st.sampled_from(OPERATIONS), args=OPERATION_ARGS)
        def prepare_operation(self, kind: str, args: dict[str, Any]) -> None:
            self.prepare_op(kind, args)

        @rule(
            steps=st.lists(
                st.tuples(st.sampled_from([*OPERATIONS, "data"]), OPERATION_ARGS, DATA_ARGS),
                min_size=2,
                max_size=5,
            ),
            last=st.sampled_from(LINKS),
        )
        def prepare_chain(
            self, steps: list[tuple[str, dict[str, Any], dict[str, Any]]], last: str | None
        ) -> None:
            """A chain of operations and data requests (each linked to the next, softly or
            hard, the last one as drawn): requests of a chain may depend on each other."""
            for i, (kind, args, data_args) in enumerate(steps):
                link = (args["link"] or "link") if i < len(steps) - 1 else last
                if kind == "data":
                    self.prepare(bad=None, **{**data_args, "link": link})
                else:
                    self.prepare_op(kind, {**args, "link": link, "bad": None})

        def prepare_op(self, kind: str, args: dict[str, Any]) -> None:
            if kind == "long" and (self.linking or args["bad"] is not None):
                kind = "timeout"  # a long timer only heads a chain (see the module docstring)
            if args["bad"] is not None and (self.closed or kind in ("close", "ftruncate")):
                args = {**args, "bad": None}
            if args["bad"] == "dir_fd" and kind in ("timeout", "long"):
                args = {**args, "bad": None}
            req, call = operation(kind, args)
            timed = req.timed = args["timed"] and kind in ("openat", "statx")
            if self.room_is_timing(2 if timed else 1):
                note("prepare: skipped (QueueFull would be the providers' timing)")
                return
            rid = self.next_id
            self.next_id += 1
            req.rid = rid
            req.chain = self.chain_of_next() if not self.closed else -1
            if not self.closed and args["bad"] is None and self.races(req):
                note(f"prepare_{kind}: skipped (it would race a pending request)")
                return

            def action(side: Side) -> None:
                side.parts[rid] = []
                call(side, rid)

            ref = self.agree(f"prepare_{kind}(bad={args['bad']})", self.each(action))
            if ref.ok:
                self.prepared_ok(req, args["link"])
            else:
                for side in self.sides:
                    side.parts.pop(rid, None)
                    if rid in side.closing:
                        os.close(side.closing.pop(rid))

        # -- rules: commit, wait and cancel --------------------------------------------------
        @precondition(lambda self: self.prepared or self.closed)
        @rule()
        def commit(self) -> None:
            batch = [self.requests[i] for i in self.prepared]
            for f in INITIAL:
                writes = any(r.file == f and r.footprint() in ("w", "t") for r in batch)
                if writes and self.frozen[f] is None:
                    self.frozen[f] = os.path.getsize(self.model.paths[f])
            ref = self.agree("commit", self.each(lambda s: s.q.commit()), same_value=True)
            if ref.ok:
                assert ref.value == len(self.prepared)
                for side in self.sides:
                    side.unreturned.update(self.prepared)
                self.long_timers.update(r.rid for r in batch if r.kind == "long")
                self.prepared = []
                self.linking = False  # a chain ends with its commit

        @rule(
            mode=st.sampled_from(WAIT_MODES),
            data=st.data(),
        )
        def wait(self, mode: str, data: st.DataObject) -> None:
            self.wait_step(mode, data)

        @precondition(lambda self: self.completable())
        @rule(data=st.data())
        def wait_exact(self, data: st.DataObject) -> None:
            self.wait_step("exact", data)

        def wait_step(self, mode: str, data: st.DataObject) -> None:
            n = self.completable()
            if mode == "exact" and n:
                k = data.draw(st.integers(1, n), label="min_events")
                high = None if k == n and data.draw(st.booleans(), label="max None") else k
                timeout = data.draw(st.sampled_from([None, 10]), label="timeout")
                self.wait_all(k, high, timeout, exact=k)
            elif mode == "impossible":  # min_events > in_flight and no timeout: never blocks
                extra = data.draw(st.integers(1, 3), label="extra")
                self.wait_all(self.in_flight() + extra, None, None, None)
            elif mode == "bad" and not self.closed:  # see the closed-queue divergence
                low, high, timeout = data.draw(
                    st.sampled_from([(2, 1, None), (0, 0, 0), (-1, None, 0), (1, None, -1)]),
                    label="bad arguments",
                )
                self.wait_all(low, high, timeout, exact=None)
            else:  # what is ready after a short timeout (or at once): the provider's timing
                low = data.draw(st.integers(0, 3), label="min_events")
                high = data.draw(st.sampled_from([None, 1, 2, 5]), label="max_events")
                high = None if high is None else max(high, low, 1)
                timeout = data.draw(st.sampled_from([0, 0.001, 0.02]), label="timeout")
                self.wait_all(low, high, timeout, exact=None)

        @precondition(lambda self: self.long_timers)
        @rule(data=st.data())
        def cancel_long_timer(self, data: st.DataObject) -> None:
            self.cancel(data)

        def cancel(self, data: st.DataObject) -> None:
            """Cancel a long timer heading its chain, or what is no longer (or not yet) in
            flight anywhere: the only cancels whose outcome is not the providers' timing."""
            returned = [
                rid
                for rid in self.requests
                if rid not in self.prepared and not any(rid in s.unreturned for s in self.sides)
            ]
            choices = [*sorted(self.long_timers) * 3, *returned[-3:], *self.prepared[-1:], -1]
            # An index, not the choice itself: which requests were returned is timing, and
            # hypothesis needs the same draws to mean the same choices.
            rid = choices[data.draw(st.integers(0, 15), label="cancel") % len(choices)]
            ref = self.agree("cancel", self.each(lambda s: s.q.cancel(rid)), same_value=True)
            if ref.ok:
                assert ref.value == (1 if rid in self.long_timers else 0), ref.value
                self.long_timers.discard(rid)

        def wakeup(self) -> None:
            ref = self.agree("wakeup", self.each(lambda s: s.q.wakeup()))
            if ref.ok:
                self.woken = True

        # -- rules: batches ------------------------------------------------------------------
        def batch(
            self,
            *,
            write: bool,
            name: str,
            blocks: list[int],
            size: int,
            bad: str | None,
            seed: int,
        ) -> None:
            inner = 0 if size == BLOCK else seed % 7 * 500
            offsets = [b * BLOCK + inner for b in blocks]
            kind = "write" if write else "read"
            new = [Request(-1, kind, name, o, [size]) for o in offsets]
            floor = self.size_floor(FDS[name][0])
            busy = [self.requests[i] for side in self.sides for i in side.unreturned]
            if any(conflicts(n, old, floor) for n in new for old in busy):
                note("batch: skipped (it would race requests in flight)")
                return
            data = random.Random(seed).randbytes(len(offsets) * size)
            if bad == "offset":
                offsets.append(-1)
            elif bad == "small":
                if not offsets or not size:
                    offsets, size = [*offsets, 0], max(size, 1)
                data = data[: len(offsets) * size - 1]
            method = "write_many" if write else "read_many"
            outs: list[Any] = []

            def action(side: Side) -> Any:
                buf: Any = bytes(data) if write else bytearray(len(data))
                if bad == "readonly" and not write:
                    buf = bytes(buf)
                outs.append(buf)
                return getattr(side.q, method)(side.fds[name], list(offsets), size, buf)

            ref = self.agree(method, self.each(action), same_value=True)
            if ref.ok:
                for side, out in zip(self.sides[1:], outs[1:], strict=True):
                    assert bytes(out) == bytes(outs[0]), f"{side.name}: {method} data differs"
                self.dirty = True

        # -- rules: life cycle ---------------------------------------------------------------
        @rule(op=st.sampled_from(MISC_OPS), data=st.data())
        def misc(self, op: str, data: st.DataObject) -> None:
            """The rarer steps, so that prepare, commit and wait make up most of a run."""
            if op == "register":
                self.register(data.draw(st.sampled_from([*REGISTRABLE, "closed fd"]), "fd"))
            elif op == "deregister":
                self.deregister(data.draw(st.sampled_from(list(FDS)), "fd"))
            elif op == "wakeup":
                self.wakeup()
            elif op == "commit":  # with nothing prepared: QueueEmpty
                self.commit()
            elif op == "batch":
                self.batch(**data.draw(BATCH_ARGS, "batch"))
            elif op == "cancel":
                self.cancel(data)
            elif self.age >= 8:  # close: not too often, so that queues get busy first
                self.close_queues(data.draw(st.booleans(), "cancel"))
                if self.closed and data.draw(st.booleans(), "reopen at once"):
                    self.reopen()

        def close_queues(self, cancel: bool) -> None:
            was_closed = self.closed
            ref = self.agree(
                f"close(cancel={cancel})", self.each(lambda s: s.q.close(cancel=cancel))
            )
            if not ref.ok or was_closed:
                return
            dropped = set(self.prepared)
            for side in self.sides:
                dropped |= side.unreturned
                side.unreturned.clear()
            for side in self.sides:
                for rid in dropped:
                    for part in side.parts.pop(rid, []):
                        assert part.resizable(), f"{side.name}: request {rid} pinned after close"
                side.forget_closing()
            self.closed, self.prepared, self.woken = True, [], False
            self.linking = False
            self.long_timers.clear()
            self.registered.clear()
            if dropped:
                # A request cancelled in flight may or may not have run: every side starts
                # again from the model's files and an empty namespace (close returned: no
                # buffer is in use).
                for f in INITIAL:
                    content = self.model.file_bytes(f)
                    for side in self.sides[1:]:
                        with open(side.paths[f], "r+b") as out:
                            out.write(content)
                            out.truncate(len(content))
                for side in self.sides:
                    side.returned.clear()
                    side.clear_namespace()
            self.frozen = dict.fromkeys(INITIAL)

        @precondition(lambda self: self.closed)
        @rule()
        def reopen(self) -> None:
            for side in self.sides:
                side.open_queue()
            self.closed = False
            self.age = 0

        # -- invariants ----------------------------------------------------------------------
        @invariant()
        def counters_agree(self) -> None:
            StepCounter.steps += 1
            self.age += 1
            if self.closed:
                # a closed queue's counters diverge: test_counters_of_a_closed_queue_agree
                return
            want = (len(self.prepared), self.in_flight())
            for side in self.sides:
                assert len(side.unreturned) == want[1], f"{side.name}: books out of step"
                got = (side.q.prepared, side.q.in_flight)
                assert got == want, f"{side.name}: (prepared, in_flight) = {got}, model {want}"

        @invariant()
        def settled_sides_agree(self) -> None:
            if not self.dirty or self.prepared or any(side.unreturned for side in self.sides):
                return
            reference = sorted(self.model.returned, key=repr)
            for side in self.sides[1:]:
                got = sorted(side.returned, key=repr)
                assert got == reference, f"{side.name}: completions differ from the model's"
            for f in INITIAL:
                want = self.model.file_bytes(f)
                for side in self.sides[1:]:
                    assert side.file_bytes(f) == want, f"{side.name}: file {f} differs"
            names = self.model.namespace()
            for side in self.sides[1:]:
                assert side.namespace() == names, f"{side.name}: the namespace differs"
            for side in self.sides:
                assert not side.closing, f"{side.name}: close requests unaccounted for"
                side.returned.clear()
                side.parts.clear()
            self.frozen = dict.fromkeys(INITIAL)
            self.dirty = False

        def teardown(self) -> None:
            for side in getattr(self, "sides", []):
                side.close()
            if hasattr(self, "root"):
                shutil.rmtree(self.root, ignore_errors=True)
                deadline = time.monotonic() + 2
                while open_fds() != self.fds_before and time.monotonic() < deadline:
                    time.sleep(0.01)  # a closed queue's threads may still be letting go
                leaked = open_fds() - self.fds_before
                assert not leaked, f"fds left open: {sorted(leaked)}"

    return Differential


@pytest.mark.timeout(60 if FUZZ_PROFILE == "short" else 6 * 3600)
def test_providers_and_model_agree_over_random_operation_sequences() -> None:
    machine = make_machine(PROVIDERS)
    StepCounter.steps = 0
    StepCounter.events.clear()
    run_state_machine_as_test(machine, settings=FUZZ_SETTINGS)
    while FUZZ_PROFILE == "long" and StepCounter.steps < LONG_STEPS:
        run_state_machine_as_test(machine, settings=FUZZ_SETTINGS)
    print(f"\ndifferential fuzz ({FUZZ_PROFILE}): {StepCounter.steps} steps, sides {PROVIDERS}")
    for what, n in sorted(StepCounter.events.items()):
        print(f"  {n:8d}  {what}")


# -- divergences the fuzz found, fixed: keep them so ---------------------------------------


@pytest.mark.timeout(30)
def test_registration_is_checked_before_capacity(make_queue, data_fd, open_fd):
    """SPEC 2 lists the checks of ``prepare_*``: registration comes before capacity, as in
    ``IoQueue``'s own checked path and in threadpool. A permanent error (the fd is not
    registered) must not hide behind a transient one (QueueFull)."""
    q = make_queue(1, 1)
    q.register(data_fd)
    q.prepare_read(data_fd, 0, bytearray(8), "fills the queue")
    other = open_fd(os.devnull)
    with pytest.raises(uringq.HandleNotRegistered):
        q.prepare_read(other, 0, bytearray(8), "unregistered fd")
    assert (q.prepared, q.in_flight) == (1, 0)


CLOSED_QUEUE_BAD_CALLS: dict[str, Callable[[Any], Any]] = {
    "prepare_read(offset=-1)": lambda q: q.prepare_read(0, -1, bytearray(1)),
    "prepare_read(read-only target)": lambda q: q.prepare_read(0, 0, b"x"),
    "prepare_write(not a buffer)": lambda q: q.prepare_write(0, 0, 12345),
    "prepare_readv(single buffer)": lambda q: q.prepare_readv(0, 0, bytearray(1)),
    "prepare_sync(fd='x')": lambda q: q.prepare_sync("x"),
    "register(fd='x')": lambda q: q.register("x"),
    "register(fd=-1)": lambda q: q.register(-1),
    "deregister(fd=-1)": lambda q: q.deregister(-1),
    "wait(min_events=-1)": lambda q: q.wait(-1),
    "wait(timeout=-1)": lambda q: q.wait(1, None, -1),
    "wait(max_events=0)": lambda q: q.wait(0, 0),
}


@pytest.mark.timeout(30)
def test_a_closed_queue_raises_QueueClosed_before_checking_arguments(make_queue):
    """SPEC 2: "every other method of a closed queue raises QueueClosed", whatever its
    arguments - as io_uring and ``IoQueue``'s own checked path (``_usable()`` first) do."""
    q = make_queue(4)
    q.close()
    wrong = {}
    for name, call in CLOSED_QUEUE_BAD_CALLS.items():
        try:
            call(q)
        except uringq.QueueClosed:
            continue
        except Exception as exc:
            wrong[name] = type(exc).__name__
        else:
            wrong[name] = "no exception"
    assert wrong == {}


@pytest.mark.timeout(30)
@pytest.mark.skipif(len(PROVIDERS) < 2, reason="needs two providers to compare")
def test_counters_of_a_closed_queue_agree_across_providers():
    seen = {}
    for provider in PROVIDERS:
        q = uringq.IoQueue(4, provider=provider)
        q.close()
        outcome = []
        for attr in ("prepared", "in_flight"):
            try:
                outcome.append(getattr(q, attr))
            except Exception as exc:
                outcome.append(type(exc).__name__)
        seen[provider] = outcome
    assert len({tuple(v) for v in seen.values()}) == 1, seen


@pytest.mark.timeout(30)
@pytest.mark.parametrize("then", ["completion returned", "closed with cancel"])
def test_a_kept_prepare_error_does_not_pin_other_requests_buffers(make_queue, data_fd, then):
    """SPEC 3: a buffer is held until its completion is returned or drained. An exception
    from a refused ``prepare_*`` that the caller keeps (logged, stored, or caught in a
    reference cycle) must not keep other requests' buffers pinned past that point."""
    q = make_queue(1)
    q.register(data_fd)
    buf = bytearray(16)
    q.prepare_read(data_fd, 0, buf, "kept")
    with pytest.raises(uringq.QueueFull) as refused:
        q.prepare_read(data_fd, 0, bytearray(16), "refused")
    if then == "completion returned":
        q.commit()
        assert [c.user_data for c in q.wait(1)] == ["kept"]
    else:
        q.close(cancel=True)
    assert refused.value is not None  # the caller still holds the exception
    buf.extend(b"resizable")  # BufferError while the export is still held


@pytest.mark.timeout(30)
@pytest.mark.parametrize("failing", ["fsync", "ftruncate"])
def test_a_failing_fsync_or_ftruncate_breaks_its_soft_link(make_queue, tmp_path, failing):
    """SPEC 8: a ``link=True`` request that fails cancels the rest of its chain. The kernel
    never marks a failed FSYNC or FTRUNCATE failed (as of Linux 6.18), so io_uring ran the
    next request anyway until its core held such chains back as it does for STATX and the
    path operations (found by the fuzz: an ftruncate of a read-only fd)."""
    q = make_queue()
    r, w = os.pipe()
    path = tmp_path / "f"
    path.write_bytes(b"data")
    read_only = os.open(path, os.O_RDONLY)
    try:
        if failing == "fsync":
            q.register(r)
            q.prepare_sync(r, 1, link=True)  # EINVAL: a pipe cannot be synced
        else:
            q.prepare_ftruncate(read_only, 0, user_data=1, link=True)  # EINVAL
        q.prepare_mkdirat(tmp_path / "never", user_data=2)
        q.commit()
        got = {c.user_data: c.error.errno if c.error else 0 for c in q.wait(2)}
        assert got == {1: errno.EINVAL, 2: errno.ECANCELED}
        assert not (tmp_path / "never").exists()
        if failing == "fsync":
            q.deregister(r)
    finally:
        for fd in (r, w, read_only):
            os.close(fd)
