//! The follow-up paths, run on the calling thread with plain system calls: a file larger
//! than its first read is read again whole from a new open (so the result comes from one
//! open file, never a mix of two), and a short or capped write is completed on a new
//! open. Both go in chunks so the caller's check runs about every 100 ms, and retry
//! EINTR after that check (a signal on this thread interrupts a blocking call).

use std::ffi::CStr;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use super::engine::Clock;
use super::{Check, Finished, ReadSink};

/// Largest single read or write of a follow-up: a few ms of page-cache copying, so a
/// huge file still lets the signal check run often.
pub const CHUNK: usize = 8 << 20;

fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Runs `call` (a system call returning -1 on error) until it does not fail with EINTR;
/// `Ok(Err(errno))` for any other failure.
fn retrying<C: Check>(
    check: &mut C,
    mut call: impl FnMut() -> isize,
) -> Result<Result<usize, i32>, C::Error> {
    loop {
        let r = call();
        if r >= 0 {
            return Ok(Ok(r as usize));
        }
        match errno() {
            libc::EINTR => check.check()?,
            e => return Ok(Err(e)),
        }
    }
}

fn open<C: Check>(
    check: &mut C,
    dir_fd: RawFd,
    path: &CStr,
    flags: i32,
) -> Result<Result<OwnedFd, i32>, C::Error> {
    let opened = retrying(check, || {
        // SAFETY: `path` is NUL-terminated; the result is checked.
        unsafe { libc::openat(dir_fd, path.as_ptr(), flags | libc::O_CLOEXEC) as isize }
    })?;
    // SAFETY: a descriptor openat just returned, owned by nobody else.
    Ok(opened.map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) }))
}

/// Reads file `index` whole and hands it to the sink (or its errno).
pub fn read_whole<S: ReadSink>(
    dir_fd: RawFd,
    path: &CStr,
    index: usize,
    sink: &mut S,
    clock: &mut Clock,
) -> Result<(), S::Error> {
    match read_fd(dir_fd, path, sink, clock)? {
        Ok((big, filled, tail)) => sink.finish(index, big, filled, &tail),
        Err(errno) => sink.deliver(&[Finished {
            index,
            result: Err(errno),
        }]),
    }
}

/// What a whole read produced: the sink's buffer (sized by `fstat`) filled to `filled`,
/// then whatever came after it (a file that grew, or one whose size `fstat` does not
/// know, such as /proc files).
type Whole<B> = (Option<B>, usize, Vec<u8>);

fn read_fd<S: ReadSink>(
    dir_fd: RawFd,
    path: &CStr,
    sink: &mut S,
    clock: &mut Clock,
) -> Result<Result<Whole<S::Big>, i32>, S::Error> {
    let fd = match open(sink, dir_fd, path, libc::O_RDONLY)? {
        Ok(fd) => fd,
        Err(e) => return Ok(Err(e)),
    };
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat fills the struct on success.
    if unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return Ok(Err(errno()));
    }
    // SAFETY: fstat succeeded.
    let st = unsafe { st.assume_init() };
    let regular = st.st_mode & libc::S_IFMT == libc::S_IFREG;
    let hint = if regular && st.st_size > 0 {
        usize::try_from(st.st_size).unwrap_or(usize::MAX)
    } else {
        0
    };
    let mut big = None;
    let mut filled = 0;
    if hint > 0 {
        let mut buf = sink.alloc(hint)?;
        let ptr = S::as_mut_ptr(&mut buf);
        while filled < hint {
            let want = (hint - filled).min(CHUNK);
            // SAFETY: `ptr..ptr+hint` is the sink's buffer, alive while `buf` is.
            let got = retrying(sink, || unsafe {
                libc::read(fd.as_raw_fd(), ptr.add(filled).cast(), want)
            })?;
            match got {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => return Ok(Err(e)),
            }
            if clock.due() {
                sink.check()?;
            }
        }
        big = Some(buf);
    }
    // Read on to EOF: the file grew, or fstat did not know its size (/proc).
    let mut tail: Vec<u8> = Vec::new();
    if filled < hint {
        return Ok(Ok((big, filled, tail))); // it shrank: EOF came early
    }
    loop {
        let want = tail.len().clamp(64 * 1024, CHUNK);
        if tail.try_reserve(want).is_err() {
            return Ok(Err(libc::ENOMEM));
        }
        let spare = tail.spare_capacity_mut();
        // SAFETY: reads into the reserved, unused capacity of `tail`.
        let got = retrying(sink, || unsafe {
            libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), want)
        })?;
        match got {
            Ok(0) => break,
            // SAFETY: the kernel initialised `n` more bytes.
            Ok(n) => unsafe { tail.set_len(tail.len() + n) },
            Err(e) => return Ok(Err(e)),
        }
        if clock.due() {
            sink.check()?;
        }
    }
    Ok(Ok((big, filled, tail)))
}

/// Writes `data[from..]` at offset `from` to an existing file, then fsyncs (if asked) and
/// closes it. Returns `data.len()` or -errno.
pub fn write_rest<C: Check>(
    dir_fd: RawFd,
    path: &CStr,
    data: &[u8],
    from: usize,
    fsync: bool,
    check: &mut C,
    clock: &mut Clock,
) -> Result<i64, C::Error> {
    let fd = match open(check, dir_fd, path, libc::O_WRONLY)? {
        Ok(fd) => fd,
        Err(e) => return Ok(-i64::from(e)),
    };
    let mut at = from;
    while at < data.len() {
        let want = (data.len() - at).min(CHUNK);
        // SAFETY: writes from `data[at..at+want]`, which the caller keeps alive.
        let put = retrying(check, || unsafe {
            libc::pwrite(
                fd.as_raw_fd(),
                data.as_ptr().add(at).cast(),
                want,
                at as libc::off_t,
            )
        })?;
        match put {
            Ok(0) => return Ok(-i64::from(libc::EIO)),
            Ok(n) => at += n,
            Err(e) => return Ok(-i64::from(e)),
        }
        if clock.due() {
            check.check()?;
        }
    }
    if fsync {
        if let Err(e) = retrying(check, || unsafe { libc::fsync(fd.as_raw_fd()) as isize })? {
            return Ok(-i64::from(e));
        }
    }
    // SAFETY: closes our own descriptor once; a failure (EIO on NFS) is the file's error,
    // and the descriptor is gone either way.
    if unsafe { libc::close(fd.into_raw_fd()) } != 0 {
        let e = errno();
        if e != libc::EINTR {
            return Ok(-i64::from(e));
        }
    }
    Ok(data.len() as i64)
}
