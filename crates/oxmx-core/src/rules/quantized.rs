//! Rules for `Dequantize` and `QuantizedMatmul`. The packed weights are integers and get
//! no gradient; affine scales and biases do (the layer is linear in them per group).

use super::{add, cast_like, mul};
use crate::array::Array;
use crate::dtype::Dtype;
use crate::error::Result;
use crate::ops;
use crate::ops::quantized::{dequantize, quantized_matmul};
use crate::primitive::{QuantMode, QuantSpec};

pub(super) fn t(x: &Array) -> Result<Array> {
    ops::swapaxes(x, -1, -2)
}

fn params(inputs: &[Array]) -> (&Array, &Array, &Array, Option<&Array>) {
    (&inputs[0], &inputs[1], &inputs[2], inputs.get(3))
}

/// The integer values of `w` as float32 (a dequantize with unit scales and no bias).
pub(super) fn levels(w: &Array, scales: &Array, s: &QuantSpec) -> Result<Array> {
    let ones = ops::ones(scales.shape().to_vec(), Dtype::Float32)?;
    let zeros = ops::zeros(scales.shape().to_vec(), Dtype::Float32)?;
    dequantize(w, &ones, Some(&zeros), *s, Some(Dtype::Float32))
}

/// Sums of `dw` (.., R, C) over each quantization group: (.., R, C / group).
pub(super) fn group_sum(dw: &Array, s: &QuantSpec) -> Result<Array> {
    let mut shape: Vec<i64> = dw.shape().iter().map(|&d| d as i64).collect();
    let c = shape.pop().unwrap_or(0);
    shape.extend([c / s.group_size as i64, s.group_size as i64]);
    ops::sum(&ops::reshape(dw, &shape)?, Some(&[-1]), false)
}

/// Cotangents of (x, w, scales[, biases]) for `y = x @ W^T` (`transpose`) or `x @ W`.
pub fn vjp_qmm(
    s: &QuantSpec,
    transpose: bool,
    inputs: &[Array],
    g: &Array,
) -> Result<Vec<Option<Array>>> {
    let (x, w, sc, b) = params(inputs);
    let dx = cast_like(quantized_matmul(g, w, sc, b, !transpose, *s)?, x)?;
    let mut out = vec![dx, None];
    if s.mode == QuantMode::Affine {
        let gf = ops::astype(g, Dtype::Float32)?;
        let xf = ops::astype(x, Dtype::Float32)?;
        // Gradient of the dense matrix, (.., R, C) like the unpacked w.
        let dw = if transpose {
            ops::matmul(&t(&gf)?, &xf)?
        } else {
            ops::matmul(&t(&xf)?, &gf)?
        };
        let ds = group_sum(&mul(&dw, &levels(w, sc, s)?)?, s)?;
        out.push(cast_like(ds, sc)?);
        out.push(match b {
            Some(b) => cast_like(group_sum(&dw, s)?, b)?,
            None => None,
        });
    } else {
        out.push(None);
    }
    out.truncate(inputs.len());
    Ok(out)
}

pub fn jvp_qmm(
    s: &QuantSpec,
    transpose: bool,
    inputs: &[Array],
    tan: &[Option<Array>],
) -> Result<Option<Array>> {
    let (x, w, sc, b) = params(inputs);
    let mut acc = match tan.first().and_then(Option::as_ref) {
        Some(tx) => Some(quantized_matmul(tx, w, sc, b, transpose, *s)?),
        None => None,
    };
    let ts = tan.get(2).and_then(Option::as_ref);
    let tb = tan.get(3).and_then(Option::as_ref);
    if s.mode == QuantMode::Affine && (ts.is_some() || tb.is_some()) {
        // W is linear in (scales, biases): its tangent is a dequantize of the tangents.
        let zeros = ops::zeros(sc.shape().to_vec(), sc.dtype())?;
        let ts = ts.cloned().unwrap_or_else(|| zeros.clone());
        let tb = tb.cloned().unwrap_or(zeros);
        let dw = dequantize(w, &ts, Some(&tb), *s, Some(x.dtype()))?;
        let y = if transpose {
            ops::matmul(x, &t(&dw)?)?
        } else {
            ops::matmul(x, &dw)?
        };
        acc = Some(match acc {
            Some(a) => add(&a, &y)?,
            None => y,
        });
    }
    Ok(acc)
}

