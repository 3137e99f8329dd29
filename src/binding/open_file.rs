//! `uringq.aio.open`'s open on the native queue (`_prepare_open_file`): an OPENAT whose
//! future settles with the new fd's `fstat` fields, taken here, and, for a small regular
//! file opened to be read, with its content too, read on the queue before the future
//! settles. `async with open(p, "rb") as f: await f.read()` then costs one loop turn, not
//! two; `uringq.aio` uses that content only for reads made before its task yields to the
//! loop again (see `AsyncFileIO._prefetched`), so no write made after the open is missed.
//!
//! The `fstat` decides: only a regular file of 1 to `prefetch` bytes is read (a FIFO,
//! a tty or a device is never read before the caller asks), its size at offset 0 (the
//! fd's own offset does not move). The content comes with the file's *stamp* at that
//! `fstat` (size, times, inode): while the stamp is unchanged, the content is the whole
//! file (a file that grew or shrank has another size, one rewritten other times). A
//! read that cannot be queued, fails or is short settles the open without content: the
//! caller's own read then meets the error or the new size.

use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::buffer::uninit_bytes;
use super::queue::{Buffers, NativeQueue, Pin};
use super::reap::{request_error, settle};
use super::requests::{self, named_path};
use crate::core::{Op, Request};

/// What an open settles with besides the fd: `(st_mode, st_size, st_blksize)`, and the
/// file's [`stamp`] (for the content read with it).
type FileStat = (u32, i64, i64, u64);

/// An open's read of its file, in flight: what the open settles with once it completes.
pub struct Prefetch {
    /// The kernel fills it; only the part it wrote is ever exposed.
    bytes: Py<PyBytes>,
    /// Kept open (and unregistered) until the future takes it.
    fd: OwnedFd,
    stat: FileStat,
}

impl NativeQueue {
    /// The op and payload of `_prepare_open_file` (arguments checked).
    pub(super) fn open_file_request(
        &self,
        path: &Bound<'_, PyAny>,
        flags: &Bound<'_, PyAny>,
        mode: &Bound<'_, PyAny>,
        user_data: Py<PyAny>,
        prefetch: usize,
    ) -> PyResult<(Op, Pin)> {
        let (cpath, name) = named_path(path)?;
        let op = requests::openat(libc::AT_FDCWD, cpath, Some(flags), Some(mode))?;
        // The content is one new bytes object of the file's size (at most this).
        let prefetch = prefetch.min(isize::MAX as usize);
        let mut pin = Pin::new(Buffers::OpenFile { prefetch }, user_data);
        pin.names = Some(Box::new((name, None)));
        Ok((op, pin))
    }

    /// An open's completion: `fd` and its `fstat`, then the read of a small regular file
    /// (`prefetch`: the largest size read), or the settled future.
    pub(super) fn settle_open(
        &self,
        py: Python<'_>,
        pin: Pin,
        fd: OwnedFd,
        prefetch: usize,
    ) -> PyResult<()> {
        let stat = match fstat(fd.as_raw_fd()) {
            Ok(st) => (st.st_mode, st.st_size, st.st_blksize, stamp(&st)),
            Err(errno) => {
                // `fd` closes here: nobody receives it.
                let error = request_error(py, &pin, errno);
                let error = error.into_value(py).into_bound(py).into_any();
                return settle(pin.user_data.bind(py), intern!(py, "set_exception"), &error)
                    .map(drop);
            }
        };
        let regular = stat.0 & libc::S_IFMT == libc::S_IFREG;
        let size = usize::try_from(stat.1).unwrap_or(0);
        if !regular || size == 0 || size > prefetch {
            return settle_opened(py, &pin.user_data, fd, stat, None);
        }
        let Ok((bytes, ptr)) = uninit_bytes(py, size) else {
            // No memory for it (a `prefetch` far above uringq.aio's): no content.
            return settle_opened(py, &pin.user_data, fd, stat, None);
        };
        let mut request = Request::new(
            Op::Read {
                ptr,
                len: size,
                offset: 0,
            },
            None,
        );
        request.held_fd = Some(fd.as_raw_fd());
        let read = Pin {
            buffers: Buffers::Prefetch(Box::new(Prefetch {
                bytes: bytes.unbind(),
                fd,
                stat,
            })),
            user_data: pin.user_data,
            names: pin.names,
        };
        // SAFETY: the read writes only into `bytes`, and reads only `fd`, both held by its
        // payload until its completion is taken.
        match unsafe { self.core.prepare(request, read) } {
            Ok(()) => self.aio_schedule(py),
            Err((_, read)) => {
                // No room in the queue: the open settles now, without content.
                let Buffers::Prefetch(p) = read.buffers else {
                    unreachable!("built above")
                };
                settle_opened(py, &read.user_data, p.fd, p.stat, None)
            }
        }
    }

