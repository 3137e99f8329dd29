//! `NativeQueue`: the io_uring provider's queue, as Python sees it. Each method checks
//! its arguments (see [`requests`](super::requests)), pins buffers for as long as the
//! kernel may touch them, releases the GIL in every blocking call and maps errors; the
//! queue logic itself lives in [`crate::core::Queue`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use pyo3::{PyTraverseError, PyVisit};

use super::aio::AioHooks;
use super::args;
use super::buffer::{uninit_bytes, Access, RawBuffer};
use super::errors::to_pyerr;
use super::pool::{Pool, Pooled};
use super::requests::{self, named_path, Extras};
use crate::core::{BatchCache, BatchDir, Error, Op, Queue};

/// The path(s) of a path operation, as given: its error's `filename` (and `filename2`).
pub type Names = (Py<PyAny>, Option<Py<PyAny>>);

/// What a request keeps alive until its completion is returned: its buffer export(s),
/// the caller's `user_data` and, for path operations, the paths for the error. Dropped
/// only with the GIL held.
pub struct Pin {
    pub buffers: Buffers,
    pub user_data: Py<PyAny>,
    pub names: Option<Box<Names>>,
}

impl Pin {
    pub fn new(buffers: Buffers, user_data: Py<PyAny>) -> Pin {
        Pin {
            buffers,
            user_data,
            names: None,
        }
    }
}

/// The exports a request holds: none (sync, path operations), one (read/write) or
/// several (readv/writev); the common single case costs no extra allocation. `Bytes` is
/// the `bytes` object a `_prepare_read_bytes` request fills: nobody else holds it before
/// its completion.
pub enum Buffers {
    None,
    #[expect(dead_code, reason = "held only so that Drop releases the export")]
    One(RawBuffer),
    #[expect(dead_code, reason = "held only so that Drop releases the exports")]
    Many(Vec<RawBuffer>),
    Bytes(Py<PyBytes>),
    /// The buffer a `_prepare_read_file` group reads into (its bytes are copied out).
    WholeFile(Pooled),
    /// No buffer: an `_prepare_open_file` open, settled with the new fd's `fstat` fields.
    OpenFile,
}

/// An io_uring queue (the `io_uring` provider). Use `uringq.IoQueue`.
#[pyclass(frozen, module = "uringq._native")]
pub struct NativeQueue {
    pub(super) core: Queue<Pin>,
    pub(super) batch: BatchCache,
    /// The buffer of `register_buffer`, with its generation; batches inside it use it
    /// as a fixed buffer. A batch clones the `Arc`, so the export outlives its use.
    pub(super) registered: Mutex<Option<(u64, Arc<RawBuffer>)>>,
    generations: AtomicU64,
    /// Whole-file groups work here (direct descriptors).
    whole_files: bool,
    /// The first-read buffers of whole-file groups, reused.
    whole_pool: Pool,
    /// `uringq.aio`'s driver of this queue (`_aio_bind`), and whether its flush is
    /// scheduled for this loop iteration.
    pub(super) aio: Mutex<Option<AioHooks>>,
    pub(super) aio_scheduled: AtomicBool,
}

#[pymethods]
impl NativeQueue {
    #[new]
    fn new(py: Python<'_>, sq_entries: u32, cq_entries: u32) -> PyResult<Self> {
        let core = py
            .detach(|| Queue::new(sq_entries, cq_entries))
            .map_err(|e| to_pyerr(py, e))?;
        let whole_files = core.has_direct();
        Ok(NativeQueue {
            core,
            batch: BatchCache::default(),
            registered: Mutex::new(None),
            generations: AtomicU64::new(0),
            whole_files,
            whole_pool: Pool::default(),
            aio: Mutex::new(None),
            aio_scheduled: AtomicBool::new(false),
        })
    }

