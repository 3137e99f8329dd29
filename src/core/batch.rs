//! The batch engine behind `read_many` / `write_many`: request `i` moves `size` bytes at
//! `offsets[i]` to or from `buf[i*size..(i+1)*size]`. It runs on a private ring owned by
//! the calling thread, so it can use SINGLE_ISSUER/DEFER_TASKRUN, a registered file and
//! (when the kernel lets us pin it) the whole buffer as one registered buffer, and it
//! keeps the ring full at `depth` until every request is done.

use std::io;
use std::os::fd::RawFd;
use std::sync::Mutex;
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use super::ops::MAX_RW_COUNT;

/// Direction of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchDir {
    Read,
    Write,
}

/// A registered buffer may be at most 1 GiB.
const MAX_FIXED_BUFFER: usize = 1 << 30;
/// How often a long batch lets the caller check for signals.
const CHECK_EVERY: Duration = Duration::from_millis(100);

/// One batch: request `i` moves `size` bytes at `offsets[i]` on `fd` to or from
/// `buf[i*size..]`, with at most `depth` requests in the kernel at once.
pub struct Batch<'a> {
    pub dir: BatchDir,
    pub fd: RawFd,
    pub offsets: &'a [u64],
    pub size: usize,
    pub buf: *mut u8,
    pub buf_len: usize,
    pub depth: u32,
    /// A buffer the caller registered for good (`IoQueue.register_buffer`), if `buf`
    /// lies inside it: the private ring keeps it registered between batches.
    pub registered: Option<Registered>,
}

/// A caller-registered buffer: `generation` changes with every registration, so a ring
/// never uses a registration made for memory that has since been released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered {
    pub generation: u64,
    pub ptr: *mut u8,
    pub len: usize,
}

// SAFETY: only an address range; the caller keeps the memory pinned while it is used.
unsafe impl Send for Registered {}
unsafe impl Sync for Registered {}

/// A private ring kept between batches of one thread (SINGLE_ISSUER ties it to the
/// thread that created it), so a batch does not pay for ring setup and teardown.
#[derive(Default)]
pub struct BatchCache(Mutex<Option<PrivateRing>>);

struct PrivateRing {
    ring: IoUring,
    owner: ThreadId,
    depth: u32,
    /// The generation of the caller-registered buffer this ring has registered.
    registered: Option<u64>,
}

impl BatchCache {
    fn take(&self, depth: u32) -> io::Result<PrivateRing> {
        let cached = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        let me = thread::current().id();
        match cached {
            Some(r) if r.owner == me && r.depth >= depth => Ok(r),
            _ => {
                let ring = private_ring(depth)?;
                ring.submitter().register_files_sparse(1)?;
                Ok(PrivateRing {
                    ring,
                    owner: me,
                    depth,
                    registered: None,
                })
            }
        }
    }

    fn put(&self, ring: PrivateRing) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(ring);
    }

    /// Drops the cached ring (on close, so its descriptors go with the queue).
    pub fn forget(&self) {
        drop(self.0.lock().unwrap_or_else(|e| e.into_inner()).take());
    }
}

