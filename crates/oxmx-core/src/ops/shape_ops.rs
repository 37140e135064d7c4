//! Shape and layout ops; most are views over the input's buffer.

use crate::array::{reach, Array};
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::primitive::Primitive;
use crate::shape::{checked_size, fmt_shape, normalize_axis, size_of, Shape};

/// Reshape; one dim may be -1.
pub fn reshape(a: &Array, shape: &[i64]) -> Result<Array> {
    let op = "reshape";
    let size = a.size();
    let mut infer = None;
    let mut known: usize = 1;
    let mut out: Shape = Vec::with_capacity(shape.len());
    for (i, &d) in shape.iter().enumerate() {
        if d == -1 {
            if infer.is_some() {
                return Err(Error::value(op, "Can only infer one dimension."));
            }
            infer = Some(i);
            out.push(1);
        } else if d < 0 {
            return Err(Error::value(op, format!("Invalid dimension {d} in shape.")));
        } else {
            let d = usize::try_from(d).map_err(|_| Error::overflow(op))?;
            known = known.checked_mul(d).ok_or_else(|| Error::overflow(op))?;
            out.push(d);
        }
    }
    if let Some(i) = infer {
        if known == 0 || !size.is_multiple_of(known) {
            return Err(Error::value(
                op,
                format!("Cannot infer the shape of an array of size {size} into shape {shape:?}."),
            ));
        }
        out[i] = size / known;
    }
    checked_size(op, &out)?;
    if size_of(&out) != size {
        return Err(Error::value(
            op,
            format!(
                "Cannot reshape array of size {size} into shape {}.",
                fmt_shape(&out)
            ),
        ));
    }
    reshape_inferring(a, out, infer)
}

pub(crate) fn reshape_to(a: &Array, out: Shape) -> Result<Array> {
    reshape_inferring(a, out, None)
}

/// A reshape node recording which axis the caller asked to infer.
fn reshape_inferring(a: &Array, out: Shape, infer: Option<usize>) -> Result<Array> {
    if out.as_slice() == a.shape() {
        return Ok(a.clone());
    }
    Ok(Array::pending(
        out,
        a.dtype(),
        Primitive::Reshape { infer },
        vec![a.clone()],
    ))
}

pub fn flatten(a: &Array, start: i64, end: i64) -> Result<Array> {
    let op = "flatten";
    let nd = a.ndim();
    if nd == 0 {
        return reshape_to(a, vec![1]);
    }
    let s = normalize_axis(op, start, nd)?;
    let e = normalize_axis(op, end, nd)?;
    if s > e {
        return Err(Error::value(
            op,
            "start_axis must be less than or equal to end_axis.",
        ));
    }
    let mut out: Shape = a.shape()[..s].to_vec();
    out.push(size_of(&a.shape()[s..=e]));
    out.extend_from_slice(&a.shape()[e + 1..]);
    reshape_to(a, out)
}

pub fn unflatten(a: &Array, axis: i64, shape: &[i64]) -> Result<Array> {
    let op = "unflatten";
    let ax = normalize_axis(op, axis, a.ndim())?;
    if shape.is_empty() {
        return Err(Error::value(op, "Shape must not be empty."));
    }
    let mut full: Vec<i64> = a.shape()[..ax].iter().map(|&d| d as i64).collect();
    let n_inferred = shape.iter().filter(|&&d| d == -1).count();
    if n_inferred > 1 {
        return Err(Error::value(op, "Can only infer one dimension."));
    }
    let known: i64 = shape.iter().filter(|&&d| d != -1).product();
    let dim = a.shape()[ax] as i64;
    for &d in shape {
        if d == -1 {
            if known == 0 || dim % known != 0 {
                return Err(Error::value(op, "Cannot infer dimension."));
            }
            full.push(dim / known);
        } else {
            full.push(d);
        }
    }
    if n_inferred == 0 && known != dim {
        return Err(Error::value(
            op,
            format!("Cannot unflatten axis of size {dim} into shape {shape:?}."),
        ));
    }
    full.extend(a.shape()[ax + 1..].iter().map(|&d| d as i64));
    reshape(a, &full)
}

pub fn transpose(a: &Array, axes: Option<&[i64]>) -> Result<Array> {
    let op = "transpose";
    let nd = a.ndim();
    let perm: Vec<usize> = match axes {
        None => (0..nd).rev().collect(),
        Some(ax) => {
            if ax.len() != nd {
                return Err(Error::value(
                    op,
                    format!("Received {} axes for array with {nd} dimensions.", ax.len()),
                ));
            }
            crate::shape::normalize_axes(op, ax, nd)?
        }
    };
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return Ok(a.clone());
    }
    let shape: Shape = perm.iter().map(|&p| a.shape()[p]).collect();
    Ok(Array::pending(
        shape,
        a.dtype(),
        Primitive::Transpose { perm },
        vec![a.clone()],
    ))
}

