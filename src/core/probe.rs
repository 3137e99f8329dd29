//! Can io_uring be used here? Sets up a tiny ring and probes the opcodes the queue needs,
//! and when anything fails says which call, the errno and the likely cause.

use std::fmt;
use std::io;
use std::sync::OnceLock;

use io_uring::{opcode, IoUring, Probe};

/// The opcodes without which the queue cannot work (the provider is unavailable).
const REQUIRED: [u8; 7] = [
    opcode::Nop::CODE,
    opcode::Readv::CODE,
    opcode::Writev::CODE,
    opcode::Fsync::CODE,
    opcode::AsyncCancel::CODE,
    opcode::Read::CODE,
    opcode::Write::CODE,
];

/// Every opcode uringq issues: the required ones, the queue's operations (a missing one
/// makes only that call fail over), the batch engine's fixed-buffer reads and writes.
const USED: [u8; 20] = [
    opcode::Nop::CODE,
    opcode::Readv::CODE,
    opcode::Writev::CODE,
    opcode::Fsync::CODE,
    opcode::ReadFixed::CODE,
    opcode::WriteFixed::CODE,
    opcode::Timeout::CODE,
    opcode::AsyncCancel::CODE,
    opcode::LinkTimeout::CODE,
    opcode::OpenAt::CODE,
    opcode::Close::CODE,
    opcode::Statx::CODE,
    opcode::Read::CODE,
    opcode::Write::CODE,
    opcode::RenameAt::CODE,
    opcode::UnlinkAt::CODE,
    opcode::MkDirAt::CODE,
    opcode::SymlinkAt::CODE,
    opcode::LinkAt::CODE,
    opcode::Ftruncate::CODE,
];

/// Opcode names by number (IORING_OP_*, without the prefix), as of Linux 6.15.
const NAMES: [&str; 63] = [
    "NOP",
    "READV",
    "WRITEV",
    "FSYNC",
    "READ_FIXED",
    "WRITE_FIXED",
    "POLL_ADD",
    "POLL_REMOVE",
    "SYNC_FILE_RANGE",
    "SENDMSG",
    "RECVMSG",
    "TIMEOUT",
    "TIMEOUT_REMOVE",
    "ACCEPT",
    "ASYNC_CANCEL",
    "LINK_TIMEOUT",
    "CONNECT",
    "FALLOCATE",
    "OPENAT",
    "CLOSE",
    "FILES_UPDATE",
    "STATX",
    "READ",
    "WRITE",
    "FADVISE",
    "MADVISE",
    "SEND",
    "RECV",
    "OPENAT2",
    "EPOLL_CTL",
    "SPLICE",
    "PROVIDE_BUFFERS",
    "REMOVE_BUFFERS",
    "TEE",
    "SHUTDOWN",
    "RENAMEAT",
    "UNLINKAT",
    "MKDIRAT",
    "SYMLINKAT",
    "LINKAT",
    "MSG_RING",
    "FSETXATTR",
    "SETXATTR",
    "FGETXATTR",
    "GETXATTR",
    "SOCKET",
    "URING_CMD",
    "SEND_ZC",
    "SENDMSG_ZC",
    "READ_MULTISHOT",
    "WAITID",
    "FUTEX_WAIT",
    "FUTEX_WAKE",
    "FUTEX_WAITV",
    "FIXED_FD_INSTALL",
    "FTRUNCATE",
    "BIND",
    "LISTEN",
    "RECV_ZC",
    "EPOLL_WAIT",
    "READV_FIXED",
    "WRITEV_FIXED",
    "PIPE",
];

/// Environment variable naming opcodes to treat as missing (comma-separated names such
/// as `OPENAT,STATX`): a testing aid for the emulator, which runs the calls whose opcode
/// is missing. Only opcodes the emulator can stand in for are hidden.
pub const HIDE_ENV: &str = "URINGQ_HIDE_OPCODES";

