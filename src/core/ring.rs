//! The io_uring instance: setup with an explicit CQ size, eventfd registration, submit,
//! completion harvest with overflow flush, and cancellation.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use io_uring::{cqueue, squeue, types, IoUring, Probe};

use super::eventfd::EventFd;
use super::probe::Opcodes;

/// `io_uring_enter` flag: wait for / flush completions.
const IORING_ENTER_GETEVENTS: u32 = 1;

/// One ring plus the eventfd the kernel signals for each completion.
pub struct Ring {
    io: IoUring,
    eventfd: Arc<EventFd>,
}

impl Ring {
    /// Sets up a ring with exactly `sq_entries` SQ slots and at least `cq_entries` CQ
    /// slots, and registers a fresh eventfd for completions.
    pub fn new(sq_entries: u32, cq_entries: u32) -> io::Result<Ring> {
        let io = build(sq_entries, cq_entries)?;
        let eventfd = Arc::new(EventFd::new()?);
        io.submitter().register_eventfd(eventfd.as_raw_fd())?;
        keep_iowq_workers(&io);
        Ok(Ring { io, eventfd })
    }

    pub fn eventfd(&self) -> &Arc<EventFd> {
        &self.eventfd
    }

    pub fn io(&self) -> &IoUring {
        &self.io
    }

    /// The ring itself, to push several SQEs through one view of the SQ.
    pub fn io_mut(&mut self) -> &mut IoUring {
        &mut self.io
    }

    /// The opcodes this kernel supports (none if it cannot say: before 5.6).
    pub fn opcodes(&self) -> Opcodes {
        let mut probe = Probe::new();
        match self.io.submitter().register_probe(&mut probe) {
            Ok(()) => Opcodes::from_probe(&probe),
            Err(_) => Opcodes::default(),
        }
    }

    /// Appends one SQE. The caller guarantees a free slot (the queue counts them).
    ///
    /// # Safety
    /// Every buffer and iovec the SQE points to must stay valid until its completion
    /// has been harvested, or until the ring is dropped without the SQE being submitted.
    pub unsafe fn push(&mut self, sqe: &squeue::Entry) -> bool {
        self.io.submission().push(sqe).is_ok()
    }

    /// SQ entries free for pushing.
    pub fn free_sqes(&mut self) -> usize {
        let sq = self.io.submission();
        sq.capacity() - sq.len()
    }

