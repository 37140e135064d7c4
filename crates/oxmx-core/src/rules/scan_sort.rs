//! Rules for cumulative scans (along the last axis) and sort.
//!
//! Reverse scans are handled by flipping, exclusive scans by shifting the cotangent or
//! tangent one place; the remaining inclusive forward scans have exact rules, with
//! zeros handled in `cumprod` and ties in `cummax`/`cummin` sent to the latest equal
//! element (as MLX).

use super::{cast_like, div, fs, mul, zeros_like};
use crate::array::Array;
use crate::dtype::Dtype;
use crate::error::Result;
use crate::ops;
use crate::primitive::{BinaryOp, ScanOp, ScatterMode, UnaryOp};

fn last_len(x: &Array) -> usize {
    x.shape().last().copied().unwrap_or(1)
}

/// `x[..., ::-1]`.
fn flip(x: &Array) -> Result<Array> {
    let nd = x.ndim();
    let mut p: Vec<(usize, usize, i64)> = x.shape().iter().map(|&d| (0, d, 1)).collect();
    if let Some(l) = p.last_mut() {
        *l = ops::slice_params(x.shape()[nd - 1], None, None, -1)?;
    }
    ops::slice_view(x, &p)
}

/// Along the last axis: `[x1, x2, ..., 0]` (`left`) or `[0, x0, ..., x(n-2)]`.
fn shift(x: &Array, left: bool) -> Result<Array> {
    let n = last_len(x) as i64;
    let nd = x.ndim();
    let mut zs = x.shape().to_vec();
    zs[nd - 1] = 1;
    let z = ops::zeros(zs, x.dtype())?;
    let mut start = vec![0i64; nd];
    let mut stop: Vec<i64> = x.shape().iter().map(|&d| d as i64).collect();
    if left {
        start[nd - 1] = 1;
    } else {
        stop[nd - 1] = n - 1;
    }
    let part = ops::slice(x, &start, &stop, None)?;
    let parts = if left { vec![part, z] } else { vec![z, part] };
    ops::concatenate(&parts, Some(-1))
}

fn cum(op: ScanOp, x: &Array, reverse: bool) -> Result<Array> {
    ops::scan(op, x, Some(-1), reverse, true)
}

fn is_zero_info(x: &Array) -> Result<(Array, Array)> {
    let iszero = ops::binary(BinaryOp::Equal, x, &fs(0.0, x.dtype())?)?;
    let zc = cum(ScanOp::Sum, &ops::astype(&iszero, Dtype::Int32)?, false)?;
    let one = ops::scalar(crate::scalar::Scalar::Int(1), Dtype::Int32)?;
    let first = ops::binary(
        BinaryOp::LogicalAnd,
        &iszero,
        &ops::binary(BinaryOp::Equal, &zc, &one)?,
    )?;
    let none_yet = ops::binary(
        BinaryOp::Equal,
        &zc,
        &ops::scalar(crate::scalar::Scalar::Int(0), Dtype::Int32)?,
    )?;
    Ok((first, none_yet))
}

/// Index of the element each cummax/cummin output came from (the latest equal one).
fn owners(x: &Array, out: &Array) -> Result<Array> {
    let n = last_len(x);
    let idx = ops::arange(0.0, n as f64, 1.0, Dtype::Int32)?;
    let idx = ops::broadcast_to(&idx, x.shape())?;
    let is_own = ops::binary(BinaryOp::Equal, x, out)?;
    let cand = ops::where_(&is_own, &idx, &ops::zeros(vec![], Dtype::Int32)?)?;
    cum(ScanOp::Max, &cand, false)
}

/// `(max(v, tiny), max(-v, tiny))` with `tiny` the dtype's smallest normal number: the
/// positive and negative parts of `v`, kept off zero so that their logarithms stay
/// finite and differentiating the rule again gives no `0 * inf` (the error is of the
/// order of `tiny`).
fn signed_parts(v: &Array) -> Result<(Array, Array)> {
    let tiny = match v.dtype() {
        Dtype::Float16 => 6.103_515_625e-5,
        Dtype::Float64 => f64::MIN_POSITIVE,
        _ => f64::from(f32::MIN_POSITIVE),
    };
    let z = fs(tiny, v.dtype())?;
    let pos = ops::binary(BinaryOp::Maximum, v, &z)?;
    let neg = ops::binary(BinaryOp::Maximum, &ops::unary(UnaryOp::Negative, v)?, &z)?;
    Ok((pos, neg))
}

/// vjp of an inclusive forward scan.
fn vjp_forward(op: ScanOp, x: &Array, g: &Array) -> Result<Array> {
    let out = cum(op, x, false)?;
    let d = x.dtype();
    match op {
        ScanOp::Sum => cum(ScanOp::Sum, g, true),
        ScanOp::Prod => {
            let (first, none_yet) = is_zero_info(x)?;
            let one = fs(1.0, d)?;
            let zero = fs(0.0, d)?;
            let c1 = cum(ScanOp::Prod, &ops::where_(&first, &one, x)?, false)?;
            let gc = mul(g, &c1)?;
            let before = cum(ScanOp::Sum, &ops::where_(&none_yet, &gc, &zero)?, true)?;
            let after = cum(ScanOp::Sum, &ops::where_(&none_yet, &zero, &gc)?, true)?;
            let safe_x = ops::where_(&none_yet, x, &one)?;
            ops::where_(
                &none_yet,
                &div(&before, &safe_x)?,
                &ops::where_(&first, &after, &zero)?,
            )
        }
        ScanOp::Max | ScanOp::Min => {
            let own = owners(x, &out)?;
            ops::scatter_along_axis(&zeros_like(x)?, &own, g, Some(-1), ScatterMode::Add)
        }
        ScanOp::LogAddExp => {
            // dx_k = sum_{j >= k} g_j exp(x_k - out_j), in log space per sign of g so
            // that no term overflows: exp(x_k + rev_logcumsumexp(log(g±) - out)_k).
            let part = |g: &Array| -> Result<Array> {
                let lg = ops::unary(UnaryOp::Log, g)?;
                let l = cum(
                    ScanOp::LogAddExp,
                    &ops::binary(BinaryOp::Subtract, &lg, &out)?,
                    true,
                )?;
                ops::unary(UnaryOp::Exp, &ops::binary(BinaryOp::Add, x, &l)?)
            };
            let (pos, neg) = signed_parts(g)?;
            ops::binary(BinaryOp::Subtract, &part(&pos)?, &part(&neg)?)
        }
    }
}

