//! Rules for `GatherQmm` (inputs x, w, scales [, biases], lhs, rhs; see
//! `ops/quantized_gather.rs`). The x cotangent is a `GatherQmm` of the output cotangent
//! scattered back by `lhs`; the scale and bias cotangents, rarely needed, are composed
//! from gathered copies of the picked matrices and scattered back by `rhs`.

use super::quantized::{group_sum, lead, levels, t};
use super::{add, cast_like, mul};
use crate::array::Array;
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::ops;
use crate::ops::quantized::dequantize;
use crate::ops::quantized_gather::{node, Flat};
use crate::primitive::{BinaryOp, QuantMode, QuantSpec, ScatterMode};
use crate::scalar::Scalar;

/// (x, params, lhs, rhs) of a node's inputs.
fn split(inputs: &[Array]) -> Result<(&Array, &[Array], &Array, &Array)> {
    match inputs {
        [x, params @ .., lhs, rhs] if params.len() >= 2 => Ok((x, params, lhs, rhs)),
        _ => Err(Error::runtime("gather_qmm", "malformed node inputs")),
    }
}

/// The output width N of a node over `w` (E, R, packed).
fn out_cols(out_shape: &[usize]) -> usize {
    out_shape.last().copied().unwrap_or(0)
}

/// `a` with its `idx`-picked matrices along axis 0.
fn pick(a: &Array, idx: &Array) -> Result<Array> {
    ops::take(a, idx, Some(0))
}

/// `zeros(like)` with `upd[i]` added at `like[idx[i]]`.
fn scatter_add(like: &Array, idx: &Array, upd: &Array) -> Result<Array> {
    let z = ops::zeros(like.shape().to_vec(), upd.dtype())?;
    ops::scatter(&z, std::slice::from_ref(idx), upd, &[0], ScatterMode::Add)
}

fn arange_i64(n: usize) -> Result<Array> {
    ops::arange(0.0, n as f64, 1.0, Dtype::Int64)
}

pub fn vjp(
    s: &QuantSpec,
    transpose: bool,
    inputs: &[Array],
    g: &Array,
) -> Result<Vec<Option<Array>>> {
    let (x, params, lhs, rhs) = split(inputs)?;
    let (w, sc, b) = (&params[0], &params[1], params.get(2));
    let k = x.shape()[2];
    let nb = g.shape()[0];
    // each product's x cotangent, then summed into the x matrix it came from
    let per = node(
        Flat {
            x: ops::astype(g, x.dtype())?,
            params: params.to_vec(),
            lhs: arange_i64(nb)?,
            rhs: rhs.clone(),
        },
        k,
        !transpose,
        *s,
    )?;
    let mut out = vec![cast_like(scatter_add(x, lhs, &per)?, x)?, None];
    if s.mode == QuantMode::Affine {
        let gf = ops::astype(g, Dtype::Float32)?;
        let xf = ops::astype(&pick(x, lhs)?, Dtype::Float32)?;
        let dw = if transpose {
            ops::matmul(&t(&gf)?, &xf)?
        } else {
            ops::matmul(&t(&xf)?, &gf)?
        };
        let (wg, sg) = (pick(w, rhs)?, pick(sc, rhs)?);
        let ds = group_sum(&mul(&dw, &levels(&wg, &sg, s)?)?, s)?;
        out.push(cast_like(scatter_add(sc, rhs, &ds)?, sc)?);
        if let Some(b) = b {
            out.push(cast_like(scatter_add(b, rhs, &group_sum(&dw, s)?)?, b)?);
        }
    } else {
        out.push(None);
    }
    out.extend([None, None]);
    Ok(out)
}

pub fn jvp(
    s: &QuantSpec,
    transpose: bool,
    inputs: &[Array],
    out: &Array,
    tan: &[Option<Array>],
) -> Result<Option<Array>> {
    let (x, params, lhs, rhs) = split(inputs)?;
    let mut acc = match tan.first().and_then(Option::as_ref) {
        Some(tx) => Some(node(
            Flat {
                x: ops::astype(tx, x.dtype())?,
                params: params.to_vec(),
                lhs: lhs.clone(),
                rhs: rhs.clone(),
            },
            out_cols(out.shape()),
            transpose,
            *s,
        )?),
        None => None,
    };
    let ts = tan.get(2).and_then(Option::as_ref);
    let tb = if params.len() > 2 {
        tan.get(3).and_then(Option::as_ref)
    } else {
        None
    };
    if s.mode == QuantMode::Affine && (ts.is_some() || tb.is_some()) {
        // W is linear in (scales, biases): its tangent is a dequantize of the tangents.
        let sc = &params[1];
        let zeros = ops::zeros(sc.shape().to_vec(), sc.dtype())?;
        let ts = pick(ts.unwrap_or(&zeros), rhs)?;
        let tb = pick(tb.unwrap_or(&zeros), rhs)?;
        let dw = dequantize(&pick(&params[0], rhs)?, &ts, Some(&tb), *s, Some(x.dtype()))?;
        let xg = pick(x, lhs)?;
        let y = if transpose {
            ops::matmul(&xg, &t(&dw)?)?
        } else {
            ops::matmul(&xg, &dw)?
        };
        acc = Some(match acc {
            Some(a) => add(&a, &y)?,
            None => y,
        });
    }
    Ok(acc)
}

