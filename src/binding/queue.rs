//! `NativeQueue`: the io_uring provider's queue. Checks every argument, pins buffers for
//! as long as the kernel may touch them, releases the GIL in every blocking call and maps
//! errors; the queue logic itself lives in [`crate::core::Queue`].

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PySequence};
use pyo3::{ffi, intern};
use pyo3::{PyTraverseError, PyVisit};

use super::args;
use super::buffer::{Access, RawBuffer};
use super::completion::Completion;
use super::errors::{to_pyerr, with_completions};
use crate::core::{
    Batch, BatchCache, BatchDir, BatchError, Done, Error, Op, Queue, Registered, WaitError,
};

/// Default depth of a `read_many`/`write_many` batch.
const DEFAULT_BATCH_DEPTH: u32 = 128;

/// What a request keeps alive until its completion is returned: its buffer export(s)
/// and the caller's `user_data`. Dropped only with the GIL held.
struct Pin {
    buffers: Buffers,
    user_data: Py<PyAny>,
}

/// The exports a request holds: none (sync), one (read/write) or several (readv/writev);
/// the common single case costs no extra allocation. `Bytes` is the `bytes` object a
/// `_prepare_read_bytes` request fills: nobody else holds it before its completion.
enum Buffers {
    None,
    #[expect(dead_code, reason = "held only so that Drop releases the export")]
    One(RawBuffer),
    #[expect(dead_code, reason = "held only so that Drop releases the exports")]
    Many(Vec<RawBuffer>),
    Bytes(Py<PyBytes>),
}

/// An io_uring queue (the `io_uring` provider). Use `uringq.IoQueue`.
#[pyclass(frozen, module = "uringq._native")]
pub struct NativeQueue {
    core: Queue<Pin>,
    batch: BatchCache,
    /// The buffer of `register_buffer`, with its generation; batches inside it use it
    /// as a fixed buffer. A batch clones the `Arc`, so the export outlives its use.
    registered: Mutex<Option<(u64, Arc<RawBuffer>)>>,
    generations: AtomicU64,
}

impl NativeQueue {
    fn prepare(&self, py: Python<'_>, fd: i32, op: Op, pin: Pin) -> PyResult<()> {
        // SAFETY: `op` points only into the buffers held by `pin`, which the queue keeps
        // until the kernel is done with the request.
        unsafe { self.core.prepare(fd, op, pin) }.map_err(|(err, pin)| {
            drop(pin);
            to_pyerr(py, err)
        })
    }

