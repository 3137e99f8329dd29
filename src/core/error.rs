//! Errors of the core, one variant per condition the Python layer maps to an exception.

use std::fmt;
use std::io;

/// Why a queue operation was refused or failed.
#[derive(Debug)]
pub enum Error {
    /// Bad argument (maps to `ValueError`).
    Invalid(String),
    /// No free SQ entry, or the CQ could not hold one more request.
    Full(&'static str),
    /// Nothing prepared (commit) or nothing in flight (wait).
    Empty(&'static str),
    /// Requests are still prepared, in flight or unreaped.
    Busy(String),
    /// The fd is not registered with this queue.
    NotRegistered(i32),
    /// The queue was closed.
    Closed,
    /// The queue was created before a `fork()`; it belongs to the parent.
    Forked,
    /// The kernel lacks the opcode this request needs.
    Unsupported(u8),
    /// A system call failed.
    Os(io::Error),
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Os(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid(m) => write!(f, "{m}"),
            Error::Full(m) => write!(f, "queue full: {m}"),
            Error::Empty(m) => write!(f, "{m}"),
            Error::Busy(m) => write!(f, "queue busy: {m}"),
            Error::NotRegistered(fd) => write!(f, "fd {fd} is not registered with this queue"),
            Error::Closed => write!(f, "the queue is closed"),
            Error::Forked => write!(
                f,
                "this queue was created in the parent process before fork(); \
                 create a new queue in the child"
            ),
            Error::Unsupported(code) => write!(
                f,
                "this kernel's io_uring lacks IORING_OP_{}",
                super::probe::opcode_name(*code)
            ),
            Error::Os(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

/// How a wait ended without returning normally. `E` is the error of the caller's
/// signal check; `T` the payload of each completion.
#[derive(Debug)]
pub enum WaitError<T, E> {
    /// `wakeup()` was called; carries the completions ready at that moment.
    Interrupted(Vec<T>),
    /// The queue was closed (possibly by another thread) while waiting.
    Closed(Vec<T>),
    /// The caller's signal check failed; nothing was taken from the queue.
    Signal(E),
    /// Any other error (bad arguments, empty queue, system call failure).
    Queue(Error),
}

impl<T, E> From<Error> for WaitError<T, E> {
    fn from(e: Error) -> Self {
        match e {
            Error::Closed => WaitError::Closed(Vec::new()),
            other => WaitError::Queue(other),
        }
    }
}
