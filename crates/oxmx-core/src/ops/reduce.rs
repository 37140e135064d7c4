//! Reductions: sum prod max min all any (one primitive), arg reductions, and the
//! composites mean var std logsumexp softmax count_nonzero.

use super::creation::scalar;
use super::elementwise::*;
use super::shape_ops::*;
use crate::array::Array;
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::primitive::{ArgReduceOp, Primitive, ReduceOp};
use crate::scalar::Scalar;
use crate::shape::{normalize_axes, normalize_axis, size_of, Shape};

fn reduce_name(op: ReduceOp) -> &'static str {
    match op {
        ReduceOp::Sum => "sum",
        ReduceOp::Prod => "prod",
        ReduceOp::Max => "max",
        ReduceOp::Min => "min",
        ReduceOp::All => "all",
        ReduceOp::Any => "any",
    }
}

/// Axes to reduce: None means all.
pub fn resolve_axes(op: &str, a: &Array, axes: Option<&[i64]>) -> Result<Vec<usize>> {
    let mut ax = match axes {
        None => (0..a.ndim()).collect(),
        Some(ax) => normalize_axes(op, ax, a.ndim())?,
    };
    ax.sort_unstable();
    Ok(ax)
}

fn accum_dtype(op: ReduceOp, d: Dtype) -> Dtype {
    use Dtype::*;
    match op {
        ReduceOp::All | ReduceOp::Any => Bool,
        ReduceOp::Max | ReduceOp::Min => d,
        ReduceOp::Sum | ReduceOp::Prod => match d {
            Bool | Int8 | Int16 => Int32,
            Uint8 | Uint16 => Uint32,
            _ => d,
        },
    }
}

fn finish_keepdims(r: Array, a_shape: &[usize], axes: &[usize], keepdims: bool) -> Result<Array> {
    if keepdims {
        return Ok(r);
    }
    let out: Shape = a_shape
        .iter()
        .enumerate()
        .filter(|(i, _)| !axes.contains(i))
        .map(|(_, &d)| d)
        .collect();
    reshape_to(&r, out)
}

pub fn reduce(op: ReduceOp, a: &Array, axes: Option<&[i64]>, keepdims: bool) -> Result<Array> {
    let name = reduce_name(op);
    let ax = resolve_axes(name, a, axes)?;
    if matches!(op, ReduceOp::Max | ReduceOp::Min) && a.size() == 0 {
        let reduced_empty = ax.iter().any(|&i| a.shape()[i] == 0) || a.ndim() == 0;
        if reduced_empty {
            return Err(Error::value(
                name,
                format!("Cannot {name} reduce zero size array."),
            ));
        }
    }
    let out_dtype = accum_dtype(op, a.dtype());
    let input = if matches!(op, ReduceOp::All | ReduceOp::Any) {
        astype(a, Dtype::Bool)?
    } else {
        astype(a, out_dtype)?
    };
    if ax.is_empty() {
        return Ok(input);
    }
    let kept: Shape = a
        .shape()
        .iter()
        .enumerate()
        .map(|(i, &d)| if ax.contains(&i) { 1 } else { d })
        .collect();
    let r = Array::pending(
        kept,
        out_dtype,
        Primitive::Reduce {
            op,
            axes: ax.clone(),
        },
        vec![input],
    );
    finish_keepdims(r, a.shape(), &ax, keepdims)
}

pub fn sum(a: &Array, axes: Option<&[i64]>, keepdims: bool) -> Result<Array> {
    reduce(ReduceOp::Sum, a, axes, keepdims)
}
pub fn prod(a: &Array, axes: Option<&[i64]>, keepdims: bool) -> Result<Array> {
    reduce(ReduceOp::Prod, a, axes, keepdims)
}
pub fn max(a: &Array, axes: Option<&[i64]>, keepdims: bool) -> Result<Array> {
    reduce(ReduceOp::Max, a, axes, keepdims)
}
pub fn min(a: &Array, axes: Option<&[i64]>, keepdims: bool) -> Result<Array> {
    reduce(ReduceOp::Min, a, axes, keepdims)
}
pub fn all(a: &Array, axes: Option<&[i64]>, keepdims: bool) -> Result<Array> {
    reduce(ReduceOp::All, a, axes, keepdims)
}
pub fn any(a: &Array, axes: Option<&[i64]>, keepdims: bool) -> Result<Array> {
    reduce(ReduceOp::Any, a, axes, keepdims)
}

