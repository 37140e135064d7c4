//! `gather_qmm`: `quantized_matmul` with matrix-level gather, as one `GatherQmm` node
//! that reads the picked weight matrices in place (a mixture-of-experts layer multiplies
//! each token by its experts without copying them). The indices are values, so they
//! are checked by the kernels, which fail with an IndexError before reading anything.

use crate::array::Array;
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::ops::quantized::{check_x, result_dtype};
use crate::ops::{astype, broadcast_to, reshape};
use crate::primitive::{Primitive, QuantSpec};
use crate::shape::{broadcast_shapes, Shape};

/// The operands of a `GatherQmm` node, each flattened to one batch axis.
pub(crate) struct Flat {
    /// x (Bx, M, K) in the result dtype.
    pub x: Array,
    /// w (E, R, packed), scales (E, R, groups) [, biases (E, R, groups)].
    pub params: Vec<Array>,
    /// int64 (Nb,) indices into x's and w's batch.
    pub lhs: Array,
    pub rhs: Array,
}

/// `a` with all but its last two axes merged into one.
fn batch_flat(a: &Array) -> Result<Array> {
    let nd = a.ndim();
    let b: usize = a.shape()[..nd - 2].iter().product();
    let s = &a.shape()[nd - 2..];
    reshape(a, &[b as i64, s[0] as i64, s[1] as i64])
}

/// The node over flattened operands: (Nb, M, N) with N from w's rows (`transpose`) or
/// unpacked width.
pub(crate) fn node(f: Flat, n: usize, transpose: bool, spec: QuantSpec) -> Result<Array> {
    let (nb, m) = (f.lhs.shape()[0], f.x.shape()[1]);
    let d = f.x.dtype();
    let mut inputs = vec![f.x];
    inputs.extend(f.params);
    inputs.extend([f.lhs, f.rhs]);
    Ok(Array::pending(
        vec![nb, m, n],
        d,
        Primitive::GatherQmm { spec, transpose },
        inputs,
    ))
}

/// `x[lhs[i]] @ dequantize(w[rhs[i]]).T` (`transpose`) or `@ dequantize(w[rhs[i]])` for
/// every position i of the broadcast indices, which index the flattened batch axes
/// (all but the last two) of x (.., M, K) and w (.., R, packed). The result is
/// `broadcast(lhs, rhs).shape ++ (M, N)`. Negative indices count from the end.
#[allow(clippy::too_many_arguments)]
pub fn gather_qmm(
    x: &Array,
    w: &Array,
    scales: &Array,
    biases: Option<&Array>,
    lhs: &Array,
    rhs: &Array,
    transpose: bool,
    s: QuantSpec,
) -> Result<Array> {
    let op = "gather_qmm";
    let (_, n) = check_x(op, x, 2, w, scales, biases, transpose, &s)?;
    for (i, what) in [(lhs, "lhs_indices"), (rhs, "rhs_indices")] {
        if !i.dtype().is_integer() {
            return Err(Error::value(
                op,
                format!("{what} must be integral, got {}.", i.dtype()),
            ));
        }
    }
    let batch: Shape = broadcast_shapes(op, lhs.shape(), rhs.shape())?;
    let nb: usize = batch.iter().product();
    let flat_index = |i: &Array| -> Result<Array> {
        reshape(
            &broadcast_to(&astype(i, Dtype::Int64)?, &batch)?,
            &[nb as i64],
        )
    };
    let d = result_dtype(op, x.dtype(), scales.dtype(), s.mode)?;
    let x3 = batch_flat(&astype(x, d)?)?;
    let mut params = vec![batch_flat(w)?, batch_flat(scales)?];
    if let Some(b) = biases {
        params.push(batch_flat(b)?);
    }
    if nb > 0 && (x3.shape()[0] == 0 || params[0].shape()[0] == 0) {
        return Err(Error::index(op, "Cannot index into an axis of size 0."));
    }
    let m = x3.shape()[1];
    let f = Flat {
        x: x3,
        params,
        lhs: flat_index(lhs)?,
        rhs: flat_index(rhs)?,
    };
    let out = node(f, n, transpose, s)?;
    let mut shape: Vec<i64> = batch.iter().map(|&v| v as i64).collect();
    shape.extend([m as i64, n as i64]);
    reshape(&out, &shape)
}
