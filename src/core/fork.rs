//! Fork detection: a `pthread_atfork` child handler bumps a process-wide generation, so a
//! queue can tell cheaply (one relaxed load) that it now lives in a forked child.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

// Relaxed suffices: the child handler runs in the only thread of the new process before
// any code of the child can look at a queue, so there is nothing to order against.
static GENERATION: AtomicU64 = AtomicU64::new(0);
static INSTALL: Once = Once::new();

extern "C" fn after_fork_in_child() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// The number of `fork()`s between the first call in this process image and now.
pub fn fork_generation() -> u64 {
    INSTALL.call_once(|| {
        // SAFETY: registers a handler that only touches an atomic, which is
        // async-signal-safe and valid in the child of a multi-threaded parent.
        unsafe {
            libc::pthread_atfork(None, None, Some(after_fork_in_child));
        }
    });
    GENERATION.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_sees_a_new_generation() {
        let before = fork_generation();
        // SAFETY: the child only reads an atomic and calls _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = if fork_generation() == before + 1 {
                0
            } else {
                1
            };
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status));
        assert_eq!(libc::WEXITSTATUS(status), 0);
        assert_eq!(fork_generation(), before);
    }
}
