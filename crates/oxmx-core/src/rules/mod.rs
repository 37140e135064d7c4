//! Differentiation and batching rules for every primitive: `vjp` (reverse mode), `jvp`
//! (forward mode) and `vmap` (batching). Each family of primitives has its rules in one
//! file; the dispatch below matches `Primitive` exhaustively, so a new primitive does
//! not compile until it has all three rules.
//!
//! Rules build graphs from ops, so they are themselves differentiable (`grad(grad(f))`).

mod custom;
mod distributed;
mod elementwise;
mod fused;
mod indexing;
mod linalg;
mod quantized;
mod quantized_gather;
mod reduce;
mod scan_sort;
mod structure;

pub(crate) use custom::jvp_override as custom_jvp_override;
pub(crate) use reduce::LogSumExpRules;

use crate::array::Array;
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::ops;
use crate::primitive::{BinaryOp, Primitive};
use crate::scalar::Scalar;
use crate::shape::Shape;

/// The fused kernels are differentiated in Python (`oxmx.core.fast` wraps each in a
/// `custom_function` whose rules use the composite formula); reaching the primitive
/// itself means it was built through the Rust API.
fn fast_rule(k: &crate::primitive::FastKernel) -> Error {
    Error::unsupported(
        k.name(),
        "The fused kernel has no derivative of its own; differentiate oxmx.core.fast's function, whose rules use the composite formula.",
    )
}

/// The factorizations are differentiated in Python (`oxmx.core.linalg` wraps each in a
/// `custom_function` with its rules).
fn linalg_rule(k: &crate::primitive::LinalgKernel) -> Error {
    Error::unsupported(
        k.name(),
        "The factorization node has no derivative of its own; differentiate oxmx.core.linalg's function.",
    )
}

/// A user's CUDA kernel has no derivative (as in MLX); `custom_function` can give one.
fn user_kernel_rule() -> Error {
    Error::unsupported(
        "cuda_kernel",
        "A custom CUDA kernel has no derivative or batching rule; wrap it in mx.custom_function to give it one.",
    )
}

/// Cotangents for each input of `prim` (None where an input gets no gradient), given the
/// primal `inputs`, the primal output `out` and the output's cotangent `cot`.
pub fn vjp(
    prim: &Primitive,
    inputs: &[Array],
    out: &Array,
    cot: &Array,
) -> Result<Vec<Option<Array>>> {
    use Primitive::*;
    match prim {
        Unary(op) => elementwise::vjp_unary(*op, inputs, out, cot),
        Binary(op) => elementwise::vjp_binary(*op, inputs, out, cot),
        Select => elementwise::vjp_select(inputs, cot),
        AsType(_) => elementwise::vjp_astype(inputs, out, cot),
        Copy | StopGradient => match prim {
            Copy => Ok(vec![Some(cot.clone())]),
            _ => Ok(vec![None]),
        },
        Arange { .. } | RandomBits { .. } | ArgReduce { .. } | NumberOfElements { .. } => {
            Ok(vec![None; inputs.len()])
        }
        Reduce { op, axes } => reduce::vjp_reduce(*op, axes, inputs, out, cot),
        Softmax { .. } => reduce::vjp_softmax(out, cot),
        Matmul => linalg::vjp_matmul(inputs, cot),
        Concatenate { axis } => structure::vjp_concatenate(*axis, inputs, cot),
        SliceUpdate {
            start,
            count,
            strides,
        } => structure::vjp_slice_update(start, count, strides, inputs, cot),
        Gather { axes } => indexing::vjp_gather(axes, inputs, cot),
        GatherAxis { axis } => indexing::vjp_gather_axis(*axis, inputs, cot),
        ScatterAxis { axis, mode } => indexing::vjp_scatter_axis(*axis, *mode, inputs, out, cot),
        Scatter { axes, mode } => indexing::vjp_scatter(axes, *mode, inputs, out, cot),
        Scan {
            op,
            reverse,
            inclusive,
        } => scan_sort::vjp_scan(*op, *reverse, *inclusive, inputs, out, cot),
        Sort { arg } => scan_sort::vjp_sort(*arg, inputs, cot),
        Reshape { .. } => structure::vjp_reshape(inputs, out, cot),
        Transpose { perm } => structure::vjp_transpose(perm, cot),
        Broadcast => structure::vjp_broadcast(inputs, cot),
        Slice { start, step } => structure::vjp_slice(start, step, inputs, out, cot),
        AsStrided { strides, offset } => {
            structure::vjp_as_strided(strides, *offset, inputs, out, cot)
        }
        Custom(c) => custom::vjp(c, inputs, cot),
        Fast(k) => Err(fast_rule(k)),
        Linalg(k) => Err(linalg_rule(k)),
        Fft { .. } => Err(Error::unsupported(
            "fft",
            "The transform node has no derivative of its own; differentiate oxmx.core.fft's function.",
        )),
        Conv { .. } => Err(Error::unsupported(
            "conv",
            "The convolution node has no derivative of its own; differentiate oxmx.core.conv_general.",
        )),
        UserKernel(_) => Err(user_kernel_rule()),
        Collective { op, group } => distributed::vjp(*op, group, inputs, out, cot),
        Dequantize(s) => quantized::vjp_dequantize(s, inputs, cot),
        QuantizedMatmul { spec, transpose } => quantized::vjp_qmm(spec, *transpose, inputs, cot),
        GatherQmm { spec, transpose } => quantized_gather::vjp(spec, *transpose, inputs, cot),
        Fused(k) => fused::vjp_fused(&k.0, inputs, out, cot),
    }
}

