//! Rules for reductions and softmax. Reduction primitives keep the reduced axes with
//! size 1, so cotangents broadcast straight back to the input shape.

use super::{cast_like, div, mul, sub};
use crate::array::Array;
use crate::error::{Error, Result};
use crate::ops;
use crate::primitive::{Batched, BinaryOp, CustomRules, ReduceOp, ScanOp, UnaryOp};

fn axes_i64(axes: &[usize]) -> Vec<i64> {
    axes.iter().map(|&a| a as i64).collect()
}

/// `x` with the kept axes first (in order), then the reduced `axes` flattened into one
/// last axis; also the transposed shape and the permutation used.
fn flatten_reduced(x: &Array, axes: &[usize]) -> Result<(Array, Array, Vec<i64>)> {
    let nd = x.ndim();
    let mut red: Vec<usize> = axes.to_vec();
    red.sort_unstable();
    let keep: Vec<usize> = (0..nd).filter(|i| !red.contains(i)).collect();
    let perm: Vec<i64> = keep.iter().chain(&red).map(|&a| a as i64).collect();
    let xt = ops::transpose(x, Some(&perm))?;
    let mut flat: Vec<i64> = keep.iter().map(|&a| x.shape()[a] as i64).collect();
    flat.push(-1);
    let xf = ops::reshape(&xt, &flat)?;
    Ok((xf, xt, perm))
}

/// Forward mode of max/min: the tangent of the first extremal element of each reduced
/// group in row-major order (NaN counts as extremal), as MLX does; the reverse mode
/// instead splits the cotangent between tied elements.
fn extremum_tangent(
    op: ReduceOp,
    x: &Array,
    t: &Array,
    out: &Array,
    axes: &[usize],
) -> Result<Array> {
    let (xf, _, _) = flatten_reduced(x, axes)?;
    let (tf, _, _) = flatten_reduced(t, axes)?;
    let idx = match op {
        ReduceOp::Min => ops::argmin(&xf, Some(-1), true)?,
        _ => ops::argmax(&xf, Some(-1), true)?,
    };
    let picked = ops::take_along_axis(&tf, &idx, Some(-1))?;
    let shape: Vec<i64> = out.shape().iter().map(|&d| d as i64).collect();
    ops::reshape(&picked, &shape)
}

/// For `prod`: the product of all other elements of each reduced group, exactly (no
/// division, so zeros are handled): move the reduced axes last, flatten them, multiply
/// the exclusive cumulative products from both ends.
fn prod_of_others(x: &Array, axes: &[usize]) -> Result<Array> {
    let nd = x.ndim();
    let (xf, xt, perm) = flatten_reduced(x, axes)?;
    let fwd = ops::scan(ScanOp::Prod, &xf, Some(-1), false, false)?;
    let bwd = ops::scan(ScanOp::Prod, &xf, Some(-1), true, false)?;
    let others = mul(&fwd, &bwd)?;
    let back: Vec<i64> = xt.shape().iter().map(|&d| d as i64).collect();
    let others = ops::reshape(&others, &back)?;
    let mut inv = vec![0i64; nd];
    for (i, &p) in perm.iter().enumerate() {
        inv[p as usize] = i as i64;
    }
    ops::transpose(&others, Some(&inv))
}

/// For max/min: the tie-splitting mask `(x == out) / count`.
/// Elements each output of a reduction over `axes` covers.
fn reduced_count(x: &Array, axes: &[usize]) -> usize {
    axes.iter()
        .map(|&a| x.shape().get(a).copied().unwrap_or(1))
        .product()
}

fn extremum_weights(x: &Array, out: &Array, axes: &[usize]) -> Result<Array> {
    let m = ops::astype(&ops::binary(BinaryOp::Equal, x, out)?, x.dtype())?;
    let n = ops::sum(&m, Some(&axes_i64(axes)), true)?;
    div(&m, &n)
}

pub fn vjp_reduce(
    op: ReduceOp,
    axes: &[usize],
    inputs: &[Array],
    out: &Array,
    g: &Array,
) -> Result<Vec<Option<Array>>> {
    let x = &inputs[0];
    if !x.dtype().is_inexact() {
        return Ok(vec![None]);
    }
    let gb = ops::broadcast_to(g, x.shape())?;
    let r = match op {
        ReduceOp::Sum => gb,
        ReduceOp::Prod => mul(
            &gb,
            &super::elementwise::conj_complex(&prod_of_others(x, axes)?)?,
        )?,
        // the max of one element is that element, NaN included (MLX's rule too)
        ReduceOp::Max | ReduceOp::Min if reduced_count(x, axes) == 1 => gb,
        ReduceOp::Max | ReduceOp::Min => mul(&gb, &extremum_weights(x, out, axes)?)?,
        ReduceOp::All | ReduceOp::Any => return Ok(vec![None]),
    };
    Ok(vec![cast_like(r, x)?])
}

