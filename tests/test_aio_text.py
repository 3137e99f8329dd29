"""``uringq.aio`` text files against the builtin file, with hypothesis (SPEC 10).

Each example draws a mode, an encoding (utf-8, utf-8-sig, utf-16 with its BOM,
utf-16-le, latin-1, the stateful iso2022_jp), ``errors``, ``newline`` and a buffer size,
writes the same content (multi-byte characters, ``\\r``, ``\\n``, ``\\r\\n``; sometimes
with undecodable bytes in it), opens it with the builtin ``open`` and with
``uringq.aio.open``, runs the same random operations on both and requires the same
outcome for each (``tell()`` cookies included: seeks go to cookies the builtin returned)
and the same file and attributes at the end. Texts are long enough to cross the 8192-byte
chunks and small buffers. Every provider, the default loop and uvloop;
``URINGQ_FUZZ=long`` runs many more examples.

CPython 3.11 and 3.12 read stale bytes after buffered writes on a read-write file
(gh-115059: ``BufferedRandom.read1`` skipped the flush, and text reads go through
``read1``); ``uringq.aio`` flushes as 3.13 does. So on ``+`` modes, a read that follows
writes is preceded by ``flush()`` on both files.

``readlines(hint)`` that stops before EOF leaves ``tell()`` disabled on the builtin (it
iterates with ``next()``); a later ``flush()`` enables it again with a stale snapshot,
and CPython's ``tell()`` then reads past the end of that snapshot (undefined results).
``uringq.aio`` disables ``tell()`` the same way (tested below); after such a
``readlines`` (a hint, or one that a decoding error ended midway, which leaves ``tell()``
disabled as well) both files seek to 0, so no example reaches the undefined part: it
returns garbage, and once segfaulted the test run (reading far past a small snapshot).
"""

from __future__ import annotations

import os
import random
import sys
from typing import Any

import pytest
from helpers.aio_oracle import aio_call, builtin_call, file_bytes, fresh_paths
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from uringq import aio

pytestmark = pytest.mark.timeout(300)

LONG = os.environ.get("URINGQ_FUZZ") == "long"
EXAMPLES = 1500 if LONG else 60

MODES = ["r", "r+", "w", "w+", "a", "a+", "x", "x+"]
ALPHABETS = {
    "utf-8": "abc xyz\n\r\r\néß€😀漢",
    "utf-8-sig": "abc xyz\n\r\r\néß€😀漢",
    "utf-16": "abc xyz\n\r\r\néß€😀漢",
    "utf-16-le": "abc xyz\n\r\r\néß€😀漢",
    "latin-1": "abc xyz\n\r\r\néßÿ",
    "iso2022_jp": "abc xyz\n\r\r\nあいう漢字",
}
WIDE = "abc\n\r€😀漢あ"  # written text: some of it unencodable in latin-1 / iso2022_jp


def text(seed: int, size: int, alphabet: str) -> str:
    return "".join(random.Random(seed).choices(alphabet, k=size))


def content_bytes(seed: int, size: int, encoding: str, corrupt: bool) -> bytes:
    data = bytearray(text(seed, size, ALPHABETS[encoding]).encode(encoding))
    if corrupt and data:
        rng = random.Random(seed + 1)
        for _ in range(rng.randrange(1, 4)):
            data.insert(rng.randrange(len(data)), rng.choice(b"\xff\xfe\x80\x1b"))
    return bytes(data)