/// The output tangent of `prim` given input tangents (None = zero); None when the output
/// has no tangent (integer outputs, or no input tangent).
pub fn jvp(
    prim: &Primitive,
    inputs: &[Array],
    out: &Array,
    tangents: &[Option<Array>],
) -> Result<Option<Array>> {
    use Primitive::*;
    if !out.dtype().is_inexact() || tangents.iter().all(Option::is_none) {
        return Ok(None);
    }
    match prim {
        Unary(op) => elementwise::jvp_unary(*op, inputs, out, tangents),
        Binary(op) => elementwise::jvp_binary(*op, inputs, out, tangents),
        Select => elementwise::jvp_select(inputs, tangents),
        AsType(d) => Ok(match first(tangents) {
            Some(t) if inputs[0].dtype().is_inexact() => Some(ops::astype(t, *d)?),
            _ => None,
        }),
        Copy => Ok(first(tangents).cloned()),
        StopGradient
        | Arange { .. }
        | RandomBits { .. }
        | ArgReduce { .. }
        | NumberOfElements { .. } => Ok(None),
        Reduce { op, axes } => reduce::jvp_reduce(*op, axes, inputs, out, tangents),
        Softmax { .. } => reduce::jvp_softmax(out, tangents),
        Matmul => linalg::jvp_matmul(inputs, tangents),
        Concatenate { axis } => structure::jvp_concatenate(*axis, inputs, tangents),
        SliceUpdate { .. } => {
            let t = tangents_or_zeros(inputs, tangents)?;
            Ok(Some(same_prim(prim, out, t)))
        }
        Gather { .. } | GatherAxis { .. } => {
            let mut t = inputs.to_vec();
            t[0] = tangent_or_zeros(&inputs[0], tangents.first().and_then(Option::as_ref))?;
            Ok(Some(same_prim(prim, out, t)))
        }
        ScatterAxis { mode, .. } => indexing::jvp_scatter(prim, *mode, 0, 2, inputs, out, tangents),
        Scatter { mode, .. } => indexing::jvp_scatter(prim, *mode, 0, 1, inputs, out, tangents),
        Scan {
            op,
            reverse,
            inclusive,
        } => scan_sort::jvp_scan(*op, *reverse, *inclusive, inputs, out, tangents),
        Sort { .. } => scan_sort::jvp_sort(inputs, tangents),
        Custom(c) => custom::jvp(c, inputs, tangents),
        Fast(k) => Err(fast_rule(k)),
        Linalg(k) => Err(linalg_rule(k)),
        Fft { .. } => Err(Error::unsupported(
            "fft",
            "The transform node has no derivative of its own; differentiate oxmx.core.fft's function.",
        )),
        Conv { .. } => Err(Error::unsupported(
            "conv",
            "The convolution node has no derivative of its own; differentiate oxmx.core.conv_general.",
        )),
        UserKernel(_) => Err(user_kernel_rule()),
        Collective { op, group } => distributed::jvp(*op, group, tangents),
        Dequantize(s) => quantized::jvp_dequantize(s, inputs, out, tangents),
        QuantizedMatmul { spec, transpose } => {
            quantized::jvp_qmm(spec, *transpose, inputs, tangents)
        }
        GatherQmm { spec, transpose } => {
            quantized_gather::jvp(spec, *transpose, inputs, out, tangents)
        }
        Fused(k) => fused::jvp_fused(&k.0, inputs, out, tangents),
        Reshape { .. } | Transpose { .. } | Broadcast | Slice { .. } | AsStrided { .. } => {
            if inputs[0].dtype() != out.dtype() {
                return Ok(None);
            }
            Ok(first(tangents).map(|t| same_prim(prim, out, vec![t.clone()])))
        }
    }
}

