"""Run a command with io_uring blocked by a seccomp filter, as in a hardened container.

    python scripts/without_io_uring.py [--errno EPERM|ENOSYS] -- COMMAND [ARGS...]

io_uring_setup, io_uring_enter and io_uring_register fail with the given errno (EPERM is
what Docker's default profile returns, ENOSYS what gVisor and old kernels return); every
other system call is allowed. The filter is inherited by the command and its children.
Used by CI to run the whole test suite on the fallback provider.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from helpers.seccomp import block_io_uring


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--errno", default="EPERM", choices=["EPERM", "ENOSYS", "EACCES"])
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    block_io_uring(getattr(errno, args.errno))
    os.execvp(command[0], command)


if __name__ == "__main__":
    sys.exit(main())