pub fn jvp_reduce(
    op: ReduceOp,
    axes: &[usize],
    inputs: &[Array],
    out: &Array,
    t: &[Option<Array>],
) -> Result<Option<Array>> {
    let x = &inputs[0];
    let Some(t) = t.first().and_then(Option::as_ref) else {
        return Ok(None);
    };
    let ax = axes_i64(axes);
    let weighted = match op {
        ReduceOp::Sum => t.clone(),
        ReduceOp::Prod => mul(t, &prod_of_others(x, axes)?)?,
        ReduceOp::Max | ReduceOp::Min if reduced_count(x, axes) == 1 => t.clone(),
        ReduceOp::Max | ReduceOp::Min => {
            if x.size() == 0 {
                mul(t, &extremum_weights(x, out, axes)?)?
            } else {
                return Ok(Some(extremum_tangent(op, x, t, out, axes)?));
            }
        }
        ReduceOp::All | ReduceOp::Any => return Ok(None),
    };
    Ok(Some(ops::sum(&weighted, Some(&ax), true)?))
}

fn softmax_linear(out: &Array, v: &Array) -> Result<Array> {
    let s = ops::sum(&mul(v, out)?, Some(&[-1]), true)?;
    mul(out, &sub(v, &s)?)
}

pub fn vjp_softmax(out: &Array, g: &Array) -> Result<Vec<Option<Array>>> {
    Ok(vec![Some(softmax_linear(out, g)?)])
}

pub fn jvp_softmax(out: &Array, t: &[Option<Array>]) -> Result<Option<Array>> {
    t.first()
        .and_then(Option::as_ref)
        .map(|t| softmax_linear(out, t))
        .transpose()
}

/// The rules of `logsumexp`, attached through a custom node so that its gradient is
/// `softmax(x)` over the reduced axes computed as `exp(x - max) / sum(exp(x - max))`
/// (MLX's convention: an infinite maximum gives NaN), not the derivative of the
/// overflow-safe forward formula.
pub(crate) struct LogSumExpRules {
    pub axes: Vec<i64>,
    pub keepdims: bool,
}

impl LogSumExpRules {
    fn input<'a>(&self, primals: &'a [Array]) -> Result<&'a Array> {
        primals
            .first()
            .ok_or_else(|| Error::runtime("logsumexp", "Internal error: missing input."))
    }

    fn weights(&self, x: &Array) -> Result<Array> {
        let m = ops::max(x, Some(&self.axes), true)?;
        let e = ops::unary(UnaryOp::Exp, &sub(x, &m)?)?;
        div(&e, &ops::sum(&e, Some(&self.axes), true)?)
    }
}

impl CustomRules for LogSumExpRules {
    fn vjp(
        &self,
        primals: &[Array],
        _outputs: &[Array],
        cotangents: &[Array],
    ) -> Result<Option<Vec<Option<Array>>>> {
        let x = self.input(primals)?;
        let g = cotangents
            .first()
            .ok_or_else(|| Error::runtime("logsumexp", "Internal error: missing cotangent."))?;
        let mut kept = x.shape().to_vec();
        for &a in &self.axes {
            if let Some(d) = usize::try_from(a).ok().and_then(|a| kept.get_mut(a)) {
                *d = 1;
            }
        }
        let kept: Vec<i64> = kept.iter().map(|&d| d as i64).collect();
        let g = ops::reshape(g, &kept)?;
        Ok(Some(vec![Some(mul(&g, &self.weights(x)?)?)]))
    }

    fn jvp(&self, primals: &[Array], tangents: &[Option<Array>]) -> Result<Option<Vec<Array>>> {
        let x = self.input(primals)?;
        let t = super::tangent_or_zeros(x, tangents.first().and_then(Option::as_ref))?;
        let w = mul(&t, &self.weights(x)?)?;
        Ok(Some(vec![ops::sum(&w, Some(&self.axes), self.keepdims)?]))
    }

    fn vmap(&self, _primals: &[Array], _axes: &[Option<usize>]) -> Result<Option<Batched>> {
        Ok(None)
    }
}
