//! `statx` results as `os.stat_result`, with the fields and values `os.stat` gives.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyTuple;

static STAT_RESULT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `os.stat_result` for `st`, as CPython builds it from `struct stat`: integer seconds,
/// float seconds (`sec + nsec * 1e-9`) and nanoseconds for each time, device numbers
/// encoded as glibc's `makedev`.
pub fn stat_result(py: Python<'_>, st: &libc::statx) -> PyResult<Py<PyAny>> {
    let class = STAT_RESULT.get_or_try_init(py, || {
        py.import("os")?.getattr("stat_result").map(Bound::unbind)
    })?;
    let times = [st.stx_atime, st.stx_mtime, st.stx_ctime];
    let whole = times.map(|t| t.tv_sec);
    let float = times.map(|t| t.tv_sec as f64 + f64::from(t.tv_nsec) * 1e-9);
    let nanos = times.map(|t| i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec));
    let dev = libc::makedev(st.stx_dev_major, st.stx_dev_minor);
    let rdev = libc::makedev(st.stx_rdev_major, st.stx_rdev_minor);
    let fields: [Bound<'_, PyAny>; 19] = [
        u32::from(st.stx_mode).into_pyobject(py)?.into_any(),
        st.stx_ino.into_pyobject(py)?.into_any(),
        dev.into_pyobject(py)?.into_any(),
        st.stx_nlink.into_pyobject(py)?.into_any(),
        st.stx_uid.into_pyobject(py)?.into_any(),
        st.stx_gid.into_pyobject(py)?.into_any(),
        st.stx_size.into_pyobject(py)?.into_any(),
        whole[0].into_pyobject(py)?.into_any(),
        whole[1].into_pyobject(py)?.into_any(),
        whole[2].into_pyobject(py)?.into_any(),
        float[0].into_pyobject(py)?.into_any(),
        float[1].into_pyobject(py)?.into_any(),
        float[2].into_pyobject(py)?.into_any(),
        nanos[0].into_pyobject(py)?.into_any(),
        nanos[1].into_pyobject(py)?.into_any(),
        nanos[2].into_pyobject(py)?.into_any(),
        st.stx_blksize.into_pyobject(py)?.into_any(),
        st.stx_blocks.into_pyobject(py)?.into_any(),
        rdev.into_pyobject(py)?.into_any(),
    ];
    let tuple = PyTuple::new(py, fields)?;
    Ok(class.bind(py).call1((tuple,))?.unbind())
}
