//! `read_many` / `write_many` on the native queue: argument checks and buffer pinning
//! around the core's batch engine ([`crate::core::Batch`]), run with the GIL released.

use std::os::fd::AsRawFd;
use std::sync::Arc;

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::args;
use super::buffer::{Access, RawBuffer};
use super::errors::to_pyerr;
use super::queue::NativeQueue;
use crate::core::{Batch, BatchDir, BatchError, Error, Registered};

/// Default depth of a `read_many`/`write_many` batch.
const DEFAULT_BATCH_DEPTH: u32 = 128;

impl NativeQueue {
    pub(super) fn batch(
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
