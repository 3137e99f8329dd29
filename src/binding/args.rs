//! Conversion of Python arguments: file descriptors, offsets, counts, timeouts, paths
//! and link flags. Each rejects a bad value with the exception the SPEC names before
//! anything is queued.

use std::ffi::CString;
use std::os::fd::RawFd;
use std::time::Duration;

use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyInt, PyString};

use crate::core::{Link, AT_FDCWD};

/// An `int`, an object with `fileno()` or one with `__index__`, in that order (as
/// `uringq._checks.fd`).
pub fn fd(obj: &Bound<'_, PyAny>) -> PyResult<i32> {
    let number = if obj.is_instance_of::<PyInt>() {
        obj.clone()
    } else if obj.hasattr("fileno")? {
        let number = obj.call_method0("fileno")?;
        if !number.is_instance_of::<PyInt>() {
            return Err(PyTypeError::new_err(format!(
                "fileno() returned {}, not int",
                type_name(&number)
            )));
        }
        number
    } else if obj.hasattr("__index__")? {
        obj.clone()
    } else {
        return Err(PyTypeError::new_err(format!(
            "fd must be an int or have a fileno() method, not {}",
            type_name(obj)
        )));
    };
    bounded(&number, "fd", 0, i64::from(i32::MAX)).map(|v| v as i32)
}

/// A non-negative integer that fits `i64` (`ValueError` otherwise, never `OverflowError`).
pub fn non_negative(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<u64> {
    bounded(obj, what, 0, i64::MAX).map(|v| v as u64)
}

/// A size or count such as `size`, `depth` or `max_events`: an integer in
/// `minimum..=i64::MAX`, and never a `bool`.
pub fn count(obj: &Bound<'_, PyAny>, what: &str, minimum: i64) -> PyResult<u64> {
    if obj.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be an integer, not bool"
        )));
    }
    bounded(obj, what, minimum, i64::MAX).map(|v| v as u64)
}

/// An integer in `minimum..=maximum`; the `ValueError` names the bound crossed, the
/// `TypeError` of a non-integer is Python's own (as `os.pread` raises it).
fn bounded(obj: &Bound<'_, PyAny>, what: &str, minimum: i64, maximum: i64) -> PyResult<i64> {
    let below = |shown: &dyn std::fmt::Display| {
        PyValueError::new_err(format!("{what} must be >= {minimum}, got {shown}"))
    };
    let above = |shown: &dyn std::fmt::Display| {
        PyValueError::new_err(format!("{what} must be <= {maximum}, got {shown}"))
    };
    match obj.extract::<i64>() {
        Ok(v) if v < minimum => Err(below(&v)),
        Ok(v) if v > maximum => Err(above(&v)),
        Ok(v) => Ok(v),
        Err(e) if e.is_instance_of::<PyOverflowError>(obj.py()) => {
            // Beyond 64 bits: show the integer itself, as Python prints it.
            let number = obj.py().import("operator")?.call_method1("index", (obj,))?;
            let shown = number.str()?;
            Err(if number.lt(0)? {
                below(&shown)
            } else {
                above(&shown)
            })
        }
        Err(e) => Err(e),
    }
}

/// `type(obj).__name__`, for messages.
pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default()
}

/// `None` means no timeout; otherwise seconds >= 0 (`inf` waits forever, as a timeout).
pub fn timeout(value: Option<f64>) -> PyResult<Option<Duration>> {
    match value {
        None => Ok(None),
        Some(t) if t.is_nan() || t < 0.0 => Err(PyValueError::new_err(format!(
            "timeout must be None or >= 0, got {t}"
        ))),
        Some(t) => Ok(Some(
            Duration::try_from_secs_f64(t).unwrap_or(Duration::MAX),
        )),
    }
}

