//! Building requests from Python arguments: checks in the SPEC's order (an open queue,
//! then each argument, then the link flags and deadline), buffer pinning, paths owned by
//! the request, and the hand-over to the core.

use std::ffi::CString;
use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PySequence};

use super::args;
use super::buffer::{Access, RawBuffer};
use super::errors::to_pyerr;
use super::queue::{Buffers, Names, NativeQueue, Pin};
use crate::core::{timespec, Error, Link, Op, Request};

/// The keyword arguments every `prepare_*` shares.
pub struct Extras {
    pub link: Link,
    pub deadline: Option<Duration>,
}

impl Extras {
    pub fn new(link: bool, hardlink: bool, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        Ok(Extras {
            link: args::link(link, hardlink)?,
            deadline: args::deadline(timeout)?,
        })
    }

    /// For the operations that take no deadline.
    pub fn untimed(link: bool, hardlink: bool) -> PyResult<Self> {
        Self::new(link, hardlink, None)
    }
}

impl NativeQueue {
    /// Hands a checked request to the core; on refusal the pins are released here.
    pub(super) fn submit(
        &self,
        py: Python<'_>,
        op: Op,
        file: Option<i32>,
        extras: Extras,
        pin: Pin,
    ) -> PyResult<()> {
        let request = Request {
            op,
            file,
            slot: None,
            link: extras.link,
            deadline: extras.deadline,
        };
        // SAFETY: the op points only into memory it owns or that `pin` holds (buffer
        // exports), and the queue keeps both until the kernel is done with the request.
        unsafe { self.core.prepare(request, pin) }.map_err(|(err, pin)| {
            drop(pin);
            to_pyerr(py, err)
        })
    }

    /// Fails fast (fork guard, closed queue) before any argument is converted.
    pub(super) fn ensure_open(&self, py: Python<'_>) -> PyResult<()> {
        if self.core.is_forked() {
            return Err(to_pyerr(py, Error::Forked));
        }
        if self.core.is_closed() {
            return Err(to_pyerr(py, Error::Closed));
        }
        Ok(())
    }

    /// The checks every positional request starts with, in the SPEC's order: an open
    /// queue, then the fd, then the offset; `user_data` defaults to `None`.
    pub(super) fn request_head(
        &self,
        fd: &Bound<'_, PyAny>,
        offset: &Bound<'_, PyAny>,
        user_data: Option<Py<PyAny>>,
    ) -> PyResult<(i32, u64, Py<PyAny>)> {
        let py = fd.py();
        self.ensure_open(py)?;
        let fd = args::fd(fd)?;
        let offset = args::non_negative(offset, "offset")?;
        Ok((fd, offset, user_data.unwrap_or_else(|| py.None())))
    }