pub fn vjp_dequantize(s: &QuantSpec, inputs: &[Array], g: &Array) -> Result<Vec<Option<Array>>> {
    let (w, sc) = (&inputs[0], &inputs[1]);
    let mut out = vec![None, None];
    if s.mode == QuantMode::Affine {
        let gf = ops::astype(g, Dtype::Float32)?;
        out[1] = cast_like(group_sum(&mul(&gf, &levels(w, sc, s)?)?, s)?, sc)?;
        if let Some(b) = inputs.get(2) {
            out.push(cast_like(group_sum(&gf, s)?, b)?);
        }
    }
    out.truncate(inputs.len());
    Ok(out)
}

pub fn jvp_dequantize(
    s: &QuantSpec,
    inputs: &[Array],
    out: &Array,
    tan: &[Option<Array>],
) -> Result<Option<Array>> {
    let (w, sc) = (&inputs[0], &inputs[1]);
    let ts = tan.get(1).and_then(Option::as_ref);
    let tb = tan.get(2).and_then(Option::as_ref);
    if s.mode != QuantMode::Affine || (ts.is_none() && tb.is_none()) {
        return Ok(None);
    }
    let zeros = ops::zeros(sc.shape().to_vec(), sc.dtype())?;
    let ts = ts.cloned().unwrap_or_else(|| zeros.clone());
    let tb = tb.cloned().unwrap_or(zeros);
    Ok(Some(dequantize(w, &ts, Some(&tb), *s, Some(out.dtype()))?))
}

/// Batch axis moved to the front, or a new leading axis of size 1 when unbatched (so
/// that it broadcasts against the batched inputs).
pub(super) fn lead(x: &Array, ax: Option<usize>) -> Result<Array> {
    match ax {
        Some(0) => Ok(x.clone()),
        Some(a) => ops::moveaxis(x, a as i64, 0),
        None => ops::expand_dims(x, &[0]),
    }
}

pub fn vmap_qmm(
    s: &QuantSpec,
    transpose: bool,
    inputs: &[Array],
    axes: &[Option<usize>],
    batch: usize,
) -> Result<(Array, Option<usize>)> {
    let params_batched = axes[1..].iter().any(Option::is_some);
    let x = if params_batched {
        lead(&inputs[0], axes[0])?
    } else {
        // Unbatched weights: the batch becomes more rows of the same product.
        match axes[0] {
            Some(a) => ops::moveaxis(&inputs[0], a as i64, 0)?,
            None => inputs[0].clone(),
        }
    };
    // w, scales and biases must keep equal leading shapes: an unbatched one is broadcast
    // over the batch (x broadcasts by itself in the op).
    let p = |i: usize| -> Result<Option<Array>> {
        match inputs.get(i) {
            Some(a) if params_batched => {
                let a = lead(a, axes[i])?;
                let mut shape = a.shape().to_vec();
                shape[0] = batch;
                Ok(Some(ops::broadcast_to(&a, &shape)?))
            }
            Some(a) => Ok(Some(a.clone())),
            None => Ok(None),
        }
    };
    let (w, sc, b) = (p(1)?, p(2)?, p(3)?);
    let (Some(w), Some(sc)) = (w, sc) else {
        return Err(crate::error::Error::runtime(
            "vmap",
            "quantized_matmul needs w and scales",
        ));
    };
    let r = quantized_matmul(&x, &w, &sc, b.as_ref(), transpose, *s)?;
    Ok((r, Some(0)))
}

pub fn vmap_dequantize(
    s: &QuantSpec,
    inputs: &[Array],
    axes: &[Option<usize>],
    batch: usize,
    out: &Array,
) -> Result<(Array, Option<usize>)> {
    let ins: Vec<Array> = inputs
        .iter()
        .zip(axes)
        .map(|(x, &a)| {
            let x = lead(x, a)?;
            let mut shape = x.shape().to_vec();
            shape[0] = batch;
            ops::broadcast_to(&x, &shape)
        })
        .collect::<Result<_>>()?;
    let r = dequantize(&ins[0], &ins[1], ins.get(2), *s, Some(out.dtype()))?;
    Ok((r, Some(0)))
}
