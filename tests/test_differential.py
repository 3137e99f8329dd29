"""Differential fuzzing: io_uring, threadpool and a plain model in lockstep (SPEC sections 1-3).

A hypothesis ``RuleBasedStateMachine`` drives every available provider and
:class:`ModelQueue` - a plain synchronous restatement of the SPEC (requests run with
``os.preadv``/``os.pwritev``/``os.fsync`` on the model's own copy of the files, in
preparation order, at ``commit``) - with the same random steps: register, deregister,
prepare (read, write, sync, readv, writev and bad inputs), commit, wait (exact, timed,
polling, impossible ``min_events`` with and without timeout), wakeup, close, reopen and
``read_many``/``write_many``. Each side works on its own copy of the files.

What must be identical on every side, after every step:

* the outcome of each call: the same exception type (and ``errno`` for ``OSError``
  subclasses), or success with the same value (``commit``, ``read_many`` results);
* the ``prepared`` and ``in_flight`` counters;
* each completion, as soon as it is returned: it belongs to a request in flight on that
  side, its ``(result, errno)`` is the model's and a read buffer holds the model's bytes
  (guard bytes around a slice untouched), and its buffers are no longer pinned;
* once nothing is prepared or in flight: the multiset of completions returned since the
  last such point, and the bytes of every file.

Which completions a wait returns, and how many when it may return "what is ready", is up
to the provider: such a wait is followed by a top-up (``wait(n, n)`` on the sides that
returned fewer) so that every side has returned the same number before the next step.
Requests that are prepared or in flight together never touch overlapping bytes when one
of them writes (nor does a read race a write that grows the file), so results do not
depend on timing: a drawn request that would conflict is moved to a free block.

Divergences the fuzz found (check order, closed-queue counters, a kept exception pinning
buffers) are fixed; explicit tests at the end of this file keep them fixed.

Profiles (``URINGQ_FUZZ``): ``short`` (default, CI: a few seconds) and ``long``
(>= 100k steps in total); see docs/TESTING.md.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shutil
import tempfile
from array import array
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
import uringq
from helpers.patterns import pattern
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

# -- the files every side works on -----------------------------------------------------------

BLOCK = 4096
BLOCKS = 16  # offsets are drawn in the first BLOCKS blocks (writes may grow the files)
INITIAL = {"a": 10 * BLOCK + 123, "b": 2 * BLOCK}  # initial sizes (pattern bytes)
# logical fd name -> (file, open flags)
FDS = {
    "a_rw": ("a", os.O_RDWR),
    "a_ro": ("a", os.O_RDONLY),  # writes complete with EBADF
    "b_rw": ("b", os.O_RDWR),
    "b_wo": ("b", os.O_WRONLY),  # reads complete with EBADF
    "never": ("a", os.O_RDONLY),  # open but never registered
}
REGISTRABLE = [name for name in FDS if name != "never"]
FD_CHOICES = ["a_rw", "b_rw", "a_rw", "a_ro", "b_wo", "b_rw", "never"]
WAIT_MODES = ["exact", "impossible", "exact", "timed", "exact", "bad", "timed"]
MISC_OPS = ["register", "deregister", "wakeup", "commit", "batch", "batch", "close", "close"]
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
READ_KINDS = ("read", "readv")
WRITE_KINDS = ("write", "writev")


def errno_of(exc: BaseException | None) -> int | None:
    return exc.errno if isinstance(exc, OSError) else None


def completion_key(c: Any) -> tuple[Any, ...]:
    return (c.user_data, c.result, errno_of(c.error), type(c.error).__name__)


# -- the model -------------------------------------------------------------------------------


class ModelQueue:
    """SPEC sections 1-3 restated plainly: checks in the order closed, types, offset,
    buffers, registration, capacity; requests run synchronously at ``commit`` and are
    ready at once; ``wait`` never blocks."""

    provider_id = "model"

    def __init__(self, sq_entries: int, cq_entries: int) -> None:
        self.sq_entries = 1 << (sq_entries - 1).bit_length()
        self.cq_entries = cq_entries
        self._files: dict[int, int] = {}  # registered fd -> our dup
        self._prepared: list[tuple[str, int, int, list[memoryview], Any]] = []
        self._ready: deque[Any] = deque()
        self._users: Counter[int] = Counter()  # fd -> requests prepared or not returned
        self._woken = False
        self.closed = False
        self.results: dict[Any, Any] = {}  # user_data -> its completion, made at commit

    # counters
    @property
    def prepared(self) -> int:
        return len(self._prepared)

    @property
    def in_flight(self) -> int:
        return len(self._ready)

    # checks
    def _open(self) -> None:
        if self.closed:
            raise uringq.QueueClosed("queue is closed")

    @staticmethod
    def _fd(fd: Any) -> int:
        if isinstance(fd, bool) or not isinstance(fd, int):
            raise TypeError(f"fd must be an int, not {type(fd).__name__}")
        if fd < 0:
            raise ValueError("fd must be >= 0")
        return fd

    @staticmethod
    def _offset(offset: Any) -> int:
        if not isinstance(offset, int):
            raise TypeError("offset must be an int")
        if offset < 0:
            raise ValueError("offset must be >= 0")
        return offset

    @staticmethod
    def _view(buf: Any, writable: bool) -> memoryview:
        view = memoryview(buf)  # TypeError without the buffer protocol
        if writable and view.readonly:
            raise TypeError("read target must be writable")
        if not view.c_contiguous:
            raise BufferError("buffer must be C-contiguous")
        return view.cast("B") if view.format != "B" or view.ndim != 1 else view

    def _views(self, bufs: Any, writable: bool) -> list[memoryview]:
        try:
            memoryview(bufs)
        except TypeError:
            pass
        else:
            raise TypeError("bufs must be a sequence of buffers, not a single buffer")
        if not isinstance(bufs, Sequence):
            raise TypeError("bufs must be a sequence of buffers")
        return [self._view(b, writable) for b in bufs]

    def _queue(self, op: str, fd: int, offset: int, views: list[memoryview], ud: Any) -> None:
        if fd not in self._files:
            raise uringq.HandleNotRegistered(f"fd {fd} is not registered")
        if len(self._prepared) >= self.sq_entries:
            raise uringq.QueueFull("SQ full")
        if len(self._prepared) + len(self._ready) >= self.cq_entries:
            raise uringq.QueueFull("CQ would overflow")
        self._prepared.append((op, fd, offset, views, ud))
        self._users[fd] += 1

    # the API
    def register(self, fd: Any) -> None:
        self._open()
        fd = self._fd(fd)
        if fd not in self._files:
            self._files[fd] = os.dup(fd)

    def deregister(self, fd: Any) -> None:
        self._open()
        fd = self._fd(fd)
        if fd not in self._files:
            raise uringq.HandleNotRegistered(f"fd {fd} is not registered")
        if self._users[fd]:
            raise uringq.QueueBusy(f"fd {fd} is in use")
        os.close(self._files.pop(fd))

    def prepare_read(self, fd: Any, offset: Any, buf: Any, user_data: Any = None) -> None:
        self._open()
        fd, offset = self._fd(fd), self._offset(offset)
        self._queue("read", fd, offset, [self._view(buf, True)], user_data)

    def prepare_write(self, fd: Any, offset: Any, buf: Any, user_data: Any = None) -> None:
        self._open()
        fd, offset = self._fd(fd), self._offset(offset)
        self._queue("write", fd, offset, [self._view(buf, False)], user_data)

    def prepare_readv(self, fd: Any, offset: Any, bufs: Any, user_data: Any = None) -> None:
        self._open()
        fd, offset = self._fd(fd), self._offset(offset)
        self._queue("read", fd, offset, self._views(bufs, True), user_data)

    def prepare_writev(self, fd: Any, offset: Any, bufs: Any, user_data: Any = None) -> None:
        self._open()
        fd, offset = self._fd(fd), self._offset(offset)
        self._queue("write", fd, offset, self._views(bufs, False), user_data)

    def prepare_sync(self, fd: Any, user_data: Any = None, *, datasync: bool = False) -> None:
        self._open()
        fd = self._fd(fd)
        self._queue("fdatasync" if datasync else "fsync", fd, 0, [], user_data)

    def commit(self) -> int:
        self._open()
        if not self._prepared:
            raise uringq.QueueEmpty("nothing prepared")
        batch, self._prepared = self._prepared, []
        for op, fd, offset, views, ud in batch:
            dup = self._files[fd]
            try:
                if op == "read":
                    result = os.preadv(dup, views, offset)
                elif op == "write":
                    result = os.pwritev(dup, views, offset)
                else:
                    (os.fdatasync if op == "fdatasync" else os.fsync)(dup)
                    result = 0
                error = None
            except OSError as exc:
                result, error = 0, OSError(exc.errno, os.strerror(exc.errno or errno.EIO))
            completion = uringq.Completion(ud, result, error)
            self.results[ud] = completion
            self._ready.append((fd, completion))
        return len(batch)

    def wait(
        self, min_events: int = 1, max_events: int | None = None, timeout: float | None = None
    ) -> list[Any]:
        self._open()
        if min_events < 0 or (max_events is not None and max_events < max(min_events, 1)):
            raise ValueError("bad min_events/max_events")
        if timeout is not None and timeout < 0:
            raise ValueError("bad timeout")
        if timeout is None and not self._woken:
            if not self._ready:
                raise uringq.QueueEmpty("nothing in flight")
            if min_events > len(self._ready):
                raise ValueError("min_events can never be met")
        taken = self._take(max_events)
        if self._woken:
            self._woken = False
            raise uringq.Interrupted("woken", taken)
        return taken

    def _take(self, high: int | None) -> list[Any]:
        n = len(self._ready) if high is None else min(high, len(self._ready))
        out = []
        for _ in range(n):
            fd, c = self._ready.popleft()
            self._users[fd] -= 1
            out.append(c)
        return out

    def wakeup(self) -> None:
        self._open()
        self._woken = True

    def _many(self, write: bool, fd: Any, offsets: Any, size: Any, buf: Any) -> array[int]:
        self._open()
        fd = self._fd(fd)
        offs = [self._offset(o) for o in offsets]
        if size < 0:
            raise ValueError("size must be >= 0")
        view = self._view(buf, not write)
        if view.nbytes < len(offs) * size:
            raise ValueError("buffer too small")
        if fd not in self._files:
            raise uringq.HandleNotRegistered(f"fd {fd} is not registered")
        call = os.pwritev if write else os.preadv
        out = array("q")
        for i, off in enumerate(offs):
            try:
                out.append(call(self._files[fd], [view[i * size : (i + 1) * size]], off))
            except OSError as exc:
                out.append(-(exc.errno or errno.EIO))
        return out

    def read_many(self, fd: Any, offsets: Any, size: Any, out: Any) -> array[int]:
        return self._many(False, fd, offsets, size, out)

    def write_many(self, fd: Any, offsets: Any, size: Any, data: Any) -> array[int]:
        return self._many(True, fd, offsets, size, data)

    def close(self, *, cancel: bool = False) -> None:
        if self.closed:
            return
        if not cancel and (self._prepared or self._ready):
            raise uringq.QueueBusy("busy")
        self.closed = True
        self._prepared, self._woken = [], False
        self._ready.clear()
        self._users.clear()
        for dup in self._files.values():
            os.close(dup)
        self._files.clear()


# -- one side of the comparison ---------------------------------------------------------------


@dataclass
class Part:
    """One buffer of a request on one side."""

    obj: Any  # what is passed to prepare_*
    backing: bytearray | None = None  # for a slice: the whole bytearray, with guards
    start: int = 0
    size: int = 0

    def data(self) -> bytes:
        if self.backing is not None:
            return bytes(self.backing[self.start : self.start + self.size])
        return bytes(memoryview(self.obj).cast("B"))

    def guards_intact(self) -> bool:
        if self.backing is None:
            return True
        b = self.backing
        return b[: self.start] == GUARD[: self.start] and b[self.start + self.size :] == GUARD[:8]

    def resizable(self) -> bool:
        """False if the queue still pins this bytearray (only plain bytearrays can tell)."""
        if type(self.obj) is not bytearray:
            return True
        try:
            self.obj.append(0)
        except BufferError:
            return False
        self.obj.pop()
        return True


GUARD = b"\xee" * 8


def make_part(kind: str, size: int, data: bytes | None) -> Part:
    """A buffer of ``kind`` holding ``data`` (a write source) or zeros (a read target)."""
    content = data if data is not None else bytes(size)
    if kind == "bytearray":
        return Part(bytearray(content))
    if kind == "array":
        return Part(array("B", content))
    if kind == "bytes":
        return Part(bytes(content))
    # "slice": a window in the middle of a larger bytearray, with guard bytes around it
    backing = bytearray(GUARD + content + GUARD)
    return Part(memoryview(backing)[8 : 8 + size], backing, 8, size)


class Side:
    """A queue (a provider's or the model) with its own copy of the files."""

    def __init__(self, name: str, root: str, sq: int, cq: int) -> None:
        self.name = name
        self.dir = os.path.join(root, name)
        os.mkdir(self.dir)
        self.paths = {f: os.path.join(self.dir, f) for f in INITIAL}
        for f, size in INITIAL.items():
            with open(self.paths[f], "wb") as out:
                out.write(pattern(0, size))
        self.fds = {n: os.open(self.paths[f], flags) for n, (f, flags) in FDS.items()}
        self.sq, self.cq = sq, cq
        self.q: Any = None
        self.open_queue()
        self.unreturned: set[int] = set()
        self.returned: list[tuple[Any, ...]] = []  # since the last settled point
        self.parts: dict[int, list[Part]] = {}  # request id -> this side's buffers

    def open_queue(self) -> None:
        if self.name == "model":
            self.q = ModelQueue(self.sq, self.cq)
        else:
            self.q = uringq.IoQueue(self.sq, self.cq, provider=self.name)

    def file_bytes(self, f: str) -> bytes:
        with open(self.paths[f], "rb") as src:
            return src.read()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.q.close(cancel=True)
        for fd in self.fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)