pub fn broadcast_to(a: &Array, shape: &[usize]) -> Result<Array> {
    let op = "broadcast_to";
    if a.shape() == shape {
        return Ok(a.clone());
    }
    checked_size(op, shape)?;
    let b = crate::shape::broadcast_shapes(op, a.shape(), shape)?;
    if b.as_slice() != shape {
        return Err(Error::value(
            op,
            format!(
                "Cannot broadcast array of shape {} into shape {}.",
                fmt_shape(a.shape()),
                fmt_shape(shape)
            ),
        ));
    }
    Ok(Array::pending(
        shape.to_vec(),
        a.dtype(),
        Primitive::Broadcast,
        vec![a.clone()],
    ))
}

pub fn broadcast_arrays(arrays: &[Array]) -> Result<Vec<Array>> {
    let shapes: Vec<&[usize]> = arrays.iter().map(|a| a.shape()).collect();
    let shape = crate::shape::broadcast_many("broadcast_arrays", &shapes)?;
    arrays.iter().map(|a| broadcast_to(a, &shape)).collect()
}

pub fn expand_dims(a: &Array, axes: &[i64]) -> Result<Array> {
    let op = "expand_dims";
    let out_nd = a.ndim() + axes.len();
    let ax = crate::shape::normalize_axes(op, axes, out_nd)?;
    let mut out = Vec::with_capacity(out_nd);
    let mut it = a.shape().iter();
    for i in 0..out_nd {
        if ax.contains(&i) {
            out.push(1);
        } else {
            out.push(*it.next().ok_or_else(|| Error::runtime(op, "rank"))?);
        }
    }
    reshape_to(a, out)
}

pub fn squeeze(a: &Array, axes: Option<&[i64]>) -> Result<Array> {
    let op = "squeeze";
    let out: Shape = match axes {
        None => a.shape().iter().copied().filter(|&d| d != 1).collect(),
        Some(axes) => {
            let ax = crate::shape::normalize_axes(op, axes, a.ndim())?;
            for &i in &ax {
                if a.shape()[i] != 1 {
                    return Err(Error::value(
                        op,
                        format!(
                            "Cannot squeeze axis {i} with size {} which is not equal to 1.",
                            a.shape()[i]
                        ),
                    ));
                }
            }
            a.shape()
                .iter()
                .enumerate()
                .filter(|(i, _)| !ax.contains(i))
                .map(|(_, &d)| d)
                .collect()
        }
    };
    reshape_to(a, out)
}

pub fn moveaxis(a: &Array, source: i64, dest: i64) -> Result<Array> {
    let op = "moveaxis";
    let nd = a.ndim();
    let s = normalize_axis(op, source, nd)?;
    let d = normalize_axis(op, dest, nd)?;
    let mut perm: Vec<usize> = (0..nd).filter(|&i| i != s).collect();
    perm.insert(d, s);
    let p: Vec<i64> = perm.iter().map(|&x| x as i64).collect();
    transpose(a, Some(&p))
}

pub fn swapaxes(a: &Array, a1: i64, a2: i64) -> Result<Array> {
    let op = "swapaxes";
    let nd = a.ndim();
    let x = normalize_axis(op, a1, nd)?;
    let y = normalize_axis(op, a2, nd)?;
    let mut perm: Vec<i64> = (0..nd as i64).collect();
    perm.swap(x, y);
    transpose(a, Some(&perm))
}

/// NumPy basic slicing for one axis: normalized (start, size, step).
pub fn slice_params(
    dim: usize,
    start: Option<i64>,
    stop: Option<i64>,
    step: i64,
) -> Result<(usize, usize, i64)> {
    if step == 0 {
        return Err(Error::value("slice", "Slice step cannot be zero."));
    }
    let n = dim as i128;
    let st = step as i128;
    let clamp = |v: i64, lo: i128, hi: i128| -> i128 {
        let v = v as i128;
        let v = if v < 0 { v + n } else { v };
        v.clamp(lo, hi)
    };
    let (s, e) = if st > 0 {
        (
            start.map(|v| clamp(v, 0, n)).unwrap_or(0),
            stop.map(|v| clamp(v, 0, n)).unwrap_or(n),
        )
    } else {
        (
            start.map(|v| clamp(v, -1, n - 1)).unwrap_or(n - 1),
            stop.map(|v| clamp(v, -1, n - 1)).unwrap_or(-1),
        )
    };
    let len = if st > 0 {
        if e > s {
            (e - s + st - 1) / st
        } else {
            0
        }
    } else if s > e {
        (s - e + (-st) - 1) / (-st)
    } else {
        0
    };
    let s = if len == 0 { 0 } else { s };
    Ok((s as usize, len as usize, step))
}

