"""Helpers for the whole-file tests."""

from __future__ import annotations

import os
import re

import uringq

from helpers.proc import open_fds


def fds_after_warm_up(provider: str) -> set[int]:
    """The open fds once ``provider`` has run read_files on this thread: the io_uring
    provider keeps one private ring per thread (one fd) for later calls, by design."""
    uringq.read_files([__file__], provider=provider)
    return open_fds()


def files_in_ring_tables(under: str | os.PathLike[str]) -> list[str]:
    """The files under ``under`` that some io_uring of this process still holds in its
    direct-descriptor table (its fdinfo lists each occupied slot as ``N: path``): the
    io_uring read chains leave a file in its slot until the next open replaces it, and
    each run must empty its table before it returns."""
    prefix = os.fspath(under)
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:[io_uring]":
                continue
            with open(f"/proc/self/fdinfo/{fd}") as f:
                info = f.read()
        except OSError:  # closed meanwhile
            continue
        table = info.partition("UserFiles:")[2].partition("UserBufs:")[0]
        held += [m for m in re.findall(r"^\s*\d+: (.*)$", table, re.M) if m.startswith(prefix)]
    return held
