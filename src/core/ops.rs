//! Requests: what one request asks the kernel to do, and the SQE that says it.
//!
//! An [`Op`] owns everything the kernel reads or writes that is not the caller's buffer:
//! its iovec array, its path (a `CString`), its statx buffer and its timer. The queue
//! keeps the `Op` in the request's op-table slot until the completion is harvested, so
//! those stay put for as long as the kernel may look at them.

use std::ffi::CString;
use std::os::fd::RawFd;
use std::time::Duration;

use io_uring::{opcode, squeue, types};

/// Largest transfer one request asks for; the kernel caps `read`/`write` here as well,
/// so a larger buffer simply completes short, as `pread` would.
pub const MAX_RW_COUNT: usize = 0x7fff_f000;

/// `dirfd` meaning "relative to the current directory".
pub const AT_FDCWD: RawFd = libc::AT_FDCWD;

/// One request. The pointers inside stay valid as long as the caller's payload lives
/// (see [`Queue::prepare`](super::Queue::prepare)); everything else is owned here.
#[derive(Debug)]
pub enum Op {
    /// Read into `len` bytes at `ptr` (a registered fd).
    Read {
        ptr: *mut u8,
        len: usize,
        offset: u64,
    },
    /// Write `len` bytes from `ptr` (a registered fd).
    Write {
        ptr: *const u8,
        len: usize,
        offset: u64,
    },
    /// Scatter read into the buffers described by `iov` (a registered fd).
    Readv { iov: Vec<libc::iovec>, offset: u64 },
    /// Gather write from the buffers described by `iov` (a registered fd).
    Writev { iov: Vec<libc::iovec>, offset: u64 },
    /// `fsync`, or `fdatasync` when `datasync` (a registered fd).
    Fsync { datasync: bool },
    /// `openat(dir, path, flags, mode)`; the result is a new descriptor, or with `slot`
    /// the file goes into that direct descriptor slot (no fd; `O_CLOEXEC` refused).
    OpenAt {
        dir: RawFd,
        path: CString,
        flags: i32,
        mode: u32,
        slot: Option<u32>,
    },
    /// `close(fd)` of any descriptor.
    Close { fd: RawFd },
    /// Closes the direct descriptor in `slot`.
    CloseDirect { slot: u32 },
    /// `statx(dir, path, flags, STATX_BASIC_STATS)` into `buf`.
    Statx {
        dir: RawFd,
        path: CString,
        flags: i32,
        buf: Box<libc::statx>,
    },
    /// A timer: completes after `after` (an expired timer is a success).
    Timeout { after: Box<types::Timespec> },
    /// `renameat(old_dir, old, new_dir, new)`.
    RenameAt {
        old_dir: RawFd,
        old: CString,
        new_dir: RawFd,
        new: CString,
    },
    /// `unlinkat(dir, path, flags)` (`AT_REMOVEDIR` removes a directory).
    UnlinkAt {
        dir: RawFd,
        path: CString,
        flags: i32,
    },
    /// `mkdirat(dir, path, mode)`.
    MkdirAt {
        dir: RawFd,
        path: CString,
        mode: u32,
    },
    /// `symlinkat(target, dir, link)`.
    SymlinkAt {
        target: CString,
        dir: RawFd,
        link: CString,
    },
    /// `linkat(old_dir, old, new_dir, new, flags)`.
    LinkAt {
        old_dir: RawFd,
        old: CString,
        new_dir: RawFd,
        new: CString,
        flags: i32,
    },
    /// `ftruncate(fd, len)` of any descriptor.
    Ftruncate { fd: RawFd, len: u64 },
}

// SAFETY: an Op is a description of memory owned by the request's payload (raw pointers,
// never dereferenced by us) plus owned plain data; the queue keeps both alive until the
// kernel is done.
unsafe impl Send for Op {}

/// How a request joins the chain of the next one (IOSQE_IO_LINK / IO_HARDLINK).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Link {
    /// The chain ends here.
    #[default]
    None,
    /// The next request starts only after this one completed in full; if this one fails
    /// or is short, the rest of the chain completes with ECANCELED.
    Soft,
    /// The next request starts after this one, whatever its result.
    Hard,
}

impl Link {
    pub fn flags(self) -> squeue::Flags {
        match self {
            Link::None => squeue::Flags::empty(),
            Link::Soft => squeue::Flags::IO_LINK,
            Link::Hard => squeue::Flags::IO_HARDLINK,
        }
    }
}

/// A request as the caller prepares it: the op, the registered fd of a data op, how it
/// links to the next one and its deadline.
#[derive(Debug)]
pub struct Request {
    pub op: Op,
    /// The registered fd a data op (read, write, readv, writev, fsync) runs on.
    pub file: Option<RawFd>,
    /// Or the direct descriptor slot it runs on (inside a group).
    pub slot: Option<u32>,
    pub link: Link,
    /// Completes with ETIMEDOUT if not done by then (a linked timeout in the kernel).
    pub deadline: Option<Duration>,
}