/// Strided view `a[start:stop:step]` for every axis (already-normalized parameters).
pub fn slice_view(a: &Array, params: &[(usize, usize, i64)]) -> Result<Array> {
    if params.len() != a.ndim() {
        return Err(Error::value("slice", "Wrong number of slice parameters."));
    }
    let identity = params
        .iter()
        .zip(a.shape())
        .all(|(&(s, n, st), &d)| s == 0 && n == d && st == 1);
    if identity {
        return Ok(a.clone());
    }
    let shape: Shape = params.iter().map(|p| p.1).collect();
    let start = params.iter().map(|p| p.0).collect();
    let step = params.iter().map(|p| p.2).collect();
    Ok(Array::pending(
        shape,
        a.dtype(),
        Primitive::Slice { start, step },
        vec![a.clone()],
    ))
}

/// `mx.slice`-like: start/stop/strides per axis (MLX's `slice(a, start, stop, strides)`).
pub fn slice(a: &Array, start: &[i64], stop: &[i64], strides: Option<&[i64]>) -> Result<Array> {
    let op = "slice";
    let nd = a.ndim();
    if start.len() != nd || stop.len() != nd || strides.is_some_and(|s| s.len() != nd) {
        return Err(Error::value(
            op,
            "start, stop and strides must have one entry per axis.",
        ));
    }
    let mut params = Vec::with_capacity(nd);
    for i in 0..nd {
        let st = strides.map(|s| s[i]).unwrap_or(1);
        params.push(slice_params(
            a.shape()[i],
            Some(start[i]),
            Some(stop[i]),
            st,
        )?);
    }
    slice_view(a, &params)
}

pub fn concatenate(arrays: &[Array], axis: Option<i64>) -> Result<Array> {
    let op = "concatenate";
    if arrays.is_empty() {
        return Err(Error::value(op, "No arrays to concatenate."));
    }
    let arrays: Vec<Array> = match axis {
        None => arrays
            .iter()
            .map(|a| reshape_to(a, vec![a.size()]))
            .collect::<Result<_>>()?,
        Some(_) => arrays.to_vec(),
    };
    let nd = arrays[0].ndim();
    if nd == 0 {
        return Err(Error::value(
            op,
            "Zero-dimensional arrays cannot be concatenated.",
        ));
    }
    let ax = normalize_axis(op, axis.unwrap_or(0), nd)?;
    let mut dtype = arrays[0].dtype();
    let mut total: usize = 0;
    for a in &arrays {
        if a.ndim() != nd {
            return Err(Error::value(
                op,
                "All the input arrays must have the same number of dimensions.",
            ));
        }
        for i in 0..nd {
            if i != ax && a.shape()[i] != arrays[0].shape()[i] {
                return Err(Error::value(
                    op,
                    format!("All the input array dimensions must match exactly except for the concatenation axis. However, the provided shapes are {} and {}.", fmt_shape(arrays[0].shape()), fmt_shape(a.shape())),
                ));
            }
        }
        total = total
            .checked_add(a.shape()[ax])
            .ok_or_else(|| Error::overflow(op))?;
        dtype = crate::dtype::promote(dtype, a.dtype());
    }
    let mut shape = arrays[0].shape().to_vec();
    shape[ax] = total;
    checked_size(op, &shape)?;
    let inputs: Vec<Array> = arrays
        .iter()
        .map(|a| super::astype(a, dtype))
        .collect::<Result<_>>()?;
    Ok(Array::pending(
        shape,
        dtype,
        Primitive::Concatenate { axis: ax },
        inputs,
    ))
}

pub fn stack(arrays: &[Array], axis: i64) -> Result<Array> {
    let op = "stack";
    if arrays.is_empty() {
        return Err(Error::value(op, "No arrays to stack."));
    }
    let shape0 = arrays[0].shape();
    for a in arrays {
        if a.shape() != shape0 {
            return Err(Error::value(op, "All arrays must have the same shape."));
        }
    }
    let expanded: Vec<Array> = arrays
        .iter()
        .map(|a| expand_dims(a, &[axis]))
        .collect::<Result<_>>()?;
    concatenate(&expanded, Some(axis))
}

/// Split along `axis` at `indices` (sorted split points).
pub fn split_at(a: &Array, indices: &[i64], axis: i64) -> Result<Vec<Array>> {
    let op = "split";
    let ax = normalize_axis(op, axis, a.ndim())?;
    let n = a.shape()[ax] as i64;
    let mut bounds = vec![0i64];
    for &i in indices {
        let i = if i < 0 { i + n } else { i };
        bounds.push(i.clamp(0, n));
    }
    bounds.push(n);
    let mut out = Vec::with_capacity(bounds.len() - 1);
    for w in bounds.windows(2) {
        let (s, e) = (w[0], w[1].max(w[0]));
        let mut params: Vec<(usize, usize, i64)> = a.shape().iter().map(|&d| (0, d, 1)).collect();
        params[ax] = (s as usize, (e - s) as usize, 1);
        out.push(slice_view(a, &params)?);
    }
    Ok(out)
}

