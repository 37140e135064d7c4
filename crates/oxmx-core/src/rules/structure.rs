//! Rules for shape and view primitives, concatenation and slice updates, and the
//! batching rules (vmap) of every primitive.

use super::{cast_like, same_prim, same_prim_batched, sum_to, tangent_or_zeros, zeros_like};
use crate::array::Array;
use crate::error::{Error, Result};
use crate::ops;
use crate::primitive::Primitive;
use crate::shape::Shape;

fn i64s(v: &[usize]) -> Vec<i64> {
    v.iter().map(|&d| d as i64).collect()
}

pub fn vjp_concatenate(axis: usize, inputs: &[Array], g: &Array) -> Result<Vec<Option<Array>>> {
    let mut out = Vec::with_capacity(inputs.len());
    let mut at = 0usize;
    for x in inputs {
        let n = x.shape()[axis];
        let p: Vec<(usize, usize, i64)> = g
            .shape()
            .iter()
            .enumerate()
            .map(|(i, &d)| if i == axis { (at, n, 1) } else { (0, d, 1) })
            .collect();
        out.push(cast_like(ops::slice_view(g, &p)?, x)?);
        at += n;
    }
    Ok(out)
}

pub fn jvp_concatenate(
    axis: usize,
    inputs: &[Array],
    t: &[Option<Array>],
) -> Result<Option<Array>> {
    let ts: Vec<Array> = inputs
        .iter()
        .enumerate()
        .map(|(i, x)| tangent_or_zeros(x, t.get(i).and_then(Option::as_ref)))
        .collect::<Result<_>>()?;
    Ok(Some(ops::concatenate(&ts, Some(axis as i64))?))
}

fn window(start: &[i64], count: &[i64], strides: &[i64]) -> Vec<(usize, usize, i64)> {
    start
        .iter()
        .zip(count)
        .zip(strides)
        .map(|((&s, &c), &st)| (s as usize, c as usize, st))
        .collect()
}

pub fn vjp_slice_update(
    start: &[i64],
    count: &[i64],
    strides: &[i64],
    inputs: &[Array],
    g: &Array,
) -> Result<Vec<Option<Array>>> {
    let (src, upd) = (&inputs[0], &inputs[1]);
    let w = window(start, count, strides);
    let dsrc = ops::slice_update_params(g, &zeros_like(upd)?, &w)?;
    let dupd = ops::slice_view(g, &w)?;
    Ok(vec![cast_like(dsrc, src)?, cast_like(dupd, upd)?])
}

pub fn vjp_reshape(inputs: &[Array], out: &Array, g: &Array) -> Result<Vec<Option<Array>>> {
    let x = &inputs[0];
    if x.dtype() != out.dtype() {
        return Ok(vec![None]); // a bit-level view of another dtype
    }
    Ok(vec![cast_like(ops::reshape(g, &i64s(x.shape()))?, x)?])
}

pub fn vjp_transpose(perm: &[usize], g: &Array) -> Result<Vec<Option<Array>>> {
    let mut inv = vec![0i64; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i as i64;
    }
    Ok(vec![Some(ops::transpose(g, Some(&inv))?)])
}

pub fn vjp_broadcast(inputs: &[Array], g: &Array) -> Result<Vec<Option<Array>>> {
    let x = &inputs[0];
    Ok(vec![cast_like(sum_to(g, x.shape())?, x)?])
}

pub fn vjp_slice(
    start: &[usize],
    step: &[i64],
    inputs: &[Array],
    out: &Array,
    g: &Array,
) -> Result<Vec<Option<Array>>> {
    let x = &inputs[0];
    let w: Vec<(usize, usize, i64)> = start
        .iter()
        .zip(out.shape())
        .zip(step)
        .map(|((&s, &n), &st)| (s, n, st))
        .collect();
    let r = ops::slice_update_params(&zeros_like(x)?, g, &w)?;
    Ok(vec![cast_like(r, x)?])
}

/// Flat positions (in the contiguous input) read by `as_strided`.
fn strided_positions(shape: &[usize], strides: &[i64], offset: usize) -> Result<Array> {
    let mut pos = ops::scalar(
        crate::scalar::Scalar::Int(offset as i64),
        crate::dtype::Dtype::Int64,
    )?;
    let nd = shape.len();
    for (i, (&d, &s)) in shape.iter().zip(strides).enumerate() {
        let r = ops::arange(0.0, d as f64, 1.0, crate::dtype::Dtype::Int64)?;
        let mut sh = vec![1i64; nd];
        sh[i] = d as i64;
        let r = ops::reshape(&r, &sh)?;
        let term = super::mul(
            &r,
            &ops::scalar(crate::scalar::Scalar::Int(s), crate::dtype::Dtype::Int64)?,
        )?;
        pos = super::add(&pos, &term)?;
    }
    ops::broadcast_to(&pos, shape)
}