    /// The completion of an open's read (`result`: the count or `-errno`): the open's
    /// future settles with the content when the read got the whole size, without it
    /// otherwise. The driver's flush is then scheduled (behind the task this wakes), so
    /// the driver sees the loop run on before that task can resume after a yield.
    pub(super) fn settle_prefetched(&self, py: Python<'_>, pin: Pin, result: i32) -> PyResult<()> {
        let Buffers::Prefetch(p) = pin.buffers else {
            unreachable!("called for a prefetch only")
        };
        let Prefetch { bytes, fd, stat } = *p;
        let bytes = bytes.into_bound(py);
        // Only a complete read is ever seen (every byte of it written by the kernel).
        let complete = usize::try_from(result).is_ok_and(|n| n == bytes.as_bytes().len());
        let data = complete.then_some(bytes);
        let delivered = data.is_some();
        settle_opened(py, &pin.user_data, fd, stat, data)?;
        if delivered {
            self.aio_schedule(py)?;
        }
        Ok(())
    }
}

/// `future.set_result((fd, st_mode, st_size, st_blksize, content))`, handing the fd
/// over; `content` is `(data, stamp)` or `None`. A future already done (cancelled) leaves
/// the fd to close here.
fn settle_opened(
    py: Python<'_>,
    future: &Py<PyAny>,
    fd: OwnedFd,
    (mode, size, blksize, stamp): FileStat,
    data: Option<Bound<'_, PyBytes>>,
) -> PyResult<()> {
    let content = data.map(|data| (data, stamp));
    let value = (fd.as_raw_fd(), mode, size, blksize, content)
        .into_pyobject(py)?
        .into_any();
    if settle(future.bind(py), intern!(py, "set_result"), &value)? {
        let _ = fd.into_raw_fd(); // the caller's now
    }
    Ok(())
}

/// What changes when a file's content may have changed: a mix of its device, inode,
/// size, and modification and change times (to the nanosecond; Linux 6.13+ gives a
/// change after a `stat` a fine-grained time on ext4, xfs, btrfs and tmpfs).
fn stamp(st: &libc::stat) -> u64 {
    [
        st.st_dev,
        st.st_ino,
        st.st_size as u64,
        st.st_mtime as u64,
        st.st_mtime_nsec as u64,
        st.st_ctime as u64,
        st.st_ctime_nsec as u64,
    ]
    .iter()
    .fold(0xCBF2_9CE4_8422_2325_u64, |h, &v| {
        (h ^ v).wrapping_mul(0x0000_0100_0000_01B3).rotate_left(29)
    })
}

/// The [`stamp`] of the file `fd` is open on now (`_file_stamp`), or 0 if `fstat` fails.
pub fn file_stamp(fd: RawFd) -> u64 {
    fstat(fd).map_or(0, |st| stamp(&st))
}

/// `fstat(fd)`, or the errno.
fn fstat(fd: RawFd) -> Result<libc::stat, i32> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is a valid out-pointer for one `struct stat`.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } == 0 {
        // SAFETY: the call succeeded: the kernel filled `st`.
        Ok(unsafe { st.assume_init() })
    } else {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    }
}