/// Indices for a batch of `v` problems laid end to end: `idx` (batched along `axis`, or
/// shared) wrapped into [0, dim), plus `dim * j` for problem j when the operand it
/// indexes is batched too (`stacked`). An index outside [0, dim) becomes one that
/// is still outside the stacked operand, so the kernels still reject it.
fn stacked_indices(
    idx: &Array,
    axis: Option<usize>,
    v: usize,
    dim: usize,
    stacked: bool,
) -> Result<Array> {
    let nb = idx.shape().last().copied().unwrap_or(0);
    let i = ops::broadcast_to(&lead(idx, axis)?, &[v, nb])?;
    if !stacked {
        return ops::reshape(&i, &[(v * nb) as i64]);
    }
    let d = ops::scalar(Scalar::Int(dim as i64), Dtype::Int64)?;
    let zero = ops::scalar(Scalar::Int(0), Dtype::Int64)?;
    let wrapped = ops::where_(&ops::binary(BinaryOp::Less, &i, &zero)?, &add(&i, &d)?, &i)?;
    let ok = ops::binary(
        BinaryOp::LogicalAnd,
        &ops::binary(BinaryOp::GreaterEqual, &wrapped, &zero)?,
        &ops::binary(BinaryOp::Less, &wrapped, &d)?,
    )?;
    let total = ops::scalar(Scalar::Int((v * dim) as i64), Dtype::Int64)?;
    let base = mul(&ops::reshape(&arange_i64(v)?, &[v as i64, 1])?, &d)?;
    let shifted = ops::where_(&ok, &add(&wrapped, &base)?, &total)?;
    ops::reshape(&shifted, &[(v * nb) as i64])
}

/// `a` batched along `axis` (or broadcast over `v` problems), stacked on its first axis.
fn stack(a: &Array, axis: Option<usize>, v: usize) -> Result<Array> {
    let a = lead(a, axis)?;
    let mut shape = a.shape().to_vec();
    shape[0] = v;
    let a = ops::broadcast_to(&a, &shape)?;
    let mut flat: Vec<i64> = vec![(v * shape[1]) as i64];
    flat.extend(shape[2..].iter().map(|&d| d as i64));
    ops::reshape(&a, &flat)
}

pub fn vmap(
    s: &QuantSpec,
    transpose: bool,
    inputs: &[Array],
    axes: &[Option<usize>],
    v: usize,
    out: &Array,
) -> Result<(Array, Option<usize>)> {
    let (x, params, lhs, rhs) = split(inputs)?;
    let np = params.len();
    let ax = |i: usize| axes.get(i).copied().flatten();
    let x_batched = ax(0).is_some();
    let p_batched = (1..=np).any(|i| ax(i).is_some());
    // matrix counts of the unbatched operands (the batch axis is not one of them)
    let count = |a: &Array, axis: Option<usize>| -> usize {
        let mut shape = a.shape().to_vec();
        if let Some(i) = axis.filter(|&i| i < shape.len()) {
            shape.remove(i);
        }
        shape.first().copied().unwrap_or(0)
    };
    let (bx, e) = (count(x, ax(0)), count(&params[0], ax(1)));
    let xs = if x_batched {
        stack(x, ax(0), v)?
    } else {
        x.clone()
    };
    let ps = if p_batched {
        params
            .iter()
            .enumerate()
            .map(|(j, p)| stack(p, ax(j + 1), v))
            .collect::<Result<Vec<_>>>()?
    } else {
        params.to_vec()
    };
    let f = Flat {
        x: xs,
        params: ps,
        lhs: stacked_indices(lhs, ax(np + 1), v, bx, x_batched)?,
        rhs: stacked_indices(rhs, ax(np + 2), v, e, p_batched)?,
    };
    let r = node(f, out_cols(out.shape()), transpose, *s)?;
    let mut shape = vec![v as i64];
    shape.extend(out.shape().iter().map(|&d| d as i64));
    Ok((ops::reshape(&r, &shape)?, Some(0)))
}
