//! Binding of the convolution nodes (`oxmx.core.conv_general` adds MLX's arguments,
//! padding, dilation and flips, and the transforms, in Python).

use crate::convert::wrap;
use crate::pyarray::PyArray;
use oxmx::ops::conv::{correlate, correlate_input_grad, correlate_weight_grad};
use oxmx::primitive::ConvSpec;
use pyo3::prelude::*;

/// The cross-correlation of `x` (N, *S, C), zero-padded by `padding` on both sides of
/// each spatial axis, with `w` (O, *K, C / groups).
#[pyfunction]
#[pyo3(signature = (x, w, strides, dilation, padding, groups, stream=None))]
fn _conv(
    x: PyRef<'_, PyArray>,
    w: PyRef<'_, PyArray>,
    strides: Vec<usize>,
    dilation: Vec<usize>,
    padding: Vec<usize>,
    groups: usize,
    stream: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyArray> {
    let spec = ConvSpec {
        strides,
        dilation,
        padding,
        groups,
    };
    let (x, w) = (x.inner.clone(), w.inner.clone());
    let y = crate::device_py::on_stream(stream, || correlate(&x, &w, &spec))?;
    Ok(wrap(y))
}

/// The weight gradient (O, *kernel, C / groups) of `_conv` for the cotangent `g`.
#[pyfunction]
#[allow(clippy::too_many_arguments)] // MLX-style geometry arguments, all needed
#[pyo3(signature = (x, g, kernel, strides, dilation, padding, groups, stream=None))]
fn _conv_weight_grad(
    x: PyRef<'_, PyArray>,
    g: PyRef<'_, PyArray>,
    kernel: Vec<usize>,
    strides: Vec<usize>,
    dilation: Vec<usize>,
    padding: Vec<usize>,
    groups: usize,
    stream: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyArray> {
    let spec = ConvSpec {
        strides,
        dilation,
        padding,
        groups,
    };
    let (x, g) = (x.inner.clone(), g.inner.clone());
    let dw = crate::device_py::on_stream(stream, || correlate_weight_grad(&x, &g, &kernel, &spec))?;
    Ok(wrap(dw))
}

/// The input gradient (N, *spatial, C) of `_conv` for the cotangent `g`.
#[pyfunction]
#[allow(clippy::too_many_arguments)] // MLX-style geometry arguments, all needed
#[pyo3(signature = (g, w, spatial, strides, dilation, padding, groups, stream=None))]
fn _conv_input_grad(
    g: PyRef<'_, PyArray>,
    w: PyRef<'_, PyArray>,
    spatial: Vec<usize>,
    strides: Vec<usize>,
    dilation: Vec<usize>,
    padding: Vec<usize>,
    groups: usize,
    stream: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyArray> {
    let spec = ConvSpec {
        strides,
        dilation,
        padding,
        groups,
    };
    let (g, w) = (g.inner.clone(), w.inner.clone());
    let dx = crate::device_py::on_stream(stream, || correlate_input_grad(&g, &w, &spatial, &spec))?;
    Ok(wrap(dx))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_conv_input_grad, m)?)?;
    m.add_function(wrap_pyfunction!(_conv, m)?)?;
    m.add_function(wrap_pyfunction!(_conv_weight_grad, m)?)?;
    Ok(())
}
