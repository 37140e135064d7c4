//! Binding of the one-axis transform node (`oxmx.core.fft` builds MLX's functions on it).

use crate::convert::wrap;
use crate::pyarray::PyArray;
use oxmx::ops::fft::fft_axis;
use pyo3::prelude::*;

#[pyfunction]
#[pyo3(signature = (x, axis, inverse, real, n, scale, stream=None))]
fn _fft_axis(
    x: PyRef<'_, PyArray>,
    axis: i64,
    inverse: bool,
    real: bool,
    n: usize,
    scale: f64,
    stream: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyArray> {
    crate::device_py::on_stream(stream, || fft_axis(&x.inner, axis, inverse, real, n, scale))
        .map(wrap)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_fft_axis, m)?)?;
    Ok(())
}