    /// Hands every pushed SQE to the kernel; returns how many it took. The rest stay in
    /// the SQ for the next call.
    pub fn submit(&mut self) -> io::Result<usize> {
        loop {
            match self.io.submit() {
                Ok(n) => return Ok(n),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    // Old kernels refuse to submit while CQEs wait in the overflow
                    // backlog: flush it into the CQ, then try once more.
                    self.flush_overflow();
                    return self.io.submit();
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Moves the kernel's overflow backlog (IORING_FEAT_NODROP) into the CQ.
    fn flush_overflow(&mut self) {
        // SAFETY: to_submit 0 never consumes SQEs; GETEVENTS only flushes and runs task work.
        let _ = unsafe {
            self.io
                .submitter()
                .enter::<libc::sigset_t>(0, 0, IORING_ENTER_GETEVENTS, None)
        };
    }

    /// Calls `f(user_data, result)` for every CQE, flushing the overflow backlog first.
    pub fn harvest(&mut self, mut f: impl FnMut(u64, i32)) {
        if self.io.submission().cq_overflow() {
            self.flush_overflow();
        }
        loop {
            let mut cq = self.io.completion();
            if cq.is_empty() {
                return;
            }
            for cqe in &mut cq {
                f(cqe.user_data(), cqe.result());
            }
            drop(cq);
            // A flush may have refilled the CQ from the backlog while we emptied it.
            if !self.io.submission().cq_overflow() {
                return;
            }
            self.flush_overflow();
        }
    }

    /// Blocks until at least one completion is posted (does not submit anything).
    pub fn wait_for_one(&mut self) -> io::Result<()> {
        // SAFETY: to_submit 0: prepared SQEs are never consumed here.
        match unsafe {
            self.io
                .submitter()
                .enter::<libc::sigset_t>(0, 1, IORING_ENTER_GETEVENTS, None)
        } {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Asks the kernel to cancel every request it holds, synchronously
    /// (IORING_REGISTER_SYNC_CANCEL with IORING_ASYNC_CANCEL_ANY, 6.0+); the caller then
    /// reaps until the kernel has returned every request. An error means the kernel
    /// cannot do it this way and the caller must cancel request by request.
    pub fn cancel_all(&mut self) -> io::Result<()> {
        let timeout = types::Timespec::new().sec(1);
        match self
            .io
            .submitter()
            .register_sync_cancel(Some(timeout), types::CancelBuilder::any())
        {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Err(e),
            // ENOENT (nothing to cancel), ETIME (some still running): reaping handles it.
            _ => Ok(()),
        }
    }

    /// The completion entries the kernel allocated (at least what was asked).
    #[cfg(test)]
    pub fn cq_capacity(&mut self) -> usize {
        self.io.completion().capacity()
    }
}

/// Sets the io-wq worker limit of the thread's io_uring context, and of every thread
/// that first submits through `io`, to the kernel's default for a large ring: 4 per CPU.
///
/// A thread's io-wq is made once, on its first submission to any ring, with at most
/// that ring's SQ size as its limit: after a 2-entry probe ring only 2 requests could
/// run in io-wq at once, so two opens waiting for a FIFO's peer held back every other
/// punted request of the thread (opens for writing, buffered writes). Linux 5.15+; older
/// kernels refuse the call and keep their limit.
pub fn keep_iowq_workers(io: &IoUring) {
    // SAFETY: sysconf has no preconditions.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.clamp(1, 1024) as u32;
    let mut limits = [4 * cpus, 0]; // bounded, and unbounded left as it is
    let _ = io.submitter().register_iowq_max_workers(&mut limits);
}

/// Builds the ring. SUBMIT_ALL (5.18+) keeps a bad SQE from stopping the batch; older
/// kernels reject the flag with EINVAL, so retry without it.
fn build(sq_entries: u32, cq_entries: u32) -> io::Result<IoUring> {
    let attempt = |submit_all: bool| {
        let mut builder = IoUring::<squeue::Entry, cqueue::Entry>::builder();
        builder.setup_cqsize(cq_entries);
        if submit_all {
            builder.setup_submit_all();
        }
        builder.build(sq_entries)
    };
    match attempt(true) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => attempt(false),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use io_uring::opcode;

    fn nop(id: u64) -> squeue::Entry {
        opcode::Nop::new().build().user_data(id)
    }

    #[test]
    fn cq_is_sized_explicitly() {
        let mut ring = Ring::new(4, 64).unwrap();
        assert_eq!(ring.io.params().sq_entries(), 4);
        assert_eq!(ring.cq_capacity(), 64);
    }

    #[test]
    fn overflowed_completions_are_not_lost() {
        // 8 SQ slots, 8 CQ slots, 3 batches of 8 NOPs without reaping: 16 overflow
        // into the kernel backlog and must still come back, each once.
        let mut ring = Ring::new(8, 8).unwrap();
        let mut next = 0u64;
        for _ in 0..3 {
            for _ in 0..8 {
                assert!(unsafe { ring.push(&nop(next)) });
                next += 1;
            }
            assert_eq!(ring.submit().unwrap(), 8);
        }
        let mut seen = Vec::new();
        while seen.len() < 24 {
            ring.harvest(|id, res| {
                assert_eq!(res, 0);
                seen.push(id);
            });
            if seen.len() < 24 {
                ring.wait_for_one().unwrap();
            }
        }
        seen.sort();
        assert_eq!(seen, (0..24).collect::<Vec<_>>());
    }

    #[test]
    fn eventfd_is_signalled_by_completions() {
        let mut ring = Ring::new(2, 4).unwrap();
        let efd = ring.eventfd().clone();
        efd.reset();
        assert!(unsafe { ring.push(&nop(7)) });
        ring.submit().unwrap();
        assert_eq!(
            efd.poll(std::time::Duration::from_secs(5)).unwrap(),
            super::super::eventfd::Poll::Ready
        );
    }
}
