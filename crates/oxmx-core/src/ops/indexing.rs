//! Gathers and scatters. Indices are checked when the kernel runs: out-of-range indices
//! (after NumPy's negative wrap-around) raise an IndexError, never read or write outside.

use super::elementwise::astype;
use super::shape_ops::*;
use crate::array::Array;
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::primitive::{Primitive, ScatterMode};
use crate::shape::{broadcast_many, broadcast_shapes, checked_size, normalize_axis, Shape};

fn check_index_dtype(op: &str, idx: &Array) -> Result<()> {
    if !idx.dtype().is_integer() {
        return Err(Error::value(
            op,
            format!("Indices must be integers, got {}.", idx.dtype()),
        ));
    }
    Ok(())
}

/// General gather: `src[idx_0, ..., idx_k]` over `axes` (index arrays broadcast
/// together); the output is `broadcast(idx).shape ++ [remaining src dims]`.
pub fn gather(src: &Array, indices: &[Array], axes: &[usize]) -> Result<Array> {
    let op = "gather";
    if indices.len() != axes.len() || indices.is_empty() {
        return Err(Error::value(op, "One index array is needed per axis."));
    }
    for i in indices {
        check_index_dtype(op, i)?;
    }
    for &a in axes {
        if a >= src.ndim() {
            return Err(Error::axis(op, "Axis out of range."));
        }
    }
    let shapes: Vec<&[usize]> = indices.iter().map(|a| a.shape()).collect();
    let ishape = broadcast_many(op, &shapes)?;
    let idx: Vec<Array> = indices
        .iter()
        .map(|i| broadcast_to(&astype(i, Dtype::Int64)?, &ishape))
        .collect::<Result<_>>()?;
    let mut out: Shape = ishape.clone();
    for (i, &d) in src.shape().iter().enumerate() {
        if !axes.contains(&i) {
            out.push(d);
        }
    }
    checked_size(op, &out)?;
    for &a in axes {
        if src.shape()[a] == 0 && crate::shape::size_of(&ishape) > 0 {
            return Err(Error::index(op, "Cannot index into an axis of size 0."));
        }
    }
    let mut inputs = vec![src.clone()];
    inputs.extend(idx);
    Ok(Array::pending(
        out,
        src.dtype(),
        Primitive::Gather {
            axes: axes.to_vec(),
        },
        inputs,
    ))
}

/// `take(a, indices, axis)`; with no axis the array is flattened first.
pub fn take(a: &Array, indices: &Array, axis: Option<i64>) -> Result<Array> {
    let op = "take";
    check_index_dtype(op, indices)?;
    let (x, ax) = match axis {
        None => (reshape_to(a, vec![a.size()])?, 0),
        Some(ax) => (a.clone(), normalize_axis(op, ax, a.ndim())?),
    };
    if x.ndim() == 0 {
        return Err(Error::value(
            op,
            "Cannot take from a 0-d array along an axis.",
        ));
    }
    let g = gather(&x, std::slice::from_ref(indices), &[ax])?;
    // gather puts index dims first; move them to `ax`.
    let ind = indices.ndim();
    if ax == 0 || ind == 0 {
        return Ok(g);
    }
    let nd = g.ndim();
    let mut perm: Vec<i64> = Vec::with_capacity(nd);
    perm.extend((ind..ind + ax).map(|x| x as i64));
    perm.extend((0..ind).map(|x| x as i64));
    perm.extend((ind + ax..nd).map(|x| x as i64));
    transpose(&g, Some(&perm))
}

fn along_axis_prep(
    op: &str,
    a: &Array,
    indices: &Array,
    axis: Option<i64>,
) -> Result<(Array, Array, usize)> {
    check_index_dtype(op, indices)?;
    let (x, idx, ax) = match axis {
        None => (
            reshape_to(a, vec![a.size()])?,
            reshape_to(indices, vec![indices.size()])?,
            0,
        ),
        Some(ax) => (
            a.clone(),
            indices.clone(),
            normalize_axis(op, ax, a.ndim())?,
        ),
    };
    if idx.ndim() != x.ndim() {
        return Err(Error::value(
            op,
            format!(
                "Indices of dimension {} does not match array of dimension {}.",
                idx.ndim(),
                x.ndim()
            ),
        ));
    }
    Ok((x, idx, ax))
}

pub fn take_along_axis(a: &Array, indices: &Array, axis: Option<i64>) -> Result<Array> {
    let op = "take_along_axis";
    let (x, idx, ax) = along_axis_prep(op, a, indices, axis)?;
    // broadcast all dims except `ax`
    let mut xs = x.shape().to_vec();
    xs[ax] = 1;
    let mut is = idx.shape().to_vec();
    is[ax] = 1;
    let b = broadcast_shapes(op, &xs, &is)?;
    let mut idx_shape = b.clone();
    idx_shape[ax] = idx.shape()[ax];
    let mut src_shape = b.clone();
    src_shape[ax] = x.shape()[ax];
    let idx = broadcast_to(&astype(&idx, Dtype::Int64)?, &idx_shape)?;
    let x = broadcast_to(&x, &src_shape)?;
    if x.shape()[ax] == 0 && idx.size() > 0 {
        return Err(Error::index(op, "Cannot index into an axis of size 0."));
    }
    Ok(Array::pending(
        idx_shape,
        x.dtype(),
        Primitive::GatherAxis { axis: ax },
        vec![x, idx],
    ))
}

