//! Rules of a fused node (`ops/fused.rs`): the program is expanded back into the nodes
//! it replaced, and their own rules are chained step by step (reverse order for vjp,
//! forward for jvp and vmap). `compile` does not fuse under an active transform, so
//! these run only for fused nodes built before a transform saw them as operations.

use super::{add, jvp, vjp, vmap};
use crate::array::Array;
use crate::error::Result;
use crate::ops::fused::{FusedArg, FusedProgram};

pub(super) fn vjp_fused(
    p: &FusedProgram,
    inputs: &[Array],
    out: &Array,
    cot: &Array,
) -> Result<Vec<Option<Array>>> {
    let vals = p.expand(inputs, out.shape())?;
    let mut step_cots: Vec<Option<Array>> = vec![None; p.steps.len()];
    if let Some(last) = step_cots.last_mut() {
        *last = Some(cot.clone());
    }
    let mut input_cots: Vec<Option<Array>> = vec![None; inputs.len()];
    for (k, s) in p.steps.iter().enumerate().rev() {
        let Some(c) = step_cots.get_mut(k).and_then(Option::take) else {
            continue;
        };
        let args = p.operands(s, inputs, &vals)?;
        let grads = vjp(&s.prim, &args, &vals[k], &c)?;
        for (a, g) in s.args.iter().zip(grads) {
            let Some(g) = g else { continue };
            let slot = match *a {
                FusedArg::Input(i) => input_cots.get_mut(i),
                FusedArg::Step(j) => step_cots.get_mut(j),
            };
            if let Some(slot) = slot {
                *slot = Some(match slot.take() {
                    Some(prev) => add(&prev, &g)?,
                    None => g,
                });
            }
        }
    }
    Ok(input_cots)
}

pub(super) fn jvp_fused(
    p: &FusedProgram,
    inputs: &[Array],
    out: &Array,
    tangents: &[Option<Array>],
) -> Result<Option<Array>> {
    let vals = p.expand(inputs, out.shape())?;
    let mut step_tans: Vec<Option<Array>> = Vec::with_capacity(p.steps.len());
    for (k, s) in p.steps.iter().enumerate() {
        let args = p.operands(s, inputs, &vals)?;
        let tans: Vec<Option<Array>> = s
            .args
            .iter()
            .map(|a| match *a {
                FusedArg::Input(i) => tangents.get(i).cloned().flatten(),
                FusedArg::Step(j) => step_tans.get(j).cloned().flatten(),
            })
            .collect();
        let t = if tans.iter().all(Option::is_none) {
            None
        } else {
            jvp(&s.prim, &args, &vals[k], &tans)?
        };
        step_tans.push(t);
    }
    Ok(step_tans.pop().flatten())
}

pub(super) fn vmap_fused(
    p: &FusedProgram,
    inputs: &[Array],
    axes: &[Option<usize>],
    batch: usize,
    out: &Array,
) -> Result<(Array, Option<usize>)> {
    let vals = p.expand(inputs, out.shape())?;
    let mut batched: Vec<(Array, Option<usize>)> = Vec::with_capacity(p.steps.len());
    for (k, s) in p.steps.iter().enumerate() {
        let mut args = Vec::with_capacity(s.args.len());
        let mut arg_axes = Vec::with_capacity(s.args.len());
        for a in &s.args {
            let (v, ax) = match *a {
                FusedArg::Input(i) => (inputs.get(i).cloned(), axes.get(i).copied().flatten()),
                FusedArg::Step(j) => match batched.get(j) {
                    Some((v, ax)) => (Some(v.clone()), *ax),
                    None => (None, None),
                },
            };
            args.push(v.ok_or_else(|| {
                crate::error::Error::runtime("fused", "A fused step reads a missing value.")
            })?);
            arg_axes.push(ax);
        }
        batched.push(vmap(&s.prim, &args, &arg_axes, batch, &vals[k])?);
    }
    batched
        .pop()
        .ok_or_else(|| crate::error::Error::runtime("fused", "An empty fused program."))
}