impl Request {
    /// A request without link or deadline.
    pub fn new(op: Op, file: Option<RawFd>) -> Request {
        Request {
            op,
            file,
            slot: None,
            link: Link::None,
            deadline: None,
        }
    }
}

/// Where the SQE of a data op points: a fixed-file slot or a plain descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Fixed(u32),
    Fd(i32),
}

/// `statx` flag: the data must be what `stat` would report.
const AT_STATX_SYNC_AS_STAT: i32 = 0;

impl Op {
    /// True for the ops that run on a registered fd.
    pub fn needs_file(&self) -> bool {
        matches!(
            self,
            Op::Read { .. }
                | Op::Write { .. }
                | Op::Readv { .. }
                | Op::Writev { .. }
                | Op::Fsync { .. }
        )
    }

    /// The io_uring opcode this op uses.
    pub fn opcode(&self) -> u8 {
        match self {
            Op::Read { .. } => opcode::Read::CODE,
            Op::Write { .. } => opcode::Write::CODE,
            Op::Readv { .. } => opcode::Readv::CODE,
            Op::Writev { .. } => opcode::Writev::CODE,
            Op::Fsync { .. } => opcode::Fsync::CODE,
            Op::OpenAt { .. } => opcode::OpenAt::CODE,
            Op::Close { .. } | Op::CloseDirect { .. } => opcode::Close::CODE,
            Op::Statx { .. } => opcode::Statx::CODE,
            Op::Timeout { .. } => opcode::Timeout::CODE,
            Op::RenameAt { .. } => opcode::RenameAt::CODE,
            Op::UnlinkAt { .. } => opcode::UnlinkAt::CODE,
            Op::MkdirAt { .. } => opcode::MkDirAt::CODE,
            Op::SymlinkAt { .. } => opcode::SymlinkAt::CODE,
            Op::LinkAt { .. } => opcode::LinkAt::CODE,
            Op::Ftruncate { .. } => opcode::Ftruncate::CODE,
        }
    }

    /// True for the ops the emulator can run when the kernel lacks their opcode (plain
    /// system calls on paths and descriptors; data ops and timers are never emulated).
    pub fn emulatable(&self) -> bool {
        matches!(
            self,
            Op::OpenAt { slot: None, .. }
                | Op::Close { .. }
                | Op::Statx { .. }
                | Op::RenameAt { .. }
                | Op::UnlinkAt { .. }
                | Op::MkdirAt { .. }
                | Op::SymlinkAt { .. }
                | Op::LinkAt { .. }
                | Op::Ftruncate { .. }
        )
    }

    /// True for the ops whose failure does not break a kernel chain (they never mark
    /// the request failed, as of Linux 6.18: STATX, the path ops, FSYNC and FTRUNCATE),
    /// and for timers where an expired one would break it (before `timer_success`): the
    /// core enforces their soft links itself.
    pub fn fails_silently_in_chains(&self, timer_success: bool) -> bool {
        match self {
            Op::Statx { .. }
            | Op::RenameAt { .. }
            | Op::UnlinkAt { .. }
            | Op::MkdirAt { .. }
            | Op::SymlinkAt { .. }
            | Op::LinkAt { .. }
            | Op::Fsync { .. }
            | Op::Ftruncate { .. } => true,
            Op::Timeout { .. } => !timer_success,
            _ => false,
        }
    }

    /// The statx flags for `follow_symlinks`; an empty path means the descriptor itself.
    pub fn statx_flags(follow_symlinks: bool, empty_path: bool) -> i32 {
        let mut flags = AT_STATX_SYNC_AS_STAT;
        if !follow_symlinks {
            flags |= libc::AT_SYMLINK_NOFOLLOW;
        }
        if empty_path {
            flags |= libc::AT_EMPTY_PATH;
        }
        flags
    }