pub fn scatter_along_axis(
    a: &Array,
    indices: &Array,
    values: &Array,
    axis: Option<i64>,
    mode: ScatterMode,
) -> Result<Array> {
    let op = "put_along_axis";
    let (x, idx, ax) = along_axis_prep(op, a, indices, axis)?;
    let mut xs = x.shape().to_vec();
    xs[ax] = 1;
    let mut is = idx.shape().to_vec();
    is[ax] = 1;
    let b = broadcast_shapes(op, &xs, &is)?;
    if b != xs {
        return Err(Error::value(
            op,
            "Indices must broadcast to the array's shape outside the axis.",
        ));
    }
    let mut idx_shape = b;
    idx_shape[ax] = idx.shape()[ax];
    let idx = broadcast_to(&astype(&idx, Dtype::Int64)?, &idx_shape)?;
    let v = broadcast_to(&astype(values, x.dtype())?, &idx_shape)?;
    let r = Array::pending(
        x.shape().to_vec(),
        x.dtype(),
        Primitive::ScatterAxis { axis: ax, mode },
        vec![x, idx, v],
    );
    match axis {
        None => reshape_to(&r, a.shape().to_vec()),
        Some(_) => Ok(r),
    }
}

pub fn put_along_axis(
    a: &Array,
    indices: &Array,
    values: &Array,
    axis: Option<i64>,
) -> Result<Array> {
    scatter_along_axis(a, indices, values, axis, ScatterMode::Set)
}

/// General scatter, the inverse of [`gather`]: `updates` must broadcast to
/// `broadcast(idx).shape ++ [src dims not in axes]`.
pub fn scatter(
    src: &Array,
    indices: &[Array],
    updates: &Array,
    axes: &[usize],
    mode: ScatterMode,
) -> Result<Array> {
    let op = "scatter";
    if indices.len() != axes.len() || indices.is_empty() {
        return Err(Error::value(op, "One index array is needed per axis."));
    }
    for i in indices {
        check_index_dtype(op, i)?;
    }
    let shapes: Vec<&[usize]> = indices.iter().map(|a| a.shape()).collect();
    let ishape = broadcast_many(op, &shapes)?;
    let idx: Vec<Array> = indices
        .iter()
        .map(|i| broadcast_to(&astype(i, Dtype::Int64)?, &ishape))
        .collect::<Result<_>>()?;
    let mut ushape: Shape = ishape.clone();
    for (i, &d) in src.shape().iter().enumerate() {
        if !axes.contains(&i) {
            ushape.push(d);
        }
    }
    let upd = broadcast_to(&astype(updates, src.dtype())?, &ushape)?;
    let mut inputs = vec![src.clone(), upd];
    inputs.extend(idx);
    Ok(Array::pending(
        src.shape().to_vec(),
        src.dtype(),
        Primitive::Scatter {
            axes: axes.to_vec(),
            mode,
        },
        inputs,
    ))
}

/// Write `update` into `src[start:stop:strides]`.
pub fn slice_update(
    src: &Array,
    update: &Array,
    start: &[i64],
    stop: &[i64],
    strides: Option<&[i64]>,
) -> Result<Array> {
    let op = "slice_update";
    let nd = src.ndim();
    if start.len() != nd || stop.len() != nd || strides.is_some_and(|s| s.len() != nd) {
        return Err(Error::value(
            op,
            "start, stop and strides must have one entry per axis.",
        ));
    }
    let mut shape = Vec::with_capacity(nd);
    let (mut st, mut sp, mut sd) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..nd {
        let step = strides.map(|s| s[i]).unwrap_or(1);
        let (s, n, stp) = slice_params(src.shape()[i], Some(start[i]), Some(stop[i]), step)?;
        shape.push(n);
        st.push(s as i64);
        sp.push(n as i64);
        sd.push(stp);
    }
    let upd = broadcast_to(&astype(update, src.dtype())?, &shape)?;
    Ok(Array::pending(
        src.shape().to_vec(),
        src.dtype(),
        Primitive::SliceUpdate {
            start: st,
            count: sp,
            strides: sd,
        },
        vec![src.clone(), upd],
    ))
}

/// Write `update` (broadcast to the window's shape) into the strided window given by
/// normalized per-axis `(start, count, step)` parameters (see `slice_params`).
pub fn slice_update_params(
    src: &Array,
    update: &Array,
    params: &[(usize, usize, i64)],
) -> Result<Array> {
    let op = "slice_update";
    if params.len() != src.ndim() {
        return Err(Error::value(op, "One slice per axis is required."));
    }
    let shape: Shape = params.iter().map(|p| p.1).collect();
    let upd = broadcast_to(&astype(update, src.dtype())?, &shape)?;
    Ok(Array::pending(
        src.shape().to_vec(),
        src.dtype(),
        Primitive::SliceUpdate {
            start: params.iter().map(|p| p.0 as i64).collect(),
            count: params.iter().map(|p| p.1 as i64).collect(),
            strides: params.iter().map(|p| p.2).collect(),
        },
        vec![src.clone(), upd],
    ))
}
