//! Derivatives and batching of collectives (`distributed.rs`), as MLX defines them:
//! the gradient of `all_sum` with respect to this rank's input is the cotangent
//! itself, `all_gather`'s is this rank's block of the cotangent, `sum_scatter`'s is the
//! gathered cotangent; `send` passes its cotangent through.

use crate::array::Array;
use crate::distributed::{self as dist, CollectiveOp, Group, ReduceKind};
use crate::error::{Error, Result};
use crate::ops;

fn first(inputs: &[Array]) -> Result<&Array> {
    inputs
        .first()
        .ok_or_else(|| Error::runtime("collective", "missing input"))
}

pub fn vjp(
    op: CollectiveOp,
    group: &Group,
    inputs: &[Array],
    out: &Array,
    cot: &Array,
) -> Result<Vec<Option<Array>>> {
    Ok(match op {
        CollectiveOp::AllReduce(ReduceKind::Sum) | CollectiveOp::Send { .. } => {
            vec![Some(cot.clone())]
        }
        // the cotangent flows to where this rank's input is the extreme
        CollectiveOp::AllReduce(_) => {
            let x = first(inputs)?;
            let mask = ops::astype(&ops::equal(x, out)?, cot.dtype())?;
            vec![Some(ops::multiply(cot, &mask)?)]
        }
        CollectiveOp::AllGather => {
            let x = first(inputs)?;
            let n = x.shape().first().copied().unwrap_or(1);
            let r = group.0.rank();
            let start = r
                .checked_mul(n)
                .ok_or_else(|| Error::runtime("all_gather", "rank overflow"))?;
            let mut p: Vec<(usize, usize, i64)> = cot.shape().iter().map(|&d| (0, d, 1)).collect();
            if let Some(a) = p.first_mut() {
                *a = (start, n, 1);
            }
            let block = ops::slice_view(cot, &p)?;
            vec![Some(ops::reshape(&block, &shape_i64(x.shape()))?)]
        }
        CollectiveOp::SumScatter => vec![Some(dist::all_gather(cot, group)?)],
        CollectiveOp::Recv { .. } => vec![],
    })
}

pub fn jvp(op: CollectiveOp, group: &Group, tangents: &[Option<Array>]) -> Result<Option<Array>> {
    let Some(t) = tangents.first().cloned().flatten() else {
        return Ok(None);
    };
    Ok(Some(match op {
        CollectiveOp::AllReduce(ReduceKind::Sum) => dist::all_reduce(&t, ReduceKind::Sum, group)?,
        CollectiveOp::AllReduce(_) => {
            return Err(Error::unsupported(
                op.name(),
                "all_max and all_min have no forward-mode derivative.",
            ))
        }
        CollectiveOp::AllGather => dist::all_gather(&t, group)?,
        CollectiveOp::SumScatter => dist::sum_scatter(&t, group)?,
        CollectiveOp::Send { .. } => t,
        CollectiveOp::Recv { .. } => return Ok(None),
    }))
}

/// The collective over a batch: reductions and sends keep the batch axis; gathers and
/// scatters work on axis 0, so the batch moves to axis 1 (a 0-d element gains an axis
/// of 1 to gather along).
pub fn vmap(
    op: CollectiveOp,
    group: &Group,
    inputs: &[Array],
    axes: &[Option<usize>],
) -> Result<(Array, Option<usize>)> {
    let x = first(inputs)?;
    let ax = axes.first().copied().flatten();
    let Some(ax) = ax else {
        return Err(Error::runtime("vmap", "collective without a batched input"));
    };
    match op {
        CollectiveOp::AllReduce(kind) => Ok((dist::all_reduce(x, kind, group)?, Some(ax))),
        CollectiveOp::Send { dst } => Ok((dist::send(x, dst as i64, group)?, Some(ax))),
        CollectiveOp::AllGather if x.ndim() == 1 && group.0.size() == 1 => {
            // 0-d elements gathered by a group of one stay 0-d
            Ok((dist::all_gather(x, group)?, Some(ax)))
        }
        CollectiveOp::AllGather | CollectiveOp::SumScatter => {
            let xb = if x.ndim() == 1 {
                // 0-d elements: (B,) -> (1, B)
                ops::expand_dims(x, &[0])?
            } else {
                ops::moveaxis(x, ax as i64, 1)?
            };
            let r = if op == CollectiveOp::AllGather {
                dist::all_gather(&xb, group)?
            } else {
                if x.ndim() == 1 {
                    return Err(Error::value(
                        "sum_scatter",
                        "The input must have at least one dimension.",
                    ));
                }
                dist::sum_scatter(&xb, group)?
            };
            Ok((r, Some(1)))
        }
        CollectiveOp::Recv { .. } => Err(Error::runtime("vmap", "recv has no inputs to batch.")),
    }
}

fn shape_i64(s: &[usize]) -> Vec<i64> {
    s.iter().map(|&d| d as i64).collect()
}
