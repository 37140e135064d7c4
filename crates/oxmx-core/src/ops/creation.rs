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
    arange_node(start, step, len as usize, dtype)
}

/// The arange node of `n` values `start + i * step` (also how an imported graph makes
/// one: the parameters are checked as `arange` checks them).
pub fn arange_node(start: f64, step: f64, n: usize, dtype: Dtype) -> Result<Array> {
    let op = "arange";
    if !(start.is_finite() && step.is_finite()) || dtype == Dtype::Bool || dtype.is_complex() {
        return Err(Error::value(
            op,
            format!("Invalid arange: start {start}, step {step}, dtype {dtype}."),
        ));
    }
    checked_size(op, &[n])?;
    Ok(Array::pending(
        vec![n],
        dtype,
        Primitive::Arange { start, step },
        vec![],
    ))
}

/// `num` evenly spaced values from `start` to `stop` (excluded when `endpoint` is false).
///
/// As MLX: the fraction `t = i / (num - 1)` (or `i / num`) is computed in float32
/// (float64 for a float64 result) and the value is `(1 - t) * start + t * stop`, then
/// cast to `dtype`; a single sample is `start` rounded to float32.
pub fn linspace(start: f64, stop: f64, num: i64, endpoint: bool, dtype: Dtype) -> Result<Array> {
    let op = "linspace";
    if num < 0 {
        return Err(Error::value(
            op,
            format!("number of samples, {num}, must be non-negative."),
        ));
    }
    let n = num as usize;
    if n == 1 {
        let first = scalar(Scalar::Float(start), Dtype::Float32)?;
        return super::astype(&super::reshape(&first, &[1])?, dtype);
    }
    let cd = if dtype == Dtype::Float64 {
        Dtype::Float64
    } else {
        Dtype::Float32
    };
    let steps = if endpoint { n.saturating_sub(1) } else { n }.max(1);
    let t = super::divide(
        &arange(0.0, n as f64, 1.0, cd)?,
        &scalar(Scalar::Float(steps as f64), cd)?,
    )?;
    let one_minus_t = super::subtract(&scalar(Scalar::Float(1.0), cd)?, &t)?;
    let r = super::add(
        &super::multiply(&one_minus_t, &scalar(Scalar::Float(start), cd)?)?,
        &super::multiply(&t, &scalar(Scalar::Float(stop), cd)?)?,
    )?;
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