    #[getter]
    fn provider_id(&self) -> &'static str {
        "io_uring"
    }

    #[getter]
    fn sq_entries(&self) -> u32 {
        self.core.sq_entries()
    }

    #[getter]
    fn cq_entries(&self) -> u32 {
        self.core.cq_entries()
    }

    #[getter]
    fn prepared(&self, py: Python<'_>) -> PyResult<usize> {
        match self.core.prepared() {
            Err(Error::Closed) => Ok(0),
            other => other.map_err(|e| to_pyerr(py, e)),
        }
    }

    #[getter]
    fn in_flight(&self, py: Python<'_>) -> PyResult<usize> {
        match self.core.in_flight() {
            Err(Error::Closed) => Ok(0),
            other => other.map_err(|e| to_pyerr(py, e)),
        }
    }

    #[getter]
    fn closed(&self) -> bool {
        self.core.is_closed()
    }

    fn register(&self, fd: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = fd.py();
        self.ensure_open(py)?;
        let fd = args::fd(fd)?;
        self.core.register(fd).map_err(|e| to_pyerr(py, e))
    }

    /// Registers `fd` under its own number: no duplicate, no fixed slot, no system call.
    /// For `uringq.aio`'s file objects, which own the fd they opened and deregister it
    /// before they close it (`register` pins the open file against a caller who closes
    /// and reuses the number; an owner that never does needs no pin).
    fn _adopt(&self, fd: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = fd.py();
        self.ensure_open(py)?;
        let fd = args::fd(fd)?;
        self.core.adopt(fd).map_err(|e| to_pyerr(py, e))
    }

    fn deregister(&self, fd: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = fd.py();
        self.ensure_open(py)?;
        let fd = args::fd(fd)?;
        self.core.deregister(fd).map_err(|e| to_pyerr(py, e))
    }

    #[pyo3(signature = (fd, offset, buf, user_data = None, *, link = false, hardlink = false, timeout = None))]
    #[expect(clippy::too_many_arguments, reason = "the Python signature")]
    fn prepare_read(
        &self,
        fd: &Bound<'_, PyAny>,
        offset: &Bound<'_, PyAny>,
        buf: &Bound<'_, PyAny>,
        user_data: Option<Py<PyAny>>,
        link: bool,
        hardlink: bool,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.prepare_rw(
            fd,
            offset,
            buf,
            user_data,
            Access::Write,
            (link, hardlink, timeout),
        )
    }

    #[pyo3(signature = (fd, offset, buf, user_data = None, *, link = false, hardlink = false, timeout = None))]
    #[expect(clippy::too_many_arguments, reason = "the Python signature")]
    fn prepare_write(
        &self,
        fd: &Bound<'_, PyAny>,
        offset: &Bound<'_, PyAny>,
        buf: &Bound<'_, PyAny>,
        user_data: Option<Py<PyAny>>,
        link: bool,
        hardlink: bool,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.prepare_rw(
            fd,
            offset,
            buf,
            user_data,
            Access::Read,
            (link, hardlink, timeout),
        )
    }

    #[pyo3(signature = (fd, user_data = None, *, datasync = false, link = false, hardlink = false))]
    fn prepare_sync(
        &self,
        fd: &Bound<'_, PyAny>,
        user_data: Option<Py<PyAny>>,
        datasync: bool,
        link: bool,
        hardlink: bool,
    ) -> PyResult<()> {
        let py = fd.py();
        self.ensure_open(py)?;
        let fd = args::fd(fd)?;
        let extras = Extras::untimed(link, hardlink)?;
        let pin = Pin::new(Buffers::None, user_data.unwrap_or_else(|| py.None()));
        self.submit(py, Op::Fsync { datasync }, Some(fd), extras, pin)
    }

    #[pyo3(signature = (fd, offset, bufs, user_data = None, *, link = false, hardlink = false, timeout = None))]
    #[expect(clippy::too_many_arguments, reason = "the Python signature")]
    fn prepare_readv(
        &self,
        fd: &Bound<'_, PyAny>,
        offset: &Bound<'_, PyAny>,
        bufs: &Bound<'_, PyAny>,
        user_data: Option<Py<PyAny>>,
        link: bool,
        hardlink: bool,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.prepare_vectored(
            fd,
            offset,
            bufs,
            user_data,
            Access::Write,
            (link, hardlink, timeout),
        )
    }

    #[pyo3(signature = (fd, offset, bufs, user_data = None, *, link = false, hardlink = false, timeout = None))]
    #[expect(clippy::too_many_arguments, reason = "the Python signature")]
    fn prepare_writev(
        &self,
        fd: &Bound<'_, PyAny>,
        offset: &Bound<'_, PyAny>,
        bufs: &Bound<'_, PyAny>,
        user_data: Option<Py<PyAny>>,
        link: bool,
        hardlink: bool,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.prepare_vectored(
            fd,
            offset,
            bufs,
            user_data,
            Access::Read,
            (link, hardlink, timeout),
        )
    }

    #[pyo3(
        signature = (path, flags = None, mode = None, *, dir_fd = None, user_data = None, link = false, hardlink = false, timeout = None),
        text_signature = "(self, path, flags=0, mode=0o666, *, dir_fd=None, user_data=None, link=False, hardlink=False, timeout=None)"
    )]
    #[expect(clippy::too_many_arguments, reason = "the Python signature")]
    fn prepare_openat(
        &self,
        path: &Bound<'_, PyAny>,
        flags: Option<&Bound<'_, PyAny>>,
        mode: Option<&Bound<'_, PyAny>>,
        dir_fd: Option<&Bound<'_, PyAny>>,
        user_data: Option<Py<PyAny>>,
        link: bool,
        hardlink: bool,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = path.py();
        self.ensure_open(py)?;
        let (cpath, name) = named_path(path)?;
        let op = requests::openat(args::dir_fd(dir_fd)?, cpath, flags, mode)?;
        let extras = Extras::new(link, hardlink, timeout)?;
        self.prepare_plain(py, op, Some((name, None)), user_data, extras)
    }

    /// `uringq.aio.open`'s open: `prepare_openat(path, flags, mode, user_data=...)`
    /// settled (by `_settle_futures`) with `(fd, st_mode, st_size, st_blksize)`, the new
    /// fd's `fstat`, taken natively (a Python `os.stat_result` costs more than the system
    /// call); or the `OSError` with `filename`.
    fn _prepare_open_file(
        &self,
        path: &Bound<'_, PyAny>,
        flags: &Bound<'_, PyAny>,
        mode: &Bound<'_, PyAny>,
        user_data: Py<PyAny>,
    ) -> PyResult<()> {
        let py = path.py();
        self.ensure_open(py)?;
        let (op, pin) = self.open_file_request(path, flags, mode, user_data)?;
        self.submit(py, op, None, Extras::untimed(false, false)?, pin)
    }

    /// `_prepare_open_file` for `uringq.aio`'s driver in one call (see `_aio_read`): a
    /// future, the open prepared with it, or appended to the backlog.
    fn _aio_open_file<'py>(
        slf: &Bound<'py, Self>,
        path: &Bound<'py, PyAny>,
        flags: &Bound<'py, PyAny>,
        mode: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        NativeQueue::aio_open_file(slf, path, flags, mode)
    }

    #[pyo3(signature = (fd, *, user_data = None, link = false, hardlink = false))]
    fn prepare_close(
        &self,
        fd: &Bound<'_, PyAny>,
        user_data: Option<Py<PyAny>>,
        link: bool,
        hardlink: bool,
    ) -> PyResult<()> {
        let py = fd.py();
        self.ensure_open(py)?;
        let op = Op::Close { fd: args::fd(fd)? };
        let extras = Extras::untimed(link, hardlink)?;
        self.prepare_plain(py, op, None, user_data, extras)
    }

    #[pyo3(signature = (path, *, dir_fd = None, follow_symlinks = true, user_data = None, link = false, hardlink = false, timeout = None))]
    #[expect(clippy::too_many_arguments, reason = "the Python signature")]
    fn prepare_statx(
        &self,
        path: &Bound<'_, PyAny>,
        dir_fd: Option<&Bound<'_, PyAny>>,
        follow_symlinks: bool,
        user_data: Option<Py<PyAny>>,
        link: bool,
        hardlink: bool,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = path.py();
        self.ensure_open(py)?;
        let (op, name) = requests::statx(path, dir_fd, follow_symlinks)?;
        let extras = Extras::new(link, hardlink, timeout)?;
        self.prepare_plain(py, op, Some((name, None)), user_data, extras)
    }

    #[pyo3(signature = (seconds, *, user_data = None, link = false, hardlink = false))]
    fn prepare_timeout(
        &self,
        seconds: &Bound<'_, PyAny>,
        user_data: Option<Py<PyAny>>,
        link: bool,
        hardlink: bool,
    ) -> PyResult<()> {
        let py = seconds.py();
        self.ensure_open(py)?;
        let op = requests::timeout(seconds)?;
        let extras = Extras::untimed(link, hardlink)?;
        self.prepare_plain(py, op, None, user_data, extras)
    }

    #[pyo3(signature = (src, dst, *, src_dir_fd = None, dst_dir_fd = None, user_data = None, link = false, hardlink = false))]
    #[expect(clippy::too_many_arguments, reason = "the Python signature")]
    fn prepare_renameat(
        &self,
        src: &Bound<'_, PyAny>,
        dst: &Bound<'_, PyAny>,
        src_dir_fd: Option<&Bound<'_, PyAny>>,
        dst_dir_fd: Option<&Bound<'_, PyAny>>,
        user_data: Option<Py<PyAny>>,
        link: bool,
        hardlink: bool,
    ) -> PyResult<()> {
        let py = src.py();
        self.ensure_open(py)?;
        let (old, old_name) = named_path(src)?;
        let (new, new_name) = named_path(dst)?;
        let op = Op::RenameAt {
            old_dir: args::dir_fd(src_dir_fd)?,
            old,
            new_dir: args::dir_fd(dst_dir_fd)?,
            new,
        };
        let extras = Extras::untimed(link, hardlink)?;
        self.prepare_plain(py, op, Some((old_name, Some(new_name))), user_data, extras)
    }

    #[pyo3(signature = (path, *, dir_fd = None, rmdir = false, user_data = None, link = false, hardlink = false))]
    fn prepare_unlinkat(
        &self,
        path: &Bound<'_, PyAny>,
        dir_fd: Option<&Bound<'_, PyAny>>,
        rmdir: bool,
        user_data: Option<Py<PyAny>>,
        link: bool,
        hardlink: bool,
    ) -> PyResult<()> {
        let py = path.py();
        self.ensure_open(py)?;
        let (cpath, name) = named_path(path)?;
        let op = Op::UnlinkAt {
            dir: args::dir_fd(dir_fd)?,
            path: cpath,
            flags: if rmdir { libc::AT_REMOVEDIR } else { 0 },
        };
        let extras = Extras::untimed(link, hardlink)?;
        self.prepare_plain(py, op, Some((name, None)), user_data, extras)
    }

    #[pyo3(
        signature = (path, mode = None, *, dir_fd = None, user_data = None, link = false, hardlink = false),
        text_signature = "(self, path, mode=0o777, *, dir_fd=None, user_data=None, link=False, hardlink=False)"
    )]
    fn prepare_mkdirat(
        &self,
        path: &Bound<'_, PyAny>,
        mode: Option<&Bound<'_, PyAny>>,
        dir_fd: Option<&Bound<'_, PyAny>>,
        user_data: Option<Py<PyAny>>,
        link: bool,
        hardlink: bool,
    ) -> PyResult<()> {
        let py = path.py();
        self.ensure_open(py)?;
        let (cpath, name) = named_path(path)?;
        let op = Op::MkdirAt {
            dir: args::dir_fd(dir_fd)?,
            path: cpath,
            mode: mode.map_or(Ok(0o777), args::mode)?,
        };
        let extras = Extras::untimed(link, hardlink)?;
        self.prepare_plain(py, op, Some((name, None)), user_data, extras)
    }

    #[pyo3(signature = (target, linkpath, *, dir_fd = None, user_data = None, link = false, hardlink = false))]
    fn prepare_symlinkat(
        &self,
        target: &Bound<'_, PyAny>,
        linkpath: &Bound<'_, PyAny>,
        dir_fd: Option<&Bound<'_, PyAny>>,
        user_data: Option<Py<PyAny>>,
        link: bool,
        hardlink: bool,
    ) -> PyResult<()> {
        let py = target.py();
        self.ensure_open(py)?;
        let (ctarget, target_name) = named_path(target)?;
        let (clink, link_name) = named_path(linkpath)?;
        let op = Op::SymlinkAt {
            target: ctarget,
            dir: args::dir_fd(dir_fd)?,
            link: clink,
        };
        let extras = Extras::untimed(link, hardlink)?;
        self.prepare_plain(
            py,
            op,
            Some((target_name, Some(link_name))),
            user_data,
            extras,
        )
    }

    #[pyo3(signature = (src, dst, *, src_dir_fd = None, dst_dir_fd = None, follow_symlinks = true, user_data = None, link = false, hardlink = false))]
    #[expect(clippy::too_many_arguments, reason = "the Python signature")]
    fn prepare_linkat(
        &self,
        src: &Bound<'_, PyAny>,
        dst: &Bound<'_, PyAny>,
        src_dir_fd: Option<&Bound<'_, PyAny>>,
        dst_dir_fd: Option<&Bound<'_, PyAny>>,
        follow_symlinks: bool,
        user_data: Option<Py<PyAny>>,
        link: bool,
        hardlink: bool,
    ) -> PyResult<()> {
        let py = src.py();
        self.ensure_open(py)?;
        let (old, old_name) = named_path(src)?;
        let (new, new_name) = named_path(dst)?;
        let op = Op::LinkAt {
            old_dir: args::dir_fd(src_dir_fd)?,
            old,
            new_dir: args::dir_fd(dst_dir_fd)?,
            new,
            flags: if follow_symlinks {
                libc::AT_SYMLINK_FOLLOW
            } else {
                0
            },
        };
        let extras = Extras::untimed(link, hardlink)?;
        self.prepare_plain(py, op, Some((old_name, Some(new_name))), user_data, extras)
    }

    #[pyo3(signature = (fd, length, *, user_data = None, link = false, hardlink = false))]
    fn prepare_ftruncate(
        &self,
        fd: &Bound<'_, PyAny>,
        length: &Bound<'_, PyAny>,
        user_data: Option<Py<PyAny>>,
        link: bool,
        hardlink: bool,
    ) -> PyResult<()> {
        let py = fd.py();
        self.ensure_open(py)?;
        let op = Op::Ftruncate {
            fd: args::fd(fd)?,
            len: args::non_negative(length, "length")?,
        };
        let extras = Extras::untimed(link, hardlink)?;
        self.prepare_plain(py, op, None, user_data, extras)
    }

    /// Asks to cancel every request in flight whose `user_data == user_data`; returns how
    /// many matched. Each completes as usual (ECANCELED if the cancel won).
    fn cancel(&self, user_data: &Bound<'_, PyAny>) -> PyResult<usize> {
        let py = user_data.py();
        self.ensure_open(py)?;
        let mut candidates = Vec::new();
        self.core
            .for_each_in_flight(|tag, pin| candidates.push((tag, pin.user_data.clone_ref(py))))
            .map_err(|e| to_pyerr(py, e))?;
        // Compared outside the queue's lock: `__eq__` may run any Python code.
        let mut matched = 0;
        let mut tags = Vec::new();
        for (tag, candidate) in candidates {
            if candidate.bind(py).eq(user_data)? {
                matched += 1;
                tags.extend(tag);
            }
        }
        self.core.cancel(&tags).map_err(|e| to_pyerr(py, e))?;
        Ok(matched)
    }

    fn commit(&self, py: Python<'_>) -> PyResult<usize> {
        self.ensure_open(py)?;
        py.detach(|| self.core.commit())
            .map_err(|e| to_pyerr(py, e))
    }

    #[pyo3(
        signature = (min_events = None, max_events = None, timeout = None),
        text_signature = "(self, min_events=1, max_events=None, timeout=None)"
    )]
    fn wait<'py>(
        &self,
        py: Python<'py>,
        min_events: Option<&Bound<'py, PyAny>>,
        max_events: Option<&Bound<'py, PyAny>>,
        timeout: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        self.ensure_open(py)?;
        let min = match min_events {
            None => 1,
            Some(m) => usize::try_from(args::count(m, "min_events", 0)?).unwrap_or(usize::MAX),
        };
        let max = match max_events {
            None => usize::MAX,
            Some(m) => usize::try_from(args::count(m, "max_events", 1)?).unwrap_or(usize::MAX),
        };
        let timeout = args::deadline(timeout)?;
        let done = self
            .take(py, min, max, timeout)
            .map_err(|e| Self::wait_error(py, e))?;
        Self::completions(py, done)
    }

    /// `uringq.aio`'s read: reads up to `size` bytes at `offset` into a new `bytes`
    /// object that the kernel fills in place (no copy); `_settle_futures` hands it over.
    /// Taken by `wait()` instead, its completion carries only the count.
    #[pyo3(signature = (fd, offset, size, user_data = None))]
    fn _prepare_read_bytes(
        &self,
        fd: &Bound<'_, PyAny>,
        offset: &Bound<'_, PyAny>,
        size: &Bound<'_, PyAny>,
        user_data: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let py = fd.py();
        let (fd, offset, user_data) = self.request_head(fd, offset, user_data)?;
        let size = usize::try_from(args::non_negative(size, "size")?)
            .map_err(|_| PyValueError::new_err("size out of range"))?;
        // Only the part the kernel wrote is ever exposed (`settle_future`).
        let (bytes, ptr) = uninit_bytes(py, size)?;
        let op = Op::Read {
            ptr,
            len: size,
            offset,
        };
        let pin = Pin::new(Buffers::Bytes(bytes.unbind()), user_data);
        let extras = Extras::untimed(false, false)?;
        self.submit(py, op, Some(fd), extras, pin)
    }

    /// `uringq.aio`'s whole-file read, as one group in the kernel: OPENAT into a direct
    /// descriptor -> READ of up to `size` bytes into a new `bytes` -> a 1-byte EOF probe
    /// -> CLOSE. Settled by `_settle_futures` with the content when the probe found EOF
    /// (the whole file), `None` when it found more (the file is longer than the first
    /// read: read it again), or the `OSError` (with `filename`) of the first step that
    /// failed.
    #[pyo3(signature = (path, user_data = None, *, dir_fd = None, size = 65536))]
    fn _prepare_read_file(
        &self,
        path: &Bound<'_, PyAny>,
        user_data: Option<Py<PyAny>>,
        dir_fd: Option<&Bound<'_, PyAny>>,
        size: usize,
    ) -> PyResult<()> {
        let py = path.py();
        self.ensure_open(py)?;
        let (cpath, name) = named_path(path)?;
        let dir = args::dir_fd(dir_fd)?;
        // One byte more for the EOF probe; the part the first read wrote is copied out
        // (`settle_future`).
        let room = size
            .checked_add(1)
            .filter(|&n| n <= isize::MAX as usize)
            .ok_or_else(|| PyValueError::new_err("size out of range"))?;
        let mut buffer = self.whole_pool.take(room);
        let ptr = buffer.as_mut_ptr();
        let mut pin = Pin::new(
            Buffers::WholeFile(buffer),
            user_data.unwrap_or_else(|| py.None()),
        );
        pin.names = Some(Box::new((name, None)));
        let build = move |slot| requests::read_file_group(dir, cpath, ptr, size, slot);
        self.submit_group(py, build, (1, Some(2)), pin)
    }

    /// `uringq.aio`'s whole-file write, as one group in the kernel: OPENAT (create or
    /// truncate) into a direct descriptor -> WRITE of `data` -> [FSYNC] -> CLOSE. Settled
    /// with the bytes written (fewer than `len(data)`: write the rest yourself) or the
    /// `OSError` of the first step that failed.
    #[pyo3(signature = (path, data, user_data = None, *, mode = 0o666, fsync = false, dir_fd = None))]
    fn _prepare_write_file(
        &self,
        path: &Bound<'_, PyAny>,
        data: &Bound<'_, PyAny>,
        user_data: Option<Py<PyAny>>,
        mode: u32,
        fsync: bool,
        dir_fd: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = path.py();
        self.ensure_open(py)?;
        let (cpath, name) = named_path(path)?;
        let dir = args::dir_fd(dir_fd)?;
        let mode = mode & 0o7777;
        let buffer = RawBuffer::get(data, Access::Read)?;
        let (ptr, len) = (buffer.ptr().cast_const(), buffer.len());
        let mut pin = Pin::new(Buffers::One(buffer), user_data.unwrap_or_else(|| py.None()));
        pin.names = Some(Box::new((name, None)));
        let build =
            move |slot| requests::write_file_group(dir, cpath, mode, (ptr, len), fsync, slot);
        self.submit_group(py, build, (1, None), pin)
    }

    /// True if this queue runs `_prepare_read_file` / `_prepare_write_file` (direct
    /// descriptors: Linux 5.15+).
    #[getter]
    fn _whole_files(&self) -> bool {
        self.whole_files
    }

    /// Binds `uringq.aio`'s driver to this queue for `_aio_read`, `_aio_read_into`,
    /// `_aio_schedule` and `_aio_flush`: futures come from `new_future(**kwargs)`, the
    /// flush is scheduled with `call_soon(flush)`, requests wait in `backlog` (a deque)
    /// while it is not empty or the queue is full. Kept until the queue is collected
    /// (after `close()` requests fail on their future with `QueueClosed`).
    #[pyo3(signature = (new_future, kwargs, call_soon, flush, backlog))]
    fn _aio_bind(
        &self,
        new_future: Py<PyAny>,
        kwargs: Option<Py<PyDict>>,
        call_soon: Py<PyAny>,
        flush: Py<PyAny>,
        backlog: Py<PyAny>,
    ) {
        self.aio_bind(Some(AioHooks::new(
            new_future, kwargs, call_soon, flush, backlog,
        )));
    }

    /// `uringq.aio`'s `read(fd, size, offset)`: a future of the `bytes` read.
    fn _aio_read<'py>(
        &self,
        fd: &Bound<'py, PyAny>,
        size: &Bound<'py, PyAny>,
        offset: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.aio_read(fd, offset, size)
    }

    /// `uringq.aio`'s `read_into(fd, offset, buf)`: a future of the count read.
    fn _aio_read_into<'py>(
        &self,
        fd: &Bound<'py, PyAny>,
        offset: &Bound<'py, PyAny>,
        buf: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.aio_read_into(fd, offset, buf)
    }

    /// Schedules the bound driver's flush for this loop iteration unless it already is.
    fn _aio_schedule(&self, py: Python<'_>) -> PyResult<()> {
        self.aio_schedule(py)
    }

    /// The bound driver's flush: commit, settle, schedule the next one; the count settled.
    fn _aio_flush(&self, py: Python<'_>) -> PyResult<usize> {
        self.aio_flush(py)
    }

    /// `uringq.aio`'s reap: takes every ready completion and settles its `user_data`, an
    /// `asyncio.Future`, with no `Completion` objects in between. With `timeout` > 0 it
    /// first waits up to that long for one (the GIL released). Returns how many it took;
    /// a `wakeup()` only ends the wait. If a future refuses its result the others are
    /// still settled and the first error is raised.
    #[pyo3(signature = (timeout = 0.0))]
    fn _settle_futures(&self, py: Python<'_>, timeout: f64) -> PyResult<usize> {
        self.ensure_open(py)?;
        let timeout = args::timeout(Some(timeout))?;
        self.settle_futures(py, timeout)
    }

    fn wakeup(&self, py: Python<'_>) -> PyResult<()> {
        self.core.wakeup().map_err(|e| to_pyerr(py, e))
    }

    fn fileno(&self, py: Python<'_>) -> PyResult<i32> {
        self.core.eventfd().map_err(|e| to_pyerr(py, e))
    }

    /// Registers `buf` for the batch API, as io_uring's registered buffers: while it is
    /// registered (its export held, so it cannot be resized), `read_many`/`write_many`
    /// into any part of it skip per-request page-table work. One buffer at a time; a
    /// new registration replaces the old one.
    fn register_buffer(&self, buf: &Bound<'_, PyAny>) -> PyResult<()> {
        self.ensure_open(buf.py())?;
        let buffer = Arc::new(RawBuffer::get(buf, Access::Write)?);
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let old = self
            .registered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace((generation, buffer));
        drop(old);
        Ok(())
    }

    /// Releases the registered buffer (a no-op when there is none).
    fn deregister_buffer(&self, py: Python<'_>) -> PyResult<()> {
        self.ensure_open(py)?;
        let old = self
            .registered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        // The cached ring may still hold the pages pinned: let them go too.
        self.batch.forget();
        drop(old);
        Ok(())
    }

    #[pyo3(signature = (fd, offsets, size, out, *, depth = None))]
    fn read_many(
        &self,
        fd: &Bound<'_, PyAny>,
        offsets: &Bound<'_, PyAny>,
        size: &Bound<'_, PyAny>,
        out: &Bound<'_, PyAny>,
        depth: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.batch(fd, offsets, size, out, depth, BatchDir::Read)
    }

    #[pyo3(signature = (fd, offsets, size, data, *, depth = None))]
    fn write_many(
        &self,
        fd: &Bound<'_, PyAny>,
        offsets: &Bound<'_, PyAny>,
        size: &Bound<'_, PyAny>,
        data: &Bound<'_, PyAny>,
        depth: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.batch(fd, offsets, size, data, depth, BatchDir::Write)
    }

    #[pyo3(signature = (*, cancel = false))]
    fn close(&self, py: Python<'_>, cancel: bool) -> PyResult<()> {
        let payloads = py
            .detach(|| self.core.close(cancel))
            .map_err(|e| to_pyerr(py, e))?;
        drop(payloads);
        drop(
            self.registered
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        if !self.core.is_forked() {
            // (In a forked child its lock may have been caught held: leave it.)
            self.batch.forget();
        }
        Ok(())
    }

    /// The queue holds each request's `user_data` until its completion is returned, so
    /// a `user_data` that refers back to the queue forms a cycle the GC must see.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Ok(hooks) = self.aio.try_lock() {
            if let Some(hooks) = hooks.as_ref() {
                hooks.traverse(&visit)?;
            }
        }
        let mut result = Ok(());
        self.core.try_for_each_payload(|pin| {
            if result.is_ok() {
                result = visit.call(&pin.user_data);
            }
        });
        result
    }

    /// Breaking a cycle: cancel and drain like `close(cancel=True)` (the kernel releases
    /// every buffer first), then drop the payloads.
    fn __clear__(&self) {
        self.aio_bind(None);
        drop(self.core.close(true));
    }

    fn __repr__(&self) -> String {
        let state = if self.core.is_closed() {
            "closed"
        } else {
            "open"
        };
        format!(
            "<NativeQueue io_uring sq_entries={} cq_entries={} {state}>",
            self.core.sq_entries(),
            self.core.cq_entries()
        )
    }
}