fn reduced_count(a: &Array, ax: &[usize]) -> usize {
    ax.iter().map(|&i| a.shape()[i]).product()
}

/// The number of elements of `a` over `axes` (sorted, in range), less `ddof` and at
/// least 0 (its reciprocal if `inverted`), as a 0-d array of the real floating dtype
/// `dtype`: a node over `a` (so a shapeless trace recomputes it for new sizes).
pub fn number_of_elements(
    a: &Array,
    axes: &[usize],
    inverted: bool,
    ddof: i64,
    dtype: Dtype,
) -> Result<Array> {
    let op = "number_of_elements";
    if !axes.windows(2).all(|w| w[0] < w[1]) || axes.iter().any(|&x| x >= a.ndim()) {
        return Err(Error::value(
            op,
            format!(
                "Axes {axes:?} must be sorted, distinct and within the {} dimensions of the input.",
                a.ndim()
            ),
        ));
    }
    if !dtype.is_inexact() || dtype.is_complex() {
        return Err(Error::value(
            op,
            format!("The count's dtype must be a real floating type, not {dtype}."),
        ));
    }
    Ok(Array::pending(
        vec![],
        dtype,
        Primitive::NumberOfElements {
            axes: axes.to_vec(),
            inverted,
            ddof,
        },
        vec![a.clone()],
    ))
}

/// The divisor of a mean or variance over `ax` of `a` (n - ddof, at least 0) in `d`:
/// a constant, or within a shapeless trace a node that follows `a`'s sizes (as MLX).
fn reduced_count_divisor(a: &Array, ax: &[usize], ddof: i64, d: Dtype) -> Result<Array> {
    if a.in_shapeless_trace() && !d.is_complex() {
        return number_of_elements(a, ax, false, ddof, d);
    }
    let n = reduced_count(a, ax) as f64;
    scalar(Scalar::Float((n - ddof as f64).max(0.0)), d)
}

pub fn mean(a: &Array, axes: Option<&[i64]>, keepdims: bool) -> Result<Array> {
    let op = "mean";
    let ax = resolve_axes(op, a, axes)?;
    let d = a.dtype().to_inexact();
    let axes_i: Vec<i64> = ax.iter().map(|&x| x as i64).collect();
    let s = sum(&astype(a, d)?, Some(&axes_i), keepdims)?;
    divide(&s, &reduced_count_divisor(a, &ax, 0, d)?)
}

pub fn var(a: &Array, axes: Option<&[i64]>, keepdims: bool, ddof: i64) -> Result<Array> {
    let op = "var";
    let ax = resolve_axes(op, a, axes)?;
    let d = a.dtype().to_inexact();
    let axes_i: Vec<i64> = ax.iter().map(|&x| x as i64).collect();
    let x = astype(a, d)?;
    let m = mean(&x, Some(&axes_i), true)?;
    let c = subtract(&x, &m)?;
    let sq = if d.is_complex() {
        real(&multiply(&c, &conjugate(&c)?)?)?
    } else {
        square(&c)?
    };
    let s = sum(&sq, Some(&axes_i), keepdims)?;
    // n - ddof <= 0 gives inf/nan like NumPy
    divide(&s, &reduced_count_divisor(a, &ax, ddof, sq.dtype())?)
}

pub fn std(a: &Array, axes: Option<&[i64]>, keepdims: bool, ddof: i64) -> Result<Array> {
    sqrt(&var(a, axes, keepdims, ddof)?)
}

