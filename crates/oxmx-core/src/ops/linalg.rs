//! Matrix products: matmul (batched, broadcast) and the ops built on it.

use super::creation::scalar;
use super::elementwise::*;
use super::reduce::sum;
use super::shape_ops::*;
use crate::array::Array;
use crate::dtype::promote;
use crate::error::{Error, Result};
use crate::primitive::Primitive;
use crate::scalar::Scalar;
use crate::shape::{broadcast_shapes, fmt_shape, normalize_axis, Shape};

pub fn matmul(a: &Array, b: &Array) -> Result<Array> {
    let op = "matmul";
    if a.ndim() == 0 || b.ndim() == 0 {
        return Err(Error::value(
            op,
            "Got 0 dimension input. Inputs must have at least one dimension.",
        ));
    }
    let t = promote(a.dtype(), b.dtype());
    if !t.is_inexact() {
        return Err(Error::value(op, format!("Only real floating point types are supported but {t} was provided which results in an integer or boolean output.")));
    }
    let a1 = a.ndim() == 1;
    let b1 = b.ndim() == 1;
    let a2 = if a1 {
        reshape_to(a, vec![1, a.shape()[0]])?
    } else {
        a.clone()
    };
    let b2 = if b1 {
        reshape_to(b, vec![b.shape()[0], 1])?
    } else {
        b.clone()
    };
    let (m, k) = (a2.shape()[a2.ndim() - 2], a2.shape()[a2.ndim() - 1]);
    let (k2, n) = (b2.shape()[b2.ndim() - 2], b2.shape()[b2.ndim() - 1]);
    if k != k2 {
        return Err(Error::value(
            op,
            format!("Last dimension of first input with shape {} must match second to last dimension of second input with shape {}.", fmt_shape(a.shape()), fmt_shape(b.shape())),
        ));
    }
    let batch = broadcast_shapes(
        op,
        &a2.shape()[..a2.ndim() - 2],
        &b2.shape()[..b2.ndim() - 2],
    )?;
    let mut sa: Shape = batch.clone();
    sa.extend([m, k]);
    let mut sb: Shape = batch.clone();
    sb.extend([k, n]);
    let mut so: Shape = batch.clone();
    so.extend([m, n]);
    crate::shape::checked_size(op, &so)?;
    let r = if b2.ndim() == 2 && a2.ndim() > 2 {
        // A matrix applied to a stack (x @ W in every layer): one product with the
        // stack's rows folded together, not one small product per batch element.
        let rows = batch
            .iter()
            .try_fold(m, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| Error::overflow(op))?;
        let a_flat = reshape_to(&astype(&a2, t)?, vec![rows, k])?;
        let flat = Array::pending(
            vec![rows, n],
            t,
            Primitive::Matmul,
            vec![a_flat, astype(&b2, t)?],
        );
        reshape_to(&flat, so.clone())?
    } else {
        let a3 = broadcast_to(&astype(&a2, t)?, &sa)?;
        let b3 = broadcast_to(&astype(&b2, t)?, &sb)?;
        Array::pending(so.clone(), t, Primitive::Matmul, vec![a3, b3])
    };
    let mut out = so;
    if b1 {
        out.pop();
    }
    if a1 {
        let l = out.len();
        out.remove(l - if b1 { 1 } else { 2 });
    }
    reshape_to(&r, out)
}

/// `beta * c + alpha * (a @ b)`.
pub fn addmm(c: &Array, a: &Array, b: &Array, alpha: f64, beta: f64) -> Result<Array> {
    let p = matmul(a, b)?;
    if broadcast_shapes("addmm", c.shape(), p.shape())?.as_slice() != p.shape() {
        return Err(Error::value(
            "addmm",
            "input c must broadcast to the output shape",
        ));
    }
    let d = promote(p.dtype(), c.dtype());
    let p = if alpha != 1.0 {
        multiply(&p, &scalar(Scalar::Float(alpha), d)?)?
    } else {
        p
    };
    let c = if beta != 1.0 {
        multiply(c, &scalar(Scalar::Float(beta), d)?)?
    } else {
        c.clone()
    };
    add(&c, &p)
}