pub fn split_sections(a: &Array, sections: i64, axis: i64) -> Result<Vec<Array>> {
    let op = "split";
    let ax = normalize_axis(op, axis, a.ndim())?;
    if sections <= 0 {
        return Err(Error::value(op, "Number of splits must be positive."));
    }
    let n = a.shape()[ax] as i64;
    if n % sections != 0 {
        return Err(Error::value(
            op,
            format!(
                "Array split does not result in sub arrays with equal size: {n} into {sections}."
            ),
        ));
    }
    let step = n / sections;
    let idx: Vec<i64> = (1..sections).map(|i| i * step).collect();
    split_at(a, &idx, axis)
}

pub fn unstack(a: &Array, axis: i64) -> Result<Vec<Array>> {
    let op = "unstack";
    let ax = normalize_axis(op, axis, a.ndim())?;
    let n = a.shape()[ax];
    (0..n)
        .map(|i| {
            let mut params: Vec<(usize, usize, i64)> =
                a.shape().iter().map(|&d| (0, d, 1)).collect();
            params[ax] = (i, 1, 1);
            squeeze(&slice_view(a, &params)?, Some(&[ax as i64]))
        })
        .collect()
}

pub fn contiguous(a: &Array) -> Result<Array> {
    Ok(Array::pending(
        a.shape().to_vec(),
        a.dtype(),
        Primitive::Copy,
        vec![a.clone()],
    ))
}

pub fn as_strided(a: &Array, shape: &[i64], strides: &[i64], offset: i64) -> Result<Array> {
    let op = "as_strided";
    let shape = crate::shape::shape_from_i64(op, shape)?;
    if strides.len() != shape.len() {
        return Err(Error::value(
            op,
            "Shape and strides must have the same length.",
        ));
    }
    let offset =
        usize::try_from(offset).map_err(|_| Error::value(op, "Offset must be non-negative."))?;
    let st: Vec<isize> = strides
        .iter()
        .map(|&s| isize::try_from(s).map_err(|_| Error::overflow(op)))
        .collect::<Result<_>>()?;
    if size_of(&shape) > 0 {
        let (lo, hi) = reach(&shape, &st, offset).ok_or_else(|| Error::overflow(op))?;
        if lo < 0 || hi >= a.size() as i128 {
            return Err(Error::value(
                op,
                format!(
                    "The requested view reaches elements outside the array of size {}.",
                    a.size()
                ),
            ));
        }
    }
    Ok(Array::pending(
        shape,
        a.dtype(),
        Primitive::AsStrided {
            strides: strides.to_vec(),
            offset,
        },
        vec![a.clone()],
    ))
}

/// Reinterpret the bytes as another dtype (the last axis scales by the size ratio).
pub fn view_dtype(a: &Array, dtype: Dtype) -> Result<Array> {
    let op = "view";
    let (from, to) = (a.dtype().size(), dtype.size());
    if from == to {
        let c = contiguous(a)?;
        return Ok(Array::pending(
            a.shape().to_vec(),
            dtype,
            Primitive::Reshape { infer: None },
            vec![c],
        ));
    }
    let mut shape = a.shape().to_vec();
    if shape.is_empty() {
        return Err(Error::value(
            op,
            "Changing the type of a scalar is only allowed for types with the same size.",
        ));
    }
    let last = shape.len() - 1;
    let bytes = shape[last] * from;
    if !bytes.is_multiple_of(to) {
        return Err(Error::value(
            op,
            format!("Cannot view an array with last dimension of {bytes} bytes as {dtype}."),
        ));
    }
    shape[last] = bytes / to;
    let c = contiguous(a)?;
    Ok(Array::pending(
        shape,
        dtype,
        Primitive::Reshape { infer: None },
        vec![c],
    ))
}

pub fn atleast_nd(a: &Array, n: usize) -> Result<Array> {
    let s = a.shape();
    let out: Shape = match (n, s.len()) {
        (_, k) if k >= n => return Ok(a.clone()),
        (1, 0) => vec![1],
        (2, 0) => vec![1, 1],
        (2, 1) => vec![1, s[0]],
        (3, 0) => vec![1, 1, 1],
        (3, 1) => vec![1, s[0], 1],
        (3, 2) => vec![s[0], s[1], 1],
        _ => return Ok(a.clone()),
    };
    reshape_to(a, out)
}
