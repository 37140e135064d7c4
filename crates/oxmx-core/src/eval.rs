//! Evaluation: an iterative topological walk (no recursion on graph depth), then each
//! pending node is computed in order. Computing a node drops its inputs, so
//! intermediates are freed as soon as their last consumer has run.

use crate::array::{Array, ArrayData, State};
use crate::backend::{self, Input};
use crate::error::{Error, Result};
use std::collections::HashSet;

/// Pending nodes reachable from `outputs`, inputs before consumers.
fn topo_order(outputs: &[Array]) -> Vec<Array> {
    let mut order = Vec::new();
    let mut visited: HashSet<usize> = HashSet::new();
    let mut stack: Vec<(Array, bool)> = outputs.iter().rev().map(|a| (a.clone(), false)).collect();
    while let Some((a, expanded)) = stack.pop() {
        if expanded {
            order.push(a);
            continue;
        }
        if visited.contains(&a.id()) {
            continue;
        }
        let inputs = match &*a.lock() {
            State::Pending(p) => p.inputs.clone(),
            _ => continue,
        };
        visited.insert(a.id());
        stack.push((a, true));
        for i in inputs.into_iter().rev() {
            if !visited.contains(&i.id()) {
                stack.push((i, false));
            }
        }
    }
    order
}

/// Evaluate all `outputs`.
pub fn eval(outputs: &[Array]) -> Result<()> {
    if outputs
        .iter()
        .any(|o| o.eval_forbidden() && !o.is_evaluated())
    {
        return Err(Error::value(
            "eval",
            "Attempting to eval an array during function transformations like compile or vmap is not allowed.",
        ));
    }
    let order = topo_order(outputs);
    for node in order {
        compute_node(&node)?;
    }
    Ok(())
}

fn gather_inputs(inputs: &[Array], may_donate: bool) -> Result<Vec<Input>> {
    let mut out = Vec::with_capacity(inputs.len());
    for (k, i) in inputs.iter().enumerate() {
        // Unreachable except through this node (and not repeated in its inputs)? Then
        // its data is handed over, so the backend may own the buffer and write the
        // output into it. Otherwise the input keeps its data.
        let donatable = may_donate
            && i.strong_count() == 1
            && !inputs.iter().enumerate().any(|(m, j)| m != k && j.same(i));
        let mut st = i.lock();
        let data = match &mut *st {
            State::Ready(d) if donatable => {
                let d = d.clone();
                *st = State::Donated;
                d
            }
            State::Ready(d) | State::Traced(d, _) => d.clone(),
            _ => {
                return Err(Error::runtime(
                    "eval",
                    "An input of this array could not be evaluated.",
                ))
            }
        };
        out.push(Input {
            shape: i.shape().to_vec(),
            dtype: i.dtype(),
            data,
            donatable,
        });
    }
    Ok(out)
}

/// Nodes run by a backend (not views) since the process started: tests count them to
/// show that a fused group runs as one node.
static NODES_RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub fn nodes_run() -> u64 {
    NODES_RUN.load(std::sync::atomic::Ordering::Relaxed)
}

fn compute_node(node: &Array) -> Result<()> {
    let mut st = node.lock();
    let (prim, stream, inputs) = match &*st {
        State::Pending(p) => (&p.prim, p.stream, &p.inputs),
        _ => return Ok(()),
    };
    // A traced node keeps its inputs for the transform: they cannot be donated.
    let ins = gather_inputs(inputs, prim.may_donate() && !node.is_traced())?;
    let shape = node.shape();
    let dtype = node.dtype();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<ArrayData> {
        if prim.is_view() {
            crate::view::run_view(prim, ins, shape, dtype, stream.device)
        } else {
            NODES_RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            backend::get(stream.device)?.run(prim, ins, shape, dtype)
        }
    }));
    let data = match result {
        Ok(r) => r?,
        Err(_) => {
            return Err(Error::runtime(
                prim.name(),
                "Internal error while evaluating (a bug in oxmx).",
            ))
        }
    };
    // Dropping the pending state releases the inputs (iteratively, see Node::drop),
    // unless a running transform still needs them.
    let old = std::mem::replace(&mut *st, State::Donated);
    match old {
        State::Pending(p) if node.is_traced() => *st = State::Traced(data, p),
        old => {
            *st = State::Ready(data);
            drop(st);
            drop(old);
        }
    }
    Ok(())
}
