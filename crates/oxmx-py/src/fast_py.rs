//! Bindings of the fused kernels (`oxmx.core.fast` wraps them with argument handling and
//! their transforms in Python).

use crate::convert::wrap;
use crate::errors::IntoPyResult;
use crate::pyarray::PyArray;
use oxmx::ops::fast::{self, MaskArg};
use pyo3::prelude::*;

#[pyfunction]
#[pyo3(signature = (x, weight, eps))]
fn _fast_rms_norm(
    x: PyRef<'_, PyArray>,
    weight: Option<PyRef<'_, PyArray>>,
    eps: f64,
) -> PyResult<PyArray> {
    fast::rms_norm(&x.inner, weight.as_ref().map(|w| &w.inner), eps)
        .py()
        .map(wrap)
}

#[pyfunction]
#[pyo3(signature = (x, weight, bias, eps))]
fn _fast_layer_norm(
    x: PyRef<'_, PyArray>,
    weight: Option<PyRef<'_, PyArray>>,
    bias: Option<PyRef<'_, PyArray>>,
    eps: f64,
) -> PyResult<PyArray> {
    fast::layer_norm(
        &x.inner,
        weight.as_ref().map(|w| &w.inner),
        bias.as_ref().map(|b| &b.inner),
        eps,
    )
    .py()
    .map(wrap)
}

#[pyfunction]
#[pyo3(signature = (x, dims, traditional, base, scale, offset, freqs))]
#[allow(clippy::too_many_arguments)]
fn _fast_rope(
    x: PyRef<'_, PyArray>,
    dims: usize,
    traditional: bool,
    base: Option<f64>,
    scale: f64,
    offset: PyRef<'_, PyArray>,
    freqs: Option<PyRef<'_, PyArray>>,
) -> PyResult<PyArray> {
    fast::rope(
        &x.inner,
        dims,
        traditional,
        base,
        scale,
        &offset.inner,
        freqs.as_ref().map(|f| &f.inner),
    )
    .py()
    .map(wrap)
}

#[pyfunction]
#[pyo3(signature = (q, k, v, scale, causal, mask, sinks))]
#[allow(clippy::too_many_arguments)]
fn _fast_sdpa(
    q: PyRef<'_, PyArray>,
    k: PyRef<'_, PyArray>,
    v: PyRef<'_, PyArray>,
    scale: f64,
    causal: bool,
    mask: Option<PyRef<'_, PyArray>>,
    sinks: Option<PyRef<'_, PyArray>>,
) -> PyResult<PyArray> {
    let m = match (&mask, causal) {
        (Some(m), _) => MaskArg::Array(&m.inner),
        (None, true) => MaskArg::Causal,
        (None, false) => MaskArg::None,
    };
    fast::scaled_dot_product_attention(
        &q.inner,
        &k.inner,
        &v.inner,
        scale,
        m,
        sinks.as_ref().map(|s| &s.inner),
    )
    .py()
    .map(wrap)
}

#[pyfunction]
fn _fast_cross_entropy(
    logits: PyRef<'_, PyArray>,
    targets: PyRef<'_, PyArray>,
) -> PyResult<PyArray> {
    fast::cross_entropy(&logits.inner, &targets.inner)
        .py()
        .map(wrap)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_fast_rms_norm, m)?)?;
    m.add_function(wrap_pyfunction!(_fast_layer_norm, m)?)?;
    m.add_function(wrap_pyfunction!(_fast_rope, m)?)?;
    m.add_function(wrap_pyfunction!(_fast_sdpa, m)?)?;
    m.add_function(wrap_pyfunction!(_fast_cross_entropy, m)?)?;
    Ok(())
}