    /// Builds the SQE for this op (without link flags or user data). `target` is where
    /// a data op's file is (ignored by the others). `timer_success`: an expired
    /// `Timeout` counts as a success in a chain (IORING_TIMEOUT_ETIME_SUCCESS, 5.16+).
    ///
    /// Owned storage (iovec arrays, paths, statx and timer buffers) must not move
    /// afterwards: their heap storage is what the kernel reads, and it stays put while
    /// the `Op` is not touched.
    /// `timed`: the request has a deadline (a LINK_TIMEOUT follows): see `open_may_block`.
    pub fn to_sqe(&self, target: Target, timer_success: bool, timed: bool) -> squeue::Entry {
        macro_rules! on_file {
            ($op:path, $($arg:expr),*) => {
                match target {
                    Target::Fixed(slot) => $op(types::Fixed(slot), $($arg),*),
                    Target::Fd(fd) => $op(types::Fd(fd), $($arg),*),
                }
            };
        }
        match self {
            Op::Read { ptr, len, offset } => on_file!(opcode::Read::new, *ptr, clamp_len(*len))
                .offset(*offset)
                .build(),
            Op::Write { ptr, len, offset } => on_file!(opcode::Write::new, *ptr, clamp_len(*len))
                .offset(*offset)
                .build(),
            Op::Readv { iov, offset } => {
                on_file!(opcode::Readv::new, iov.as_ptr(), iov.len() as u32)
                    .offset(*offset)
                    .build()
            }
            Op::Writev { iov, offset } => {
                on_file!(opcode::Writev::new, iov.as_ptr(), iov.len() as u32)
                    .offset(*offset)
                    .build()
            }
            Op::Fsync { datasync } => {
                let flags = if *datasync {
                    types::FsyncFlags::DATASYNC
                } else {
                    types::FsyncFlags::empty()
                };
                on_file!(opcode::Fsync::new,).flags(flags).build()
            }
            Op::OpenAt {
                dir,
                path,
                flags,
                mode,
                slot,
            } => {
                let sqe = opcode::OpenAt::new(types::Fd(*dir), path.as_ptr())
                    .flags(*flags)
                    .mode(*mode)
                    .file_index(
                        slot.and_then(|s| types::DestinationSlot::try_from_slot_target(s).ok()),
                    )
                    .build();
                if !timed && open_may_block(*flags) {
                    sqe.flags(squeue::Flags::ASYNC)
                } else {
                    sqe
                }
            }
            Op::Close { fd } => opcode::Close::new(types::Fd(*fd)).build(),
            Op::CloseDirect { slot } => opcode::Close::new(types::Fixed(*slot)).build(),
            Op::Statx {
                dir,
                path,
                flags,
                buf,
            } => {
                let buf: *const libc::statx = &**buf;
                opcode::Statx::new(types::Fd(*dir), path.as_ptr(), buf.cast_mut().cast())
                    .flags(*flags)
                    .mask(libc::STATX_BASIC_STATS)
                    .build()
            }
            Op::Timeout { after } => {
                let flags = if timer_success {
                    types::TimeoutFlags::ETIME_SUCCESS
                } else {
                    types::TimeoutFlags::empty()
                };
                opcode::Timeout::new(&**after).flags(flags).build()
            }
            Op::RenameAt {
                old_dir,
                old,
                new_dir,
                new,
            } => opcode::RenameAt::new(
                types::Fd(*old_dir),
                old.as_ptr(),
                types::Fd(*new_dir),
                new.as_ptr(),
            )
            .build(),
            Op::UnlinkAt { dir, path, flags } => {
                opcode::UnlinkAt::new(types::Fd(*dir), path.as_ptr())
                    .flags(*flags)
                    .build()
            }
            Op::MkdirAt { dir, path, mode } => opcode::MkDirAt::new(types::Fd(*dir), path.as_ptr())
                .mode(*mode)
                .build(),
            Op::SymlinkAt { target, dir, link } => {
                opcode::SymlinkAt::new(types::Fd(*dir), target.as_ptr(), link.as_ptr()).build()
            }
            Op::LinkAt {
                old_dir,
                old,
                new_dir,
                new,
                flags,
            } => opcode::LinkAt::new(
                types::Fd(*old_dir),
                old.as_ptr(),
                types::Fd(*new_dir),
                new.as_ptr(),
            )
            .flags(*flags)
            .build(),
            Op::Ftruncate { fd, len } => opcode::Ftruncate::new(types::Fd(*fd), *len).build(),
        }
    }

    /// The kernel's result as the caller sees it: an expired timer is a success.
    pub fn settle(&self, result: i32) -> i32 {
        match self {
            Op::Timeout { .. } if result == -libc::ETIME => 0,
            // An open io-wq ran, interrupted by a cancel while it waited (for a FIFO's
            // peer): the kernel passes the restart code through.
            Op::OpenAt { .. } if RESTART_CODES.contains(&-result) => -libc::ECANCELED,
            _ => result,
        }
    }
}

/// The SQE of a deadline: a linked timeout for the request just before it.
pub fn link_timeout_sqe(after: &types::Timespec) -> squeue::Entry {
    opcode::LinkTimeout::new(after).build()
}

/// A relative timespec for `after`, saturating far beyond any real deadline (the kernel
/// takes signed seconds).
pub fn timespec(after: Duration) -> Box<types::Timespec> {
    const FOREVER: Duration = Duration::from_secs(1 << 40);
    Box::new(types::Timespec::from(after.min(FOREVER)))
}

