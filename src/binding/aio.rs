//! `uringq.aio`'s request path in one native call per request (issue 11): make the
//! future, prepare the read with it as `user_data`, schedule the loop iteration's single
//! flush; and the flush itself (commit, settle, schedule the next one). The driver in
//! Python keeps everything else (the backlog's refill, deferred deregistrations, close).

use std::sync::atomic::Ordering;
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::args;
use super::buffer::{uninit_bytes, Access, RawBuffer};
use super::errors::to_pyerr;
use super::queue::{Buffers, NativeQueue, Pin};
use crate::core::{Error, Op, Request};

/// The driver's backlog kinds (`uringq/aio/_driver.py`) of the requests made here.
const KIND_READ: u8 = 0;
const KIND_READ_BYTES: u8 = 5;
/// `(KIND_CALL, 0, 0, (method, args, kwargs), future)`: `method(*args, user_data=future,
/// **kwargs)` when the backlog gets room.
const KIND_CALL: u8 = 7;

/// What one loop's driver lends its queue (`_aio_bind`).
pub struct AioHooks {
    /// Makes a future: `asyncio.Future` with `loop=` in `kwargs` where the loop's
    /// `create_future` is asyncio's or uvloop's own, else that `create_future`.
    new_future: Py<PyAny>,
    kwargs: Option<Py<PyDict>>,
    call_soon: Py<PyAny>,
    /// The driver's flush (commits and settles once per loop iteration).
    flush: Py<PyAny>,
    /// The driver's FIFO of requests waiting for room (a `collections.deque`).
    backlog: Py<PyAny>,
}

impl AioHooks {
    pub fn new(
        new_future: Py<PyAny>,
        kwargs: Option<Py<PyDict>>,
        call_soon: Py<PyAny>,
        flush: Py<PyAny>,
        backlog: Py<PyAny>,
    ) -> Self {
        AioHooks {
            new_future,
            kwargs,
            call_soon,
            flush,
            backlog,
        }
    }

    pub fn traverse(&self, visit: &pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        visit.call(&self.new_future)?;
        if let Some(kwargs) = &self.kwargs {
            visit.call(kwargs)?;
        }
        visit.call(&self.call_soon)?;
        visit.call(&self.flush)?;
        visit.call(&self.backlog)
    }

    fn maker(&self, py: Python<'_>) -> FutureMaker {
        (
            self.new_future.clone_ref(py),
            self.kwargs.as_ref().map(|k| k.clone_ref(py)),
        )
    }
}

/// How to make a future: the callable and its keyword arguments.
type FutureMaker = (Py<PyAny>, Option<Py<PyDict>>);

fn future(py: Python<'_>, (make, kwargs): FutureMaker) -> PyResult<Bound<'_, PyAny>> {
    let make = make.bind(py);
    match kwargs {
        Some(kwargs) => make.call((), Some(kwargs.bind(py))),
        None => make.call0(),
    }
}

/// One request of the fast path, with its arguments as given: the backlog keeps them so
/// (they are checked when it is prepared, as on the Python path).
struct Args<'a, 'py> {
    kind: u8,
    fd: &'a Bound<'py, PyAny>,
    offset: &'a Bound<'py, PyAny>,
    arg: &'a Bound<'py, PyAny>,
}

/// An argument error (one voice: from the `await`), set on the future it returns.
fn settle_error<'py>(fut: &Bound<'py, PyAny>, e: PyErr) -> PyResult<Bound<'py, PyAny>> {
    let py = fut.py();
    fut.call_method1(intern!(py, "set_exception"), (e.into_value(py),))?;
    Ok(fut.clone())
}

/// A checked request: what the kernel does, on which registered fd, what it pins.
type Checked = (Op, i32, Pin);

impl NativeQueue {
    pub(super) fn aio_bind(&self, hooks: Option<AioHooks>) {
        let old = std::mem::replace(
            &mut *self.aio.lock().unwrap_or_else(|e| e.into_inner()),
            hooks,
        );
        drop(old); // after the lock: letting them go may run Python code
    }

