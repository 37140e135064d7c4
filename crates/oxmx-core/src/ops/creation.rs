//! Creation ops.

use crate::array::{Array, ArrayData};
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::memory;
use crate::primitive::Primitive;
use crate::scalar::Scalar;
use crate::shape::{checked_size, Shape};

/// An evaluated array from little-endian bytes laid out row-major.
pub fn from_bytes(op: &str, bytes: &[u8], shape: Shape, dtype: Dtype) -> Result<Array> {
    let n = checked_size(op, &shape)?;
    let nbytes = n
        .checked_mul(dtype.size())
        .ok_or_else(|| Error::overflow(op))?;
    if bytes.len() != nbytes {
        return Err(Error::value(
            op,
            format!("Expected {nbytes} bytes of data, got {}.", bytes.len()),
        ));
    }
    let mut buf = memory::alloc(op, nbytes)?;
    buf.bytes_mut().copy_from_slice(bytes);
    let data = ArrayData::contiguous(buf, &shape);
    Ok(Array::from_data(shape, dtype, data))
}

/// Evaluated array from typed values.
pub fn from_slice<T: bytemuck::Pod>(values: &[T], shape: Shape, dtype: Dtype) -> Result<Array> {
    if std::mem::size_of::<T>() != dtype.size() {
        return Err(Error::type_err(
            "array",
            "Element type does not match dtype.",
        ));
    }
    from_bytes("array", bytemuck::cast_slice(values), shape, dtype)
}

/// A 0-d array holding `v` converted to `dtype`.
pub fn scalar(v: Scalar, dtype: Dtype) -> Result<Array> {
    from_bytes("array", &v.to_bytes(dtype), vec![], dtype)
}

pub fn full(shape: Shape, v: &Array, dtype: Option<Dtype>) -> Result<Array> {
    checked_size("full", &shape)?;
    let dtype = dtype.unwrap_or(v.dtype());
    let v = super::astype(v, dtype)?;
    let b = super::broadcast_to(&v, &shape)?;
    Ok(Array::pending(shape, dtype, Primitive::Copy, vec![b]))
}

pub fn full_scalar(shape: Shape, v: Scalar, dtype: Dtype) -> Result<Array> {
    full(shape, &scalar(v, dtype)?, Some(dtype))
}

pub fn zeros(shape: Shape, dtype: Dtype) -> Result<Array> {
    full_scalar(shape, Scalar::Int(0), dtype)
}

pub fn ones(shape: Shape, dtype: Dtype) -> Result<Array> {
    full_scalar(shape, Scalar::Int(1), dtype)
}

/// `arange(start, stop, step)`; the length follows NumPy: ceil((stop - start) / step).
pub fn arange(start: f64, stop: f64, step: f64, dtype: Dtype) -> Result<Array> {
    let op = "arange";
    if step == 0.0 {
        return Err(Error::value(
            op,
            "Cannot compute length of arange with step size 0.",
        ));
    }
    if !(start.is_finite() && stop.is_finite() && step.is_finite()) {
        return Err(Error::value(
            op,
            "Cannot compute length of arange with non-finite bounds.",
        ));
    }
    if dtype == Dtype::Bool {
        return Err(Error::value(op, "Cannot make an arange of booleans."));
    }
    let len = ((stop - start) / step).ceil();
    let len = if len.is_nan() || len < 0.0 { 0.0 } else { len };
    if len > crate::shape::MAX_SIZE as f64 {
        return Err(Error::overflow(op));
    }
    let n = len as usize;
    checked_size(op, &[n])?;
    Ok(Array::pending(
        vec![n],
        dtype,
        Primitive::Arange { start, step },
        vec![],
    ))
}

pub fn linspace(start: f64, stop: f64, num: i64, dtype: Dtype) -> Result<Array> {
    let op = "linspace";
    if num < 0 {
        return Err(Error::value(
            op,
            format!("num must be non-negative, got {num}."),
        ));
    }
    if !dtype.is_inexact() {
        // MLX computes in float then casts.
        let f = linspace(start, stop, num, Dtype::Float32)?;
        return super::astype(&f, dtype);
    }
    let n = num as usize;
    if n == 1 {
        return super::astype(
            &full_scalar(vec![1], Scalar::Float(start), Dtype::Float64)?,
            dtype,
        );
    }
    let step = if n > 1 {
        (stop - start) / (n - 1) as f64
    } else {
        0.0
    };
    // arange in float64 then cast keeps endpoints exact.
    let idx = Array::pending(
        vec![n],
        Dtype::Float64,
        Primitive::Arange {
            start: 0.0,
            step: 1.0,
        },
        vec![],
    );
    let s = scalar(Scalar::Float(step), Dtype::Float64)?;
    let b = scalar(Scalar::Float(start), Dtype::Float64)?;
    let mut r = super::add(&super::multiply(&idx, &s)?, &b)?;
    if n > 1 {
        // pin the last element to `stop`
        let is_last = super::equal(
            &idx,
            &scalar(Scalar::Float((n - 1) as f64), Dtype::Float64)?,
        )?;
        r = super::where_(&is_last, &scalar(Scalar::Float(stop), Dtype::Float64)?, &r)?;
    }
    super::astype(&r, dtype)
}

/// Ones on the k-th diagonal of an n×m matrix.
pub fn eye(n: i64, m: Option<i64>, k: i64, dtype: Dtype) -> Result<Array> {
    let op = "eye";
    let m = m.unwrap_or(n);
    if n < 0 || m < 0 {
        return Err(Error::value(op, "N and M must be non-negative."));
    }
    checked_size(op, &[n as usize, m as usize])?;
    let rows = arange(0.0, n as f64, 1.0, Dtype::Int64)?;
    let cols = arange(0.0, m as f64, 1.0, Dtype::Int64)?;
    let rows = super::reshape(&rows, &[n, 1])?;
    let ks = scalar(Scalar::Int(k), Dtype::Int64)?;
    let mask = super::equal(&super::subtract(&cols, &rows)?, &ks)?;
    super::astype(&mask, dtype)
}

/// Lower-triangular ones (`j <= i + k`).
pub fn tri(n: i64, m: Option<i64>, k: i64, dtype: Dtype) -> Result<Array> {
    let op = "tri";
    let m = m.unwrap_or(n);
    if n < 0 || m < 0 {
        return Err(Error::value(op, "N and M must be non-negative."));
    }
    checked_size(op, &[n as usize, m as usize])?;
    let rows = super::reshape(&arange(0.0, n as f64, 1.0, Dtype::Int64)?, &[n, 1])?;
    let cols = arange(0.0, m as f64, 1.0, Dtype::Int64)?;
    let ks = scalar(Scalar::Int(k), Dtype::Int64)?;
    let mask = super::less_equal(&cols, &super::add(&rows, &ks)?)?;
    super::astype(&mask, dtype)
}