/// The kernel's internal "restart the system call" codes (ERESTARTSYS, ERESTARTNOINTR,
/// ERESTARTNOHAND, ERESTART_RESTARTBLOCK), never meant for user space.
const RESTART_CODES: [i32; 4] = [512, 513, 514, 516];

/// True for the open flags that can block in `open(2)` where the kernel's inline attempt
/// would not: `O_WRONLY` without `O_NONBLOCK` waits for a reader on a FIFO, but io_uring
/// first tries every OPENAT with `O_NONBLOCK` added and goes to io-wq only on EAGAIN, so
/// such an open would fail with ENXIO at once. IOSQE_ASYNC sends it straight to io-wq,
/// where it blocks as `open(2)` does and ASYNC_CANCEL interrupts it (ECANCELED, see
/// `settle`). Not with a deadline: on Linux 6.18 a LINK_TIMEOUT never fires on an OPENAT
/// io-wq runs blocked (not even its own CQE comes), so a timed open stays inline and
/// fails with ENXIO at once rather than outlive its deadline. (O_RDWR
/// never blocks on a FIFO; O_CREAT and O_TRUNC opens go to io-wq anyway; O_PATH opens
/// nothing that could block. A read-only FIFO open is left inline on purpose: see the
/// README's known differences.)
pub fn open_may_block(flags: i32) -> bool {
    flags & libc::O_ACCMODE == libc::O_WRONLY
        && flags & (libc::O_NONBLOCK | libc::O_CREAT | libc::O_TRUNC | libc::O_PATH) == 0
}

fn clamp_len(len: usize) -> u32 {
    len.min(MAX_RW_COUNT) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_clamped_to_the_kernel_limit() {
        assert_eq!(clamp_len(usize::MAX), MAX_RW_COUNT as u32);
        assert_eq!(clamp_len(4096), 4096);
    }

    #[test]
    fn only_data_ops_need_a_registered_file() {
        assert!(Op::Fsync { datasync: false }.needs_file());
        assert!(!Op::Close { fd: 3 }.needs_file());
        let path = CString::new("x").unwrap();
        let open = Op::OpenAt {
            dir: AT_FDCWD,
            path,
            flags: 0,
            mode: 0,
            slot: None,
        };
        assert!(!open.needs_file());
        assert_eq!(open.opcode(), opcode::OpenAt::CODE);
    }

    #[test]
    fn only_write_only_opens_that_may_wait_go_to_io_wq() {
        let sqe_flags = |flags: i32| {
            let open = Op::OpenAt {
                dir: AT_FDCWD,
                path: CString::new("x").unwrap(),
                flags,
                mode: 0,
                slot: None,
            };
            format!("{:?}", open.to_sqe(Target::Fd(-1), false, false))
        };
        // Entry's Debug shows opcode, flags and user_data: compare with the plain SQE.
        let path = CString::new("x").unwrap();
        let plain = opcode::OpenAt::new(types::Fd(AT_FDCWD), path.as_ptr()).build();
        let punted = format!("{:?}", plain.clone().flags(squeue::Flags::ASYNC));
        let inline = format!("{plain:?}");
        assert!(open_may_block(libc::O_WRONLY | libc::O_CLOEXEC));
        assert_eq!(sqe_flags(libc::O_WRONLY), punted);
        let timed = Op::OpenAt {
            dir: AT_FDCWD,
            path: CString::new("x").unwrap(),
            flags: libc::O_WRONLY,
            mode: 0,
            slot: None,
        };
        assert_eq!(
            format!("{:?}", timed.to_sqe(Target::Fd(-1), false, true)),
            inline
        );
        assert_eq!(timed.settle(-512), -libc::ECANCELED);
        assert_eq!(timed.settle(-libc::ENXIO), -libc::ENXIO);
        for flags in [
            libc::O_RDONLY,
            libc::O_RDWR,
            libc::O_WRONLY | libc::O_NONBLOCK,
            libc::O_WRONLY | libc::O_CREAT,
            libc::O_WRONLY | libc::O_TRUNC,
            libc::O_WRONLY | libc::O_PATH,
        ] {
            assert!(!open_may_block(flags), "{flags:#x}");
            assert_eq!(sqe_flags(flags), inline, "{flags:#x}");
        }
    }

    #[test]
    fn an_expired_timer_is_a_success() {
        let timer = Op::Timeout {
            after: timespec(Duration::ZERO),
        };
        assert_eq!(timer.settle(-libc::ETIME), 0);
        assert_eq!(timer.settle(-libc::ECANCELED), -libc::ECANCELED);
        assert_eq!(Op::Close { fd: 1 }.settle(-libc::ETIME), -libc::ETIME);
    }
}