/// A path as `os.open` takes it (`str`, `bytes` or `os.PathLike`), encoded as
/// `os.fsencode` does (an embedded NUL is a `ValueError`), and `os.fspath(obj)`: the
/// name `os` puts in an error's `filename`.
pub fn path<'py>(obj: &Bound<'py, PyAny>) -> PyResult<(CString, Bound<'py, PyAny>)> {
    let py = obj.py();
    // SAFETY: PyOS_FSPath returns a new reference (str or bytes) or NULL with an error set.
    let fspath = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyOS_FSPath(obj.as_ptr()))? };
    let bytes = match fspath.cast::<PyString>() {
        // SAFETY: encodes a str object; returns a new bytes reference or NULL with an error.
        Ok(text) => unsafe {
            Bound::from_owned_ptr_or_err(py, ffi::PyUnicode_EncodeFSDefault(text.as_ptr()))?
                .cast_into_unchecked::<PyBytes>()
        },
        Err(_) => fspath.clone().cast_into::<PyBytes>()?,
    };
    let path =
        CString::new(bytes.as_bytes()).map_err(|_| PyValueError::new_err("embedded null byte"))?;
    Ok((path, fspath))
}

/// `dir_fd`: `None` is the current directory; otherwise an int (the kernel decides
/// whether it is a directory, as `os.open` leaves it to the kernel).
pub fn dir_fd(obj: Option<&Bound<'_, PyAny>>) -> PyResult<RawFd> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(AT_FDCWD);
    };
    if !obj.is_instance_of::<PyInt>() && !obj.hasattr("__index__")? {
        return Err(PyTypeError::new_err(format!(
            "dir_fd must be an int or None, not {}",
            type_name(obj)
        )));
    }
    match obj.extract::<i64>() {
        Ok(v) => RawFd::try_from(v)
            .map_err(|_| PyValueError::new_err(format!("dir_fd out of range: {v}"))),
        Err(e) if e.is_instance_of::<PyOverflowError>(obj.py()) => {
            Err(PyValueError::new_err("dir_fd out of range"))
        }
        Err(e) => Err(e),
    }
}

/// A C `int` argument such as `flags` (`ValueError` out of range, never `OverflowError`).
pub fn c_int(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<i32> {
    match obj.extract::<i64>() {
        Ok(v) => {
            i32::try_from(v).map_err(|_| PyValueError::new_err(format!("{what} out of range: {v}")))
        }
        Err(e) if e.is_instance_of::<PyOverflowError>(obj.py()) => {
            Err(PyValueError::new_err(format!("{what} out of range")))
        }
        Err(e) => Err(e),
    }
}

/// A file mode: a C `int` whose permission bits (`0o7777`) are used, as the kernel does.
pub fn mode(obj: &Bound<'_, PyAny>) -> PyResult<u32> {
    Ok((c_int(obj, "mode")? as u32) & 0o7777)
}

/// The link flags of a request: `link` and `hardlink` are exclusive bools.
pub fn link(link: bool, hardlink: bool) -> PyResult<Link> {
    match (link, hardlink) {
        (false, false) => Ok(Link::None),
        (true, false) => Ok(Link::Soft),
        (false, true) => Ok(Link::Hard),
        (true, true) => Err(PyValueError::new_err(
            "link and hardlink are exclusive: pass one of them",
        )),
    }
}

/// A request's deadline: `None` or seconds >= 0.
pub fn deadline(value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Duration>> {
    match value.filter(|v| !v.is_none()) {
        None => Ok(None),
        Some(v) => seconds(v, "timeout").map(Some),
    }
}

/// A number of seconds >= 0 (`TypeError` for a non-number or a bool, `ValueError` for a
/// negative number or NaN); far-future values saturate.
pub fn seconds(value: &Bound<'_, PyAny>, what: &str) -> PyResult<Duration> {
    if value.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be a number of seconds, not bool"
        )));
    }
    let secs: f64 = value.extract().map_err(|_| {
        PyTypeError::new_err(format!(
            "{what} must be a number of seconds, not {}",
            type_name(value)
        ))
    })?;
    if secs.is_nan() || secs < 0.0 {
        return Err(PyValueError::new_err(format!(
            "{what} must be >= 0, got {}",
            value.repr()?
        )));
    }
    Ok(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
}