pub fn vjp_as_strided(
    strides: &[i64],
    offset: usize,
    inputs: &[Array],
    out: &Array,
    g: &Array,
) -> Result<Vec<Option<Array>>> {
    let x = &inputs[0];
    let pos = strided_positions(out.shape(), strides, offset)?;
    let flat = ops::zeros(vec![x.size()], g.dtype())?;
    let r = ops::scatter(
        &flat,
        &[ops::reshape(&pos, &[-1])?],
        &ops::reshape(g, &[-1])?,
        &[0],
        crate::primitive::ScatterMode::Add,
    )?;
    Ok(vec![cast_like(ops::reshape(&r, &i64s(x.shape()))?, x)?])
}

// ---------------------------------------------------------------- batching

/// `x` with its batch axis (if any) moved to the front, or broadcast to have one.
fn front(x: &Array, ax: Option<usize>, batch: usize) -> Result<Array> {
    match ax {
        Some(0) => Ok(x.clone()),
        Some(a) => ops::moveaxis(x, a as i64, 0),
        None => {
            let mut shape: Shape = vec![batch];
            shape.extend_from_slice(x.shape());
            ops::broadcast_to(&ops::expand_dims(x, &[0])?, &shape)
        }
    }
}

/// Batch axis in front; unbatched inputs stay as they are (for broadcasting ops).
fn front_or_keep(x: &Array, ax: Option<usize>) -> Result<Array> {
    match ax {
        Some(0) | None => Ok(x.clone()),
        Some(a) => ops::moveaxis(x, a as i64, 0),
    }
}

/// Apply `prim` once per batch element and stack the results (for primitives without a
/// direct batching rule).
fn vmap_loop(
    prim: &Primitive,
    inputs: &[Array],
    axes: &[Option<usize>],
    batch: usize,
    out: &Array,
) -> Result<(Array, Option<usize>)> {
    let mut results = Vec::with_capacity(batch);
    for b in 0..batch {
        let ins: Vec<Array> = inputs
            .iter()
            .zip(axes)
            .map(|(x, ax)| match ax {
                Some(a) => {
                    let mut p: Vec<(usize, usize, i64)> =
                        x.shape().iter().map(|&d| (0, d, 1)).collect();
                    p[*a] = (b, 1, 1);
                    ops::squeeze(&ops::slice_view(x, &p)?, Some(&[*a as i64]))
                }
                None => Ok(x.clone()),
            })
            .collect::<Result<_>>()?;
        results.push(same_prim(prim, out, ins));
    }
    if batch == 0 {
        let mut shape = vec![0usize];
        shape.extend_from_slice(out.shape());
        return Ok((ops::zeros(shape, out.dtype())?, Some(0)));
    }
    Ok((ops::stack(&results, 0)?, Some(0)))
}

