//! `read_files` / `write_files` for the io_uring provider: paths converted as
//! `os.fsencode` does, write buffers pinned, the core engine run with the GIL released,
//! results turned into `bytes` of their exact size (one GIL acquisition per batch of
//! finished files) and each errno into the `OSError` subclass with `filename` set.

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyList, PyString};

use super::buffer::{uninit_bytes, Access, RawBuffer};
use super::errors::to_pyerr;
use crate::core::{
    self, strerror, BatchError, Check, CheckFn, Data, Error, Finished, Mode, Paths, ReadSink,
    Tuning,
};

/// `"direct"`, `"plain"` or `None`: how whole-file chains open files on this kernel.
#[pyfunction]
pub fn whole_files_mode() -> Option<&'static str> {
    match core::whole_files_mode()? {
        Mode::Direct => Some("direct"),
        Mode::Plain => Some("plain"),
    }
}

/// Reads each path whole; see `uringq.read_files`. The `_`-arguments size the run
/// (tests only).
#[pyfunction]
#[pyo3(signature = (paths, *, dir_fd = None, return_exceptions = false, _window = None, _buffer = None, _plain = false))]
pub fn read_files(
    paths: &Bound<'_, PyList>,
    dir_fd: Option<i32>,
    return_exceptions: bool,
    _window: Option<u32>,
    _buffer: Option<usize>,
    _plain: bool,
) -> PyResult<Py<PyList>> {
    let py = paths.py();
    let converted = convert_paths(paths)?;
    let tuning = tuning(_window, _buffer, _plain)?;
    let mut sink = BytesSink {
        results: (0..converted.len()).map(|_| None).collect(),
        errors: Vec::new(),
    };
    let dir_fd = dir_fd.unwrap_or(libc::AT_FDCWD);
    let run = py.detach(|| core::read_files(dir_fd, &converted, tuning, &mut sink));
    run.map_err(|e| batch_error(py, e))?;
    let BytesSink { results, errors } = sink;
    let values = results
        .into_iter()
        .map(|r| r.map_or_else(|| py.None(), Py::into_any));
    result_list(paths, values, errors, return_exceptions)
}

/// Writes each `data[i]` to `paths[i]` whole; see `uringq.write_files`.
#[pyfunction]
#[pyo3(signature = (paths, data, *, mode = 0o666, fsync = false, dir_fd = None, return_exceptions = false, _window = None, _plain = false))]
#[allow(clippy::too_many_arguments)]
pub fn write_files(
    paths: &Bound<'_, PyList>,
    data: &Bound<'_, PyList>,
    mode: u32,
    fsync: bool,
    dir_fd: Option<i32>,
    return_exceptions: bool,
    _window: Option<u32>,
    _plain: bool,
) -> PyResult<Py<PyList>> {
    let py = paths.py();
    if data.len() != paths.len() {
        return Err(PyValueError::new_err("paths and data differ in length"));
    }
    let converted = convert_paths(paths)?;
    let pinned = data
        .iter()
        .map(|item| RawBuffer::get(&item, Access::Read))
        .collect::<PyResult<Vec<_>>>()?;
    let spans: Vec<Data> = pinned
        .iter()
        .map(|b| Data {
            ptr: b.ptr(),
            len: b.len(),
        })
        .collect();
    let tuning = tuning(_window, None, _plain)?;
    let dir_fd = dir_fd.unwrap_or(libc::AT_FDCWD);
    let mut check = CheckFn(|| Python::attach(|py| py.check_signals()));
    // SAFETY: `pinned` holds every buffer's export, so each span stays valid and
    // unresizable until after the call.
    let run = py.detach(|| unsafe {
        core::write_files(dir_fd, &converted, &spans, mode, fsync, tuning, &mut check)
    });
    drop(pinned);
    let results = run.map_err(|e| batch_error(py, e))?;
    let mut errors = Vec::new();
    let mut values = Vec::with_capacity(results.len());
    for (i, &r) in results.iter().enumerate() {
        if r < 0 {
            errors.push((i, (-r) as i32));
            values.push(py.None());
        } else {
            values.push(r.into_pyobject(py)?.into_any().unbind());
        }
    }
    result_list(paths, values.into_iter(), errors, return_exceptions)
}

fn tuning(window: Option<u32>, buffer: Option<usize>, plain: bool) -> PyResult<Tuning> {
    let mut tuning = Tuning {
        plain,
        ..Tuning::default()
    };
    if let Some(w) = window {
        tuning.window = w.max(1);
    }
    if let Some(b) = buffer {
        if b == 0 || b > u32::MAX as usize {
            return Err(PyValueError::new_err("_buffer out of range"));
        }
        tuning.buffer = b;
    }
    Ok(tuning)
}

fn batch_error(py: Python<'_>, e: BatchError<PyErr>) -> PyErr {
    match e {
        BatchError::Os(e) => to_pyerr(py, Error::Os(e)),
        BatchError::Signal(e) => e,
    }
}

/// The result list, each failed file's slot holding its exception; or, without
/// `return_exceptions`, the exception of the first failed file in input order.
fn result_list(
    paths: &Bound<'_, PyList>,
    values: impl ExactSizeIterator<Item = Py<PyAny>>,
    mut errors: Vec<(usize, i32)>,
    return_exceptions: bool,
) -> PyResult<Py<PyList>> {
    let py = paths.py();
    errors.sort_unstable();
    if !return_exceptions {
        if let Some(&(i, errno)) = errors.first() {
            return Err(file_error(errno, paths.get_item(i)?));
        }
    }
    let list = PyList::new(py, values)?;
    for (i, errno) in errors {
        let error = file_error(errno, paths.get_item(i)?).into_value(py);
        list.set_item(i, error)?;
    }
    Ok(list.unbind())
}