    pub(super) fn prepare_rw(
        &self,
        fd: &Bound<'_, PyAny>,
        offset: &Bound<'_, PyAny>,
        buf: &Bound<'_, PyAny>,
        user_data: Option<Py<PyAny>>,
        access: Access,
        extras: (bool, bool, Option<&Bound<'_, PyAny>>),
    ) -> PyResult<()> {
        let py = fd.py();
        let (fd, offset, user_data) = self.request_head(fd, offset, user_data)?;
        let buffer = RawBuffer::get(buf, access)?;
        let extras = Extras::new(extras.0, extras.1, extras.2)?;
        let (ptr, len) = (buffer.ptr(), buffer.len());
        let op = match access {
            Access::Write => Op::Read { ptr, len, offset },
            Access::Read => Op::Write {
                ptr: ptr.cast_const(),
                len,
                offset,
            },
        };
        let pin = Pin::new(Buffers::One(buffer), user_data);
        self.submit(py, op, Some(fd), extras, pin)
    }

    pub(super) fn prepare_vectored(
        &self,
        fd: &Bound<'_, PyAny>,
        offset: &Bound<'_, PyAny>,
        bufs: &Bound<'_, PyAny>,
        user_data: Option<Py<PyAny>>,
        access: Access,
        extras: (bool, bool, Option<&Bound<'_, PyAny>>),
    ) -> PyResult<()> {
        let py = fd.py();
        let (fd, offset, user_data) = self.request_head(fd, offset, user_data)?;
        if bufs.is_instance_of::<PyBytes>() || RawBuffer::get(bufs, Access::Read).is_ok() {
            return Err(PyTypeError::new_err(
                "bufs must be a sequence of buffers, not a single buffer",
            ));
        }
        let seq = bufs.cast::<PySequence>().map_err(|_| {
            PyTypeError::new_err(format!(
                "bufs must be a sequence of buffers, not {}",
                args::type_name(bufs)
            ))
        })?;
        // More than IOV_MAX parts is the kernel's call: it completes with EINVAL.
        let count = seq.len()?;
        let mut buffers = Vec::with_capacity(count);
        for item in seq.try_iter()? {
            buffers.push(RawBuffer::get(&item?, access)?);
        }
        let extras = Extras::new(extras.0, extras.1, extras.2)?;
        let iov: Vec<libc::iovec> = buffers
            .iter()
            .map(|b| libc::iovec {
                iov_base: b.ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        let op = match access {
            Access::Write => Op::Readv { iov, offset },
            Access::Read => Op::Writev { iov, offset },
        };
        let pin = Pin::new(Buffers::Many(buffers), user_data);
        self.submit(py, op, Some(fd), extras, pin)
    }

    /// Hands a group (see [`crate::core::Queue::prepare_group`]) to the core on a direct
    /// descriptor; `pin` (the leader's) keeps alive what every member points to.
    pub(super) fn submit_group(
        &self,
        py: Python<'_>,
        build: impl FnOnce(Option<u32>) -> Vec<Request>,
        roles: (usize, Option<usize>),
        pin: Pin,
    ) -> PyResult<()> {
        if !self.core.has_direct() {
            drop(pin);
            return Err(to_pyerr(
                py,
                Error::Unsupported(io_uring::opcode::OpenAt::CODE),
            ));
        }
        let none = py.None();
        // Members pin nothing; their `None` is safe to drop anywhere (PyO3 defers a
        // decref made without the GIL).
        let member = || Pin::new(Buffers::None, none.clone_ref(py));
        // SAFETY: every member points into `pin`'s buffer or into memory its op owns.
        unsafe { self.core.prepare_group(true, roles, build, pin, member) }.map_err(|(err, pin)| {
            drop(pin);
            to_pyerr(py, err)
        })
    }

    /// A request that pins nothing but its `user_data` and, for errors, its path(s).
    pub(super) fn prepare_plain(
        &self,
        py: Python<'_>,
        op: Op,
        names: Option<Names>,
        user_data: Option<Py<PyAny>>,
        extras: Extras,
    ) -> PyResult<()> {
        let mut pin = Pin::new(Buffers::None, user_data.unwrap_or_else(|| py.None()));
        pin.names = names.map(Box::new);
        self.submit(py, op, None, extras, pin)
    }
}

/// A path argument and its name for `OSError.filename` (`os.fspath` of it, as `os` does).
pub fn named_path(obj: &Bound<'_, PyAny>) -> PyResult<(CString, Py<PyAny>)> {
    let (path, name) = args::path(obj)?;
    Ok((path, name.unbind()))
}

/// `prepare_openat`'s op: `O_CLOEXEC` is always added (the caller owns the new fd).
pub fn openat(
    dir: i32,
    path: CString,
    flags: Option<&Bound<'_, PyAny>>,
    mode: Option<&Bound<'_, PyAny>>,
) -> PyResult<Op> {
    let flags = flags.map_or(Ok(libc::O_RDONLY), |f| args::c_int(f, "flags"))?;
    Ok(Op::OpenAt {
        dir,
        path,
        flags: flags | libc::O_CLOEXEC,
        mode: mode.map_or(Ok(0o666), args::mode)?,
        slot: None,
    })
}

/// `prepare_statx`'s op and error name: `path` is a path, or an int fd (then the fd
/// itself is stat'ed, as `os.stat(fd)` does, and `dir_fd` must be `None`).
pub fn statx(
    path: &Bound<'_, PyAny>,
    dir_fd: Option<&Bound<'_, PyAny>>,
    follow_symlinks: bool,
) -> PyResult<(Op, Py<PyAny>)> {
    let buf = Box::new(unsafe_zeroed_statx());
    if path.is_instance_of::<PyInt>() {
        if dir_fd.is_some_and(|d| !d.is_none()) {
            return Err(PyValueError::new_err(
                "prepare_statx: can't specify dir_fd without matching path",
            ));
        }
        let fd = args::c_int(path, "fd")?;
        let op = Op::Statx {
            dir: fd,
            path: CString::default(),
            flags: Op::statx_flags(follow_symlinks, true),
            buf,
        };
        return Ok((op, path.clone().unbind()));
    }
    let (cpath, name) = named_path(path)?;
    let op = Op::Statx {
        dir: args::dir_fd(dir_fd)?,
        path: cpath,
        flags: Op::statx_flags(follow_symlinks, false),
        buf,
    };
    Ok((op, name))
}

/// A zeroed `statx` buffer for the kernel to fill.
fn unsafe_zeroed_statx() -> libc::statx {
    // SAFETY: statx is plain old data; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

/// `prepare_timeout`'s op.
pub fn timeout(seconds: &Bound<'_, PyAny>) -> PyResult<Op> {
    Ok(Op::Timeout {
        after: timespec(args::seconds(seconds, "seconds")?),
    })
}

/// The file position: a read there continues where the previous one stopped.
const AT_POSITION: u64 = u64::MAX;

/// OPENAT into direct `slot` -> READ of `len` bytes into `ptr` -> READ of 1 byte into
/// `ptr + len` (the EOF probe, member 2: a short read alone does not prove EOF, /proc's
/// seq files return a page per read) -> CLOSE, both reads at the file position and
/// hardlinked so that a short or failed read still closes the file. `ptr` must hold
/// `len + 1` bytes.
pub fn read_file_group(
    dir: i32,
    path: CString,
    ptr: *mut u8,
    len: usize,
    slot: Option<u32>,
) -> Vec<Request> {
    let slot = slot.expect("groups run on a direct slot");
    let open = Op::OpenAt {
        dir,
        path,
        flags: libc::O_RDONLY,
        mode: 0,
        slot: Some(slot),
    };
    let read = Op::Read {
        ptr,
        len,
        offset: AT_POSITION,
    };
    let probe = Op::Read {
        // SAFETY: the caller's buffer holds `len + 1` bytes.
        ptr: unsafe { ptr.add(len) },
        len: 1,
        offset: AT_POSITION,
    };
    on_slot(
        slot,
        vec![(open, Link::Soft), (read, Link::Hard), (probe, Link::Hard)],
    )
}

/// OPENAT (create or truncate) into direct `slot` -> WRITE -> [FSYNC] -> CLOSE, all but
/// the open hardlinked so that the file is always closed.
pub fn write_file_group(
    dir: i32,
    path: CString,
    mode: u32,
    (ptr, len): (*const u8, usize),
    fsync: bool,
    slot: Option<u32>,
) -> Vec<Request> {
    let slot = slot.expect("groups run on a direct slot");
    let open = Op::OpenAt {
        dir,
        path,
        flags: libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
        mode,
        slot: Some(slot),
    };
    let write = Op::Write {
        ptr,
        len,
        offset: 0,
    };
    let mut steps = vec![(open, Link::Soft), (write, Link::Hard)];
    if fsync {
        steps.push((Op::Fsync { datasync: false }, Link::Hard));
    }
    on_slot(slot, steps)
}

/// The steps of a group on direct `slot`, then its CLOSE (the leader).
fn on_slot(slot: u32, steps: Vec<(Op, Link)>) -> Vec<Request> {
    let mut requests: Vec<Request> = steps
        .into_iter()
        .map(|(op, link)| {
            let data = op.needs_file();
            let mut req = Request::new(op, None);
            req.link = link;
            req.slot = data.then_some(slot);
            req
        })
        .collect();
    requests.push(Request::new(Op::CloseDirect { slot }, None));
    requests
}
