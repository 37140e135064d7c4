//! Rules for gather and scatter primitives. Indices never get gradients. Gradients of
//! scatters exist for `set` and `add` (as in MLX); the others raise a clear error.

use super::{cast_like, same_prim, tangent_or_zeros, zeros_like};
use crate::array::Array;
use crate::error::{Error, Result};
use crate::ops;
use crate::primitive::{Primitive, ScatterMode};

fn unsupported(mode: ScatterMode) -> Error {
    Error::value(
        "vjp",
        format!("Gradients of scatter with mode {mode:?} are not supported (only set and add)."),
    )
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
    g: &Array,
) -> Result<Vec<Option<Array>>> {
    let (src, idx, vals) = (&inputs[0], &inputs[1], &inputs[2]);
    if !src.dtype().is_inexact() {
        return Ok(vec![None, None, None]);
    }
    let ax = Some(axis as i64);
    let dsrc = match mode {
        ScatterMode::Set => {
            ops::scatter_along_axis(g, idx, &zeros_like(vals)?, ax, ScatterMode::Set)?
        }
        ScatterMode::Add => g.clone(),
        m => return Err(unsupported(m)),
    };
    let dvals = ops::take_along_axis(g, idx, ax)?;
    Ok(vec![cast_like(dsrc, src)?, None, cast_like(dvals, vals)?])
}

pub fn vjp_scatter(
    axes: &[usize],
    mode: ScatterMode,
    inputs: &[Array],
    g: &Array,
) -> Result<Vec<Option<Array>>> {
    let (src, upd) = (&inputs[0], &inputs[1]);
    let idx = &inputs[2..];
    let mut out = vec![None; inputs.len()];
    if !src.dtype().is_inexact() {
        return Ok(out);
    }
    out[0] = match mode {
        ScatterMode::Set => cast_like(
            ops::scatter(g, idx, &zeros_like(upd)?, axes, ScatterMode::Set)?,
            src,
        )?,
        ScatterMode::Add => cast_like(g.clone(), src)?,
        m => return Err(unsupported(m)),
    };
    out[1] = cast_like(ops::gather(g, idx, axes)?, upd)?;
    Ok(out)
}

/// Forward mode for scatters: the same scatter over the tangents of `src` and of the
/// values (`set`/`add` are linear in both).
pub fn jvp_scatter(
    prim: &Primitive,
    mode: ScatterMode,
    src_i: usize,
    upd_i: usize,
    inputs: &[Array],
    out: &Array,
    t: &[Option<Array>],
) -> Result<Option<Array>> {
    if !matches!(mode, ScatterMode::Set | ScatterMode::Add) {
        return Err(unsupported(mode));
    }
    let mut ins = inputs.to_vec();
    for i in [src_i, upd_i] {
        ins[i] = tangent_or_zeros(&inputs[i], t.get(i).and_then(Option::as_ref))?;
    }
    Ok(Some(same_prim(prim, out, ins)))
}
