//! Rules for gather and scatter primitives. Indices never get gradients. Gradients of
//! scatters exist for `set`, `add`, `maximum` and `minimum` (as in MLX); `multiply`
//! raises a clear error (MLX has no rule for it either).
//!
//! For `maximum`/`minimum` the winner of each written element gets the cotangent: the
//! original value where the result still equals it, and every update equal to the
//! result written there. Ties are not split: each tied candidate gets the whole
//! cotangent (MLX's convention). The jvp is the transpose of that vjp.

use super::{cast_like, mul, same_prim, tangent_or_zeros, zeros_like};
use crate::array::Array;
use crate::error::{Error, Result};
use crate::ops;
use crate::primitive::{BinaryOp, Primitive, ScatterMode};

fn unsupported(op: &str, what: &str, mode: ScatterMode) -> Error {
    let name = match mode {
        ScatterMode::Multiply => "scatter_prod".to_string(),
        m => format!("scatter mode {m:?}"),
    };
    Error::runtime(op, format!("{what} not implemented for {name}."))
}

/// `x == y` as a 0/1 array of `x`'s dtype.
fn eq_mask(x: &Array, y: &Array) -> Result<Array> {
    ops::astype(&ops::binary(BinaryOp::Equal, x, y)?, x.dtype())
}

/// Cotangent of the original array of a max/min scatter: where the result kept it.
fn winner_src(src: &Array, out: &Array, g: &Array) -> Result<Array> {
    let keep = ops::binary(BinaryOp::Equal, out, src)?;
    ops::where_(&keep, g, &zeros_like(g)?)
}

pub fn vjp_gather(axes: &[usize], inputs: &[Array], g: &Array) -> Result<Vec<Option<Array>>> {
    let src = &inputs[0];
    let idx = &inputs[1..];
    let mut out = vec![None; inputs.len()];
    if src.dtype().is_inexact() {
        let z = zeros_like(src)?;
        out[0] = cast_like(ops::scatter(&z, idx, g, axes, ScatterMode::Add)?, src)?;
    }
    Ok(out)
}

pub fn vjp_gather_axis(axis: usize, inputs: &[Array], g: &Array) -> Result<Vec<Option<Array>>> {
    let (src, idx) = (&inputs[0], &inputs[1]);
    if !src.dtype().is_inexact() {
        return Ok(vec![None, None]);
    }
    let z = zeros_like(src)?;
    let r = ops::scatter_along_axis(&z, idx, g, Some(axis as i64), ScatterMode::Add)?;
    Ok(vec![cast_like(r, src)?, None])
}

pub fn vjp_scatter_axis(
    axis: usize,
    mode: ScatterMode,
    inputs: &[Array],
    out: &Array,
    g: &Array,
) -> Result<Vec<Option<Array>>> {
    let (src, idx, vals) = (&inputs[0], &inputs[1], &inputs[2]);
    if !src.dtype().is_inexact() {
        return Ok(vec![None, None, None]);
    }
    let ax = Some(axis as i64);
    let gv = ops::take_along_axis(g, idx, ax)?;
    let (dsrc, dvals) = match mode {
        ScatterMode::Set => (
            ops::scatter_along_axis(g, idx, &zeros_like(vals)?, ax, ScatterMode::Set)?,
            gv,
        ),
        ScatterMode::Add => (g.clone(), gv),
        ScatterMode::Maximum | ScatterMode::Minimum => {
            let won = eq_mask(&ops::take_along_axis(out, idx, ax)?, vals)?;
            (winner_src(src, out, g)?, mul(&gv, &won)?)
        }
        m => return Err(unsupported("scatter_axis", "VJP", m)),
    };
    Ok(vec![cast_like(dsrc, src)?, None, cast_like(dvals, vals)?])
}

pub fn vjp_scatter(
    axes: &[usize],
    mode: ScatterMode,
    inputs: &[Array],
    res: &Array,
    g: &Array,
) -> Result<Vec<Option<Array>>> {
    let (src, upd) = (&inputs[0], &inputs[1]);
    let idx = &inputs[2..];
    let mut out = vec![None; inputs.len()];
    if !src.dtype().is_inexact() {
        return Ok(out);
    }
    let gu = ops::gather(g, idx, axes)?;
    let (dsrc, dupd) = match mode {
        ScatterMode::Set => (
            ops::scatter(g, idx, &zeros_like(upd)?, axes, ScatterMode::Set)?,
            gu,
        ),
        ScatterMode::Add => (g.clone(), gu),
        ScatterMode::Maximum | ScatterMode::Minimum => {
            let won = eq_mask(&ops::gather(res, idx, axes)?, upd)?;
            (winner_src(src, res, g)?, mul(&gu, &won)?)
        }
        m => return Err(unsupported("scatter", "VJP", m)),
    };
    out[0] = cast_like(dsrc, src)?;
    out[1] = cast_like(dupd, upd)?;
    Ok(out)
}

/// Forward mode for scatters: the same scatter over the tangents of `src` and of the
/// values (`set`/`add` are linear in both); for `maximum`/`minimum` the transpose of
/// the vjp (the tangents of the winners, summed where several tie).
pub fn jvp_scatter(
    prim: &Primitive,
    mode: ScatterMode,
    src_i: usize,
    upd_i: usize,
    inputs: &[Array],
    out: &Array,
    t: &[Option<Array>],
) -> Result<Option<Array>> {
    let ts = tangent_or_zeros(&inputs[src_i], t.get(src_i).and_then(Option::as_ref))?;
    let tu = tangent_or_zeros(&inputs[upd_i], t.get(upd_i).and_then(Option::as_ref))?;
    let mut ins = inputs.to_vec();
    match mode {
        ScatterMode::Set | ScatterMode::Add => {
            ins[src_i] = ts;
            ins[upd_i] = tu;
        }
        ScatterMode::Maximum | ScatterMode::Minimum => {
            // Gather the result at the updates' positions with the matching gather.
            let gathered = match prim {
                Primitive::Scatter { axes, .. } => ops::gather(out, &inputs[2..], axes)?,
                Primitive::ScatterAxis { axis, .. } => {
                    ops::take_along_axis(out, &inputs[1], Some(*axis as i64))?
                }
                _ => return Err(Error::runtime("scatter", "Internal error: not a scatter.")),
            };
            let won = eq_mask(&gathered, &inputs[upd_i])?;
            ins[src_i] = zeros_like(out)?;
            ins[upd_i] = mul(&tu, &won)?;
            let add_prim = match prim {
                Primitive::Scatter { axes, .. } => Primitive::Scatter {
                    axes: axes.clone(),
                    mode: ScatterMode::Add,
                },
                Primitive::ScatterAxis { axis, .. } => Primitive::ScatterAxis {
                    axis: *axis,
                    mode: ScatterMode::Add,
                },
                _ => return Err(Error::runtime("scatter", "Internal error: not a scatter.")),
            };
            let from_upd = same_prim(&add_prim, out, ins);
            return Ok(Some(super::add(
                &winner_src(&inputs[src_i], out, &ts)?,
                &from_upd,
            )?));
        }
        m => {
            let op = if matches!(prim, Primitive::ScatterAxis { .. }) {
                "scatter_axis"
            } else {
                "scatter"
            };
            return Err(unsupported(op, "JVP", m));
        }
    }
    Ok(Some(same_prim(prim, out, ins)))
}