/// The opcodes [`HIDE_ENV`] may hide.
const HIDEABLE: [u8; 9] = [
    opcode::OpenAt::CODE,
    opcode::Close::CODE,
    opcode::Statx::CODE,
    opcode::RenameAt::CODE,
    opcode::UnlinkAt::CODE,
    opcode::MkDirAt::CODE,
    opcode::SymlinkAt::CODE,
    opcode::LinkAt::CODE,
    opcode::Ftruncate::CODE,
];

/// The name of `code` without the `IORING_OP_` prefix (`OP_<n>` when unknown here).
pub fn opcode_name(code: u8) -> String {
    NAMES
        .get(usize::from(code))
        .map_or_else(|| format!("OP_{code}"), |name| (*name).to_string())
}

/// The opcodes a kernel supports, as a bitmap (minus those hidden by [`HIDE_ENV`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Opcodes([u64; 4]);

impl Opcodes {
    /// Reads a filled-in probe.
    pub fn from_probe(probe: &Probe) -> Opcodes {
        let mut set = Opcodes::default();
        for code in 0..=u8::MAX {
            if probe.is_supported(code) && !hidden().contains(&code) {
                set.0[usize::from(code / 64)] |= 1 << (code % 64);
            }
        }
        set
    }

    #[cfg(test)]
    pub fn remove(&mut self, code: u8) {
        self.0[usize::from(code / 64)] &= !(1 << (code % 64));
    }

    pub fn supports(&self, code: u8) -> bool {
        self.0[usize::from(code / 64)] & (1 << (code % 64)) != 0
    }

    /// The supported codes, ascending.
    pub fn codes(&self) -> Vec<u8> {
        (0..=u8::MAX).filter(|&c| self.supports(c)).collect()
    }
}

/// The opcodes named in [`HIDE_ENV`] (read once).
fn hidden() -> &'static [u8] {
    static HIDDEN: OnceLock<Vec<u8>> = OnceLock::new();
    HIDDEN.get_or_init(|| {
        let Ok(names) = std::env::var(HIDE_ENV) else {
            return Vec::new();
        };
        names
            .split(',')
            .map(|n| {
                n.trim()
                    .trim_start_matches("IORING_OP_")
                    .to_ascii_uppercase()
            })
            .filter_map(|n| {
                NAMES
                    .iter()
                    .position(|known| *known == n)
                    .and_then(|i| u8::try_from(i).ok())
            })
            .filter(|code| HIDEABLE.contains(code))
            .collect()
    })
}

/// True when the running kernel is at least `major.minor` (false if unknown).
pub fn kernel_at_least(major: u32, minor: u32) -> bool {
    static VERSION: OnceLock<Option<(u32, u32)>> = OnceLock::new();
    let version = VERSION.get_or_init(|| {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
        let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some((major, minor))
    });
    version.is_some_and(|v| v >= (major, minor))
}

/// Why io_uring cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    pub reason: String,
    pub errno: Option<i32>,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// `Ok(())` when a ring can be set up and every required opcode is supported.
pub fn probe() -> Result<(), Unsupported> {
    let opcodes = setup_and_probe()?;
    let missing: Vec<String> = REQUIRED
        .iter()
        .filter(|code| !opcodes.supports(**code))
        .map(|code| format!("IORING_OP_{}", opcode_name(*code)))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Unsupported {
            reason: format!(
                "opcode {} missing from the probe (IORING_REGISTER_PROBE): kernel too old \
                 (5.6+ needed)",
                missing.join(", ")
            ),
            errno: None,
        })
    }
}