    /// Fails fast (fork guard, closed queue) before any argument is converted.
    fn ensure_open(&self, py: Python<'_>) -> PyResult<()> {
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
    fn request_head(
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

    fn prepare_rw(
        &self,
        fd: &Bound<'_, PyAny>,
        offset: &Bound<'_, PyAny>,
        buf: &Bound<'_, PyAny>,
        user_data: Option<Py<PyAny>>,
        access: Access,
    ) -> PyResult<()> {
        let py = fd.py();
        let (fd, offset, user_data) = self.request_head(fd, offset, user_data)?;
        let buffer = RawBuffer::get(buf, access)?;
        let (ptr, len) = (buffer.ptr(), buffer.len());
        let op = match access {
            Access::Write => Op::Read { ptr, len, offset },
            Access::Read => Op::Write {
                ptr: ptr.cast_const(),
                len,
                offset,
            },
        };
        let pin = Pin {
            buffers: Buffers::One(buffer),
            user_data,
        };
        self.prepare(py, fd, op, pin)
    }

    fn prepare_vectored(
        &self,
        fd: &Bound<'_, PyAny>,
        offset: &Bound<'_, PyAny>,
        bufs: &Bound<'_, PyAny>,
        user_data: Option<Py<PyAny>>,
        access: Access,
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
        let pin = Pin {
            buffers: Buffers::Many(buffers),
            user_data,
        };
        self.prepare(py, fd, op, pin)
    }

    fn completions(py: Python<'_>, done: Vec<Done<Pin>>) -> PyResult<Bound<'_, PyList>> {
        let list = PyList::empty(py);
        for Done {
            payload, result, ..
        } in done
        {
            let Pin { user_data, .. } = payload;
            list.append(Completion::from_result(py, user_data, i64::from(result))?)?;
        }
        Ok(list)
    }

    /// Takes completions as `wait` does: what is ready holding the GIL, else blocking
    /// without it (Python's signal handlers run between slices).
    fn take(
        &self,
        py: Python<'_>,
        min: usize,
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<Done<Pin>>, WaitError<Done<Pin>, PyErr>> {
        match self.core.wait_ready::<PyErr>(min, max, timeout)? {
            Some(done) => Ok(done),
            None => py.detach(|| {
                self.core.block(min, max, timeout, || {
                    Python::attach(|py| py.check_signals())
                })
            }),
        }
    }

    fn wait_error(py: Python<'_>, err: WaitError<Done<Pin>, PyErr>) -> PyErr {
        let (name, message, done) = match err {
            WaitError::Signal(e) => return e,
            WaitError::Queue(e) => return to_pyerr(py, e),
            WaitError::Interrupted(done) => ("Interrupted", "wait interrupted by wakeup()", done),
            WaitError::Closed(done) => ("QueueClosed", "the queue was closed during wait()", done),
        };
        match Self::completions(py, done) {
            Ok(list) => with_completions(py, name, message, list),
            Err(e) => e,
        }
    }

    fn batch(
        &self,
        fd: &Bound<'_, PyAny>,
        offsets: &Bound<'_, PyAny>,
        size: &Bound<'_, PyAny>,
        buf: &Bound<'_, PyAny>,
        depth: Option<&Bound<'_, PyAny>>,
        dir: BatchDir,
    ) -> PyResult<Py<PyAny>> {
        let py = fd.py();
        self.ensure_open(py)?;
        let fd = args::fd(fd)?;
        let offsets = offsets_list(offsets)?;
        let size = usize::try_from(args::count(size, "size", 0)?)
            .map_err(|_| PyValueError::new_err("size out of range"))?;
        let depth = match depth {
            None => DEFAULT_BATCH_DEPTH,
            Some(d) => u32::try_from(args::count(d, "depth", 1)?).unwrap_or(u32::MAX),
        };
        let access = match dir {
            BatchDir::Read => Access::Write,
            BatchDir::Write => Access::Read,
        };
        let buffer = RawBuffer::get(buf, access)?;
        let needed = offsets.len().checked_mul(size);
        if needed.is_none_or(|n| buffer.len() < n) {
            return Err(PyValueError::new_err(format!(
                "buffer of {} bytes is too small for {} requests of {size} bytes",
                buffer.len(),
                offsets.len()
            )));
        }
        let file = self.core.lend_file(fd).map_err(|e| to_pyerr(py, e))?;
        let pinned = self.registered_covering(&buffer);
        let file_fd = file.as_raw_fd();
        let (ptr, len) = (SendPtr(buffer.ptr()), buffer.len());
        let check = || Python::attach(|py| py.check_signals());
        let results = py.detach(|| {
            // SAFETY: `buffer` pins `ptr..ptr+len` for the whole call, and `file` (our own
            // descriptor) stays open until after it.
            unsafe {
                Batch {
                    dir,
                    fd: file_fd,
                    offsets: &offsets,
                    size,
                    buf: ptr.get(),
                    buf_len: len,
                    depth,
                    registered: pinned.as_ref().map(|(reg, _)| *reg),
                }
                .run(&self.batch, check)
            }
        });
        drop(buffer);
        drop(pinned);
        let results = results.map_err(|e| match e {
            BatchError::Os(e) => to_pyerr(py, Error::Os(e)),
            BatchError::Signal(e) => e,
        })?;
        let bytes: Vec<u8> = results.iter().flat_map(|r| r.to_ne_bytes()).collect();
        let array = py.import("array")?.getattr("array")?.call1(("q",))?;
        array.call_method1("frombytes", (PyBytes::new(py, &bytes),))?;
        Ok(array.unbind())
    }
}

/// Settles the future a completion belongs to: `set_result` with the bytes read (for
/// `_prepare_read_bytes`) or the count, `set_exception` with the `OSError`; a future that
/// is already done (cancelled) just lets the request's buffers go.
fn settle_future(py: Python<'_>, done: Done<Pin>) -> PyResult<()> {
    let Done {
        payload: Pin { buffers, user_data },
        result,
        ..
    } = done;
    let future = user_data.bind(py);
    if future.call_method0(intern!(py, "done"))?.is_truthy()? {
        return Ok(());
    }
    if result < 0 {
        let error = super::errors::os_error(-result).into_value(py);
        future.call_method1(intern!(py, "set_exception"), (error,))?;
        return Ok(());
    }
    let value = match buffers {
        Buffers::Bytes(bytes) => {
            let bytes = bytes.into_bound(py);
            let n = result as usize;
            if n == bytes.as_bytes().len() {
                bytes.into_any()
            } else {
                // Short (EOF): only the part the kernel wrote is ever seen.
                PyBytes::new(py, &bytes.as_bytes()[..n]).into_any()
            }
        }
        _ => result.into_pyobject(py)?.into_any(),
    };
    future.call_method1(intern!(py, "set_result"), (value,))?;
    Ok(())
}

impl NativeQueue {
    /// The registered buffer, if `buffer` lies inside it, with a clone of its export that
    /// keeps it pinned for the batch.
    fn registered_covering(&self, buffer: &RawBuffer) -> Option<(Registered, Arc<RawBuffer>)> {
        let guard = self.registered.lock().unwrap_or_else(|e| e.into_inner());
        let (generation, reg) = guard.as_ref()?;
        let (start, end) = (reg.ptr() as usize, reg.ptr() as usize + reg.len());
        let (lo, hi) = (buffer.ptr() as usize, buffer.ptr() as usize + buffer.len());
        if buffer.len() == 0 || lo < start || hi > end {
            return None;
        }
        let registered = Registered {
            generation: *generation,
            ptr: reg.ptr(),
            len: reg.len(),
        };
        Some((registered, Arc::clone(reg)))
    }
}

/// A buffer address carried into a GIL-released section; the export stays held outside.
#[derive(Clone, Copy)]
struct SendPtr(*mut u8);
// SAFETY: only an address; the memory is pinned by a RawBuffer the caller holds.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// By-value access, so closures capture the whole (Send) wrapper.
    fn get(self) -> *mut u8 {
        self.0
    }
}

/// Offsets from a sequence or buffer of ints, each >= 0. A buffer of 64-bit ints
/// (`array('q')`, a NumPy int64 array) is copied in one go.
fn offsets_list(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u64>> {
    if let Ok(buffer) = PyBuffer::<i64>::get(obj) {
        let values = buffer.to_vec(obj.py())?;
        return values
            .into_iter()
            .map(|v| {
                u64::try_from(v)
                    .map_err(|_| PyValueError::new_err(format!("offset must be >= 0, got {v}")))
            })
            .collect();
    }
    let mut out = Vec::new();
    for item in obj.try_iter()? {
        out.push(args::non_negative(&item?, "offset")?);
    }
    Ok(out)
}

#[pymethods]
impl NativeQueue {
    #[new]
    fn new(py: Python<'_>, sq_entries: u32, cq_entries: u32) -> PyResult<Self> {
        let core = py
            .detach(|| Queue::new(sq_entries, cq_entries))
            .map_err(|e| to_pyerr(py, e))?;
        Ok(NativeQueue {
            core,
            batch: BatchCache::default(),
            registered: Mutex::new(None),
            generations: AtomicU64::new(0),
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

    fn deregister(&self, fd: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = fd.py();
        self.ensure_open(py)?;
        let fd = args::fd(fd)?;
        self.core.deregister(fd).map_err(|e| to_pyerr(py, e))
    }

    #[pyo3(signature = (fd, offset, buf, user_data = None))]
    fn prepare_read(
        &self,
        fd: &Bound<'_, PyAny>,
        offset: &Bound<'_, PyAny>,
        buf: &Bound<'_, PyAny>,
        user_data: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        self.prepare_rw(fd, offset, buf, user_data, Access::Write)
    }

    #[pyo3(signature = (fd, offset, buf, user_data = None))]
    fn prepare_write(
        &self,
        fd: &Bound<'_, PyAny>,
        offset: &Bound<'_, PyAny>,
        buf: &Bound<'_, PyAny>,
        user_data: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        self.prepare_rw(fd, offset, buf, user_data, Access::Read)
    }

    #[pyo3(signature = (fd, user_data = None, *, datasync = false))]
    fn prepare_sync(
        &self,
        fd: &Bound<'_, PyAny>,
        user_data: Option<Py<PyAny>>,
        datasync: bool,
    ) -> PyResult<()> {
        let py = fd.py();
        self.ensure_open(py)?;
        let fd = args::fd(fd)?;
        let pin = Pin {
            buffers: Buffers::None,
            user_data: user_data.unwrap_or_else(|| py.None()),
        };
        self.prepare(py, fd, Op::Fsync { datasync }, pin)
    }

    #[pyo3(signature = (fd, offset, bufs, user_data = None))]
    fn prepare_readv(
        &self,
        fd: &Bound<'_, PyAny>,
        offset: &Bound<'_, PyAny>,
        bufs: &Bound<'_, PyAny>,
        user_data: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        self.prepare_vectored(fd, offset, bufs, user_data, Access::Write)
    }

    #[pyo3(signature = (fd, offset, bufs, user_data = None))]
    fn prepare_writev(
        &self,
        fd: &Bound<'_, PyAny>,
        offset: &Bound<'_, PyAny>,
        bufs: &Bound<'_, PyAny>,
        user_data: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        self.prepare_vectored(fd, offset, bufs, user_data, Access::Read)
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
        let size = ffi::Py_ssize_t::try_from(args::non_negative(size, "size")?)
            .map_err(|_| PyValueError::new_err("size out of range"))?;
        // SAFETY: a fresh, uninitialised `bytes` of `size` bytes (never the shared empty
        // or one-byte objects when `size` > 0); only the kernel writes into it, and only
        // the part it wrote is ever exposed (`settle_future`).
        let bytes = unsafe {
            Bound::from_owned_ptr_or_err(
                py,
                ffi::PyBytes_FromStringAndSize(std::ptr::null(), size),
            )?
            .cast_into_unchecked::<PyBytes>()
        };
        // SAFETY: `bytes` is a bytes object; its storage lives as long as it does.
        let ptr = unsafe { ffi::PyBytes_AsString(bytes.as_ptr()) }.cast::<u8>();
        let op = Op::Read {
            ptr,
            len: size as usize,
            offset,
        };
        let pin = Pin {
            buffers: Buffers::Bytes(bytes.unbind()),
            user_data,
        };
        self.prepare(py, fd, op, pin)
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
        let min = usize::from(timeout.is_some_and(|t| !t.is_zero()));
        let (done, closed) = match self.take(py, min, usize::MAX, timeout) {
            Ok(done) | Err(WaitError::Interrupted(done)) => (done, false),
            Err(WaitError::Closed(done)) => (done, true),
            Err(WaitError::Queue(e)) => return Err(to_pyerr(py, e)),
            Err(WaitError::Signal(e)) => return Err(e),
        };
        let count = done.len();
        let mut first_error = None;
        for item in done {
            if let Err(e) = settle_future(py, item) {
                first_error.get_or_insert(e);
            }
        }
        match (first_error, closed) {
            (Some(e), _) => Err(e),
            (None, true) => Err(to_pyerr(py, Error::Closed)),
            (None, false) => Ok(count),
        }
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
