//! The emulator: one worker thread per queue (started on first use) that runs, with the
//! plain system call, each request whose opcode this kernel's io_uring lacks (e.g.
//! FTRUNCATE before 6.9, MKDIRAT before 5.15). Only that request leaves the ring: the
//! rest of its chain waits for it as it would for a kernel request (see
//! [`chains`](super::chains)), and its completion arrives like any other (the eventfd
//! is signalled). A request cancelled before the emulator reaches it completes with
//! ECANCELED; once started it runs to the end, as a request in a kernel worker does.

use std::ffi::c_char;
use std::os::fd::RawFd;
use std::sync::{Arc, Condvar, Mutex};

use super::ops::Op;
use super::state::State;

/// What the queue shares with its emulator thread.
pub(super) struct Shared<T> {
    pub state: Mutex<State<T>>,
    /// Signalled when the emulator has work, finished a job or must end.
    pub work: Condvar,
}

/// A request's system call, copied out of its op under the lock. The pointers are into
/// the op (paths, the statx buffer), which stays in the op table until the job is done.
enum Call {
    OpenAt {
        dir: RawFd,
        path: *const c_char,
        flags: i32,
        mode: u32,
    },
    Close(RawFd),
    Statx {
        dir: RawFd,
        path: *const c_char,
        flags: i32,
        buf: *mut libc::statx,
    },
    RenameAt {
        old_dir: RawFd,
        old: *const c_char,
        new_dir: RawFd,
        new: *const c_char,
    },
    UnlinkAt {
        dir: RawFd,
        path: *const c_char,
        flags: i32,
    },
    MkdirAt {
        dir: RawFd,
        path: *const c_char,
        mode: u32,
    },
    SymlinkAt {
        target: *const c_char,
        dir: RawFd,
        link: *const c_char,
    },
    LinkAt {
        old_dir: RawFd,
        old: *const c_char,
        new_dir: RawFd,
        new: *const c_char,
        flags: i32,
    },
    Ftruncate(RawFd, u64),
    /// Data ops and timers: their opcodes are required, never emulated.
    Unsupported,
}

// SAFETY: the pointers are into memory the op table keeps alive while the job runs.
unsafe impl Send for Call {}

impl Call {
    fn of(op: &Op) -> Call {
        match op {
            Op::OpenAt {
                dir,
                path,
                flags,
                mode,
                slot: None,
            } => Call::OpenAt {
                dir: *dir,
                path: path.as_ptr(),
                flags: *flags,
                mode: *mode,
            },
            Op::Close { fd } => Call::Close(*fd),
            Op::Statx {
                dir,
                path,
                flags,
                buf,
            } => Call::Statx {
                dir: *dir,
                path: path.as_ptr(),
                flags: *flags,
                buf: (&**buf as *const libc::statx).cast_mut(),
            },
            Op::RenameAt {
                old_dir,
                old,
                new_dir,
                new,
            } => Call::RenameAt {
                old_dir: *old_dir,
                old: old.as_ptr(),
                new_dir: *new_dir,
                new: new.as_ptr(),
            },
            Op::UnlinkAt { dir, path, flags } => Call::UnlinkAt {
                dir: *dir,
                path: path.as_ptr(),
                flags: *flags,
            },
            Op::MkdirAt { dir, path, mode } => Call::MkdirAt {
                dir: *dir,
                path: path.as_ptr(),
                mode: *mode,
            },
            Op::SymlinkAt { target, dir, link } => Call::SymlinkAt {
                target: target.as_ptr(),
                dir: *dir,
                link: link.as_ptr(),
            },
            Op::LinkAt {
                old_dir,
                old,
                new_dir,
                new,
                flags,
            } => Call::LinkAt {
                old_dir: *old_dir,
                old: old.as_ptr(),
                new_dir: *new_dir,
                new: new.as_ptr(),
                flags: *flags,
            },
            Op::Ftruncate { fd, len } => Call::Ftruncate(*fd, *len),
            _ => Call::Unsupported,
        }
    }