impl Batch<'_> {
    /// Runs the batch and returns, per request, the bytes transferred or `-errno`.
    ///
    /// `check` is called about every 100 ms; if it fails, no further request is
    /// submitted, the ones in the kernel are reaped, and the error is returned.
    ///
    /// # Safety
    /// `buf..buf+buf_len` must be valid (and writable for reads) for the whole call, and
    /// `buf_len >= offsets.len() * size`.
    pub unsafe fn run<E>(
        self,
        cache: &BatchCache,
        check: impl FnMut() -> Result<(), E>,
    ) -> Result<Vec<i64>, BatchError<E>> {
        assert!(self.buf_len >= self.offsets.len().saturating_mul(self.size));
        if self.offsets.is_empty() {
            return Ok(Vec::new());
        }
        let depth = self
            .depth
            .clamp(1, 4096)
            .min(self.offsets.len().next_power_of_two() as u32);
        let mut private = cache.take(depth).map_err(BatchError::Os)?;
        private
            .ring
            .submitter()
            .register_files_update(0, &[self.fd])
            .map_err(BatchError::Os)?;
        let fixed = self.fixed_buffer(&mut private);
        let ring = &mut private.ring;
        // SAFETY: forwarded from the caller; every request is reaped before returning.
        let results = unsafe { self.drive(ring, depth, fixed, check) };
        if fixed == Fixed::ThisCall {
            let _ = ring.submitter().unregister_buffers();
        }
        // Drop the slot's file reference: a cached ring must not keep the file open.
        let _ = ring.submitter().register_files_update(0, &[-1]);
        cache.put(private);
        results
    }

    /// Decides how `buf` is addressed. Inside a caller-registered buffer: as fixed buffer
    /// 0, registered once per ring and kept (a fixed buffer spares every copy the user
    /// page-table walk; 5-20% more cached 4 KiB reads per second). Otherwise O_DIRECT
    /// files get a registration for this call alone (O_DIRECT pins pages per request anyway), and
    /// buffered I/O a plain pointer: pinning the pages for one call costs more than the
    /// copies save.
    fn fixed_buffer(&self, private: &mut PrivateRing) -> Fixed {
        let submitter = private.ring.submitter();
        if let Some(reg) = self.registered {
            if private.registered == Some(reg.generation) {
                return Fixed::Kept(reg);
            }
            let _ = submitter.unregister_buffers();
            private.registered = None;
            let iov = libc::iovec {
                iov_base: reg.ptr.cast(),
                iov_len: reg.len,
            };
            // SAFETY: the caller keeps `reg` pinned while its generation is current; a
            // ring holding an older generation never uses it (checked above).
            if reg.len <= MAX_FIXED_BUFFER && unsafe { submitter.register_buffers(&[iov]) }.is_ok()
            {
                private.registered = Some(reg.generation);
                return Fixed::Kept(reg);
            }
            return Fixed::No;
        }
        if !self.is_direct() {
            return Fixed::No;
        }
        if private.registered.take().is_some() {
            let _ = submitter.unregister_buffers();
        }
        if self.register_buffer(&private.ring) {
            Fixed::ThisCall
        } else {
            Fixed::No
        }
    }

    /// O_DIRECT transfers pin the user pages on every request, so a registered buffer
    /// pays off there; buffered I/O only copies, and registering (pinning every page of
    /// `buf`) would cost more than it saves.
    fn is_direct(&self) -> bool {
        // SAFETY: F_GETFL on a descriptor the caller keeps open.
        let flags = unsafe { libc::fcntl(self.fd, libc::F_GETFL) };
        flags >= 0 && flags & libc::O_DIRECT != 0
    }

    /// Registers the whole buffer as fixed buffer 0 when the kernel lets us pin it
    /// (at most 1 GiB, within RLIMIT_MEMLOCK); the transfers then skip page pinning.
    fn register_buffer(&self, ring: &IoUring) -> bool {
        if self.buf_len == 0 || self.buf_len > MAX_FIXED_BUFFER || self.size > MAX_RW_COUNT {
            return false;
        }
        let iov = libc::iovec {
            iov_base: self.buf.cast(),
            iov_len: self.buf_len,
        };
        // SAFETY: the caller keeps the buffer valid for the whole call, and it is
        // unregistered before `run` returns.
        unsafe { ring.submitter().register_buffers(&[iov]) }.is_ok()
    }

    fn sqe(&self, i: usize, fixed: Fixed) -> squeue::Entry {
        let fixed_buffer = fixed != Fixed::No;
        // SAFETY: i < offsets.len() and buf_len >= offsets.len() * size.
        let ptr = unsafe { self.buf.add(i * self.size) };
        let len = self.size.min(MAX_RW_COUNT) as u32;
        let off = self.offsets[i];
        let file = types::Fixed(0);
        match (self.dir, fixed_buffer) {
            (BatchDir::Read, true) => opcode::ReadFixed::new(file, ptr, len, 0)
                .offset(off)
                .build(),
            (BatchDir::Read, false) => opcode::Read::new(file, ptr, len).offset(off).build(),
            (BatchDir::Write, true) => opcode::WriteFixed::new(file, ptr, len, 0)
                .offset(off)
                .build(),
            (BatchDir::Write, false) => opcode::Write::new(file, ptr, len).offset(off).build(),
        }
        .user_data(i as u64)
    }

    /// Keeps `depth` requests in the kernel until all are done. Never returns while the
    /// kernel still holds a request: the buffer would be freed under it.
    unsafe fn drive<E>(
        &self,
        ring: &mut IoUring,
        depth: u32,
        fixed: Fixed,
        mut check: impl FnMut() -> Result<(), E>,
    ) -> Result<Vec<i64>, BatchError<E>> {
        let total = self.offsets.len();
        let mut results = vec![0i64; total];
        let (mut next, mut in_kernel) = (0usize, 0usize);
        let mut failure: Option<BatchError<E>> = None;
        let mut last_check = Instant::now();
        let mut cancelled = false;
        // Wait in slices so the caller's signal check runs even while nothing completes
        // (a read on an empty pipe); EXT_ARG timeouts need Linux 5.11.
        let slice = types::Timespec::from(CHECK_EVERY);
        let slice = types::SubmitArgs::new().timespec(&slice);
        let sliced = ring.params().is_feature_ext_arg();
        loop {
            if failure.is_none() {
                let mut sq = ring.submission();
                while next < total && in_kernel < depth as usize {
                    // SAFETY: the SQE points into the caller's buffer, valid for the call.
                    if unsafe { sq.push(&self.sqe(next, fixed)) }.is_err() {
                        break;
                    }
                    next += 1;
                    in_kernel += 1;
                }
            } else if !cancelled {
                // Stopping early: ask the kernel to give back what it still holds.
                cancel_private(ring);
                cancelled = true;
            }
            if in_kernel == 0 {
                break;
            }
            let waited = if sliced {
                ring.submitter().submit_with_args(1, &slice)
            } else {
                ring.submit_and_wait(1)
            };
            match waited {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::ETIME)) => {}
                Err(e) => {
                    // Transient (EAGAIN/EBUSY) or a broken ring: stop feeding it, but
                    // keep reaping what is out.
                    failure.get_or_insert(BatchError::Os(e));
                    thread::sleep(Duration::from_millis(1));
                }
            }
            for cqe in ring.completion() {
                let Some(slot) = results.get_mut(cqe.user_data() as usize) else {
                    continue; // the cancel request's own completion
                };
                *slot = i64::from(cqe.result());
                in_kernel -= 1;
            }
            if failure.is_none() && last_check.elapsed() >= CHECK_EVERY {
                last_check = Instant::now();
                if let Err(e) = check() {
                    failure = Some(BatchError::Signal(e));
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(results),
        }
    }
}