/// The batched output of `prim` and its batch axis, given inputs of which some carry a
/// batch axis (`axes[i]`) of size `batch`; `out` is the unbatched primal output.
pub fn vmap(
    prim: &Primitive,
    inputs: &[Array],
    axes: &[Option<usize>],
    batch: usize,
    out: &Array,
) -> Result<(Array, Option<usize>)> {
    match prim {
        Primitive::Custom(c) => custom::vmap(c, inputs, axes),
        Primitive::Fused(k) => fused::vmap_fused(&k.0, inputs, axes, batch, out),
        _ if axes.iter().all(Option::is_none) => structure::vmap(prim, inputs, axes, batch, out),
        Primitive::Dequantize(s) => quantized::vmap_dequantize(s, inputs, axes, batch, out),
        Primitive::QuantizedMatmul { spec, transpose } => {
            quantized::vmap_qmm(spec, *transpose, inputs, axes, batch)
        }
        Primitive::GatherQmm { spec, transpose } => {
            quantized_gather::vmap(spec, *transpose, inputs, axes, batch, out)
        }
        _ => structure::vmap(prim, inputs, axes, batch, out),
    }
}

// ---- helpers shared by the rule files ----

fn first(t: &[Option<Array>]) -> Option<&Array> {
    t.first().and_then(Option::as_ref)
}

/// The same primitive over new inputs, with `out`'s shape and dtype.
pub(crate) fn same_prim(prim: &Primitive, out: &Array, inputs: Vec<Array>) -> Array {
    Array::pending(out.shape().to_vec(), out.dtype(), prim.clone(), inputs)
}

/// The same primitive with a batch dimension of `batch` in front of its output.
pub(crate) fn same_prim_batched(
    prim: &Primitive,
    out: &Array,
    batch: usize,
    inputs: Vec<Array>,
) -> Array {
    let mut shape: Shape = vec![batch];
    shape.extend_from_slice(out.shape());
    Array::pending(shape, out.dtype(), prim.clone(), inputs)
}

pub(crate) fn tangent_or_zeros(x: &Array, t: Option<&Array>) -> Result<Array> {
    match t {
        Some(t) => Ok(t.clone()),
        None => zeros_like(x),
    }
}

fn tangents_or_zeros(inputs: &[Array], t: &[Option<Array>]) -> Result<Vec<Array>> {
    inputs
        .iter()
        .enumerate()
        .map(|(i, x)| tangent_or_zeros(x, t.get(i).and_then(Option::as_ref)))
        .collect()
}

pub(crate) fn zeros_like(a: &Array) -> Result<Array> {
    ops::zeros(a.shape().to_vec(), a.dtype())
}

pub(crate) fn fs(v: f64, d: Dtype) -> Result<Array> {
    ops::scalar(Scalar::Float(v), d)
}

pub(crate) fn add(a: &Array, b: &Array) -> Result<Array> {
    ops::binary(BinaryOp::Add, a, b)
}
pub(crate) fn sub(a: &Array, b: &Array) -> Result<Array> {
    ops::binary(BinaryOp::Subtract, a, b)
}
pub(crate) fn mul(a: &Array, b: &Array) -> Result<Array> {
    ops::binary(BinaryOp::Multiply, a, b)
}
pub(crate) fn div(a: &Array, b: &Array) -> Result<Array> {
    ops::binary(BinaryOp::Divide, a, b)
}

/// Sum `g` down to `shape` (undo NumPy broadcasting).
pub(crate) fn sum_to(g: &Array, shape: &[usize]) -> Result<Array> {
    if g.shape() == shape {
        return Ok(g.clone());
    }
    let extra = g
        .ndim()
        .checked_sub(shape.len())
        .ok_or_else(|| Error::value("vjp", "Cotangent has fewer dimensions than its input."))?;
    let mut axes: Vec<i64> = (0..extra as i64).collect();
    for (i, &d) in shape.iter().enumerate() {
        if d == 1 && g.shape()[extra + i] != 1 {
            axes.push((extra + i) as i64);
        }
    }
    let r = ops::sum(g, Some(&axes), true)?;
    let s: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    ops::reshape(&r, &s)
}

/// Cast a cotangent to its input's dtype (inputs of inexact type only).
pub(crate) fn cast_like(g: Array, x: &Array) -> Result<Option<Array>> {
    if !x.dtype().is_inexact() {
        return Ok(None);
    }
    if g.dtype() == x.dtype() {
        Ok(Some(g))
    } else if g.dtype().is_complex() && !x.dtype().is_complex() {
        Ok(Some(ops::astype(
            &ops::unary(crate::primitive::UnaryOp::Real, &g)?,
            x.dtype(),
        )?))
    } else {
        Ok(Some(ops::astype(&g, x.dtype())?))
    }
}
