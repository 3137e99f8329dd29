"""``uringq.aio.tempfile`` against ``tempfile``, and the stdio objects against ``sys``
(SPEC 10). Every provider, the default loop and uvloop."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from helpers.proc import open_fds
from uringq import aio
from uringq.aio import tempfile as atempfile

pytestmark = pytest.mark.timeout(60)


def kind(f: Any) -> str:
    return type(f).__name__


@pytest.mark.parametrize("mode", ["w+b", "r+b", "wb", "w+", "r+", "a+"])
def test_temporary_file_is_an_unnamed_aio_file(run: Any, tmp_path: Path, mode: str) -> None:
    data = "line\n" * 3000

    async def main() -> None:
        before = open_fds()
        with tempfile.TemporaryFile(mode, dir=tmp_path) as theirs:
            async with atempfile.TemporaryFile(mode, dir=tmp_path) as ours:
                assert kind(ours) == "Async" + kind(theirs)
                assert isinstance(ours.name, int) and isinstance(theirs.name, int)
                assert ours.mode == theirs.mode
                assert os.listdir(tmp_path) == []  # nothing named in the directory
                payload = data if "b" not in mode else data.encode()
                assert await ours.write(payload) == theirs.write(payload)
                if "+" in mode:
                    await ours.seek(0)
                    theirs.seek(0)
                    assert await ours.read() == theirs.read()
        assert ours.closed
        assert open_fds() == before
        assert os.listdir(tmp_path) == []

    run(main)


def test_temporary_file_takes_the_stdlibs_text_arguments(run: Any, tmp_path: Path) -> None:
    async def main() -> None:
        kwargs = {"encoding": "utf-16", "newline": "\r\n", "errors": "replace", "buffering": 5}
        with tempfile.TemporaryFile("w+", dir=tmp_path, **kwargs) as theirs:  # type: ignore[call-overload]
            async with atempfile.TemporaryFile("w+", dir=tmp_path, **kwargs) as ours:
                assert await ours.write("a\nb€\n") == theirs.write("a\nb€\n")
                await ours.seek(0)
                theirs.seek(0)
                assert await ours.buffer.read() == theirs.buffer.read()
                assert (ours.encoding, ours.errors) == (theirs.encoding, theirs.errors)

    run(main)


@pytest.mark.parametrize("mode", ["w+b", "w+"])
def test_named_temporary_file_lives_until_close(run: Any, tmp_path: Path, mode: str) -> None:
    async def main() -> None:
        before = open_fds()
        async with atempfile.NamedTemporaryFile(
            mode, prefix="pre-", suffix=".suf", dir=tmp_path
        ) as f:
            name = f.name
            assert os.path.dirname(name) == str(tmp_path)
            base = os.path.basename(name)
            assert base.startswith("pre-") and base.endswith(".suf") and len(base) == 4 + 8 + 4
            assert stat.S_IMODE(os.stat(name).st_mode) == 0o600  # as the stdlib's
            assert f.delete is True
            await f.write(b"hello" if "b" in mode else "hello")
            await f.flush()
            assert Path(name).read_bytes() == b"hello"
            await f.seek(0)
            assert await f.read() in (b"hello", "hello")
            async for _ in f:
                pass
        assert not os.path.exists(name)
        assert open_fds() == before

    run(main)


def test_named_temporary_file_delete_and_delete_on_close(run: Any, tmp_path: Path) -> None:
    async def main() -> None:
        async with atempfile.NamedTemporaryFile(dir=tmp_path, delete=False) as kept:
            pass
        assert os.path.exists(kept.name)
        os.unlink(kept.name)
        f = await atempfile.NamedTemporaryFile(dir=tmp_path)
        await f.close()
        assert not os.path.exists(f.name)  # delete on close
        async with atempfile.NamedTemporaryFile(dir=tmp_path, delete_on_close=False) as g:
            await g.close()
            assert os.path.exists(g.name)  # until the block ends
        assert not os.path.exists(g.name)

    run(main)


@pytest.mark.parametrize(
    ("prefix", "suffix", "directory"),
    [(b"pre", None, None), (None, b".x", None), ("pre", b".x", None), (None, None, "dir")],
)
def test_prefix_suffix_and_dir_follow_the_stdlibs_str_and_bytes_rules(
    run: Any, tmp_path: Path, prefix: Any, suffix: Any, directory: Any
) -> None:
    if directory == "dir":
        directory = os.fsencode(tmp_path)
        prefix = "str"

    async def main() -> None:
        try:
            with tempfile.NamedTemporaryFile(prefix=prefix, suffix=suffix, dir=directory) as t:
                expected: Any = type(t.name)
        except TypeError as exc:
            expected = (TypeError, str(exc))
        try:
            async with atempfile.NamedTemporaryFile(
                prefix=prefix, suffix=suffix, dir=directory
            ) as f:
                got: Any = type(f.name)
        except TypeError as exc:
            got = (TypeError, str(exc))
        assert got == expected

    run(main)


def test_spooled_temporary_file_rolls_over_like_the_stdlibs(run: Any) -> None:
    async def main() -> None:
        with tempfile.SpooledTemporaryFile(max_size=10) as theirs:
            async with atempfile.SpooledTemporaryFile(max_size=10) as ours:
                for chunk in (b"12345", b"678", b"9abcdef", b"ghi"):
                    theirs.write(chunk)
                    await ours.write(chunk)
                    assert ours._rolled == theirs._rolled
                    assert await ours.tell() == theirs.tell()
                assert isinstance(ours._file, aio.AsyncFile)
                theirs.seek(3)
                await ours.seek(3)
                assert await ours.read(4) == theirs.read(4)
                await ours.truncate(8)
                theirs.truncate(8)
                await ours.seek(0)
                theirs.seek(0)
                assert await ours.read() == theirs.read()
        reference = tempfile.SpooledTemporaryFile(max_size=100, mode="w+")  # noqa: SIM115
        reference.write("a\r\nb\n")
        reference.seek(0)
        async with atempfile.SpooledTemporaryFile(max_size=100, mode="w+") as text:
            await text.write("a\r\nb\n")
            assert not text._rolled
            await text.seek(0)
            assert text.newlines is reference.newlines is None
            assert await text.read() == reference.read() == "a\nb\n"
            assert text.newlines == reference.newlines
            fd = await text.fileno()  # asks for a real file: rolls over
            assert text._rolled and fd == text._file.fileno()
            await text.seek(0)
            assert await text.readline() == "a\n"

    run(main)


def test_temporary_directory_is_made_and_removed(run: Any, tmp_path: Path) -> None:
    async def main() -> None:
        async with atempfile.TemporaryDirectory(prefix="d-", suffix="-x", dir=tmp_path) as name:
            assert os.path.isdir(name)
            assert os.path.basename(name).startswith("d-") and name.endswith("-x")
            assert stat.S_IMODE(os.stat(name).st_mode) == 0o700  # as the stdlib's
            os.makedirs(os.path.join(name, "a", "b"))
            Path(name, "a", "b", "f").write_bytes(b"x")
        assert not os.path.exists(name)
        d = await atempfile.TemporaryDirectory(dir=tmp_path)
        assert os.path.isdir(d.name)
        await d.cleanup()
        assert not os.path.exists(d.name)
        await d.cleanup()  # twice is fine
        async with atempfile.TemporaryDirectory(dir=tmp_path, delete=False) as kept:
            pass
        assert os.path.isdir(kept)

    run(main)


def test_the_default_directory_is_the_stdlibs(run: Any) -> None:
    async def main() -> None:
        async with atempfile.NamedTemporaryFile() as f:
            assert os.path.dirname(f.name) == tempfile.gettempdir()

    run(main)


# -- stdio --------------------------------------------------------------------------------------
def test_stdout_and_stderr_write_to_sys(run: Any, capsys: pytest.CaptureFixture[str]) -> None:
    async def main() -> None:
        assert await aio.stdout.write("out") == 3
        assert await aio.stderr.write("err") == 3
        await aio.stdout.flush()
        assert aio.stderr.encoding == sys.stderr.encoding
        assert await aio.stdout.writable() == sys.stdout.writable()

    run(main)
    out, err = capsys.readouterr()
    assert (out, err) == ("out", "err")


def test_stdin_reads_raise_what_sys_stdin_raises(run: Any) -> None:
    try:
        sys.stdin.read()
    except Exception as exc:
        expected: Any = (type(exc), str(exc))
    else:
        pytest.skip("stdin is readable here")

    async def main() -> None:
        try:
            await aio.stdin.read()
        except Exception as exc:
            assert (type(exc), str(exc)) == expected
        else:
            raise AssertionError("read from stdin did not fail")

    run(main)


def test_the_bytes_variants_write_to_the_buffers(
    run: Any, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    async def main() -> None:
        assert await aio.stdout_bytes.write(b"out") == 3
        assert await aio.stderr_bytes.write(b"err") == 3
        with pytest.raises(OSError):
            await aio.stdin_bytes.read()

    run(main)
    out, err = capsysbinary.readouterr()
    assert (out, err) == (b"out", b"err")


def test_stdio_follows_a_replaced_sys_stream(run: Any, tmp_path: Path) -> None:
    path = tmp_path / "out.txt"

    async def main() -> None:
        saved = sys.stdout
        with open(path, "w") as replacement:
            sys.stdout = replacement
            try:
                await aio.stdout.write("to the file")
                await aio.stdout.flush()
            finally:
                sys.stdout = saved
        await asyncio.sleep(0)

    run(main)
    assert path.read_text() == "to the file"
