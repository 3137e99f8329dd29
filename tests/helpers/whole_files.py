"""Helpers for the whole-file tests."""

from __future__ import annotations

import uringq

from helpers.proc import open_fds


def fds_after_warm_up(provider: str) -> set[int]:
    """The open fds once ``provider`` has run read_files on this thread: the io_uring
    provider keeps one private ring per thread (one fd) for later calls, by design."""
    uringq.read_files([__file__], provider=provider)
    return open_fds()