/// `OSError(errno, strerror, filename)`: Python picks the subclass, as `open` does.
fn file_error(errno: i32, filename: Bound<'_, PyAny>) -> PyErr {
    PyOSError::new_err((errno, strerror(errno), filename.unbind()))
}

/// Every path as `os.fsencode` gives it (`str` encoded with the file system encoding and
/// `surrogateescape`, `bytes` as is, `os.PathLike` through `__fspath__`); `TypeError`
/// for anything else and `ValueError` for an embedded NUL, before anything runs.
fn convert_paths(paths: &Bound<'_, PyList>) -> PyResult<Paths> {
    let mut out = Paths::with_capacity(paths.len());
    for item in paths.iter() {
        push_path(&mut out, &item)?;
    }
    Ok(out)
}

fn push_path(out: &mut Paths, item: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = item.py();
    let pushed = if let Ok(s) = item.cast::<PyString>() {
        // UTF-8 file system encoding (the norm): the str's own UTF-8 form, no copy; a
        // str with surrogates (undecodable bytes) takes the encoder's way.
        match s.to_str() {
            Ok(text) if utf8_file_system(py)? => out.push(text.as_bytes()),
            _ => {
                // SAFETY: `s` is a str; the result is a new reference or NULL with an error.
                let encoded = unsafe {
                    Bound::from_owned_ptr_or_err(py, ffi::PyUnicode_EncodeFSDefault(s.as_ptr()))?
                };
                out.push(encoded.cast::<PyBytes>()?.as_bytes())
            }
        }
    } else if let Ok(b) = item.cast::<PyBytes>() {
        out.push(b.as_bytes())
    } else {
        // SAFETY: PyOS_FSPath returns a new reference to a str or bytes, or NULL with
        // TypeError ("expected str, bytes or os.PathLike object, not ...").
        let path = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyOS_FSPath(item.as_ptr()))? };
        return push_path(out, &path);
    };
    pushed.map_err(|_| PyValueError::new_err("embedded null byte"))
}

/// True when `os.fsencode` is UTF-8 with surrogateescape (checked once).
fn utf8_file_system(py: Python<'_>) -> PyResult<bool> {
    static UTF8: PyOnceLock<bool> = PyOnceLock::new();
    UTF8.get_or_try_init(py, || {
        let sys = py.import("sys")?;
        let encoding: String = sys.getattr("getfilesystemencoding")?.call0()?.extract()?;
        let errors: String = sys
            .getattr("getfilesystemencodeerrors")?
            .call0()?
            .extract()?;
        Ok(encoding.eq_ignore_ascii_case("utf-8") && errors == "surrogateescape")
    })
    .copied()
}

/// Results of `read_files` as they arrive: `bytes` per file, errno per failed file.
struct BytesSink {
    results: Vec<Option<Py<PyBytes>>>,
    errors: Vec<(usize, i32)>,
}

impl Check for BytesSink {
    type Error = PyErr;
    fn check(&mut self) -> PyResult<()> {
        Python::attach(|py| py.check_signals())
    }
}

impl ReadSink for BytesSink {
    type Big = BigBytes;

    fn deliver(&mut self, files: &[Finished<'_>]) -> PyResult<()> {
        Python::attach(|py| {
            for file in files {
                match file.result {
                    Ok(data) => self.results[file.index] = Some(bytes_of(py, data)?),
                    Err(errno) => self.errors.push((file.index, errno)),
                }
            }
            Ok(())
        })
    }

    fn alloc(&mut self, len: usize) -> PyResult<BigBytes> {
        Python::attach(|py| {
            // Private to us until `finish` exposes exactly the part read() wrote.
            let (bytes, ptr) = uninit_bytes(py, len)?;
            Ok(BigBytes {
                bytes: Some(bytes.unbind()),
                ptr,
                len,
            })
        })
    }

    fn as_mut_ptr(big: &mut BigBytes) -> *mut u8 {
        big.ptr
    }

    fn finish(
        &mut self,
        index: usize,
        big: Option<BigBytes>,
        filled: usize,
        tail: &[u8],
    ) -> PyResult<()> {
        Python::attach(|py| {
            let value = match big {
                Some(mut b) if filled == b.len && tail.is_empty() => {
                    b.bytes.take().expect("taken once")
                }
                Some(b) => {
                    // SAFETY: the first `filled` bytes were written by read().
                    let head = unsafe { std::slice::from_raw_parts(b.ptr, filled) };
                    PyBytes::new_with(py, filled + tail.len(), |buf| {
                        buf[..filled].copy_from_slice(head);
                        buf[filled..].copy_from_slice(tail);
                        Ok(())
                    })?
                    .unbind()
                }
                None => bytes_of(py, tail)?,
            };
            self.results[index] = Some(value);
            Ok(())
        })
    }
}

/// `bytes(data)`, or MemoryError (where `PyBytes::new` would panic).
fn bytes_of(py: Python<'_>, data: &[u8]) -> PyResult<Py<PyBytes>> {
    // SAFETY: copies `data.len()` bytes from a live slice into a new object.
    let bytes = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyBytes_FromStringAndSize(data.as_ptr().cast(), data.len() as ffi::Py_ssize_t),
        )?
    };
    // SAFETY: PyBytes_FromStringAndSize returns a bytes object.
    Ok(unsafe { bytes.cast_into_unchecked::<PyBytes>() }.unbind())
}

/// A `bytes` object a follow-up read fills with the GIL released; released with the GIL.
struct BigBytes {
    bytes: Option<Py<PyBytes>>,
    ptr: *mut u8,
    len: usize,
}

impl Drop for BigBytes {
    fn drop(&mut self) {
        if let Some(bytes) = self.bytes.take() {
            Python::attach(|_| drop(bytes));
        }
    }
}
