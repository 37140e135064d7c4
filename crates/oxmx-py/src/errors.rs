//! Mapping engine errors to the Python exceptions MLX/NumPy users expect.

use oxmx::Error;
use pyo3::exceptions::{
    PyIndexError, PyMemoryError, PyNotImplementedError, PyRuntimeError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;

/// Exception classes defined in Python (`oxmx/_errors.py`) because they have two bases.
fn py_class<'py>(py: Python<'py>, name: &str) -> Option<Bound<'py, PyAny>> {
    py.import("oxmx._errors").ok()?.getattr(name).ok()
}

pub fn to_py(e: Error) -> PyErr {
    Python::with_gil(|py| {
        let msg = e.to_string();
        match e {
            Error::Value { .. } => PyValueError::new_err(msg),
            Error::Type { .. } => PyTypeError::new_err(msg),
            Error::Index { .. } => PyIndexError::new_err(msg),
            Error::Memory { .. } => PyMemoryError::new_err(msg),
            Error::Unsupported { .. } => PyNotImplementedError::new_err(msg),
            Error::Runtime { .. } => PyRuntimeError::new_err(msg),
            Error::Axis { .. } => match py_class(py, "AxisError") {
                Some(c) => PyErr::from_value(c.call1((msg.clone(),)).unwrap_or_else(|_| c.clone())),
                None => PyIndexError::new_err(msg),
            },
            Error::Format { .. } => match py_class(py, "FormatError") {
                Some(c) => PyErr::from_value(c.call1((msg.clone(),)).unwrap_or_else(|_| c.clone())),
                None => PyValueError::new_err(msg),
            },
        }
    })
}

pub trait IntoPyResult<T> {
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for oxmx::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

pub fn value_err(op: &str, msg: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("[{op}] {msg}"))
}

pub fn type_err(op: &str, msg: impl std::fmt::Display) -> PyErr {
    PyTypeError::new_err(format!("[{op}] {msg}"))
}