    /// Runs the call: its result, or -errno.
    ///
    /// # Safety
    /// The pointers must be valid (the op is still in the op table).
    unsafe fn run(self) -> i32 {
        // SAFETY: plain system calls on pointers the caller keeps valid.
        let rc: i64 = unsafe {
            match self {
                Call::OpenAt {
                    dir,
                    path,
                    flags,
                    mode,
                } => libc::openat(dir, path, flags, mode).into(),
                Call::Close(fd) => libc::close(fd).into(),
                Call::Statx {
                    dir,
                    path,
                    flags,
                    buf,
                } => libc::syscall(
                    libc::SYS_statx,
                    dir,
                    path,
                    flags,
                    libc::STATX_BASIC_STATS,
                    buf,
                ),
                Call::RenameAt {
                    old_dir,
                    old,
                    new_dir,
                    new,
                } => libc::renameat(old_dir, old, new_dir, new).into(),
                Call::UnlinkAt { dir, path, flags } => libc::unlinkat(dir, path, flags).into(),
                Call::MkdirAt { dir, path, mode } => libc::mkdirat(dir, path, mode).into(),
                Call::SymlinkAt { target, dir, link } => libc::symlinkat(target, dir, link).into(),
                Call::LinkAt {
                    old_dir,
                    old,
                    new_dir,
                    new,
                    flags,
                } => libc::linkat(old_dir, old, new_dir, new, flags).into(),
                Call::Ftruncate(fd, len) => match libc::off_t::try_from(len) {
                    Ok(len) => libc::ftruncate(fd, len).into(),
                    Err(_) => return -libc::EINVAL,
                },
                Call::Unsupported => return -libc::EOPNOTSUPP,
            }
        };
        if rc < 0 {
            -std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO)
        } else {
            i32::try_from(rc).unwrap_or(i32::MAX)
        }
    }
}

/// Starts the emulator thread of `shared` if it does not run yet (lock held by caller,
/// who passes the state). False if no thread could be started.
pub(super) fn ensure_started<T: Send + 'static>(
    shared: &Arc<Shared<T>>,
    st: &mut State<T>,
) -> bool {
    if st.emulator {
        return true;
    }
    let worker = Arc::clone(shared);
    let started = std::thread::Builder::new()
        .name("uringq-emulator".into())
        .spawn(move || run(&worker))
        .is_ok();
    st.emulator = started;
    started
}

/// The emulator thread: takes jobs in order until the queue shuts it down.
fn run<T>(shared: &Shared<T>) {
    let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if st.shutdown {
            st.emulator = false;
            shared.work.notify_all();
            return;
        }
        let Some((tag, call)) = st.next_job() else {
            st = shared.work.wait(st).unwrap_or_else(|e| e.into_inner());
            continue;
        };
        st.emulating = Some(tag);
        drop(st);
        // SAFETY: the op stays in the op table while `emulating` names it: closing the
        // queue waits for the job to end before releasing anything.
        let result = unsafe { call.run() };
        st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        st.emulating = None;
        st.finish_job(tag, result);
        // The job may have released the rest of its chain into the SQ.
        let _ = st.submit();
        shared.work.notify_all();
    }
}

impl<T> State<T> {
    /// The next job: a request not cancelled meanwhile (a cancelled one completes with
    /// ECANCELED here).
    fn next_job(&mut self) -> Option<(u64, Call)> {
        while let Some(tag) = self.emulate.pop_front() {
            let Some(entry) = self.ops.get(tag) else {
                continue;
            };
            if entry.cancelled {
                self.finish_job(tag, -libc::ECANCELED);
                continue;
            }
            return Some((tag, Call::of(&entry.op)));
        }
        None
    }

    fn finish_job(&mut self, tag: u64, result: i32) {
        if let Some(entry) = self.ops.get_mut(tag) {
            entry.result = Some(result);
            self.finish(tag);
            self.signal();
        }
    }

    /// True while the emulator has work queued or running.
    pub fn emulator_busy(&self) -> bool {
        self.emulating.is_some() || !self.emulate.is_empty()
    }
}
