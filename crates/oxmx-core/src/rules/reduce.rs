//! Rules for reductions and softmax. Reduction primitives keep the reduced axes with
//! size 1, so cotangents broadcast straight back to the input shape.

use super::{cast_like, div, mul, sub};
use crate::array::Array;
use crate::error::Result;
use crate::ops;
use crate::primitive::{BinaryOp, ReduceOp, ScanOp};

fn axes_i64(axes: &[usize]) -> Vec<i64> {
    axes.iter().map(|&a| a as i64).collect()
}

/// For `prod`: the product of all other elements of each reduced group, exactly (no
/// division, so zeros are handled): move the reduced axes last, flatten them, multiply
/// the exclusive cumulative products from both ends.
fn prod_of_others(x: &Array, axes: &[usize]) -> Result<Array> {
    let nd = x.ndim();
    let keep: Vec<usize> = (0..nd).filter(|i| !axes.contains(i)).collect();
    let perm: Vec<i64> = keep.iter().chain(axes).map(|&a| a as i64).collect();
    let xt = ops::transpose(x, Some(&perm))?;
    let mut flat: Vec<i64> = keep.iter().map(|&a| x.shape()[a] as i64).collect();
    flat.push(-1);
    let xf = ops::reshape(&xt, &flat)?;
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
        ReduceOp::Prod => mul(&gb, &prod_of_others(x, axes)?)?,
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
        ReduceOp::Max | ReduceOp::Min => mul(t, &extremum_weights(x, out, axes)?)?,
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
