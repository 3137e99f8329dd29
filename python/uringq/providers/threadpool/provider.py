"""``ThreadPoolProvider``: the threadpool provider's entry in the registry."""

from __future__ import annotations

import os

from uringq.providers.threadpool.queue import ThreadPoolQueue

__all__ = ["ThreadPoolProvider"]


class ThreadPoolProvider:
    """The pure-Python fallback: inline page-cache reads plus worker threads."""

    id = "threadpool"
    handle_type = "file"
    native = False
    validates_arguments = True

    @classmethod
    def probe(cls) -> tuple[bool, str | None]:
        """Available wherever ``os.eventfd`` exists (Linux, Python 3.10+)."""
        if not hasattr(os, "eventfd"):
            return False, "os.eventfd is missing: the threadpool provider needs Linux"
        return True, None

    def __new__(cls, sq_entries: int, cq_entries: int) -> ThreadPoolQueue:  # type: ignore[misc]
        return ThreadPoolQueue(sq_entries, cq_entries)