/// Every opcode the kernel's probe reports, with its name and whether uringq uses it;
/// empty if io_uring is unusable.
pub fn probed_opcodes() -> Vec<(String, bool)> {
    match setup_and_probe() {
        Ok(opcodes) => opcodes
            .codes()
            .into_iter()
            .map(|code| (opcode_name(code), USED.contains(&code)))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Sets up a ring, probes its opcodes and runs one NOP through it: a seccomp profile may
/// block any one of the three io_uring system calls, and each must work.
fn setup_and_probe() -> Result<Opcodes, Unsupported> {
    let mut ring = IoUring::new(2).map_err(|e| explain("io_uring_setup", &e))?;
    let mut probe = Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| explain("io_uring_register(IORING_REGISTER_PROBE)", &e))?;
    let nop = opcode::Nop::new().build().user_data(1);
    // SAFETY: a NOP points to no memory.
    unsafe { ring.submission().push(&nop) }.expect("an empty 2-entry SQ has room");
    ring.submit_and_wait(1)
        .map_err(|e| explain("io_uring_enter", &e))?;
    ring.completion().for_each(drop);
    // The NOP made this thread's io-wq with this ring's 2 entries as its worker limit.
    super::ring::keep_iowq_workers(&ring);
    Ok(Opcodes::from_probe(&probe))
}

/// Builds a reason such as
/// `io_uring_setup failed: EPERM (Operation not permitted): blocked by a seccomp profile?`.
fn explain(call: &str, err: &io::Error) -> Unsupported {
    let errno = err.raw_os_error();
    let code = errno.unwrap_or(0);
    let cause = match code {
        libc::ENOSYS => "kernel without io_uring (older than 5.1, built without \
                         CONFIG_IO_URING, or a sandbox such as gVisor)"
            .to_string(),
        libc::EPERM | libc::EACCES => match io_uring_disabled() {
            Some(2) => "kernel.io_uring_disabled=2: io_uring is switched off on this host".into(),
            Some(1) => "kernel.io_uring_disabled=1: only privileged processes or members of \
                        kernel.io_uring_group may use io_uring"
                .into(),
            _ => "blocked by a seccomp profile? (Docker's default profile blocks io_uring \
                  since 25.0; run with a profile that allows io_uring_setup, io_uring_enter \
                  and io_uring_register)"
                .into(),
        },
        libc::ENOMEM => "not enough locked memory (RLIMIT_MEMLOCK) for the ring".into(),
        libc::EMFILE | libc::ENFILE => "too many open files".into(),
        _ => "unexpected error".into(),
    };
    Unsupported {
        reason: format!(
            "{call} failed: {} ({}): {cause}",
            errno_name(code),
            strerror(code)
        ),
        errno,
    }
}

/// The value of `/proc/sys/kernel/io_uring_disabled` (Linux 6.6+), if readable.
pub fn io_uring_disabled() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Symbolic name of the errnos a ring setup can plausibly fail with.
pub fn errno_name(code: i32) -> String {
    let name = match code {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ENOSPC => "ENOSPC",
        libc::ENOSYS => "ENOSYS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ECANCELED => "ECANCELED",
        _ => return format!("errno {code}"),
    };
    name.to_string()
}

/// `strerror` text without Rust's " (os error N)" suffix.
pub fn strerror(code: i32) -> String {
    let text = io::Error::from_raw_os_error(code).to_string();
    match text.rfind(" (os error") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_kernel_supports_the_queue() {
        assert_eq!(probe(), Ok(()));
        let ops = probed_opcodes();
        assert!(ops.contains(&("READ".to_string(), true)), "{ops:?}");
        assert!(
            ops.iter().any(|(_, used)| !used),
            "the kernel has opcodes uringq does not use"
        );
    }

    #[test]
    fn reasons_name_call_errno_and_cause() {
        let seccomp = explain("io_uring_setup", &io::Error::from_raw_os_error(libc::EPERM));
        assert!(seccomp
            .reason
            .starts_with("io_uring_setup failed: EPERM (Operation not permitted): "));
        assert_eq!(seccomp.errno, Some(libc::EPERM));
        let nosys = explain(
            "io_uring_setup",
            &io::Error::from_raw_os_error(libc::ENOSYS),
        );
        assert!(nosys
            .reason
            .contains("ENOSYS (Function not implemented): kernel without io_uring"));
    }
}
