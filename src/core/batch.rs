//! The batch engine behind `read_many` / `write_many`: request `i` moves `size` bytes at
//! `offsets[i]` to or from `buf[i*size..(i+1)*size]`. It runs on a private ring owned by
//! the calling thread, so it can use SINGLE_ISSUER/DEFER_TASKRUN, a registered file and
//! (when the kernel lets us pin it) the whole buffer as one registered buffer, and it
//! keeps the ring full at `depth` until every request is done.

use std::io;
use std::os::fd::RawFd;
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
        check: impl FnMut() -> Result<(), E>,
    ) -> Result<Vec<i64>, BatchError<E>> {
        let Batch {
            dir,
            fd,
            offsets,
            size,
            buf,
            buf_len,
            depth,
        } = self;
        // SAFETY: forwarded from the caller.
        unsafe { run_batch(dir, fd, offsets, size, buf, buf_len, depth, check) }
    }
}

#[allow(clippy::too_many_arguments)]
unsafe fn run_batch<E>(
    dir: BatchDir,
    fd: RawFd,
    offsets: &[u64],
    size: usize,
    buf: *mut u8,
    buf_len: usize,
    depth: u32,
    mut check: impl FnMut() -> Result<(), E>,
) -> Result<Vec<i64>, BatchError<E>> {
    assert!(buf_len >= offsets.len().saturating_mul(size));
    let mut results = vec![0i64; offsets.len()];
    if offsets.is_empty() {
        return Ok(results);
    }
    let depth = depth
        .clamp(1, 4096)
        .min(offsets.len().next_power_of_two() as u32);
    let mut ring = private_ring(depth).map_err(BatchError::Os)?;
    let submitter = ring.submitter();
    submitter.register_files(&[fd]).map_err(BatchError::Os)?;
    let fixed_buffer = buf_len > 0 && buf_len <= MAX_FIXED_BUFFER && size <= MAX_RW_COUNT && {
        let iov = libc::iovec {
            iov_base: buf.cast(),
            iov_len: buf_len,
        };
        // SAFETY: the caller keeps the buffer valid for the whole call, and the ring
        // (with its registration) is dropped before we return.
        unsafe { submitter.register_buffers(&[iov]) }.is_ok()
    };

    let sqe_for = |i: usize| -> squeue::Entry {
        let ptr = unsafe { buf.add(i * size) };
        let len = size.min(MAX_RW_COUNT) as u32;
        let off = offsets[i];
        let file = types::Fixed(0);
        match (dir, fixed_buffer) {
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
    };

    let mut next = 0usize;
    let mut in_kernel = 0usize;
    let mut done = 0usize;
    let mut failure: Option<BatchError<E>> = None;
    let mut last_check = Instant::now();
    while done < offsets.len() {
        if failure.is_none() {
            let mut sq = ring.submission();
            while next < offsets.len() && in_kernel + sq.len() < depth as usize {
                // SAFETY: the SQE points into `buf`, valid for the whole call.
                if unsafe { sq.push(&sqe_for(next)) }.is_err() {
                    break;
                }
                next += 1;
            }
            let queued = sq.len();
            drop(sq);
            in_kernel += queued;
        }
        if in_kernel == 0 {
            break;
        }
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) => {
                // Cannot happen for a well-formed ring; reap what is out, then report.
                failure.get_or_insert(BatchError::Os(e));
            }
        }
        for cqe in ring.completion() {
            results[cqe.user_data() as usize] = i64::from(cqe.result());
            in_kernel -= 1;
            done += 1;
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

/// Why a batch ended early.
#[derive(Debug)]
pub enum BatchError<E> {
    Os(io::Error),
    Signal(E),
}

/// A ring for one thread's hot loop: SINGLE_ISSUER + DEFER_TASKRUN (6.1+) where the
/// kernel has them, else COOP_TASKRUN (5.19+), else a plain ring.
fn private_ring(depth: u32) -> io::Result<IoUring> {
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
    build(2).or_else(|_| build(1)).or_else(|_| build(0))
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
        let res = unsafe {
            run_batch(
                BatchDir::Read,
                f.as_raw_fd(),
                &offsets,
                size,
                out.as_mut_ptr(),
                out.len(),
                4,
                no_check,
            )
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
            run_batch(
                BatchDir::Write,
                f.as_raw_fd(),
                &[0, 500],
                100,
                src.as_mut_ptr(),
                src.len(),
                8,
                no_check,
            )
        }
        .unwrap();
        assert_eq!(res, vec![100, 100]);
        let back = std::fs::read(&path).unwrap();
        assert!(back[500..600].iter().all(|&b| b == 7));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn errors_are_negative_errno_per_request() {
        let path = std::env::temp_dir().join(format!("uringq-batch-ro-{}", std::process::id()));
        std::fs::write(&path, b"abc").unwrap();
        let ro = std::fs::File::open(&path).unwrap();
        let mut src = vec![1u8; 3];
        let res = unsafe {
            run_batch(
                BatchDir::Write,
                ro.as_raw_fd(),
                &[0],
                3,
                src.as_mut_ptr(),
                3,
                1,
                no_check,
            )
        }
        .unwrap();
        assert_eq!(res, vec![-(libc::EBADF as i64)]);
        std::fs::remove_file(&path).unwrap();
    }
}
