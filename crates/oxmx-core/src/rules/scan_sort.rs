//! Rules for cumulative scans (along the last axis) and sort.
//!
//! Reverse scans are handled by flipping, exclusive scans by shifting the cotangent or
//! tangent one place; the remaining inclusive forward scans have exact rules (`cumprod`
//! through a linear recurrence, so zeros and infinities need no special case) and ties in `cummax`/`cummin` sent to the latest equal
//! element (as MLX).

use super::{cast_like, fs, mul, zeros_like};
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

fn cum_exclusive_prod(x: &Array) -> Result<Array> {
    ops::scan(ScanOp::Prod, x, Some(-1), false, false)
}

/// `[fill, x0, ..., x(n-2)]` along the last axis.
fn shift_fill(x: &Array, fill: f64) -> Result<Array> {
    let r = shift(x, false)?;
    let first = ops::binary(
        BinaryOp::Equal,
        &ops::arange(0.0, last_len(x) as f64, 1.0, Dtype::Int32)?,
        &ops::scalar(crate::scalar::Scalar::Int(0), Dtype::Int32)?,
    )?;
    ops::where_(&first, &fs(fill, x.dtype())?, &r)
}

/// `y_k = b_k + a_k y_(k-1)` along the last axis (`y_(-1) = 0`, `a_0` unused), by
/// doubling: after the step of width `w`, `(A_k, B_k)` compose the `2w` maps ending at
/// `k`. log2(n) rounds of elementwise ops, all differentiable, no division.
fn linear_scan(a: &Array, b: &Array) -> Result<Array> {
    let n = last_len(b);
    let idx = ops::arange(0.0, n as f64, 1.0, Dtype::Int64)?;
    let (mut big_a, mut big_b) = (a.clone(), b.clone());
    let mut w = 1usize;
    while w < n {
        let reach = ops::binary(
            BinaryOp::GreaterEqual,
            &idx,
            &ops::scalar(crate::scalar::Scalar::Int(w as i64), Dtype::Int64)?,
        )?;
        let (sa, sb) = (shift_by(&big_a, w)?, shift_by(&big_b, w)?);
        // positions k < w have nothing before them: keep their map as it is
        let nb = ops::where_(
            &reach,
            &ops::binary(BinaryOp::Add, &big_b, &mul(&big_a, &sb)?)?,
            &big_b,
        )?;
        big_a = ops::where_(&reach, &mul(&big_a, &sa)?, &big_a)?;
        big_b = nb;
        w = w.saturating_mul(2);
    }
    Ok(big_b)
}

/// `x` moved `w` places along the last axis (zeros enter at the start); `w < n`.
fn shift_by(x: &Array, w: usize) -> Result<Array> {
    let nd = x.ndim();
    let n = last_len(x);
    let mut zs = x.shape().to_vec();
    zs[nd - 1] = w;
    let start = vec![0i64; nd];
    let mut stop: Vec<i64> = x.shape().iter().map(|&d| d as i64).collect();
    stop[nd - 1] = (n - w) as i64;
    let part = ops::slice(x, &start, &stop, None)?;
    ops::concatenate(&[ops::zeros(zs, x.dtype())?, part], Some(-1))
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
    match op {
        ScanOp::Sum => cum(ScanOp::Sum, g, true),
        ScanOp::Prod => {
            // dx_k = L_k S_k with L the exclusive cumprod and S_k = g_k + x_(k+1) S_(k+1):
            // no division, so zeros, infinities and underflow give the exact products'
            // IEEE value (a row with 0 and inf: NaN only where the true sum has 0 * inf)
            let xr = flip(x)?;
            let s = flip(&linear_scan(&shift_fill(&xr, 1.0)?, &flip(g)?)?)?;
            let l = cum_exclusive_prod(x)?;
            // an infinite L_k times a zero term of S_k is NaN in the sum of products,
            // but vanishes inside S_k: put it back
            let zero_after = |v: &Array, inclusive: bool| -> Result<Array> {
                let z = ops::astype(
                    &ops::binary(BinaryOp::Equal, v, &fs(0.0, v.dtype())?)?,
                    Dtype::Int32,
                )?;
                let n = ops::scan(ScanOp::Sum, &z, Some(-1), true, inclusive)?;
                ops::binary(BinaryOp::Greater, &n, &ops::zeros(vec![], Dtype::Int32)?)
            };
            let lost = ops::binary(
                BinaryOp::LogicalAnd,
                &ops::unary(UnaryOp::IsInf, &l)?,
                &ops::binary(
                    BinaryOp::LogicalOr,
                    &zero_after(x, false)?,
                    &zero_after(g, true)?,
                )?,
            )?;
            ops::where_(&lost, &fs(f64::NAN, x.dtype())?, &mul(&l, &s)?)
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
            // d out_j = x_j d out_(j-1) + t_j L_j (L: the exclusive cumprod)
            linear_scan(x, &mul(t, &cum_exclusive_prod(x)?)?)
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
