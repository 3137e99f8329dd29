//! Conversion of Python arguments: file descriptors, offsets, counts and timeouts. Each
//! rejects a bad value with the exception the SPEC names before anything is queued.

use std::time::Duration;

use pyo3::exceptions::{PyOverflowError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyInt;

/// An `int` (via `__index__`) or an object with `fileno()`.
pub fn fd(obj: &Bound<'_, PyAny>) -> PyResult<i32> {
    let number = if !obj.is_instance_of::<PyInt>() && obj.hasattr("fileno")? {
        obj.call_method0("fileno")?
    } else {
        obj.clone()
    };
    match number.extract::<i64>() {
        Ok(v) if (0..=i64::from(i32::MAX)).contains(&v) => Ok(v as i32),
        Ok(v) => Err(PyValueError::new_err(format!("fd must be >= 0, got {v}"))),
        Err(e) if e.is_instance_of::<PyOverflowError>(obj.py()) => {
            Err(PyValueError::new_err("fd out of range"))
        }
        Err(e) => Err(e),
    }
}

/// A non-negative integer that fits `u64` (`ValueError` otherwise, never `OverflowError`).
pub fn non_negative(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<u64> {
    match obj.extract::<i64>() {
        Ok(v) if v >= 0 => Ok(v as u64),
        Ok(v) => Err(PyValueError::new_err(format!(
            "{what} must be >= 0, got {v}"
        ))),
        Err(e) if e.is_instance_of::<PyOverflowError>(obj.py()) => {
            Err(PyValueError::new_err(format!(
                "{what} out of range: {}",
                obj.repr().map(|r| r.to_string()).unwrap_or_default()
            )))
        }
        Err(e) => Err(e),
    }
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
