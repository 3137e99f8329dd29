//! `uringq.aio.open`'s open on the native queue (`_prepare_open_file`): an OPENAT whose
//! future settles with the new fd's `fstat` fields, taken here (Python's `os.fstat` costs
//! about a microsecond more, building an `os.stat_result`); and `read_rest`, the
//! non-blocking read of a small file's rest that `uringq.aio` makes when a task reads a
//! file right after opening it.

use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::args;
use super::buffer::uninit_bytes;
use super::queue::{Buffers, NativeQueue, Pin};
use super::reap::{request_error, settle};
use super::requests::{self, named_path};
use crate::core::{self, Op};

/// What an open settles with besides the fd: `(st_mode, st_size, st_blksize)`.
type FileStat = (u32, i64, i64);

impl NativeQueue {
    /// The op and payload of `_prepare_open_file` (arguments checked).
    pub(super) fn open_file_request(
        &self,
        path: &Bound<'_, PyAny>,
        flags: &Bound<'_, PyAny>,
        mode: &Bound<'_, PyAny>,
        user_data: Py<PyAny>,
    ) -> PyResult<(Op, Pin)> {
        let (cpath, name) = named_path(path)?;
        let op = requests::openat(libc::AT_FDCWD, cpath, Some(flags), Some(mode))?;
        let mut pin = Pin::new(Buffers::OpenFile, user_data);
        pin.names = Some(Box::new((name, None)));
        Ok((op, pin))
    }

    /// An open's completion: the future settles with `fd` and its `fstat`.
    pub(super) fn settle_open(&self, py: Python<'_>, pin: Pin, fd: OwnedFd) -> PyResult<()> {
        match fstat(fd.as_raw_fd()) {
            Ok(st) => settle_opened(
                py,
                &pin.user_data,
                fd,
                (st.st_mode, st.st_size, st.st_blksize),
            ),
            Err(errno) => {
                // `fd` closes here: nobody receives it.
                let error = request_error(py, &pin, errno);
                let error = error.into_value(py).into_bound(py).into_any();
                settle(pin.user_data.bind(py), intern!(py, "set_exception"), &error).map(drop)
            }
        }
    }
}

/// `future.set_result((fd, st_mode, st_size, st_blksize))`, handing the fd over. A
/// future already done (cancelled) leaves the fd to close here.
fn settle_opened(
    py: Python<'_>,
    future: &Py<PyAny>,
    fd: OwnedFd,
    (mode, size, blksize): FileStat,
) -> PyResult<()> {
    let value = (fd.as_raw_fd(), mode, size, blksize)
        .into_pyobject(py)?
        .into_any();
    if settle(future.bind(py), intern!(py, "set_result"), &value)? {
        let _ = fd.into_raw_fd(); // the caller's now
    }
    Ok(())
}

/// `_read_rest(fd, offset, size)`: the `size` bytes from `offset` to the end of the
/// regular file `fd`, read now without blocking, or `None` when they cannot be (not all
/// in the page cache, the file not that size, an error: see `core::read_rest`). Only
/// what the kernel wrote is ever exposed.
#[pyfunction]
pub fn _read_rest<'py>(
    fd: &Bound<'py, PyAny>,
    offset: u64,
    size: usize,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let py = fd.py();
    let fd = args::fd(fd)?;
    if size == 0 {
        return Ok(None);
    }
    let (bytes, ptr) = uninit_bytes(py, size)?;
    // SAFETY: `ptr` is the storage of `bytes`, `size` bytes long; the kernel checks `fd`.
    // The call does not block (RWF_NOWAIT): the GIL stays held.
    Ok(unsafe { core::read_rest(fd, offset, ptr, size) }.then_some(bytes))
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
