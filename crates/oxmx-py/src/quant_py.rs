//! Bindings of the quantized nodes; `oxmx/core/_quantize.py` wraps them with MLX's
//! argument handling and composes `quantize`, fp8 conversions and the gathers.

use crate::convert::wrap;
use crate::dtype_py::dtype_arg;
use crate::errors::IntoPyResult;
use crate::pyarray::PyArray;
use oxmx::ops::quantized;
use oxmx::primitive::QuantSpec;
use pyo3::prelude::*;

fn spec(
    op: &str,
    mode: &str,
    group_size: Option<usize>,
    bits: Option<usize>,
) -> PyResult<QuantSpec> {
    let m = quantized::parse_mode(op, mode).py()?;
    quantized::spec(op, m, group_size, bits).py()
}

/// `(group_size, bits)` of `mode` with MLX's defaults filled in and checked.
#[pyfunction]
#[pyo3(signature = (op, mode, group_size, bits))]
fn _quant_spec(
    op: &str,
    mode: &str,
    group_size: Option<usize>,
    bits: Option<usize>,
) -> PyResult<(usize, usize)> {
    let s = spec(op, mode, group_size, bits)?;
    Ok((s.group_size, s.bits))
}

#[pyfunction]
#[pyo3(signature = (w, scales, biases, mode, group_size, bits, dtype))]
#[allow(clippy::too_many_arguments)]
fn _quant_dequantize(
    w: PyRef<'_, PyArray>,
    scales: PyRef<'_, PyArray>,
    biases: Option<PyRef<'_, PyArray>>,
    mode: &str,
    group_size: Option<usize>,
    bits: Option<usize>,
    dtype: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyArray> {
    let s = spec("dequantize", mode, group_size, bits)?;
    let d = dtype_arg(dtype)?;
    quantized::dequantize(
        &w.inner,
        &scales.inner,
        biases.as_ref().map(|b| &b.inner),
        s,
        d,
    )
    .py()
    .map(wrap)
}

#[pyfunction]
#[pyo3(signature = (x, w, scales, biases, transpose, mode, group_size, bits))]
#[allow(clippy::too_many_arguments)]
fn _quant_matmul(
    x: PyRef<'_, PyArray>,
    w: PyRef<'_, PyArray>,
    scales: PyRef<'_, PyArray>,
    biases: Option<PyRef<'_, PyArray>>,
    transpose: bool,
    mode: &str,
    group_size: Option<usize>,
    bits: Option<usize>,
) -> PyResult<PyArray> {
    let s = spec("quantized_matmul", mode, group_size, bits)?;
    quantized::quantized_matmul(
        &x.inner,
        &w.inner,
        &scales.inner,
        biases.as_ref().map(|b| &b.inner),
        transpose,
        s,
    )
    .py()
    .map(wrap)
}

#[pyfunction]
#[pyo3(signature = (x, w, scales, biases, lhs, rhs, transpose, mode, group_size, bits))]
#[allow(clippy::too_many_arguments)]
fn _gather_qmm(
    x: PyRef<'_, PyArray>,
    w: PyRef<'_, PyArray>,
    scales: PyRef<'_, PyArray>,
    biases: Option<PyRef<'_, PyArray>>,
    lhs: PyRef<'_, PyArray>,
    rhs: PyRef<'_, PyArray>,
    transpose: bool,
    mode: &str,
    group_size: Option<usize>,
    bits: Option<usize>,
) -> PyResult<PyArray> {
    let s = spec("gather_qmm", mode, group_size, bits)?;
    oxmx::ops::quantized_gather::gather_qmm(
        &x.inner,
        &w.inner,
        &scales.inner,
        biases.as_ref().map(|b| &b.inner),
        &lhs.inner,
        &rhs.inner,
        transpose,
        s,
    )
    .py()
    .map(wrap)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_quant_spec, m)?)?;
    m.add_function(wrap_pyfunction!(_quant_dequantize, m)?)?;
    m.add_function(wrap_pyfunction!(_quant_matmul, m)?)?;
    m.add_function(wrap_pyfunction!(_gather_qmm, m)?)?;
    Ok(())
}
