//! Scans (cumsum & co.) and sorting. Kernels work along the last axis; the ops move
//! the requested axis there and back.

use super::creation::scalar;
use super::elementwise::*;
use super::shape_ops::*;
use crate::array::Array;
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::primitive::{BinaryOp, Primitive, ScanOp};
use crate::scalar::Scalar;
use crate::shape::normalize_axis;

/// Apply a last-axis primitive along `axis` (None = flattened).
fn along_axis(
    op: &str,
    a: &Array,
    axis: Option<i64>,
    f: impl FnOnce(&Array) -> Result<Array>,
) -> Result<Array> {
    match axis {
        None => f(&reshape_to(a, vec![a.size()])?),
        Some(ax) => {
            if a.ndim() == 0 {
                return Err(Error::axis(
                    op,
                    format!("Axis {ax} is out of bounds for array with 0 dimensions."),
                ));
            }
            let ax = normalize_axis(op, ax, a.ndim())? as i64;
            let last = a.ndim() as i64 - 1;
            if ax == last {
                return f(a);
            }
            let moved = swapaxes(a, ax, last)?;
            swapaxes(&f(&moved)?, ax, last)
        }
    }
}

pub fn scan(
    op: ScanOp,
    a: &Array,
    axis: Option<i64>,
    reverse: bool,
    inclusive: bool,
) -> Result<Array> {
    let name = match op {
        ScanOp::Sum => "cumsum",
        ScanOp::Prod => "cumprod",
        ScanOp::Max => "cummax",
        ScanOp::Min => "cummin",
        ScanOp::LogAddExp => "logcumsumexp",
    };
    let d = a.dtype();
    let out = match op {
        // MLX: cumsum of bool counts (int32); cumprod of bool stays bool (a running "and")
        ScanOp::Sum => match d {
            Dtype::Bool => Dtype::Int32,
            _ => d,
        },
        ScanOp::Prod => d,
        ScanOp::Max | ScanOp::Min => d,
        ScanOp::LogAddExp => d.to_inexact(),
    };
    let x = astype(a, out)?;
    along_axis(name, &x, axis, |y| {
        Ok(Array::pending(
            y.shape().to_vec(),
            out,
            Primitive::Scan {
                op,
                reverse,
                inclusive,
            },
            vec![y.clone()],
        ))
    })
}

pub fn sort(a: &Array, axis: Option<i64>) -> Result<Array> {
    along_axis("sort", a, axis, |y| {
        Ok(Array::pending(
            y.shape().to_vec(),
            y.dtype(),
            Primitive::Sort { arg: false },
            vec![y.clone()],
        ))
    })
}

pub fn argsort(a: &Array, axis: Option<i64>) -> Result<Array> {
    along_axis("argsort", a, axis, |y| {
        Ok(Array::pending(
            y.shape().to_vec(),
            Dtype::Uint32,
            Primitive::Sort { arg: true },
            vec![y.clone()],
        ))
    })
}

/// The `k` largest elements along `axis` (sorted ascending, as the last k of a sort).
pub fn topk(a: &Array, k: i64, axis: Option<i64>) -> Result<Array> {
    let op = "topk";
    let s = sort(a, axis)?;
    let ax = match axis {
        None => 0,
        Some(x) => normalize_axis(op, x, a.ndim())?,
    };
    let n = s.shape()[ax] as i64;
    if k < 0 || k > n {
        return Err(Error::value(
            op,
            format!("k = {k} is out of range for an axis of size {n}."),
        ));
    }
    let mut params: Vec<(usize, usize, i64)> = s.shape().iter().map(|&d| (0, d, 1)).collect();
    params[ax] = ((n - k) as usize, k as usize, 1);
    slice_view(&s, &params)
}

pub fn median(a: &Array, axes: Option<&[i64]>, keepdims: bool) -> Result<Array> {
    let op = "median";
    let d = a.dtype().to_inexact();
    let ax = super::reduce::resolve_axes(op, a, axes)?;
    // move reduced axes last and flatten them
    let rest: Vec<usize> = (0..a.ndim()).filter(|i| !ax.contains(i)).collect();
    let perm: Vec<i64> = rest.iter().chain(ax.iter()).map(|&x| x as i64).collect();
    let t = transpose(a, Some(&perm))?;
    let mut shape: Vec<usize> = rest.iter().map(|&i| a.shape()[i]).collect();
    let n: usize = ax.iter().map(|&i| a.shape()[i]).product();
    shape.push(n);
    let flat = reshape_to(&t, shape)?;
    let s = astype(&sort(&flat, Some(-1))?, d)?;
    if n == 0 {
        return Err(Error::value(op, "Cannot take the median of an empty axis."));
    }
    let nd = s.ndim();
    let mut lo: Vec<(usize, usize, i64)> = s.shape().iter().map(|&x| (0, x, 1)).collect();
    let mut hi = lo.clone();
    lo[nd - 1] = ((n - 1) / 2, 1, 1);
    hi[nd - 1] = (n / 2, 1, 1);
    let m = multiply(
        &add(&slice_view(&s, &lo)?, &slice_view(&s, &hi)?)?,
        &scalar(Scalar::Float(0.5), d)?,
    )?;
    // sort puts NaN last: a row holding one has the NaN median of NumPy and MLX
    let mut last = lo.clone();
    last[nd - 1] = (n - 1, 1, 1);
    let last = slice_view(&s, &last)?;
    let m = where_(&binary(BinaryOp::NotEqual, &last, &last)?, &last, &m)?;
    let m = squeeze(&m, Some(&[nd as i64 - 1]))?;
    if keepdims {
        let out: Vec<usize> = a
            .shape()
            .iter()
            .enumerate()
            .map(|(i, &x)| if ax.contains(&i) { 1 } else { x })
            .collect();
        reshape_to(&m, out)
    } else {
        Ok(m)
    }
}