@dataclass
class Outcome:
    value: Any = None
    exc: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.exc is None

    def shape(self) -> tuple[Any, ...]:
        if self.exc is None:
            return ("ok",)
        return ("raise", type(self.exc).__name__, errno_of(self.exc))


@dataclass
class Request:
    rid: int
    kind: str  # read / write / sync / readv / writev
    fdname: str
    offset: int
    sizes: list[int] = field(default_factory=list)

    @property
    def file(self) -> str:
        return FDS[self.fdname][0]

    @property
    def end(self) -> int:
        return self.offset + sum(self.sizes)

    def footprint(self) -> str | None:
        """'r' or 'w' if the request reads or writes file bytes, None if it cannot."""
        if self.kind == "sync" or not sum(self.sizes):
            return None
        flags = FDS[self.fdname][1] & os.O_ACCMODE
        if self.kind in READ_KINDS:
            return None if flags == os.O_WRONLY else "r"
        return None if flags == os.O_RDONLY else "w"


def conflicts(new: Request, old: Request, size_floor: int) -> bool:
    """True when ``new`` and ``old`` in flight together could give timing-dependent results.

    ``size_floor`` is a lower bound of the file size while they run (writes only grow the
    files). A read overlapping a write, two overlapping writes, or a read reaching past
    ``size_floor`` while a write may grow the file, all conflict.
    """
    a, b = new.footprint(), old.footprint()
    if a is None or b is None or new.file != old.file or a == b == "r":
        return False
    overlap = new.offset < old.end and old.offset < new.end
    if a == b == "w":
        return overlap
    read, write = (new, old) if a == "r" else (old, new)
    if write.end > size_floor:  # the write may grow the file: the read depends on the size
        return read.end > min(write.offset, size_floor)
    return overlap


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