writes = st.builds(text, st.integers(0, 1000), st.integers(0, 3000), st.just(WIDE))
op = st.one_of(
    st.tuples(st.just("read"), st.one_of(st.integers(-1, 60), st.integers(-1, 12_000), st.none())),
    st.tuples(st.just("readline"), st.one_of(st.integers(-1, 100), st.none())),
    st.tuples(st.just("readlines"), st.integers(-1, 3000)),
    st.tuples(st.just("write"), writes),
    st.tuples(st.just("writelines"), st.lists(writes, max_size=3)),
    st.tuples(st.just("tell")),
    st.tuples(st.just("seek_cookie"), st.integers(0, 50)),
    st.tuples(st.just("seek"), st.just(0), st.sampled_from([0, 1, 2])),
    st.tuples(st.just("seek"), st.integers(1, 5), st.sampled_from([1, 2, 3])),
    st.tuples(st.just("truncate"), st.one_of(st.none(), st.integers(0, 20_000))),
    st.tuples(st.just("flush")),
)
examples = st.fixed_dictionaries(
    {
        "mode": st.sampled_from(MODES),
        "encoding": st.sampled_from(sorted(ALPHABETS)),
        "errors": st.sampled_from(["strict", "replace", "ignore", "surrogateescape"]),
        "newline": st.sampled_from([None, "", "\n", "\r", "\r\n"]),
        "buffering": st.sampled_from([-1, 1, 2, 7, 64]),
        "content": st.tuples(  # seed, characters, with undecodable bytes
            st.integers(0, 1000),
            st.one_of(st.integers(0, 200), st.integers(0, 20_000)),
            st.booleans(),
        ),
        "ops": st.lists(op, min_size=1, max_size=20),
    }
)


async def _compare(directory: str, counter: list[int], example: dict[str, Any]) -> None:
    kwargs = {k: example[k] for k in ("buffering", "encoding", "errors", "newline")}
    mode = example["mode"]
    theirs_path, ours_path = fresh_paths(directory, counter)
    content = example["content"]
    if not isinstance(content, bytes):
        seed, size, corrupt = content
        content = content_bytes(seed, size, example["encoding"], corrupt)
    if "x" not in mode:
        for path in (theirs_path, ours_path):
            with open(path, "wb") as f:
                f.write(content)
    theirs = open(theirs_path, mode, **kwargs)  # noqa: SIM115
    ours = await aio.open(ours_path, mode, **kwargs)
    cookies: list[int] = [0]
    written = False  # writes since the last flush (see the module docstring)
    try:
        for step, (drawn, *drawn_args) in enumerate(example["ops"]):
            name, args = drawn, list(drawn_args)
            if drawn == "seek_cookie":
                name, args = "seek", [cookies[drawn_args[0] % len(cookies)]]
            flushes = name in ("flush", "tell", "seek", "truncate")
            if name in ("write", "writelines"):
                written = True
            elif written and not flushes and "+" in mode and sys.version_info < (3, 13):
                written = False
                theirs.flush()
                await ours.flush()
            expected = builtin_call(theirs, name, args)
            got = await aio_call(ours, name, args)
            assert got == expected, f"step {step}: {name}{tuple(args)!r}, {mode} {kwargs}"
            if flushes and expected[0] == "ok":
                written = False  # one that raised (a nonzero cur-relative seek) flushed nothing
            if name == "tell" and expected[0] == "ok":
                cookies.append(expected[1])
            if name == "readlines" and (args[0] > 0 or expected[0] != "ok"):
                # Stopped before EOF (a hint, or a decoding error mid-iteration): see the
                # module docstring. Seek both, or a later flush() + tell() would make the
                # builtin decode past its stale snapshot (garbage, or a crash).
                theirs.seek(0)
                await ours.seek(0)
        for attribute in ("encoding", "errors", "line_buffering", "newlines", "mode"):
            assert getattr(ours, attribute) == getattr(theirs, attribute), attribute
    finally:
        try:
            theirs.close()
        except Exception as exc:
            theirs_close: Any = ("error", type(exc).__name__, str(exc))
        else:
            theirs_close = ("ok",)
        try:
            await ours.close()
        except Exception as exc:
            ours_close: Any = ("error", type(exc).__name__, str(exc))
        else:
            ours_close = ("ok",)
    assert ours_close == theirs_close
    assert file_bytes(ours_path) == file_bytes(theirs_path)