/// jvp of an inclusive forward scan.
fn jvp_forward(op: ScanOp, x: &Array, t: &Array) -> Result<Array> {
    let out = cum(op, x, false)?;
    let d = x.dtype();
    match op {
        ScanOp::Sum => cum(ScanOp::Sum, t, false),
        ScanOp::Prod => {
            let (first, none_yet) = is_zero_info(x)?;
            let one = fs(1.0, d)?;
            let zero = fs(0.0, d)?;
            let safe_x = ops::where_(&none_yet, x, &one)?;
            let lead = mul(
                &out,
                &cum(
                    ScanOp::Sum,
                    &div(&ops::where_(&none_yet, t, &zero)?, &safe_x)?,
                    false,
                )?,
            )?;
            let c1 = cum(ScanOp::Prod, &ops::where_(&first, &one, x)?, false)?;
            let tz = ops::sum(&ops::where_(&first, t, &zero)?, Some(&[-1]), true)?;
            ops::where_(&none_yet, &lead, &mul(&tz, &c1)?)
        }
        ScanOp::Max | ScanOp::Min => ops::take_along_axis(t, &owners(x, &out)?, Some(-1)),
        ScanOp::LogAddExp => {
            // d out_j = sum_{k <= j} t_k exp(x_k - out_j), in log space per sign of t;
            // 0 where out_j is -inf (no finite term yet), as MLX.
            let part = |t: &Array| -> Result<Array> {
                let lt = ops::unary(UnaryOp::Log, t)?;
                let f = cum(
                    ScanOp::LogAddExp,
                    &ops::binary(BinaryOp::Add, x, &lt)?,
                    false,
                )?;
                ops::unary(UnaryOp::Exp, &ops::binary(BinaryOp::Subtract, &f, &out)?)
            };
            let (pos, neg) = signed_parts(t)?;
            let r = ops::binary(BinaryOp::Subtract, &part(&pos)?, &part(&neg)?)?;
            let empty = ops::unary(UnaryOp::IsNegInf, &out)?;
            ops::where_(&empty, &fs(0.0, d)?, &r)
        }
    }
}

pub fn vjp_scan(
    op: ScanOp,
    reverse: bool,
    inclusive: bool,
    inputs: &[Array],
    _out: &Array,
    g: &Array,
) -> Result<Vec<Option<Array>>> {
    let x = &inputs[0];
    if !x.dtype().is_inexact() {
        return Ok(vec![None]);
    }
    if x.size() == 0 {
        return Ok(vec![Some(zeros_like(x)?)]);
    }
    let (mut xf, mut gf) = (x.clone(), g.clone());
    if reverse {
        xf = flip(&xf)?;
        gf = flip(&gf)?;
    }
    if !inclusive {
        gf = shift(&gf, true)?;
    }
    let mut r = vjp_forward(op, &xf, &gf)?;
    if reverse {
        r = flip(&r)?;
    }
    Ok(vec![cast_like(r, x)?])
}

pub fn jvp_scan(
    op: ScanOp,
    reverse: bool,
    inclusive: bool,
    inputs: &[Array],
    _out: &Array,
    t: &[Option<Array>],
) -> Result<Option<Array>> {
    let x = &inputs[0];
    let Some(t) = t.first().and_then(Option::as_ref) else {
        return Ok(None);
    };
    if x.size() == 0 {
        return Ok(Some(t.clone()));
    }
    let (mut xf, mut tf) = (x.clone(), t.clone());
    if reverse {
        xf = flip(&xf)?;
        tf = flip(&tf)?;
    }
    let mut r = jvp_forward(op, &xf, &tf)?;
    if !inclusive {
        r = shift(&r, false)?;
    }
    if reverse {
        r = flip(&r)?;
    }
    Ok(Some(r))
}

pub fn vjp_sort(arg: bool, inputs: &[Array], g: &Array) -> Result<Vec<Option<Array>>> {
    let x = &inputs[0];
    if arg || !x.dtype().is_inexact() {
        return Ok(vec![None]);
    }
    let idx = ops::argsort(x, Some(-1))?;
    let r = ops::scatter_along_axis(&zeros_like(x)?, &idx, g, Some(-1), ScatterMode::Add)?;
    Ok(vec![cast_like(r, x)?])
}

pub fn jvp_sort(inputs: &[Array], t: &[Option<Array>]) -> Result<Option<Array>> {
    let x = &inputs[0];
    match t.first().and_then(Option::as_ref) {
        Some(t) => Ok(Some(ops::take_along_axis(
            t,
            &ops::argsort(x, Some(-1))?,
            Some(-1),
        )?)),
        None => Ok(None),
    }
}
