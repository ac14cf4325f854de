//! Client errors as Python exceptions. The exception class is the one in
//! `tidelog/errors.py` whose `code` is the error's code; codes and whether
//! each is retriable come from `tidelog::ErrorCode` (see `error_codes`).

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn errors_module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    ERRORS
        .get_or_try_init(py, || Ok::<_, PyErr>(py.import("tidelog.errors")?.unbind()))
        .map(|m| m.bind(py))
}

/// Every client error code with whether retrying may help, for
/// `tidelog/errors.py` to set `retriable` from.
#[pyfunction]
pub(crate) fn error_codes() -> Vec<(&'static str, bool)> {
    tidelog::ErrorCode::ALL
        .iter()
        .map(|c| (c.as_str(), c.is_retriable()))
        .collect()
}

/// Builds the Python exception for a client error.
pub(crate) fn py_err(e: tidelog::Error) -> PyErr {
    Python::attach(|py| coded_err(py, e.code(), e.to_string()))
}

/// A call that gave up waiting, as the client's own timeouts are reported.
pub(crate) fn timeout_err(what: &str) -> PyErr {
    Python::attach(|py| {
        coded_err(
            py,
            tidelog::ErrorCode::Timeout,
            format!("{what} did not finish in time"),
        )
    })
}

fn coded_err(py: Python<'_>, code: tidelog::ErrorCode, message: String) -> PyErr {
    let made = errors_module(py)
        .and_then(|m| m.getattr("_error_for"))
        .and_then(|f| f.call1((code.as_str(), message.clone())));
    match made {
        Ok(exc) => PyErr::from_value(exc),
        // tidelog.errors is missing (a broken install): still say what failed.
        Err(_) => PyRuntimeError::new_err(message),
    }
}
