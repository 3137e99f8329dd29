"""A seccomp filter that blocks io_uring, the way container runtimes do.

Docker's default profile (since 25.0) makes io_uring_setup/enter/register fail with
EPERM; gVisor and old kernels give ENOSYS. ``block_io_uring(errno)`` installs a classic
BPF filter in the calling process (and its future children) returning ``errno`` for
those three system calls and allowing everything else. It is irreversible: call it only
in a child process made for the purpose.
"""

from __future__ import annotations

import ctypes
import os
import platform

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000

# struct seccomp_data { int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]; }
SECCOMP_DATA_NR = 0
SECCOMP_DATA_ARCH = 4

BPF_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
BPF_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
BPF_RET_K = 0x06  # BPF_RET | BPF_K

# io_uring_setup, io_uring_enter, io_uring_register share numbers on both ABIs
IO_URING_SYSCALLS = (425, 426, 427)
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}


def supported() -> bool:
    """True when this machine's architecture is one the filter knows."""
    return platform.machine() in AUDIT_ARCH


class SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]


def build_program(
    errno: int,
    arch: int | None = None,
    syscalls: tuple[int, ...] = IO_URING_SYSCALLS,
) -> list[tuple[int, int, int, int]]:
    """The BPF program as (code, jt, jf, k) tuples.

    Layout (jump offsets count from the next instruction):
        0  ld  [arch]
        1  jeq #ARCH, 0, ->ALLOW      other ABIs are left alone
        2  ld  [nr]
        3  jeq #425, ->ERRNO, 0
        4  jeq #426, ->ERRNO, 0
        5  jeq #427, ->ERRNO, 0
        6  ret #ALLOW
        7  ret #ERRNO|errno
    """
    if arch is None:
        arch = AUDIT_ARCH[platform.machine()]
    allow, deny = 3 + len(syscalls), 4 + len(syscalls)
    prog = [
        (BPF_LD_W_ABS, 0, 0, SECCOMP_DATA_ARCH),
        (BPF_JEQ_K, 0, allow - 2, arch),
        (BPF_LD_W_ABS, 0, 0, SECCOMP_DATA_NR),
    ]
    for nr in syscalls:
        here = len(prog)
        prog.append((BPF_JEQ_K, deny - (here + 1), 0, nr))
    prog.append((BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW))
    prog.append((BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | (errno & 0xFFFF)))
    assert len(prog) == deny + 1
    return prog


def block_io_uring(errno: int, syscalls: tuple[int, ...] = IO_URING_SYSCALLS) -> None:
    """Install the filter in this process: ``syscalls`` (by default all three io_uring
    system calls) fail with ``errno``."""
    prog = build_program(errno, syscalls=syscalls)
    filters = (SockFilter * len(prog))(*(SockFilter(*ins) for ins in prog))
    fprog = SockFprog(len(prog), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [
        ctypes.c_int,
        ctypes.c_ulong,
        ctypes.c_ulong,
        ctypes.c_ulong,
        ctypes.c_ulong,
    ]
    libc.prctl.restype = ctypes.c_int
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(err)}")
    address = ctypes.cast(ctypes.pointer(fprog), ctypes.c_void_p).value or 0
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, address, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_SECCOMP): {os.strerror(err)}")


def io_uring_setup_errno() -> int:
    """Call io_uring_setup(1, params) directly; 0 on success (ring closed), else errno."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    params = ctypes.create_string_buffer(120)  # sizeof(struct io_uring_params)
    fd = libc.syscall(ctypes.c_long(IO_URING_SYSCALLS[0]), ctypes.c_long(1), params)
    if fd < 0:
        return ctypes.get_errno()
    os.close(fd)
    return 0


__all__ = [
    "AUDIT_ARCH",
    "IO_URING_SYSCALLS",
    "block_io_uring",
    "build_program",
    "io_uring_setup_errno",
    "supported",
]
