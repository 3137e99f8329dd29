"""The pieces of ``tests/test_differential.py``: the files and the namespace every side
works on, request buffers with guard bytes, one side of the comparison, the requests the
fuzz keeps track of and when two of them in flight together could race.

Each side has its own copy of the data files (``a``, ``b``, opened as in ``FDS``) and its
own *namespace* directory, opened as ``nsfd``: the path operations run there, on the
relative names of ``NAMES`` with ``dir_fd=nsfd``, so their errors name the same paths on
every side. Symbolic links point to ``TARGETS``, which never exist (an open that creates
does not follow a link), so following a link never depends on another request.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
from array import array
from dataclasses import dataclass, field
from typing import Any

import uringq

from helpers.model_queue import OPENED, ModelQueue, stat_key
from helpers.patterns import pattern

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
READ_KINDS = ("read", "readv")
WRITE_KINDS = ("write", "writev")
DATA_KINDS = ("read", "readv", "write", "writev", "sync")
NAMES = ("n0", "n1", "d0", "d0/n2")  # the namespace the path operations work on
TARGETS = ("t0", "t1")  # where symbolic links point: never created
CLOSE_FLOOR = 800  # the fds a close request closes are dup'ed at or above this number
DEADLINE = 30.0  # a deadline the fuzz draws: far enough never to pass


def errno_of(exc: BaseException | None) -> int | None:
    return exc.errno if isinstance(exc, OSError) else None


def completion_key(c: Any, kind: str) -> tuple[Any, ...]:
    """What must be equal on every side: a successful open's fd number is each side's own
    (the caller closes it first, see ``Side.settle_open``)."""
    error = c.error
    result = OPENED if kind == "openat" and error is None else c.result
    names = (getattr(error, "filename", None), getattr(error, "filename2", None))
    return (c.user_data, result, errno_of(error), type(error).__name__, names, stat_key(c.stat))


# -- buffers ---------------------------------------------------------------------------------


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


# -- one side --------------------------------------------------------------------------------


class Side:
    """A queue (a provider's or the model) with its own copy of the files and namespace."""

    def __init__(self, name: str, root: str, sq: int, cq: int) -> None:
        self.name = name
        self.dir = os.path.join(root, name)
        os.mkdir(self.dir)
        self.paths = {f: os.path.join(self.dir, f) for f in INITIAL}
        for f, size in INITIAL.items():
            with open(self.paths[f], "wb") as out:
                out.write(pattern(0, size))
        self.fds = {n: os.open(self.paths[f], flags) for n, (f, flags) in FDS.items()}
        self.ns = os.path.join(self.dir, "ns")
        os.mkdir(self.ns)
        self.nsfd = os.open(self.ns, os.O_RDONLY | os.O_DIRECTORY)
        self.sq, self.cq = sq, cq
        self.q: Any = None
        self.open_queue()
        self.unreturned: set[int] = set()
        self.returned: list[tuple[Any, ...]] = []  # since the last settled point
        self.parts: dict[int, list[Part]] = {}  # request id -> this side's buffers
        self.closing: dict[int, int] = {}  # request id -> the fd its close request closes

    def open_queue(self) -> None:
        if self.name == "model":
            self.q = ModelQueue(self.sq, self.cq)
        else:
            self.q = uringq.IoQueue(self.sq, self.cq, provider=self.name)

    def file_bytes(self, f: str) -> bytes:
        with open(self.paths[f], "rb") as src:
            return src.read()

    def fd_to_close(self, rid: int) -> int:
        """A fresh fd (a dup of ``nsfd``) for close request ``rid``, at or above
        CLOSE_FLOOR, where nothing else takes numbers: a dropped request's fd can be
        closed afterwards without closing someone else's."""
        fd = fcntl.fcntl(self.nsfd, fcntl.F_DUPFD_CLOEXEC, CLOSE_FLOOR)
        self.closing[rid] = fd
        return fd

    def settle_open(self, c: Any) -> None:
        """A successful open's fd: the caller's, close-on-exec; closed here."""
        flags = fcntl.fcntl(c.result, fcntl.F_GETFD)
        assert flags & fcntl.FD_CLOEXEC, f"{self.name}: opened fd without O_CLOEXEC"
        os.close(c.result)

    def closed_by(self, rid: int, c: Any) -> None:
        """Close request ``rid`` completed: its fd is closed if it succeeded (checked),
        else closed here."""
        fd = self.closing.pop(rid, None)
        if fd is None:
            return
        if not c.ok:
            os.close(fd)
        elif fd not in self.closing.values():  # (a later close request may have the number)
            assert fd_closed(fd), f"{self.name}: close request {rid} left fd {fd} open"

    def forget_closing(self) -> None:
        """The queue was closed with close requests not returned: each one may have run
        or not; the fds still open are closed here (nothing else takes such numbers)."""
        for fd in self.closing.values():
            if not fd_closed(fd):
                os.close(fd)
        self.closing.clear()

    def namespace(self) -> list[tuple[Any, ...]]:
        """The namespace's entries: name, type, permissions, size, links, link target."""
        found = []
        for top, dirs, files in os.walk(self.ns):
            for name in sorted(dirs + files):
                path = os.path.join(top, name)
                st = os.lstat(path)
                target = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
                found.append((os.path.relpath(path, self.ns), stat_key(st), target))
        return sorted(found)

    def clear_namespace(self) -> None:
        for entry in os.scandir(self.ns):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.q.close(cancel=True)
        self.forget_closing()
        for fd in (*self.fds.values(), self.nsfd):
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


# -- requests and races ----------------------------------------------------------------------


@dataclass
class Request:
    rid: int
    kind: str  # a data kind (DATA_KINDS), an operation's name, "timeout" or "long"
    fdname: str | None = None  # data requests and ftruncate
    offset: int = 0
    sizes: list[int] = field(default_factory=list)
    chain: int = -1  # requests of one chain run in order: they never race each other
    names: tuple[str, ...] = ()  # namespace names it looks at
    mutates: bool = False  # ... and changes
    timed: bool = False  # it has a deadline: two entries until it completes

    @property
    def file(self) -> str | None:
        return None if self.fdname is None else FDS[self.fdname][0]

    @property
    def end(self) -> int:
        return self.offset + sum(self.sizes)

    def footprint(self) -> str | None:
        """'r' or 'w' if the request reads or writes file bytes, 't' if it truncates the
        file, None if it touches no file bytes."""
        if self.kind == "ftruncate":
            return "t"
        if self.kind not in DATA_KINDS or self.kind == "sync" or not sum(self.sizes):
            return None
        flags = FDS[self.fdname][1] & os.O_ACCMODE  # type: ignore[index]
        if self.kind in READ_KINDS:
            return None if flags == os.O_WRONLY else "r"
        return None if flags == os.O_RDONLY else "w"


def fd_closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError as exc:
        assert exc.errno == errno.EBADF
        return True
    return False


def _overlap(a: str, b: str) -> bool:
    """Two namespace names that depend on each other: the same, or one inside the other."""
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def conflicts(new: Request, old: Request, size_floor: int) -> bool:
    """True when ``new`` and ``old`` in flight together could give timing-dependent results.

    Requests of one chain never race (they run in order). In the namespace, two requests
    race when one changes a name the other looks at. On a file, ``size_floor`` is a lower
    bound of its size while they run (writes only grow the files; a truncate races with
    everything on its file): a read overlapping a write, two overlapping writes, or a read
    reaching past ``size_floor`` while a write may grow the file, all conflict.
    """
    if new.chain == old.chain >= 0:
        return False
    if new.names and old.names and (new.mutates or old.mutates):
        return any(_overlap(a, b) for a in new.names for b in old.names)
    return _file_conflict(new, old, size_floor)


def _file_conflict(new: Request, old: Request, size_floor: int) -> bool:
    a, b = new.footprint(), old.footprint()
    if a is None or b is None or new.file != old.file or a == b == "r":
        return False
    if "t" in (a, b):
        return True
    overlap = new.offset < old.end and old.offset < new.end
    if a == b == "w":
        return overlap
    read, write = (new, old) if a == "r" else (old, new)
    if write.end > size_floor:  # the write may grow the file: the read depends on the size
        return read.end > min(write.offset, size_floor)
    return overlap
