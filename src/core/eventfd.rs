//! A CLOEXEC, non-blocking eventfd: the kernel signals it for every completion and
//! `wakeup()` writes it, so one `poll` waits for both.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Owned eventfd.
#[derive(Debug)]
pub struct EventFd(OwnedFd);

/// What one bounded poll saw.
#[derive(Debug, PartialEq, Eq)]
pub enum Poll {
    /// The counter is non-zero.
    Ready,
    /// The slice passed with nothing to read.
    TimedOut,
    /// A signal interrupted the poll.
    Interrupted,
}

impl EventFd {
    /// Opens a new eventfd with `EFD_CLOEXEC | EFD_NONBLOCK`.
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the result is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor we own.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Adds one to the counter, waking any poller.
    pub fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64. A full counter (EAGAIN) means it is
        // already readable, which is all a signal has to achieve.
        unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Resets the counter to zero so a level-triggered poller (asyncio) stops firing.
    pub fn reset(&self) {
        let mut value: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64; EAGAIN (already zero) is fine.
        unsafe { libc::read(self.0.as_raw_fd(), (&mut value as *mut u64).cast(), 8) };
    }

    /// Waits until the counter is non-zero, `timeout` passes or a signal arrives.
    pub fn poll(&self, timeout: Duration) -> io::Result<Poll> {
        let mut pfd = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // Round up so a 0.2 ms remainder does not become a busy 0 ms poll.
        let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        match n {
            0 => Ok(Poll::TimedOut),
            n if n > 0 => Ok(Poll::Ready),
            _ => {
                let err = io::Error::last_os_error();
                if err.raw_os_error() == Some(libc::EINTR) {
                    Ok(Poll::Interrupted)
                } else {
                    Err(err)
                }
            }
        }
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_cloexec_and_nonblocking() {
        let efd = EventFd::new().unwrap();
        let fd_flags = unsafe { libc::fcntl(efd.as_raw_fd(), libc::F_GETFD) };
        assert_ne!(fd_flags & libc::FD_CLOEXEC, 0);
        let fl = unsafe { libc::fcntl(efd.as_raw_fd(), libc::F_GETFL) };
        assert_ne!(fl & libc::O_NONBLOCK, 0);
    }

    #[test]
    fn signal_then_reset() {
        let efd = EventFd::new().unwrap();
        assert_eq!(efd.poll(Duration::ZERO).unwrap(), Poll::TimedOut);
        efd.signal();
        efd.signal();
        assert_eq!(efd.poll(Duration::ZERO).unwrap(), Poll::Ready);
        efd.reset();
        assert_eq!(efd.poll(Duration::from_millis(1)).unwrap(), Poll::TimedOut);
    }
}
