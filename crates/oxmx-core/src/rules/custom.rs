//! Rules of `custom_function` outputs: the user's override when there is one, else the
//! rule of identity on the real output (so the function's own graph is used).

use super::zeros_like;
use crate::array::Array;
use crate::error::{Error, Result};
use crate::primitive::Custom;

fn split(c: &Custom, inputs: &[Array]) -> Result<(usize, usize)> {
    let n = c.n_primals;
    let k = n
        .checked_add(c.index)
        .filter(|&k| k < inputs.len())
        .ok_or_else(|| Error::runtime("custom_function", "missing input"))?;
    Ok((n, k))
}

/// A custom vjp may return a cotangent that broadcasts to its primal's shape (MLX
/// accepts these, e.g. shape `(1,)` for a scalar or `(1, 3)` for a `(4, 3)` primal):
/// leading size-1 axes beyond the primal's rank are dropped, then it is broadcast to
/// the primal's shape, so gradients always have their primal's shape.
fn fit_cotangent(g: Array, p: &Array) -> Result<Array> {
    if g.shape() == p.shape() {
        return Ok(g);
    }
    let extra = g.ndim().saturating_sub(p.ndim());
    let (lead, rest) = g.shape().split_at(extra);
    let fits = lead.iter().all(|&d| d == 1)
        && rest
            .iter()
            .rev()
            .zip(p.shape().iter().rev())
            .all(|(&a, &b)| a == b || a == 1);
    if !fits {
        return Err(Error::value(
            "custom_function",
            format!(
                "The custom vjp returned a cotangent of shape {:?}, which does not broadcast to its primal's shape {:?}.",
                g.shape(),
                p.shape()
            ),
        ));
    }
    let g = if extra > 0 {
        let kept: Vec<i64> = rest.iter().map(|&d| d as i64).collect();
        crate::ops::reshape(&g, &kept)?
    } else {
        g
    };
    crate::ops::broadcast_to(&g, p.shape())
}

pub fn vjp(c: &Custom, inputs: &[Array], cot: &Array) -> Result<Vec<Option<Array>>> {
    let (n, k) = split(c, inputs)?;
    let (primals, outputs) = inputs.split_at(n);
    let cots: Vec<Array> = outputs
        .iter()
        .enumerate()
        .map(|(i, o)| {
            if i == c.index {
                Ok(cot.clone())
            } else {
                zeros_like(o)
            }
        })
        .collect::<Result<_>>()?;
    let mut r: Vec<Option<Array>> = vec![None; inputs.len()];
    match c.rules.vjp(primals, outputs, &cots)? {
        Some(g) => {
            if g.len() != n {
                return Err(Error::value(
                    "custom_function",
                    format!(
                        "The custom vjp returned {} cotangents for {} primals.",
                        g.len(),
                        n
                    ),
                ));
            }
            for (i, (gi, p)) in g.into_iter().zip(primals).enumerate() {
                r[i] = gi.map(|gi| fit_cotangent(gi, p)).transpose()?;
            }
        }
        None => r[k] = Some(cot.clone()),
    }
    Ok(r)
}

/// The tangent from the user's jvp override; None when the function has none.
pub fn jvp_override(
    c: &Custom,
    inputs: &[Array],
    tangents: &[Option<Array>],
) -> Result<Option<Array>> {
    let (n, _) = split(c, inputs)?;
    let primals = &inputs[..n];
    let pt: Vec<Option<Array>> = (0..n).map(|i| tangents.get(i).cloned().flatten()).collect();
    match c.rules.jvp(primals, &pt)? {
        Some(t) => t.into_iter().nth(c.index).map(Some).ok_or_else(|| {
            Error::value(
                "custom_function",
                "The custom jvp returned too few tangents.",
            )
        }),
        None => Ok(None),
    }
}

pub fn jvp(c: &Custom, inputs: &[Array], tangents: &[Option<Array>]) -> Result<Option<Array>> {
    let (_, k) = split(c, inputs)?;
    match jvp_override(c, inputs, tangents)? {
        Some(t) => Ok(Some(t)),
        None => Ok(tangents.get(k).cloned().flatten()),
    }
}

pub fn vmap(
    c: &Custom,
    inputs: &[Array],
    axes: &[Option<usize>],
) -> Result<(Array, Option<usize>)> {
    let (n, k) = split(c, inputs)?;
    match c.rules.vmap(&inputs[..n], &axes[..n])? {
        Some((outs, oax)) => {
            let o = outs.into_iter().nth(c.index);
            let a = oax.get(c.index).copied().flatten();
            o.map(|o| (o, a)).ok_or_else(|| {
                Error::value(
                    "custom_function",
                    "The custom vmap returned too few outputs.",
                )
            })
        }
        None => Ok((inputs[k].clone(), axes[k])),
    }
}
