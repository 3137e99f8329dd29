"""Opening a file with O_DIRECT, skipping the test where the file system refuses it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from helpers.patterns import pattern

CANDIDATE_DIRS = ("/var/tmp",)  # usually on the root file system (ext4 here), unlike a tmpfs /tmp


def open_direct(fallback_dir: Path | str, size: int) -> int:
    """A new file of ``size`` pattern bytes opened O_RDWR|O_DIRECT; the caller closes it.

    Tries /var/tmp first, then ``fallback_dir``; skips the test if neither accepts
    O_DIRECT. The file is unlinked at once: the fd keeps it alive.
    """
    for directory in (*CANDIDATE_DIRS, str(fallback_dir)):
        try:
            handle, path = tempfile.mkstemp(prefix="uringq-odirect-", dir=directory)
        except OSError:
            continue
        try:
            os.write(handle, pattern(0, size))
            os.fsync(handle)
            os.close(handle)
            fd = os.open(path, os.O_RDWR | os.O_DIRECT)
        except OSError:
            continue
        finally:
            os.unlink(path)
        return fd
    pytest.skip("no candidate directory accepts O_DIRECT")