    /// `Driver.read` on this queue: a future resolving to the `bytes` the kernel wrote
    /// (a new `bytes` object it fills in place; `b""` at EOF).
    pub(super) fn aio_read<'py>(
        &self,
        fd: &Bound<'py, PyAny>,
        offset: &Bound<'py, PyAny>,
        size: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let request = Args {
            kind: KIND_READ_BYTES,
            fd,
            offset,
            arg: size,
        };
        self.aio_request(request, |q, fut| {
            let py = fd.py();
            let (fd, offset, user_data) = q.request_head(fd, offset, Some(fut))?;
            let len = usize::try_from(args::non_negative(size, "size")?)
                .map_err(|_| PyValueError::new_err("size out of range"))?;
            // Only the part the kernel wrote is ever exposed (`settle_future`).
            let (bytes, ptr) = uninit_bytes(py, len)?;
            let op = Op::Read { ptr, len, offset };
            Ok((op, fd, Pin::new(Buffers::Bytes(bytes.unbind()), user_data)))
        })
    }

    /// `Driver.read_into` on this queue: a future resolving to the bytes read into `buf`
    /// (its export held until the completion is taken, also if the future is cancelled).
    pub(super) fn aio_read_into<'py>(
        &self,
        fd: &Bound<'py, PyAny>,
        offset: &Bound<'py, PyAny>,
        buf: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let request = Args {
            kind: KIND_READ,
            fd,
            offset,
            arg: buf,
        };
        self.aio_request(request, |q, fut| {
            let (fd, offset, user_data) = q.request_head(fd, offset, Some(fut))?;
            let buffer = RawBuffer::get(buf, Access::Write)?;
            let (ptr, len) = (buffer.ptr(), buffer.len());
            let op = Op::Read { ptr, len, offset };
            Ok((op, fd, Pin::new(Buffers::One(buffer), user_data)))
        })
    }

    /// The request path of the driver's hot methods, as `Driver._submit` in Python: a new
    /// future; the request prepared now, or appended to the backlog when that is not
    /// empty (order) or the queue is full; an argument error set on the future (one
    /// voice: from the `await`); the flush of this loop iteration scheduled.
    fn aio_request<'py>(
        &self,
        request: Args<'_, 'py>,
        check: impl FnOnce(&Self, Py<PyAny>) -> PyResult<Checked>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = request.fd.py();
        let (maker, backlog) = self.hooks(py)?;
        let fut = future(py, maker)?;
        let queued = if backlog.len()? > 0 {
            false
        } else {
            match check(self, fut.clone().unbind()) {
                Err(e) => return settle_error(&fut, e),
                Ok((op, fd, pin)) => match self.aio_prepare(op, fd, pin) {
                    Ok(()) => true,
                    Err(Error::Full(_)) => false,
                    Err(e) => return settle_error(&fut, to_pyerr(py, e)),
                },
            }
        };
        if !queued {
            let entry = PyTuple::new(
                py,
                [
                    request.kind.into_pyobject(py)?.into_any(),
                    request.fd.clone(),
                    request.offset.clone(),
                    request.arg.clone(),
                    fut.clone(),
                ],
            )?;
            backlog.call_method1(intern!(py, "append"), (entry,))?;
        }
        self.aio_schedule(py)?;
        Ok(fut)
    }

    /// `_aio_open_file`: `Driver.call(queue._prepare_open_file, ...)` natively.
    pub(super) fn aio_open_file<'py>(
        slf: &Bound<'py, Self>,
        path: &Bound<'py, PyAny>,
        flags: &Bound<'py, PyAny>,
        mode: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let this = slf.get();
        let (maker, backlog) = this.hooks(py)?;
        let fut = future(py, maker)?;
        let queued = backlog.len()? == 0 && {
            let request = this
                .ensure_open(py)
                .and_then(|()| this.open_file_request(path, flags, mode, fut.clone().unbind()));
            // SAFETY: an OPENAT points only into its own path (a CString the op owns).
            let prepared = request.map(|(op, pin)| {
                unsafe { this.core.prepare(Request::new(op, None), pin) }.map_err(|(e, pin)| {
                    drop(pin);
                    e
                })
            });
            match prepared {
                Ok(Ok(())) => true,
                Ok(Err(Error::Full(_))) => false,
                Ok(Err(e)) => return settle_error(&fut, to_pyerr(py, e)),
                Err(e) => return settle_error(&fut, e),
            }
        };
        if !queued {
            let call = (
                slf.getattr(intern!(py, "_prepare_open_file"))?,
                (path, flags, mode),
                PyDict::new(py),
            );
            let entry = (KIND_CALL, 0, 0, call, fut.clone());
            backlog.call_method1(intern!(py, "append"), (entry,))?;
        }
        this.aio_schedule(py)?;
        Ok(fut)
    }

    /// The bound driver's future maker and backlog.
    fn hooks<'py>(&self, py: Python<'py>) -> PyResult<(FutureMaker, Bound<'py, PyAny>)> {
        // Only clones under the lock: making the future runs Python code, which may come
        // back to this queue.
        let hooks = self.aio.lock().unwrap_or_else(|e| e.into_inner());
        let hooks = hooks.as_ref().ok_or_else(|| {
            PyRuntimeError::new_err("no uringq.aio driver is bound to this queue (_aio_bind)")
        })?;
        Ok((hooks.maker(py), hooks.backlog.clone_ref(py).into_bound(py)))
    }

    fn aio_prepare(&self, op: Op, fd: i32, pin: Pin) -> Result<(), Error> {
        let request = Request::new(op, Some(fd));
        // SAFETY: the op points only into memory `pin` holds (the buffer export or the
        // new bytes), and the queue keeps it until the kernel is done with the request.
        unsafe { self.core.prepare(request, pin) }.map_err(|(err, pin)| {
            drop(pin);
            err
        })
    }

    /// Schedules the driver's flush for this loop iteration unless it already is.
    pub(super) fn aio_schedule(&self, py: Python<'_>) -> PyResult<()> {
        if self.aio_scheduled.swap(true, Ordering::Relaxed) {
            return Ok(());
        }
        let (call_soon, flush) = {
            let hooks = self.aio.lock().unwrap_or_else(|e| e.into_inner());
            match hooks.as_ref() {
                Some(h) => (h.call_soon.clone_ref(py), h.flush.clone_ref(py)),
                None => return Ok(()),
            }
        };
        if let Err(e) = call_soon.call1(py, (flush,)) {
            self.aio_scheduled.store(false, Ordering::Relaxed);
            return Err(e);
        }
        Ok(())
    }

    /// The driver's flush, once per loop iteration: commit what was prepared, settle what
    /// completed (cached reads complete during the commit). When it committed and settled
    /// something it schedules itself again: that `call_soon` lands behind the wake-ups of
    /// the tasks it just resumed, so their next requests are committed in the same
    /// iteration (one selector call per round instead of two). Returns the count settled.
    pub(super) fn aio_flush(&self, py: Python<'_>) -> PyResult<usize> {
        self.aio_scheduled.store(false, Ordering::Relaxed);
        self.ensure_open(py)?;
        let committed = match py.detach(|| self.core.commit()) {
            Ok(_) => true,
            Err(Error::Empty(_)) => false,
            Err(e) => return Err(to_pyerr(py, e)),
        };
        let count = self.settle_futures(py, Some(Duration::ZERO))?;
        if committed && count > 0 {
            self.aio_schedule(py)?;
        }
        Ok(count)
    }
}