pub fn vmap(
    prim: &Primitive,
    inputs: &[Array],
    axes: &[Option<usize>],
    batch: usize,
    out: &Array,
) -> Result<(Array, Option<usize>)> {
    use Primitive::*;
    if axes.iter().all(Option::is_none) {
        return Ok((same_prim(prim, out, inputs.to_vec()), None));
    }
    let all_front = || -> Result<Vec<Array>> {
        inputs
            .iter()
            .zip(axes)
            .map(|(x, &a)| front(x, a, batch))
            .collect()
    };
    let r = match prim {
        // Elementwise and last-axis primitives: the same primitive with a leading batch.
        Unary(_)
        | AsType(_)
        | Copy
        | StopGradient
        | Softmax { .. }
        | Scan { .. }
        | Sort { .. }
        | RandomBits { .. }
        | Binary(_)
        | Select => same_prim_batched(prim, out, batch, all_front()?),
        Arange { .. } => return Err(Error::runtime("vmap", "arange has no inputs to batch.")),
        // the count over the same axes of one batch element: not batched
        NumberOfElements {
            axes: red,
            inverted,
            ddof,
        } => {
            let x = front(&inputs[0], axes[0], batch)?;
            let prim = NumberOfElements {
                axes: red.iter().map(|&a| a + 1).collect(),
                inverted: *inverted,
                ddof: *ddof,
            };
            return Ok((Array::pending(vec![], out.dtype(), prim, vec![x]), None));
        }
        Reduce { op, axes: red } => {
            let x = front(&inputs[0], axes[0], batch)?;
            let r: Vec<usize> = red.iter().map(|&a| a + 1).collect();
            same_prim_batched(&Reduce { op: *op, axes: r }, out, batch, vec![x])
        }
        ArgReduce { op, axis } => {
            let x = front(&inputs[0], axes[0], batch)?;
            same_prim_batched(
                &ArgReduce {
                    op: *op,
                    axis: axis + 1,
                },
                out,
                batch,
                vec![x],
            )
        }
        Matmul => {
            let a = front_or_keep(&inputs[0], axes[0])?;
            let b = front_or_keep(&inputs[1], axes[1])?;
            // An unbatched operand broadcasts over the batch (leading) dims.
            let (a, b) = match (axes[0], axes[1]) {
                (Some(_), None) => (a, ops::expand_dims(&b, &[0])?),
                (None, Some(_)) => (ops::expand_dims(&a, &[0])?, b),
                _ => (a, b),
            };
            return Ok((ops::matmul(&a, &b)?, Some(0)));
        }
        Concatenate { axis } => {
            same_prim_batched(&Concatenate { axis: axis + 1 }, out, batch, all_front()?)
        }
        SliceUpdate {
            start,
            count,
            strides,
        } => {
            let pre = |v: &[i64], first: i64| -> Vec<i64> {
                std::iter::once(first).chain(v.iter().copied()).collect()
            };
            let p = SliceUpdate {
                start: pre(start, 0),
                count: pre(count, batch as i64),
                strides: pre(strides, 1),
            };
            same_prim_batched(&p, out, batch, all_front()?)
        }
        GatherAxis { axis } => {
            same_prim_batched(&GatherAxis { axis: axis + 1 }, out, batch, all_front()?)
        }
        ScatterAxis { axis, mode } => same_prim_batched(
            &ScatterAxis {
                axis: axis + 1,
                mode: *mode,
            },
            out,
            batch,
            all_front()?,
        ),
        Gather { axes: gax } if axes[1..].iter().all(Option::is_none) => {
            // Only the source is batched: gather over the shifted axes; the batch dim
            // lands right after the index dims.
            let src = front(&inputs[0], axes[0], batch)?;
            let shifted: Vec<usize> = gax.iter().map(|&a| a + 1).collect();
            let r = ops::gather(&src, &inputs[1..], &shifted)?;
            let idx_nd = r.ndim() - (src.ndim() - gax.len());
            return Ok((r, Some(idx_nd)));
        }
        Scatter { axes: sax, mode } if axes[2..].iter().all(Option::is_none) => {
            // Batched source and/or updates, shared indices.
            let src = front(&inputs[0], axes[0], batch)?;
            let idx_nd = inputs[2].ndim();
            let upd = match axes[1] {
                Some(a) => ops::moveaxis(&inputs[1], a as i64, idx_nd as i64)?,
                None => {
                    let u = ops::expand_dims(&inputs[1], &[idx_nd as i64])?;
                    let mut s = u.shape().to_vec();
                    s[idx_nd] = batch;
                    ops::broadcast_to(&u, &s)?
                }
            };
            let shifted: Vec<usize> = sax.iter().map(|&a| a + 1).collect();
            let mut ins = vec![src, upd];
            ins.extend_from_slice(&inputs[2..]);
            same_prim_batched(
                &Scatter {
                    axes: shifted,
                    mode: *mode,
                },
                out,
                batch,
                ins,
            )
        }
        Collective { op, group } => {
            return super::distributed::vmap(*op, group, inputs, axes);
        }
        UserKernel(_) => {
            return Err(Error::unsupported(
                "cuda_kernel",
                "A custom CUDA kernel has no batching rule; wrap it in mx.custom_function with a vmap rule.",
            ))
        }
        Custom(_) => {
            return Err(Error::runtime(
                "vmap",
                "custom_function is batched by its own rule.",
            ))
        }
        Dequantize(_) | QuantizedMatmul { .. } | GatherQmm { .. } => {
            return Err(Error::runtime(
                "vmap",
                "quantized nodes are batched by rules/quantized.rs.",
            ))
        }
        Fused(_) => {
            return Err(Error::runtime(
                "vmap",
                "fused nodes are batched by rules/fused.rs.",
            ))
        }
        Gather { .. }
        | Scatter { .. }
        | AsStrided { .. }
        | Fast(_)
        | Linalg(_)
        | Fft { .. }
        | Conv { .. } => {
            return vmap_loop(prim, inputs, axes, batch, out)
        }
        Reshape { .. } => {
            let x = front(&inputs[0], axes[0], batch)?;
            let mut shape: Shape = vec![batch];
            shape.extend_from_slice(out.shape());
            let x = if x.dtype() == out.dtype() {
                ops::contiguous(&x)?
            } else {
                x
            };
            if x.dtype() != out.dtype() {
                return Ok((ops::view_dtype(&x, out.dtype())?, Some(0)));
            }
            return Ok((ops::reshape(&x, &i64s(&shape))?, Some(0)));
        }
        Transpose { perm } => {
            let x = front(&inputs[0], axes[0], batch)?;
            let p: Vec<i64> = std::iter::once(0)
                .chain(perm.iter().map(|&a| a as i64 + 1))
                .collect();
            return Ok((ops::transpose(&x, Some(&p))?, Some(0)));
        }
        Broadcast => {
            let x = front(&inputs[0], axes[0], batch)?;
            let in_nd = inputs[0].ndim() - usize::from(axes[0].is_some());
            let extra = out.ndim().saturating_sub(in_nd);
            let x = if extra > 0 {
                ops::expand_dims(&x, &(1..=extra as i64).collect::<Vec<_>>())?
            } else {
                x
            };
            let mut shape: Shape = vec![batch];
            shape.extend_from_slice(out.shape());
            return Ok((ops::broadcast_to(&x, &shape)?, Some(0)));
        }
        Slice { start, step } => {
            let x = front(&inputs[0], axes[0], batch)?;
            let p = Slice {
                start: std::iter::once(0).chain(start.iter().copied()).collect(),
                step: std::iter::once(1).chain(step.iter().copied()).collect(),
            };
            same_prim_batched(&p, out, batch, vec![x])
        }
    };
    Ok((r, Some(0)))
}
