//! Binding of the convolution nodes (`oxmx.core.conv_general` adds MLX's arguments,
//! input dilation and flips, and the transforms, in Python).

use crate::convert::wrap;
use crate::pyarray::PyArray;
use oxmx::ops::conv::{correlate, correlate_input_grad, correlate_weight_grad};
use oxmx::primitive::ConvSpec;
use oxmx::{Array, Result};
use pyo3::prelude::*;

/// The geometry every convolution node takes.
struct Geometry {
    strides: Vec<usize>,
    dilation: Vec<usize>,
    padding: Vec<usize>,
    groups: usize,
}

/// One node over `a` and `b`, built by `make` on `stream`.
fn node(
    a: &PyArray,
    b: &PyArray,
    g: Geometry,
    stream: Option<&Bound<'_, PyAny>>,
    make: impl FnOnce(&Array, &Array, &ConvSpec) -> Result<Array>,
) -> PyResult<PyArray> {
    let spec = ConvSpec {
        strides: g.strides,
        dilation: g.dilation,
        padding: g.padding,
        groups: g.groups,
    };
    let (a, b) = (a.inner.clone(), b.inner.clone());
    let y = crate::device_py::on_stream(stream, || make(&a, &b, &spec))?;
    Ok(wrap(y))
}

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
    let g = Geometry {
        strides,
        dilation,
        padding,
        groups,
    };
    node(&x, &w, g, stream, correlate)
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
    let geo = Geometry {
        strides,
        dilation,
        padding,
        groups,
    };
    node(&x, &g, geo, stream, |x, g, s| {
        correlate_weight_grad(x, g, &kernel, s)
    })
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
    let geo = Geometry {
        strides,
        dilation,
        padding,
        groups,
    };
    node(&g, &w, geo, stream, |g, w, s| {
        correlate_input_grad(g, w, &spatial, s)
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_conv, m)?)?;
    m.add_function(wrap_pyfunction!(_conv_weight_grad, m)?)?;
    m.add_function(wrap_pyfunction!(_conv_input_grad, m)?)?;
    Ok(())
}