pub fn inner(a: &Array, b: &Array) -> Result<Array> {
    let op = "inner";
    if a.ndim() == 0 || b.ndim() == 0 {
        return multiply(a, b);
    }
    let (ka, kb) = (a.shape()[a.ndim() - 1], b.shape()[b.ndim() - 1]);
    if ka != kb {
        return Err(Error::value(
            op,
            format!("a.shape[-1] ({ka}) must match b.shape[-1] ({kb})."),
        ));
    }
    tensordot_axes(a, b, &[a.ndim() as i64 - 1], &[b.ndim() as i64 - 1])
}

pub fn outer(a: &Array, b: &Array) -> Result<Array> {
    let a = reshape_to(a, vec![a.size(), 1])?;
    let b = reshape_to(b, vec![1, b.size()])?;
    multiply(&a, &b)
}

/// Contract `axes_a` of `a` with `axes_b` of `b`.
pub fn tensordot_axes(a: &Array, b: &Array, axes_a: &[i64], axes_b: &[i64]) -> Result<Array> {
    let op = "tensordot";
    if axes_a.len() != axes_b.len() {
        return Err(Error::value(
            op,
            "Both axes lists must have the same length.",
        ));
    }
    let xa = crate::shape::normalize_axes(op, axes_a, a.ndim())?;
    let xb = crate::shape::normalize_axes(op, axes_b, b.ndim())?;
    for (&i, &j) in xa.iter().zip(&xb) {
        if a.shape()[i] != b.shape()[j] {
            return Err(Error::value(op, "Shape mismatch along contracted axes."));
        }
    }
    let free_a: Vec<usize> = (0..a.ndim()).filter(|i| !xa.contains(i)).collect();
    let free_b: Vec<usize> = (0..b.ndim()).filter(|i| !xb.contains(i)).collect();
    let perm_a: Vec<i64> = free_a.iter().chain(xa.iter()).map(|&x| x as i64).collect();
    let perm_b: Vec<i64> = xb.iter().chain(free_b.iter()).map(|&x| x as i64).collect();
    let m: usize = free_a.iter().map(|&i| a.shape()[i]).product();
    let k: usize = xa.iter().map(|&i| a.shape()[i]).product();
    let n: usize = free_b.iter().map(|&i| b.shape()[i]).product();
    let at = reshape_to(
        &contiguous_if_needed(&transpose(a, Some(&perm_a))?)?,
        vec![m, k],
    )?;
    let bt = reshape_to(
        &contiguous_if_needed(&transpose(b, Some(&perm_b))?)?,
        vec![k, n],
    )?;
    let t = promote(a.dtype(), b.dtype());
    let r = if t.is_inexact() {
        matmul(&at, &bt)?
    } else {
        // integer contraction through broadcasting
        sum(
            &multiply(
                &reshape_to(&at, vec![m, k, 1])?,
                &reshape_to(&bt, vec![1, k, n])?,
            )?,
            Some(&[1]),
            false,
        )?
    };
    let out: Shape = free_a
        .iter()
        .map(|&i| a.shape()[i])
        .chain(free_b.iter().map(|&i| b.shape()[i]))
        .collect();
    reshape_to(&r, out)
}

fn contiguous_if_needed(a: &Array) -> Result<Array> {
    Ok(a.clone())
}

pub fn tensordot(a: &Array, b: &Array, n: i64) -> Result<Array> {
    let op = "tensordot";
    if n < 0 || n as usize > a.ndim() || n as usize > b.ndim() {
        return Err(Error::value(
            op,
            "axes must be between 0 and the arrays' dimensions.",
        ));
    }
    let n = n as usize;
    let xa: Vec<i64> = (a.ndim() - n..a.ndim()).map(|x| x as i64).collect();
    let xb: Vec<i64> = (0..n).map(|x| x as i64).collect();
    tensordot_axes(a, b, &xa, &xb)
}

/// `sum(conj(a) * b, axis)` with broadcasting.
pub fn vecdot(a: &Array, b: &Array, axis: i64) -> Result<Array> {
    let op = "vecdot";
    if a.ndim() == 0 || b.ndim() == 0 {
        return Err(Error::value(op, "inputs must be at least 1D."));
    }
    let shape = broadcast_shapes(op, a.shape(), b.shape())?;
    let ax = normalize_axis(op, axis, shape.len())?;
    sum(&multiply(&conjugate(a)?, b)?, Some(&[ax as i64]), false)
}