/// Cancels everything in a private ring: synchronously where the kernel can (6.0+),
/// else with an AsyncCancel SQE (its completion carries an id no request has).
pub(super) fn cancel_private(ring: &mut IoUring) {
    let any = types::CancelBuilder::any();
    let timeout = types::Timespec::new().sec(1);
    if ring
        .submitter()
        .register_sync_cancel(Some(timeout), any)
        .is_ok()
    {
        return;
    }
    let sqe = opcode::AsyncCancel2::new(types::CancelBuilder::any())
        .build()
        .user_data(u64::MAX);
    // SAFETY: a cancel request points to no memory.
    if unsafe { ring.submission().push(&sqe) }.is_ok() {
        let _ = ring.submit();
    }
}

/// How a batch addresses its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fixed {
    /// Plain pointers.
    No,
    /// Fixed buffer 0, registered for this call and unregistered after it.
    ThisCall,
    /// Fixed buffer 0 is the caller-registered buffer, kept between calls.
    Kept(Registered),
}

/// Why a batch ended early.
#[derive(Debug)]
pub enum BatchError<E> {
    Os(io::Error),
    Signal(E),
}

/// A ring for one thread's hot loop: SINGLE_ISSUER + DEFER_TASKRUN (6.1+) where the
/// kernel has them, else COOP_TASKRUN (5.19+), else a plain ring.
pub(super) fn private_ring(depth: u32) -> io::Result<IoUring> {
    let build = |flags: u8| {
        let mut b = IoUring::<squeue::Entry, cqueue::Entry>::builder();
        b.setup_cqsize(depth * 2);
        if flags >= 2 {
            b.setup_single_issuer().setup_defer_taskrun();
        }
        if flags >= 1 {
            b.setup_coop_taskrun();
        }
        b.build(depth)
    };
    let ring = build(2).or_else(|_| build(1)).or_else(|_| build(0))?;
    super::ring::keep_iowq_workers(&ring);
    Ok(ring)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    fn no_check() -> Result<(), ()> {
        Ok(())
    }

    #[test]
    fn reads_match_pread_including_eof() {
        let path = std::env::temp_dir().join(format!("uringq-batch-{}", std::process::id()));
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&data)
            .unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let offsets: Vec<u64> = vec![0, 4096, 8192, 9000, 20_000, 123];
        let size = 4096;
        let mut out = vec![0u8; offsets.len() * size];
        let cache = BatchCache::default();
        let res = unsafe {
            Batch {
                dir: BatchDir::Read,
                fd: f.as_raw_fd(),
                offsets: &offsets,
                size,
                buf: out.as_mut_ptr(),
                buf_len: out.len(),
                depth: 4,
                registered: None,
            }
            .run(&cache, no_check)
        }
        .unwrap();
        assert_eq!(res, vec![4096, 4096, 1808, 1000, 0, 4096]);
        for (i, &off) in offsets.iter().enumerate() {
            let n = res[i] as usize;
            let off = off as usize;
            let expected = &data[off.min(data.len())..][..n];
            assert_eq!(&out[i * size..i * size + n], expected);
        }
        // Writes go to the same places.
        let mut src = vec![7u8; 2 * 100];
        let res = unsafe {
            Batch {
                dir: BatchDir::Write,
                fd: f.as_raw_fd(),
                offsets: &[0, 500],
                size: 100,
                buf: src.as_mut_ptr(),
                buf_len: src.len(),
                depth: 8,
                registered: None,
            }
            .run(&cache, no_check)
        }
        .unwrap();
        assert_eq!(res, vec![100, 100]);
        let back = std::fs::read(&path).unwrap();
        assert!(back[500..600].iter().all(|&b| b == 7));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_failing_check_ends_a_batch_stuck_on_an_empty_pipe() {
        let mut fds = [0; 2];
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        let mut out = vec![0u8; 2 * 16];
        let mut calls = 0;
        let start = Instant::now();
        let res = unsafe {
            Batch {
                dir: BatchDir::Read,
                fd: fds[0],
                offsets: &[0, 0],
                size: 16,
                buf: out.as_mut_ptr(),
                buf_len: out.len(),
                depth: 2,
                registered: None,
            }
            .run(&BatchCache::default(), || {
                calls += 1;
                if calls >= 2 {
                    Err("KeyboardInterrupt")
                } else {
                    Ok(())
                }
            })
        };
        assert!(matches!(res, Err(BatchError::Signal("KeyboardInterrupt"))));
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }

    #[test]
    fn errors_are_negative_errno_per_request() {
        let path = std::env::temp_dir().join(format!("uringq-batch-ro-{}", std::process::id()));
        std::fs::write(&path, b"abc").unwrap();
        let ro = std::fs::File::open(&path).unwrap();
        let mut src = vec![1u8; 3];
        let res = unsafe {
            Batch {
                dir: BatchDir::Write,
                fd: ro.as_raw_fd(),
                offsets: &[0],
                size: 3,
                buf: src.as_mut_ptr(),
                buf_len: 3,
                depth: 1,
                registered: None,
            }
            .run(&BatchCache::default(), no_check)
        }
        .unwrap();
        assert_eq!(res, vec![-(libc::EBADF as i64)]);
        std::fs::remove_file(&path).unwrap();
    }
}
