//! `read_files` / `write_files` for the io_uring provider: paths converted as
//! `os.fsencode` does, write buffers pinned, the core engine run with the GIL released,
//! results turned into `bytes` of their exact size (one GIL acquisition per batch of
//! finished files) and each errno into the `OSError` subclass with `filename` set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
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

/// How many rings (threads) `read_files` spreads `files` files over here.
#[pyfunction]
pub fn read_files_rings(files: usize) -> usize {
    threads_for(files, Tuning::default(), None)
}

/// Reads each path whole; see `uringq.read_files`. The `_`-arguments size the run
/// (tests only; `_threads` forces the number of rings).
#[pyfunction]
#[pyo3(signature = (paths, *, dir_fd = None, return_exceptions = false, _window = None, _buffer = None, _plain = false, _threads = None))]
#[allow(clippy::too_many_arguments)]
pub fn read_files(
    paths: &Bound<'_, PyList>,
    dir_fd: Option<i32>,
    return_exceptions: bool,
    _window: Option<u32>,
    _buffer: Option<usize>,
    _plain: bool,
    _threads: Option<usize>,
) -> PyResult<Py<PyList>> {
    let py = paths.py();
    let converted = convert_paths(paths)?;
    let tuning = tuning(_window, _buffer, _plain)?;
    let parts = converted.split(threads_for(converted.len(), tuning, _threads));
    drop(converted);
    let dir_fd = dir_fd.unwrap_or(libc::AT_FDCWD);
    let stop = AtomicBool::new(false);
    let runs = py.detach(|| read_parts(dir_fd, &parts, tuning, &stop));
    let mut values = Vec::with_capacity(paths.len());
    let mut errors = Vec::new();
    let mut failure = None;
    for ((base, _), (run, sink)) in parts.iter().zip(runs) {
        match run {
            // A part stopped because another failed: that one's error is what counts.
            Err(_) if sink.stopped => {}
            Err(e) => failure = failure.or(Some(e)),
            Ok(()) => {}
        }
        errors.extend(sink.errors.iter().map(|&(i, errno)| (base + i, errno)));
        values.extend(
            sink.results
                .into_iter()
                .map(|r| r.map_or_else(|| py.None(), Py::into_any)),
        );
    }
    if let Some(e) = failure {
        return Err(batch_error(py, e));
    }
    result_list(paths, values.into_iter(), errors, return_exceptions)
}

/// Files per ring below which a run stays on one ring (a thread and its ring cost
/// about what 20 files do).
const FILES_PER_THREAD: usize = 512;
/// Rings (threads) a run uses at most: past that the GIL-held part of each file (its
/// `bytes` copy and page faults, about a third of its time) is the limit.
const MAX_THREADS: usize = 4;

/// How many rings read `files` files: one per CPU this process may run on, each with
/// at least `FILES_PER_THREAD` files, and only with direct descriptors (a plain run
/// holds a real fd per file in flight, within `RLIMIT_NOFILE`).
fn threads_for(files: usize, tuning: Tuning, forced: Option<usize>) -> usize {
    if let Some(n) = forced {
        return n.clamp(1, MAX_THREADS);
    }
    if tuning.plain || core::whole_files_mode() != Some(Mode::Direct) {
        return 1;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    cpus.min(MAX_THREADS).min(files / FILES_PER_THREAD).max(1)
}

/// One part's outcome and what it read.
type PartRun<'s> = (Result<(), BatchError<PyErr>>, BytesSink<'s>);

/// Reads `parts[0]` on this thread and every other part on a thread of its own, each
/// on its thread's private ring; a part that fails stops the others (`stop`). Waits
/// for every thread, checking for signals about every 100 ms. A part whose thread
/// cannot start runs here afterwards. Returns the parts' outcomes in order.
fn read_parts<'s>(
    dir_fd: i32,
    parts: &[(usize, Paths)],
    tuning: Tuning,
    stop: &'s AtomicBool,
) -> Vec<PartRun<'s>> {
    let run_part = |k: usize, on_main: bool| -> PartRun<'s> {
        let paths = &parts[k].1;
        let mut sink = BytesSink::new(paths.len(), stop, on_main);
        let run = if stop.load(Ordering::Relaxed) {
            Ok(()) // another part failed before this one started: its error is raised
        } else {
            core::read_files(dir_fd, paths, tuning, &mut sink)
        };
        if run.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        (run, sink)
    };
    if parts.len() == 1 {
        return vec![run_part(0, true)];
    }
    let main = std::thread::current();
    std::thread::scope(|scope| {
        let run_part = &run_part;
        let threads: Vec<_> = (1..parts.len())
            .map(|k| {
                let main = main.clone();
                std::thread::Builder::new()
                    .name("uringq-read-files".into())
                    .spawn_scoped(scope, move || {
                        let out = Python::attach(|py| py.detach(|| run_part(k, false)));
                        main.unpark();
                        out
                    })
                    .ok()
            })
            .collect();
        let first = run_part(0, true);
        let mut interrupted = None;
        let mut checked = Instant::now();
        while !threads.iter().flatten().all(|t| t.is_finished()) {
            std::thread::park_timeout(CHECK_EVERY);
            if interrupted.is_none() && checked.elapsed() >= CHECK_EVERY {
                checked = Instant::now();
                if let Err(e) = Python::attach(|py| py.check_signals()) {
                    stop.store(true, Ordering::Relaxed);
                    interrupted = Some(e);
                }
            }
        }
        let mut runs = vec![first];
        for (k, thread) in threads.into_iter().enumerate() {
            runs.push(match thread {
                Some(t) => t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                None => run_part(k + 1, true),
            });
        }
        if let Some(e) = interrupted {
            // Raised ahead of any file's error, as a one-ring run would.
            runs[0].0 = Err(BatchError::Signal(e));
            runs[0].1.stopped = false;
        }
        runs
    })
}

/// How often a run waiting for its other threads checks for signals.
const CHECK_EVERY: Duration = Duration::from_millis(100);

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
struct BytesSink<'s> {
    results: Vec<Option<Py<PyBytes>>>,
    errors: Vec<(usize, i32)>,
    /// Set by any part of the run that fails; the others then stop.
    stop: &'s AtomicBool,
    /// Checks for signals (only the main thread sees them).
    on_main: bool,
    /// This part ended because another one failed.
    stopped: bool,
}

impl<'s> BytesSink<'s> {
    fn new(files: usize, stop: &'s AtomicBool, on_main: bool) -> Self {
        BytesSink {
            results: (0..files).map(|_| None).collect(),
            errors: Vec::new(),
            stop,
            on_main,
            stopped: false,
        }
    }

    /// Ends this part (an error `read_parts` drops) once another part failed.
    fn peers_ok(&mut self) -> PyResult<()> {
        if self.stop.load(Ordering::Relaxed) {
            self.stopped = true;
            return Err(PyRuntimeError::new_err("read_files: another part failed"));
        }
        Ok(())
    }
}

impl Check for BytesSink<'_> {
    type Error = PyErr;
    fn check(&mut self) -> PyResult<()> {
        self.peers_ok()?;
        if self.on_main {
            Python::attach(|py| py.check_signals())?;
        }
        Ok(())
    }
}

impl ReadSink for BytesSink<'_> {
    type Big = BigBytes;

    fn deliver(&mut self, files: &[Finished<'_>]) -> PyResult<()> {
        self.peers_ok()?;
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
