//! Handing completions back to Python: `Completion` objects for `wait`, settled asyncio
//! futures for `uringq.aio`, and the exceptions that carry completions.

use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};

use super::completion::Completion;
use super::errors::{os_error, os_error_named, to_pyerr, with_completions};
use super::queue::{Buffers, NativeQueue, Pin};
use super::stat::stat_result;
use crate::core::{Done, Error, Extra, WaitError};

/// A completion's value for Python: the result (an fd handed over to the caller), a stat
/// result, or the error with the request's path(s) as `filename`.
struct Outcome {
    result: i64,
    stat: Option<Py<PyAny>>,
    error: Option<PyErr>,
    /// The fd an open produced, handed over once nothing else can fail.
    fd: Option<OwnedFd>,
}

/// The `OSError` of `errno` for a request, with its path(s) as `filename` if it has any.
pub(super) fn request_error(py: Python<'_>, pin: &Pin, errno: i32) -> PyErr {
    match &pin.names {
        Some(names) => os_error_named(py, errno, &names.0, names.1.as_ref()),
        None => os_error(errno),
    }
}

fn outcome(py: Python<'_>, pin: &Pin, result: i32, extra: Extra) -> PyResult<Outcome> {
    if result < 0 {
        let error = request_error(py, pin, -result);
        return Ok(Outcome {
            result: 0,
            stat: None,
            error: Some(error),
            fd: None,
        });
    }
    Ok(match extra {
        Extra::Fd(fd) => Outcome {
            result: i64::from(result),
            stat: None,
            error: None,
            fd: Some(fd),
        },
        Extra::Stat(buf) => Outcome {
            result: 0,
            stat: Some(stat_result(py, &buf)?),
            error: None,
            fd: None,
        },
        Extra::None => Outcome {
            result: i64::from(result),
            stat: None,
            error: None,
            fd: None,
        },
    })
}

impl NativeQueue {
    /// `Completion` objects for `done`. The fd of an open is handed over with its
    /// completion; if building the list fails, every fd handed over so far is closed
    /// with it (nobody can receive them), and the rest close with their `Done`.
    pub(super) fn completions(py: Python<'_>, done: Vec<Done<Pin>>) -> PyResult<Bound<'_, PyList>> {
        let list = PyList::empty(py);
        let mut handed: Vec<RawFd> = Vec::new();
        let built = done.into_iter().try_for_each(|d| {
            let out = outcome(py, &d.payload, d.result, d.extra)?;
            let completion = match out.error {
                Some(error) => {
                    Completion::failed(d.payload.user_data, error.into_value(py).into_any())
                }
                None => Completion::success(d.payload.user_data, out.result, out.stat),
            };
            handed.extend(out.fd.map(IntoRawFd::into_raw_fd));
            list.append(completion)
        });
        if let Err(e) = built {
            for fd in handed {
                // SAFETY: descriptors this call took over and never handed out.
                drop(unsafe { OwnedFd::from_raw_fd(fd) });
            }
            return Err(e);
        }
        Ok(list)
    }

    /// Takes completions as `wait` does: what is ready holding the GIL, else blocking
    /// without it (Python's signal handlers run between slices).
    pub(super) fn take(
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

    pub(super) fn wait_error(py: Python<'_>, err: WaitError<Done<Pin>, PyErr>) -> PyErr {
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

    /// `uringq.aio`'s reap (see `_settle_futures`).
    pub(super) fn settle_futures(
        &self,
        py: Python<'_>,
        timeout: Option<Duration>,
    ) -> PyResult<usize> {
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
            if let Err(e) = settle_future(self, py, item) {
                first_error.get_or_insert(e);
            }
        }
        match (first_error, closed) {
            (Some(e), _) => Err(e),
            (None, true) => Err(to_pyerr(py, Error::Closed)),
            (None, false) => Ok(count),
        }
    }
}

/// Settles the future a completion belongs to: `set_result` with the bytes read (for
/// `_prepare_read_bytes`), the new fd, the stat result or the count; `set_exception`
/// with the `OSError`. A future that is already done (cancelled) just lets the request's
/// buffers go (and an opened fd is closed: nobody can receive it).
fn settle_future(queue: &NativeQueue, py: Python<'_>, done: Done<Pin>) -> PyResult<()> {
    let Done {
        payload,
        result,
        extra,
        more,
        ..
    } = done;
    // `uringq.aio.open`'s open (see `open_file`).
    match (&payload.buffers, extra) {
        (Buffers::OpenFile, Extra::Fd(fd)) => queue.settle_open(py, payload, fd),
        (_, extra) => settle_plain(py, payload, result, extra, more),
    }
}

/// [`settle_future`] for every request but an open's.
fn settle_plain(
    py: Python<'_>,
    payload: Pin,
    result: i32,
    extra: Extra,
    more: bool,
) -> PyResult<()> {
    let future = payload.user_data.bind(py);
    let out = outcome(py, &payload, result, extra)?;
    if let Some(error) = out.error {
        let error = error.into_value(py).into_bound(py).into_any();
        return settle(future, intern!(py, "set_exception"), &error).map(drop);
    }
    let value = match (payload.buffers, out.stat) {
        (_, Some(stat)) => stat.into_bound(py),
        (Buffers::Bytes(bytes), None) => {
            let bytes = bytes.into_bound(py);
            let n = out.result as usize;
            if n == bytes.as_bytes().len() {
                bytes.into_any()
            } else {
                // Short (EOF): only the part the kernel wrote is ever seen.
                PyBytes::new(py, &bytes.as_bytes()[..n]).into_any()
            }
        }
        (Buffers::WholeFile(buffer), None) => {
            if more {
                py.None().into_bound(py) // the probe found more: read the file again
            } else {
                // The first read's part only (the buffer has a byte for the probe).
                let n = out.result as usize;
                PyBytes::new(py, &buffer.as_slice()[..n]).into_any()
            }
        }
        _ => out.result.into_pyobject(py)?.into_any(),
    };
    // Taken: the future holds the fd number now, the caller owns the descriptor. Refused
    // (cancelled): `out.fd` closes it here, nobody can receive it.
    if settle(future, intern!(py, "set_result"), &value)? {
        if let Some(fd) = out.fd {
            let _ = fd.into_raw_fd();
        }
    }
    Ok(())
}

/// `future.<method>(value)` with no bound method object (issue 11: the settle is per
/// completion); false if the future refused because it is already done (cancelled): the
/// caller then lets the request's buffers (and a new fd) go. Asking `done()` only after
/// a refusal saves a call per completion.
pub(super) fn settle(
    future: &Bound<'_, PyAny>,
    method: &Bound<'_, PyString>,
    value: &Bound<'_, PyAny>,
) -> PyResult<bool> {
    let py = future.py();
    // SAFETY: three live objects, the argument list ended by NULL as the API wants; the
    // new reference returned (or NULL with an exception set) is taken over at once.
    let called = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyObject_CallMethodObjArgs(
                future.as_ptr(),
                method.as_ptr(),
                value.as_ptr(),
                std::ptr::null_mut::<ffi::PyObject>(),
            ),
        )
    };
    match called {
        Ok(_) => Ok(true),
        Err(e) => match future.call_method0(intern!(py, "done"))?.is_truthy()? {
            true => Ok(false),
            false => Err(e),
        },
    }
}