def test_text_files_match_the_builtin(arun: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    directory = str(tmp_path_factory.mktemp("aio-text"))
    counter = [0]

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(example=examples)
    def check(example: dict[str, Any]) -> None:
        arun(_compare(directory, counter, example))

    check()


@pytest.mark.parametrize("encoding", sorted(ALPHABETS))
@pytest.mark.parametrize("newline", [None, "", "\n", "\r", "\r\n"])
def test_lines_cookies_and_boundaries_match_the_builtin(
    arun: Any, tmp_path: Any, encoding: str, newline: str | None
) -> None:
    """A fixed walk: characters split across the 8192-byte chunks, tell/seek round trips."""
    content = content_bytes(3, 30_000, encoding, False)
    ops: list[tuple[Any, ...]] = [
        ("read", 8190),
        ("tell",),
        ("readline",),
        ("read", 5),
        ("tell",),
        ("readlines", 2000),
        ("flush",),
        ("seek_cookie", 1),
        ("read", 100),
        ("seek_cookie", 2),
        ("readline", 7),
        ("tell",),
        ("seek", 0, 2),
        ("write", text(5, 3000, ALPHABETS[encoding])),
        ("seek", 0, 0),
        ("read",),
        ("tell",),
    ]
    example = {
        "mode": "r+",
        "encoding": encoding,
        "errors": "strict",
        "newline": newline,
        "buffering": -1,
        "content": content,
        "ops": ops,
    }
    arun(_compare(str(tmp_path), [0], example))


def test_readlines_with_a_hint_disables_tell_like_the_builtin(arun: Any, tmp_path: Any) -> None:
    path = tmp_path / "lines.txt"
    path.write_text("one\ntwo\nthree\n" * 1000)

    async def main() -> None:
        theirs = open(path)  # noqa: SIM115
        ours = await aio.open(path)
        try:
            assert await ours.readlines(5) == theirs.readlines(5) == ["one\n", "two\n"]
            assert await aio_call(ours, "tell", ()) == builtin_call(theirs, "tell", ())
            assert await aio_call(ours, "seek", (0, 1)) == builtin_call(theirs, "seek", (0, 1))
            assert await ours.seek(0) == theirs.seek(0) == 0
            assert await ours.readlines(0) == theirs.readlines(0)
            assert await ours.tell() == theirs.tell()  # EOF ended the iteration
        finally:
            theirs.close()
            await ours.close()

    arun(main())


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
@pytest.mark.parametrize(
    "op", ["readline", "read3", "read", "readlines", "anext", "tell", "seek", "flush"]
)
def test_pending_text_before_a_read_lands_where_the_builtin_puts_it(
    arun: Any, tmp_path: Any, encoding: str, op: str
) -> None:
    """Text written and not flushed stays pending through ``readline``, ``read(n)`` and
    iteration (it reaches the file at the position their read-ahead left, on the builtin
    too), and is written first by ``read()``, ``tell()``, ``seek()`` and ``flush()``."""
    content = "old1\nold2\n".encode(encoding)
    theirs_path, ours_path = tmp_path / "theirs", tmp_path / "ours"

    def builtin() -> Any:
        theirs_path.write_bytes(content)
        with open(theirs_path, "r+", encoding=encoding) as f:
            f.write("a")
            if op == "anext":
                return next(f)
            if op == "read3":
                return f.read(3)
            if op == "seek":
                return f.seek(0)
            return getattr(f, op)()

    async def ours() -> Any:
        ours_path.write_bytes(content)
        async with aio.open(ours_path, "r+", encoding=encoding) as f:
            await f.write("a")
            if op == "anext":
                return await f.__anext__()
            if op == "read3":
                return await f.read(3)
            if op == "seek":
                return await f.seek(0)
            return await getattr(f, op)()

    try:
        want: Any = builtin()
    except UnicodeError as exc:  # utf-16: read() then decodes from the BOM-less middle
        want = type(exc)
    try:
        got: Any = arun(ours())
    except UnicodeError as exc:
        got = type(exc)
    assert got == want
    assert ours_path.read_bytes() == theirs_path.read_bytes()


def test_a_decoder_flag_past_a_c_int_fails_tell_like_the_builtin(arun: Any, tmp_path: Any) -> None:
    """iso2022_jp after a stray escape byte reports decoder flags past a C ``int``: the
    builtin's ``tell()`` raises ``OverflowError`` parsing them, and so does ours."""
    example = {
        "mode": "r",
        "encoding": "iso2022_jp",
        "errors": "strict",
        "newline": None,
        "buffering": -1,
        "content": content_bytes(0, 1, "iso2022_jp", True),
        "ops": [("read", 1), ("tell",), ("seek", 0, 0), ("read", 3), ("tell",)],
    }
    arun(_compare(str(tmp_path), [0], example))
