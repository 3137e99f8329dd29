//! Maps core errors to the exception hierarchy defined in `uringq._errors`, and kernel
//! results to `OSError` with `errno` set.

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyList, PyTuple};

use crate::core::{strerror, Error};

static ERRORS_MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// Instantiates `uringq._errors.<name>(*args)` as a `PyErr`.
fn raise(py: Python<'_>, name: &str, args: Bound<'_, PyTuple>) -> PyErr {
    let module =
        ERRORS_MODULE.get_or_try_init(py, || py.import("uringq._errors").map(Bound::unbind));
    match module.and_then(|m| m.bind(py).getattr(name)?.call1(args)) {
        Ok(value) => PyErr::from_value(value),
        Err(e) => e,
    }
}

fn raise_msg(py: Python<'_>, name: &str, message: &str) -> PyErr {
    match PyTuple::new(py, [message]) {
        Ok(args) => raise(py, name, args),
        Err(e) => e,
    }
}

/// `OSError(errno, strerror)`; Python picks the subclass (FileNotFoundError, ...).
pub fn os_error(errno: i32) -> PyErr {
    PyOSError::new_err((errno, strerror(errno)))
}

/// `OSError(errno, strerror, filename[, None, filename2])`, as `os` raises for a path.
pub fn os_error_named(
    py: Python<'_>,
    errno: i32,
    filename: &Py<PyAny>,
    filename2: Option<&Py<PyAny>>,
) -> PyErr {
    let (filename, text) = (filename.clone_ref(py), strerror(errno));
    match filename2 {
        None => PyOSError::new_err((errno, text, filename)),
        Some(second) => {
            PyOSError::new_err((errno, text, filename, py.None(), second.clone_ref(py)))
        }
    }
}

/// Converts a core error to the exception the SPEC names for it.
pub fn to_pyerr(py: Python<'_>, err: Error) -> PyErr {
    match err {
        Error::Invalid(msg) => PyValueError::new_err(msg),
        Error::Full(msg) => raise_msg(py, "QueueFull", msg),
        Error::Empty(msg) => raise_msg(py, "QueueEmpty", msg),
        Error::Busy(msg) => raise_msg(py, "QueueBusy", &msg),
        Error::NotRegistered(_) => raise_msg(py, "HandleNotRegistered", &err.to_string()),
        Error::Closed => raise_msg(py, "QueueClosed", "the queue is closed"),
        Error::Forked => PyRuntimeError::new_err(err.to_string()),
        Error::Unsupported(_) => PyOSError::new_err((libc::EOPNOTSUPP, err.to_string())),
        Error::Os(e) => match e.raw_os_error() {
            Some(errno) => os_error(errno),
            None => PyOSError::new_err(e.to_string()),
        },
    }
}

/// `Interrupted(message, completions)` or `QueueClosed(message, completions)`.
pub fn with_completions(
    py: Python<'_>,
    name: &str,
    message: &str,
    done: Bound<'_, PyList>,
) -> PyErr {
    let args = (message, done).into_pyobject(py);
    match args {
        Ok(args) => raise(py, name, args),
        Err(e) => e,
    }
}
