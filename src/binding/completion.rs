//! `Completion`: the frozen result of one request.

use pyo3::prelude::*;
use pyo3::pyclass::CompareOp;
use pyo3::types::PyTuple;
use pyo3::{PyTraverseError, PyVisit};

/// The result of one request: `user_data`, `result` (bytes transferred, the new fd of an
/// open; 0 for other operations and whenever `error` is set), `error` (an `OSError` with
/// `errno`, or `None`) and `stat` (the `os.stat_result` of a statx, else `None`).
#[pyclass(frozen, module = "uringq", name = "Completion")]
pub struct Completion {
    user_data: Py<PyAny>,
    result: i64,
    error: Option<Py<PyAny>>,
    stat: Option<Py<PyAny>>,
}

impl Completion {
    /// A successful completion.
    pub fn success(user_data: Py<PyAny>, result: i64, stat: Option<Py<PyAny>>) -> Self {
        Completion {
            user_data,
            result,
            error: None,
            stat,
        }
    }

    /// A failed completion (`error` is an `OSError` instance).
    pub fn failed(user_data: Py<PyAny>, error: Py<PyAny>) -> Self {
        Completion {
            user_data,
            result: 0,
            error: Some(error),
            stat: None,
        }
    }

    fn as_tuple<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let or_none =
            |o: &Option<Py<PyAny>>| o.as_ref().map_or_else(|| py.None(), |o| o.clone_ref(py));
        PyTuple::new(
            py,
            [
                self.user_data.clone_ref(py),
                self.result.into_pyobject(py)?.into_any().unbind(),
                or_none(&self.error),
                or_none(&self.stat),
            ],
        )
    }
}

#[pymethods]
impl Completion {
    #[new]
    #[pyo3(signature = (user_data, result, error, stat = None))]
    fn new(
        user_data: Py<PyAny>,
        result: i64,
        error: Option<Bound<'_, PyAny>>,
        stat: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        if let Some(e) = &error {
            if !e.is_instance_of::<pyo3::exceptions::PyOSError>() {
                return Err(pyo3::exceptions::PyTypeError::new_err(
                    "error must be an OSError or None",
                ));
            }
        }
        Ok(Completion {
            user_data,
            result,
            error: error.map(Bound::unbind),
            stat,
        })
    }

    #[getter]
    fn user_data(&self, py: Python<'_>) -> Py<PyAny> {
        self.user_data.clone_ref(py)
    }

    #[getter]
    fn result(&self) -> i64 {
        self.result
    }

    #[getter]
    fn error(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.error.as_ref().map(|e| e.clone_ref(py))
    }

    /// The `os.stat_result` of a statx request (`None` for every other operation).
    #[getter]
    fn stat(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.stat.as_ref().map(|s| s.clone_ref(py))
    }

    /// True when the request succeeded (`error is None`).
    #[getter]
    fn ok(&self) -> bool {
        self.error.is_none()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let user_data = self.user_data.bind(py).repr()?;
        let error = match &self.error {
            Some(e) => e.bind(py).repr()?.to_string(),
            None => "None".to_string(),
        };
        let stat = match &self.stat {
            Some(s) => format!(", stat={}", s.bind(py).repr()?),
            None => String::new(),
        };
        Ok(format!(
            "Completion(user_data={user_data}, result={}, error={error}{stat})",
            self.result
        ))
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> PyResult<Py<PyAny>> {
        let py = other.py();
        let Ok(other) = other.cast::<Completion>() else {
            return Ok(py.NotImplemented());
        };
        let equal = self.as_tuple(py)?.eq(other.get().as_tuple(py)?)?;
        match op {
            CompareOp::Eq => Ok(equal.into_pyobject(py)?.to_owned().into_any().unbind()),
            CompareOp::Ne => Ok((!equal).into_pyobject(py)?.to_owned().into_any().unbind()),
            _ => Ok(py.NotImplemented()),
        }
    }

    /// `user_data` may refer back to the completion: let the GC see that edge.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.user_data)?;
        if let Some(error) = &self.error {
            visit.call(error)?;
        }
        if let Some(stat) = &self.stat {
            visit.call(stat)?;
        }
        Ok(())
    }

    fn __hash__(&self, py: Python<'_>) -> PyResult<isize> {
        self.as_tuple(py)?.hash()
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        Ok((slf.get_type().into_any(), slf.get().as_tuple(py)?))
    }
}