pub fn logsumexp(a: &Array, axes: Option<&[i64]>, keepdims: bool) -> Result<Array> {
    let op = "logsumexp";
    let ax = resolve_axes(op, a, axes)?;
    let axes_i: Vec<i64> = ax.iter().map(|&x| x as i64).collect();
    let d = a.dtype().to_inexact();
    let x = astype(a, d)?;
    if x.size() == 0 {
        // MLX refuses empty inputs here (NumPy's logaddexp.reduce would give -inf)
        return Err(Error::value(op, "Received empty array."));
    }
    let m = max(&x, Some(&axes_i), true)?;
    // Infinite maxima would make x - m NaN: shift by 0 there instead.
    let zero = scalar(Scalar::Float(0.0), d)?;
    let m_safe = where_(&isinf(&m)?, &zero, &m)?;
    let s = sum(&exp(&subtract(&x, &m_safe)?)?, Some(&axes_i), true)?;
    let r = add(&log(&s)?, &m_safe)?;
    let r = if keepdims {
        r
    } else {
        squeeze(&r, Some(&axes_i))?
    };
    if !x.is_traced() {
        return Ok(r);
    }
    // Under a transform, give the result logsumexp's own rules (see LogSumExpRules).
    let rules = std::sync::Arc::new(crate::rules::LogSumExpRules {
        axes: axes_i,
        keepdims,
    });
    crate::transforms::custom(rules, &[x], &[r])
        .pop()
        .ok_or_else(|| Error::runtime(op, "Internal error: missing output."))
}

pub fn softmax(a: &Array, axes: Option<&[i64]>, precise: bool) -> Result<Array> {
    let op = "softmax";
    let ax = resolve_axes(op, a, axes)?;
    let d = a.dtype().to_inexact();
    let x = astype(a, d)?;
    if x.size() == 0 {
        return Ok(x);
    }
    if ax.is_empty() {
        // one element per "row": exp(x - x) is 1 (NaN for inf/NaN), and its jvp is 0
        return exp(&subtract(&x, &x)?);
    }
    if ax.len() == 1 && !d.is_complex() {
        let axis = ax[0];
        let last = a.ndim() - 1;
        if axis == last {
            return Ok(Array::pending(
                x.shape().to_vec(),
                d,
                Primitive::Softmax { precise },
                vec![x],
            ));
        }
        let moved = swapaxes(&x, axis as i64, last as i64)?;
        let sm = Array::pending(
            moved.shape().to_vec(),
            d,
            Primitive::Softmax { precise },
            vec![moved],
        );
        return swapaxes(&sm, axis as i64, last as i64);
    }
    let axes_i: Vec<i64> = ax.iter().map(|&x| x as i64).collect();
    let m = max(&x, Some(&axes_i), true)?;
    let e = exp(&subtract(&x, &m)?)?;
    divide(&e, &sum(&e, Some(&axes_i), true)?)
}

pub fn arg_reduce(op: ArgReduceOp, a: &Array, axis: Option<i64>, keepdims: bool) -> Result<Array> {
    let name = match op {
        ArgReduceOp::ArgMax => "argmax",
        ArgReduceOp::ArgMin => "argmin",
    };
    let (x, ax) = match axis {
        None => (reshape_to(a, vec![a.size()])?, 0usize),
        Some(ax) => (a.clone(), normalize_axis(name, ax, a.ndim())?),
    };
    if x.shape()[ax] == 0 {
        return Err(Error::value(
            name,
            format!("Cannot {name} reduce zero size array."),
        ));
    }
    let mut kept = x.shape().to_vec();
    kept[ax] = 1;
    let r = Array::pending(
        kept,
        Dtype::Uint32,
        Primitive::ArgReduce { op, axis: ax },
        vec![x.clone()],
    );
    if keepdims {
        match axis {
            None => reshape_to(&r, vec![1; a.ndim()]),
            Some(_) => Ok(r),
        }
    } else {
        let out: Shape = match axis {
            None => vec![],
            Some(_) => x
                .shape()
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != ax)
                .map(|(_, &d)| d)
                .collect(),
        };
        reshape_to(&r, out)
    }
}

pub fn argmax(a: &Array, axis: Option<i64>, keepdims: bool) -> Result<Array> {
    arg_reduce(ArgReduceOp::ArgMax, a, axis, keepdims)
}
pub fn argmin(a: &Array, axis: Option<i64>, keepdims: bool) -> Result<Array> {
    arg_reduce(ArgReduceOp::ArgMin, a, axis, keepdims)
}

pub fn count_nonzero(a: &Array, axes: Option<&[i64]>, keepdims: bool) -> Result<Array> {
    let nz = not_equal(a, &scalar(Scalar::Int(0), a.dtype())?)?;
    let s = sum(&nz, axes, keepdims)?;
    astype(&s, Dtype::Int32)
}

/// Total elements along reduced axes (helper for callers).
pub fn reduced_size(shape: &[usize], axes: &[usize]) -> usize {
    size_of(&axes.iter().map(|&i| shape[i]).collect::<Vec<_>>())
}
