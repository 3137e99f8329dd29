//! Can io_uring be used here? Sets up a tiny ring and probes the opcodes the queue needs,
//! and when anything fails says which call, the errno and the likely cause.

use std::fmt;
use std::io;

use io_uring::{opcode, IoUring, Probe};

/// The opcodes the queue uses, by name.
const REQUIRED: [(u8, &str); 7] = [
    (opcode::Nop::CODE, "IORING_OP_NOP"),
    (opcode::Readv::CODE, "IORING_OP_READV"),
    (opcode::Writev::CODE, "IORING_OP_WRITEV"),
    (opcode::Fsync::CODE, "IORING_OP_FSYNC"),
    (opcode::AsyncCancel::CODE, "IORING_OP_ASYNC_CANCEL"),
    (opcode::Read::CODE, "IORING_OP_READ"),
    (opcode::Write::CODE, "IORING_OP_WRITE"),
];

/// Opcodes used only when present (the batch engine's fixed-buffer path), and ones worth
/// reporting; `supported_opcodes` lists these after the required ones.
const OPTIONAL: [(u8, &str); 4] = [
    (opcode::ReadFixed::CODE, "IORING_OP_READ_FIXED"),
    (opcode::WriteFixed::CODE, "IORING_OP_WRITE_FIXED"),
    (opcode::Fallocate::CODE, "IORING_OP_FALLOCATE"),
    (opcode::OpenAt::CODE, "IORING_OP_OPENAT"),
];

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
    let probe = setup_and_probe()?;
    let missing: Vec<&str> = REQUIRED
        .iter()
        .filter(|(code, _)| !probe.is_supported(*code))
        .map(|(_, name)| *name)
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

/// Names of the supported opcodes among those uringq knows (required first); empty if
/// io_uring is unusable.
pub fn supported_opcodes() -> Vec<&'static str> {
    match setup_and_probe() {
        Ok(probe) => REQUIRED
            .iter()
            .chain(OPTIONAL.iter())
            .filter(|(code, _)| probe.is_supported(*code))
            .map(|(_, name)| *name)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Sets up a ring, probes its opcodes and runs one NOP through it: a seccomp profile may
/// block any one of the three io_uring system calls, and each must work.
fn setup_and_probe() -> Result<Probe, Unsupported> {
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
    Ok(probe)
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
        let ops = supported_opcodes();
        assert!(ops.contains(&"IORING_OP_READ"), "{ops:?}");
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
