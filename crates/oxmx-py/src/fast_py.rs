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

#[pyfunction]
fn _fast_cross_entropy_grad(
    logits: PyRef<'_, PyArray>,
    targets: PyRef<'_, PyArray>,
    cotangent: PyRef<'_, PyArray>,
) -> PyResult<PyArray> {
    fast::cross_entropy_grad(&logits.inner, &targets.inner, &cotangent.inner)
        .py()
        .map(wrap)
}

/// dx, then dw (with a weight) and db (with `bias`) of rms_norm (`rms`) or layer_norm,
/// flattened one after another (see `FastKernel::NormGrad`).
#[pyfunction]
fn _fast_norm_grad(
    x: PyRef<'_, PyArray>,
    weight: Option<PyRef<'_, PyArray>>,
    cotangent: PyRef<'_, PyArray>,
    eps: f64,
    rms: bool,
    bias: bool,
) -> PyResult<PyArray> {
    fast::norm_grad(
        &x.inner,
        weight.as_ref().map(|w| &w.inner),
        &cotangent.inner,
        eps,
        rms,
        bias,
    )
    .py()
    .map(wrap)
}

/// dq, dk, dv of attention (no mask or causal) flattened one after another (see
/// `FastKernel::SdpaGrad`).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn _fast_sdpa_grad(
    q: PyRef<'_, PyArray>,
    k: PyRef<'_, PyArray>,
    v: PyRef<'_, PyArray>,
    o: PyRef<'_, PyArray>,
    g: PyRef<'_, PyArray>,
    scale: f64,
    causal: bool,
) -> PyResult<PyArray> {
    fast::sdpa_grad(
        &q.inner, &k.inner, &v.inner, &o.inner, &g.inner, scale, causal,
    )
    .py()
    .map(wrap)
}

/// Whether the GPU's cuDNN runs the attention gradient of these sizes (q (b, hq, lq, d),
/// k and v (b, hkv, lk, d)); false without a GPU or libcudnn.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn _cuda_sdpa_grad_ready(
    b: usize,
    hq: usize,
    hkv: usize,
    lq: usize,
    lk: usize,
    d: usize,
    bf16: bool,
    causal: bool,
) -> bool {
    use oxmx::oxmx_cuda::cudnn_sdpa::{grad_eligible, SdpaKey};
    let Some(key) = SdpaKey::packed(bf16, (b, hq, hkv, lq, lk, d), causal) else {
        return false;
    };
    let dtype = if bf16 {
        oxmx::Dtype::Bfloat16
    } else {
        oxmx::Dtype::Float16
    };
    grad_eligible(dtype, &key)
        && oxmx::cuda_backend().is_some_and(|c| c.cudnn_sdpa_grad_ready(&key))
}

/// One fused Adam/AdamW step: `[p', m', v']` stacked (see `FastKernel::AdamStep`).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn _fast_adam_step(
    p: PyRef<'_, PyArray>,
    g: PyRef<'_, PyArray>,
    m: PyRef<'_, PyArray>,
    v: PyRef<'_, PyArray>,
    s1: PyRef<'_, PyArray>,
    s2: PyRef<'_, PyArray>,
    decay: PyRef<'_, PyArray>,
    c: [f64; 5],
) -> PyResult<PyArray> {
    fast::adam_step(
        &p.inner,
        &g.inner,
        &m.inner,
        &v.inner,
        &s1.inner,
        &s2.inner,
        &decay.inner,
        c,
    )
    .py()
    .map(wrap)
}

/// A user's CUDA kernel as one packed-output node (`oxmx.core.fast.cuda_kernel` builds
/// the signature and cuts the outputs out). `code` is source text (`kind` "source"),
/// PTX text ("ptx") or a cubin image ("cubin"); `args` lists the parameters in order as
/// (kind, value) with kind in in/shape/strides/ndim/out/bool/i32/i64/f32/f64.
#[pyfunction]
#[pyo3(signature = (inputs, name, kind, code, args, grid, block, shared_mem, outputs, init, contiguous, stream=None))]
#[allow(clippy::too_many_arguments)]
fn _cuda_kernel(
    inputs: Vec<PyRef<'_, PyArray>>,
    name: String,
    kind: &str,
    code: &Bound<'_, PyAny>,
    args: Vec<(String, Bound<'_, PyAny>)>,
    grid: [u32; 3],
    block: [u32; 3],
    shared_mem: u32,
    outputs: Vec<(Vec<usize>, Bound<'_, PyAny>)>,
    init: Option<f64>,
    contiguous: bool,
    stream: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyArray> {
    use oxmx::ops::user_kernel::{user_kernel, KernelArg, KernelCode, KernelScalar, UserKernel};
    let op = "cuda_kernel";
    let code = match kind {
        "source" => KernelCode::Source(code.extract()?),
        "ptx" => KernelCode::Ptx(code.extract()?),
        _ => KernelCode::Cubin(code.extract()?),
    };
    let mut spec = Vec::with_capacity(args.len());
    for (k, v) in &args {
        spec.push(match k.as_str() {
            "in" => KernelArg::Input(v.extract()?),
            "shape" => KernelArg::InputShape(v.extract()?),
            "strides" => KernelArg::InputStrides(v.extract()?),
            "ndim" => KernelArg::InputNdim(v.extract()?),
            "out" => KernelArg::Output(v.extract()?),
            "bool" => KernelArg::Scalar(KernelScalar::Bool(v.extract()?)),
            "i32" => KernelArg::Scalar(KernelScalar::I32(v.extract()?)),
            "i64" => KernelArg::Scalar(KernelScalar::I64(v.extract()?)),
            "f32" => KernelArg::Scalar(KernelScalar::F32(v.extract()?)),
            "f64" => KernelArg::Scalar(KernelScalar::F64(v.extract()?)),
            other => {
                return Err(crate::errors::value_err(
                    op,
                    format!("Unknown parameter kind {other}."),
                ))
            }
        });
    }
    let outs = outputs
        .iter()
        .map(|(shape, d)| {
            let d = crate::dtype_py::dtype_arg(Some(d))?
                .ok_or_else(|| crate::errors::value_err(op, "Every output needs a dtype."))?;
            Ok((shape.clone(), d, 0usize))
        })
        .collect::<PyResult<Vec<_>>>()?;
    let kernel = UserKernel {
        name,
        code,
        args: spec,
        grid,
        block,
        shared_mem,
        outputs: outs,
        init,
        contiguous,
    };
    let ins: Vec<oxmx::Array> = inputs.iter().map(|a| a.inner.clone()).collect();
    crate::device_py::on_stream(stream, || user_kernel(op, &ins, kernel)).map(wrap)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_cuda_kernel, m)?)?;
    m.add_function(wrap_pyfunction!(_fast_rms_norm, m)?)?;
    m.add_function(wrap_pyfunction!(_fast_layer_norm, m)?)?;
    m.add_function(wrap_pyfunction!(_fast_rope, m)?)?;
    m.add_function(wrap_pyfunction!(_fast_sdpa, m)?)?;
    m.add_function(wrap_pyfunction!(_fast_cross_entropy, m)?)?;
    m.add_function(wrap_pyfunction!(_fast_cross_entropy_grad, m)?)?;
    m.add_function(wrap_pyfunction!(_fast_norm_grad, m)?)?;
    m.add_function(wrap_pyfunction!(_fast_sdpa_grad, m)?)?;
    m.add_function(wrap_pyfunction!(_cuda_sdpa_grad_ready, m)?)?;
    m.add_function(wrap_pyfunction!(_fast_adam_step, m)?)?;
    Ok(())
}
