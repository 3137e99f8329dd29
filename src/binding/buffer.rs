//! A raw buffer export: any object with the buffer protocol, viewed as contiguous bytes
//! whatever its item format. Holding it keeps the exporter alive and its memory in place
//! (a `bytearray` cannot be resized), which is how requests pin their buffers.

use std::mem::MaybeUninit;

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// Whether the kernel will write into the buffer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// An exported `Py_buffer`, released (with the GIL) on drop.
pub struct RawBuffer(Box<ffi::Py_buffer>);

// SAFETY: the view is plain data plus an owned reference to the exporter; it is only
// released through `PyBuffer_Release` with the GIL held (see Drop).
unsafe impl Send for RawBuffer {}
unsafe impl Sync for RawBuffer {}

impl RawBuffer {
    /// Exports `obj` as C-contiguous bytes. `Access::Write` (the kernel writes, i.e. a
    /// read request) refuses read-only buffers with `TypeError`, as `readinto` does;
    /// a non-contiguous buffer fails with the exporter's `BufferError`.
    pub fn get(obj: &Bound<'_, PyAny>, access: Access) -> PyResult<RawBuffer> {
        let mut view = Box::new(MaybeUninit::<ffi::Py_buffer>::zeroed());
        // SAFETY: `view` is writable storage for one Py_buffer; PyBUF_SIMPLE asks for a
        // contiguous byte view (no format, shape or strides).
        let rc =
            unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), view.as_mut_ptr(), ffi::PyBUF_SIMPLE) };
        if rc != 0 {
            return Err(PyErr::fetch(obj.py()));
        }
        // SAFETY: GetBuffer succeeded, so the view is initialised; Box<MaybeUninit<T>>
        // and Box<T> have the same layout.
        let buffer = RawBuffer(unsafe { Box::from_raw(Box::into_raw(view).cast()) });
        if access == Access::Write && buffer.0.readonly != 0 {
            return Err(PyTypeError::new_err(format!(
                "read target must be a writable bytes-like object, not a read-only {}",
                obj.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            )));
        }
        Ok(buffer)
    }

    pub fn ptr(&self) -> *mut u8 {
        self.0.buf.cast()
    }

    pub fn len(&self) -> usize {
        self.0.len as usize
    }
}

impl Drop for RawBuffer {
    fn drop(&mut self) {
        // SAFETY: releases the export taken in `get`, exactly once, holding the GIL.
        Python::attach(|_| unsafe { ffi::PyBuffer_Release(&mut *self.0) });
    }
}

/// A new `bytes` object of `size` bytes for the kernel to fill, and where they start.
/// Only the part the kernel wrote may ever be exposed (the caller's duty).
pub fn uninit_bytes(py: Python<'_>, size: usize) -> PyResult<(Bound<'_, PyBytes>, *mut u8)> {
    let size = ffi::Py_ssize_t::try_from(size)
        .map_err(|_| pyo3::exceptions::PyValueError::new_err("size out of range"))?;
    // SAFETY: a fresh, uninitialised `bytes` of `size` bytes (never a shared object when
    // `size` > 0: CPython shares only the empty and, from data, one-byte objects).
    let bytes = unsafe {
        Bound::from_owned_ptr_or_err(py, ffi::PyBytes_FromStringAndSize(std::ptr::null(), size))?
            .cast_into_unchecked::<PyBytes>()
    };
    // SAFETY: `bytes` is a bytes object; its storage lives as long as it does.
    let ptr = unsafe { ffi::PyBytes_AsString(bytes.as_ptr()) }.cast::<u8>();
    Ok((bytes, ptr))
}