def make_machine(providers: list[str]) -> type[RuleBasedStateMachine]:
    class Differential(RuleBasedStateMachine):
        @initialize(
            sq=st.sampled_from([1, 2, 4, 8]),
            extra=st.sampled_from([0, 1, 3, 8]),
            registered=st.sets(st.sampled_from(REGISTRABLE)),
        )
        def setup(self, sq: int, extra: int, registered: set[str]) -> None:
            self.root = tempfile.mkdtemp(prefix="uringq-differential-")
            cq = (1 << (sq - 1).bit_length()) + extra
            self.sides = [Side(name, self.root, sq, cq) for name in ["model", *providers]]
            self.model = self.sides[0]
            self.registered: set[str] = set()
            self.prepared: list[int] = []
            self.requests: dict[int, Request] = {}
            self.expected: dict[int, tuple[Any, ...]] = {}
            self.next_id = 0
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

        def full(self) -> bool:
            q = self.model.q
            n = len(self.prepared)
            return n >= q.sq_entries or n + self.in_flight() >= q.cq_entries

        def pending_requests(self) -> list[Request]:
            ids = set(self.prepared)
            for side in self.sides:
                ids |= side.unreturned
            return [self.requests[i] for i in ids]

        def size_floor(self, f: str) -> int:
            frozen = self.frozen[f]
            return frozen if frozen is not None else os.path.getsize(self.model.paths[f])

        def refresh_frozen(self) -> None:
            """Forget a file's frozen size once no write on it is in flight on any side."""
            in_flight = [self.requests[i] for side in self.sides for i in side.unreturned]
            for f in INITIAL:
                if not any(r.file == f and r.footprint() == "w" for r in in_flight):
                    self.frozen[f] = None

        def place(self, req: Request) -> bool:
            """Move ``req`` to a block where it conflicts with nothing pending; False if none."""
            pending = self.pending_requests()
            block, inner = divmod(req.offset, BLOCK)
            floor = self.size_floor(req.file)
            for k in range(BLOCKS):
                req.offset = (block + k) % BLOCKS * BLOCK + inner
                if not any(conflicts(req, old, floor) for old in pending):
                    if k:
                        note("prepare: moved to avoid a conflict")
                    return True
            return False

        def take(self, side: Side, completions: list[Any]) -> None:
            for c in completions:
                rid = c.user_data
                assert rid in side.unreturned, (
                    f"{side.name}: completion {c!r} is not in flight"
                    " (returned twice? never committed?)"
                )
                side.unreturned.discard(rid)
                key = completion_key(c)
                assert key == self.expected[rid], (
                    f"{side.name}: {key} where the model gave {self.expected[rid]}"
                )
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
            in_use = {
                any(self.requests[i].fdname == name for i in (*self.prepared, *side.unreturned))
                for side in self.sides
            }
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
            self.prepare(bad=None, **kw)

        @rule(
            kind=st.sampled_from(["read", "write", "readv", "writev", "sync"]),
            name=st.sampled_from(FD_CHOICES),
            sizes=st.lists(st.sampled_from([0, 1, 512]), max_size=2),
            bad=st.sampled_from(list(BAD_PREPARES)),
            seed=st.integers(0, 255),
        )
        def prepare_bad_input(self, **kw: Any) -> None:
            self.prepare(block=0, inner=0, kinds=["bytearray"] * 3, **kw)

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
        ) -> None:
            if kind in ("read", "write"):
                sizes = sizes[:1] or [0]
            elif kind == "sync":
                sizes = []
            if bad is not None and (self.closed or kind not in BAD_PREPARES[bad]):
                # on a closed queue threadpool checks arguments first: see
                # test_a_closed_queue_raises_QueueClosed_before_checking_arguments
                bad = None
            if name not in self.registered and self.full() and not self.closed:
                # io_uring checks capacity first: see test_registration_is_checked_before_capacity
                return
            rid = self.next_id
            self.next_id += 1
            req = Request(rid, kind, name, block * BLOCK + inner, list(sizes))
            if (
                bad is None
                and not self.closed
                and name in self.registered
                and not self.full()
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

            def action(side: Side) -> None:
                parts = [
                    make_part(k, n, d) for k, n, d in zip(part_kinds, sizes, datas, strict=True)
                ]
                side.parts[rid] = parts
                args = prepare_args(
                    side, rid, kind, name=name, offset=req.offset, parts=parts, bad=bad
                )
                if kind == "sync":
                    side.q.prepare_sync(*args, datasync=bool(seed & 1))
                else:
                    getattr(side.q, f"prepare_{kind}")(*args)

            ref = self.agree(f"prepare_{kind}(bad={bad})", self.each(action))
            if ref.ok:
                self.requests[rid] = req
                self.prepared.append(rid)
            else:
                for side in self.sides:
                    side.parts.pop(rid, None)

        # -- rules: commit and wait ----------------------------------------------------------
        @precondition(lambda self: self.prepared or self.closed)
        @rule()
        def commit(self) -> None:
            batch = [self.requests[i] for i in self.prepared]
            for f in INITIAL:
                writes = any(r.file == f and r.footprint() == "w" for r in batch)
                if writes and self.frozen[f] is None:
                    self.frozen[f] = os.path.getsize(self.model.paths[f])
            ref = self.agree("commit", self.each(lambda s: s.q.commit()), same_value=True)
            if ref.ok:
                assert ref.value == len(self.prepared)
                results = self.model.q.results
                for rid in self.prepared:
                    self.expected[rid] = completion_key(results.pop(rid))
                for side in self.sides:
                    side.unreturned.update(self.prepared)
                self.prepared = []

        @rule(
            mode=st.sampled_from(WAIT_MODES),
            data=st.data(),
        )
        def wait(self, mode: str, data: st.DataObject) -> None:
            self.wait_step(mode, data)

        @precondition(lambda self: self.in_flight())
        @rule(data=st.data())
        def wait_exact(self, data: st.DataObject) -> None:
            self.wait_step("exact", data)

        def wait_step(self, mode: str, data: st.DataObject) -> None:
            n = self.in_flight()
            if mode == "exact" and n:
                k = data.draw(st.integers(1, n), label="min_events")
                high = None if k == n and data.draw(st.booleans(), label="max None") else k
                timeout = data.draw(st.sampled_from([None, 10]), label="timeout")
                self.wait_all(k, high, timeout, exact=k)
            elif mode == "impossible":  # min_events > in_flight and no timeout: never blocks
                self.wait_all(n + data.draw(st.integers(1, 3), label="extra"), None, None, None)
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
            self.closed, self.prepared, self.woken = True, [], False
            self.registered.clear()
            if dropped:
                # A request cancelled in flight may or may not have run: every side starts
                # again from the model's files (close returned: no buffer is in use).
                for f in INITIAL:
                    content = self.model.file_bytes(f)
                    for side in self.sides[1:]:
                        with open(side.paths[f], "r+b") as out:
                            out.write(content)
                            out.truncate(len(content))
                for side in self.sides:
                    side.returned.clear()
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
            for side in self.sides:
                side.returned.clear()
                side.parts.clear()
            self.frozen = dict.fromkeys(INITIAL)
            self.dirty = False

        def teardown(self) -> None:
            for side in getattr(self, "sides", []):
                side.close()
            if hasattr(self, "root"):
                shutil.rmtree(self.root, ignore_errors=True)

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
