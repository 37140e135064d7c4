//! The cotangents a node receives during `vjp`, kept as pieces until the node's turn.
//!
//! The gradient of a unit-step slice along one axis is the slice's cotangent written into
//! zeros. A split's outputs are such slices of one array; added up, their gradients cost
//! a zero fill of the whole array and one update per output. Kept apart, disjoint pieces
//! along the same axis become one concatenation (gaps filled with zeros), as the gradient
//! of a split is in MLX. Anything else is summed in arrival order, the same additions as
//! before, so results do not change where the pieces overlap or mix.

use crate::array::Array;
use crate::error::Result;
use crate::ops;
use crate::primitive::Primitive;
use crate::rules;

/// One contribution to a node's cotangent.
enum Piece {
    /// A cotangent of the node's whole shape.
    Whole(Array),
    /// The cotangent `g` of the node's unit-step slice `[start, start + len)` along `axis`
    /// (every other axis whole).
    Slice { axis: usize, start: usize, g: Array },
}

/// The contributions to one node's cotangent, in arrival order.
#[derive(Default)]
pub(super) struct Gathered {
    pieces: Vec<Piece>,
}

impl Gathered {
    pub(super) fn whole(&mut self, g: Array) {
        self.pieces.push(Piece::Whole(g));
    }

    pub(super) fn slice(&mut self, axis: usize, start: usize, g: Array) {
        self.pieces.push(Piece::Slice { axis, start, g });
    }

    /// The cotangent of `x` (the node these pieces belong to), or None when no piece
    /// gives one (an integer input of a slice).
    pub(super) fn finish(self, x: &Array) -> Result<Option<Array>> {
        if let Some(cat) = concatenated(&self.pieces, x)? {
            return rules::cast_like(cat, x);
        }
        let mut sum: Option<Array> = None;
        for p in self.pieces {
            let g = match p {
                Piece::Whole(g) => Some(g),
                Piece::Slice { axis, start, g } => {
                    let params = window(x.shape(), axis, start, g.shape().get(axis).copied());
                    let r = ops::slice_update_params(&rules::zeros_like(x)?, &g, &params)?;
                    rules::cast_like(r, x)?
                }
            };
            if let Some(g) = g {
                sum = Some(match sum {
                    Some(prev) => ops::binary(crate::primitive::BinaryOp::Add, &prev, &g)?,
                    None => g,
                });
            }
        }
        Ok(sum)
    }
}

/// `(start, count, step)` per axis of the window `[start, start + len)` along `axis`.
fn window(
    shape: &[usize],
    axis: usize,
    start: usize,
    len: Option<usize>,
) -> Vec<(usize, usize, i64)> {
    shape
        .iter()
        .enumerate()
        .map(|(d, &n)| {
            if d == axis {
                (start, len.unwrap_or(0), 1)
            } else {
                (0, n, 1)
            }
        })
        .collect()
}

/// The pieces as one concatenation along their axis when there are at least two, all
/// slices along the same axis, none overlapping; None otherwise.
fn concatenated(pieces: &[Piece], x: &Array) -> Result<Option<Array>> {
    if pieces.len() < 2 {
        return Ok(None);
    }
    let mut parts: Vec<(usize, &Array)> = Vec::with_capacity(pieces.len());
    let mut axis = None;
    for p in pieces {
        let Piece::Slice { axis: a, start, g } = p else {
            return Ok(None);
        };
        if axis.is_some_and(|b| b != *a) {
            return Ok(None);
        }
        axis = Some(*a);
        parts.push((*start, g));
    }
    let Some(axis) = axis else {
        return Ok(None);
    };
    let Some(&n) = x.shape().get(axis) else {
        return Ok(None);
    };
    parts.sort_by_key(|p| p.0);
    let zeros = |len: usize| {
        let mut shape = x.shape().to_vec();
        shape[axis] = len;
        ops::zeros(shape, x.dtype())
    };
    let mut out = Vec::with_capacity(2 * parts.len() + 1);
    let mut at = 0usize;
    for (start, g) in parts {
        let Some(&len) = g.shape().get(axis) else {
            return Ok(None);
        };
        if start < at {
            return Ok(None); // overlapping pieces add up
        }
        if start > at {
            out.push(zeros(start - at)?);
        }
        out.push(g.clone());
        at = match start.checked_add(len) {
            Some(e) if e <= n => e,
            _ => return Ok(None),
        };
    }
    if at < n {
        out.push(zeros(n - at)?);
    }
    if let Some(r) = concatenated_before_merge(&out, axis, x)? {
        return Ok(Some(r));
    }
    Ok(Some(ops::concatenate(&out, Some(axis as i64))?))
}

/// When every part is a reshape merging trailing axes into the last one (a head split
/// undone: `(.., L, H, D)` viewed as `(.., L, H·D)`), the parts before their reshapes
/// concatenated along the head axis, then reshaped: the same elements in the same
/// order, without a copy of each part to merge its axes first (the sources are often
/// transposed views, e.g. the gradients of q, k and v in a transformer's fused
/// projection). None when the parts do not all have that form.
fn concatenated_before_merge(parts: &[Array], axis: usize, x: &Array) -> Result<Option<Array>> {
    if axis + 1 != x.ndim() || parts.len() < 2 {
        return Ok(None);
    }
    let mut sources = Vec::with_capacity(parts.len());
    let mut rest: Option<Vec<usize>> = None;
    for p in parts {
        let Some((Primitive::Reshape { .. }, inputs)) = p.pending_parts() else {
            return Ok(None);
        };
        let [src] = inputs.as_slice() else {
            return Ok(None);
        };
        let (ps, ss) = (p.shape(), src.shape());
        // the same leading axes, then (heads, rest..) merging into the part's last axis
        if ss.len() < axis + 2 || ss.get(..axis) != ps.get(..axis) || src.dtype() != p.dtype() {
            return Ok(None);
        }
        let tail = ss.get(axis + 1..).unwrap_or(&[]).to_vec();
        let merged = ss.get(axis..).map(crate::shape::size_of);
        if merged != ps.get(axis).copied() || rest.as_ref().is_some_and(|r| *r != tail) {
            return Ok(None);
        }
        rest = Some(tail);
        sources.push(src.clone());
    }
    let cat = ops::concatenate(&sources, Some(axis as i64))?;
    let shape = x
        .shape()
        .iter()
        .map(|&d| i64::try_from(d).map_err(|_| crate::error::Error::overflow("vjp")))
        .collect::<Result<Vec<i64>>>()?;
    Ok(Some(ops::reshape(&cat, &shape)?))
}

/// The axis and start when `prim` (applied to `x`, giving `out`) is a unit-step slice
/// that is whole on every other axis.
pub(super) fn slice_axis(prim: &Primitive, x: &Array, out: &Array) -> Option<(usize, usize)> {
    let Primitive::Slice { start, step } = prim else {
        return None;
    };
    if step.iter().any(|&s| s != 1) || x.ndim() != out.ndim() || start.len() != x.ndim() {
        return None;
    }
    let mut cut = None;
    for (d, (&n, &m)) in x.shape().iter().zip(out.shape()).enumerate() {
        if n != m || start.get(d).copied() != Some(0) {
            if cut.is_some() {
                return None;
            }
            cut = Some(d);
        }
    }
    let d = cut?;
    Some((d, *start.get(d)?))
}
