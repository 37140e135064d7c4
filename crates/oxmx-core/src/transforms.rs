//! Function transforms over the lazy graph: reverse mode (`vjp`), forward mode (`jvp`)
//! and batching (`vmap`).
//!
//! A transform starts a [`Trace`], wraps each input in a *leaf* node that belongs to
//! it, lets the function build its graph from the leaves, then walks that graph from
//! the outputs back to the leaves applying each primitive's rule (`crate::rules`).
//! Arrays that depend on an active trace keep their primitive and inputs even when the
//! function evaluates them, so the walk always finds the whole graph. Every walk is
//! iterative: a chain of a million ops needs no deep stack.

use crate::array::{Array, Trace};
use crate::error::{Error, Result};
use crate::primitive::Primitive;
use crate::rules;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

mod gathered;
use gathered::Gathered;

/// Ends a trace when dropped (also on early return or panic).
pub struct TraceGuard(pub Arc<Trace>);

impl Drop for TraceGuard {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// An identity node over `x` that belongs to `trace` (and to the traces `x` belongs
/// to, so an enclosing transform still sees through it).
pub fn leaf(x: &Array, trace: &Arc<Trace>) -> Array {
    let mut traces = x.traces();
    traces.push(Arc::clone(trace));
    Array::pending_traced(
        x.shape().to_vec(),
        x.dtype(),
        Primitive::Reshape { infer: None },
        vec![x.clone()],
        traces,
    )
}

/// One step of the graph between the leaves and the outputs.
pub(crate) struct Step {
    pub(crate) node: Array,
    pub(crate) prim: Primitive,
    pub(crate) inputs: Vec<Array>,
}

/// A node to visit, with its history once its inputs have been pushed.
type Visit = (Array, Option<(Primitive, Vec<Array>)>);

/// The nodes that lie on a path from a leaf to an output, inputs before consumers.
pub(crate) fn walk(outputs: &[Array], leaves: &HashSet<usize>) -> Vec<Step> {
    let mut order: Vec<Step> = Vec::new();
    let mut visited: HashSet<usize> = HashSet::new();
    let mut depends: HashSet<usize> = leaves.clone();
    let mut stack: Vec<Visit> = outputs.iter().rev().map(|a| (a.clone(), None)).collect();
    while let Some((a, expanded)) = stack.pop() {
        if let Some((prim, inputs)) = expanded {
            if inputs.iter().any(|i| depends.contains(&i.id())) {
                depends.insert(a.id());
                order.push(Step {
                    node: a,
                    prim,
                    inputs,
                });
            }
            continue;
        }
        if leaves.contains(&a.id()) || !visited.insert(a.id()) {
            continue;
        }
        let Some((prim, inputs)) = a.history() else {
            continue; // a constant
        };
        let children: Vec<Array> = inputs
            .iter()
            .rev()
            .filter(|i| !visited.contains(&i.id()))
            .cloned()
            .collect();
        stack.push((a, Some((prim, inputs))));
        stack.extend(children.into_iter().map(|c| (c, None)));
    }
    order
}

fn ids(xs: &[Array]) -> HashSet<usize> {
    xs.iter().map(Array::id).collect()
}

fn check_shape(what: &str, prim: &Primitive, got: &Array, want: &Array) -> Result<()> {
    if got.shape() != want.shape() {
        return Err(Error::runtime(
            what,
            format!(
                "Internal error: the rule of {} gave shape {:?} for an input of shape {:?}.",
                prim.name(),
                got.shape(),
                want.shape()
            ),
        ));
    }
    Ok(())
}

/// Cotangents of `leaves` given `outputs` built from them and the outputs' cotangents.
/// Leaves the outputs do not depend on get zeros.
pub fn vjp(leaves: &[Array], outputs: &[Array], cotangents: &[Array]) -> Result<Vec<Array>> {
    if outputs.len() != cotangents.len() {
        return Err(Error::value(
            "vjp",
            format!(
                "Expected {} cotangents (one per output) but got {}.",
                outputs.len(),
                cotangents.len()
            ),
        ));
    }
    for (o, c) in outputs.iter().zip(cotangents) {
        if o.shape() != c.shape() {
            return Err(Error::value(
                "vjp",
                format!(
                    "Output shape {:?} does not match cotangent shape {:?}.",
                    o.shape(),
                    c.shape()
                ),
            ));
        }
    }
    let leaf_ids = ids(leaves);
    let order = walk(outputs, &leaf_ids);
    let live: HashSet<usize> = order
        .iter()
        .map(|s| s.node.id())
        .chain(leaf_ids.iter().copied())
        .collect();
    let mut cot: HashMap<usize, Gathered> = HashMap::new();
    for (o, c) in outputs.iter().zip(cotangents) {
        if live.contains(&o.id()) {
            let c = if c.dtype() == o.dtype() {
                c.clone()
            } else {
                crate::ops::astype(c, o.dtype())?
            };
            cot.entry(o.id()).or_default().whole(c);
        }
    }
    for step in order.iter().rev() {
        let Some(pieces) = cot.remove(&step.node.id()) else {
            continue;
        };
        let Some(g) = pieces.finish(&step.node)? else {
            continue;
        };
        // a split's outputs: their gradients are gathered as pieces of the input
        if let [x] = step.inputs.as_slice() {
            if let Some((axis, start)) = gathered::slice_axis(&step.prim, x, &step.node) {
                if live.contains(&x.id()) {
                    check_shape("vjp", &step.prim, &g, &step.node)?;
                    cot.entry(x.id()).or_default().slice(axis, start, g);
                }
                continue;
            }
        }
        let grads = rules::vjp(&step.prim, &step.inputs, &step.node, &g)?;
        for (x, gx) in step.inputs.iter().zip(grads) {
            if let Some(gx) = gx {
                if live.contains(&x.id()) {
                    check_shape("vjp", &step.prim, &gx, x)?;
                    cot.entry(x.id()).or_default().whole(gx);
                }
            }
        }
    }
    leaves
        .iter()
        .map(|l| {
            let g = match cot.remove(&l.id()) {
                Some(pieces) => pieces.finish(l)?,
                None => None,
            };
            match g {
                Some(g) => Ok(g),
                None => crate::ops::zeros(l.shape().to_vec(), l.dtype()),
            }
        })
        .collect()
}

/// Tangents of `outputs` given tangents of the `leaves` they were built from.
pub fn jvp(leaves: &[Array], tangents: &[Array], outputs: &[Array]) -> Result<Vec<Array>> {
    if leaves.len() != tangents.len() {
        return Err(Error::value(
            "jvp",
            format!(
                "Expected {} tangents (one per primal) but got {}.",
                leaves.len(),
                tangents.len()
            ),
        ));
    }
    let mut tan: HashMap<usize, Array> = HashMap::new();
    for (l, t) in leaves.iter().zip(tangents) {
        if l.shape() != t.shape() {
            return Err(Error::value(
                "jvp",
                format!(
                    "A primal of shape {:?} got a tangent of shape {:?}.",
                    l.shape(),
                    t.shape()
                ),
            ));
        }
        let t = if t.dtype() == l.dtype() {
            t.clone()
        } else {
            crate::ops::astype(t, l.dtype())?
        };
        tan.insert(l.id(), t);
    }
    let order = walk(outputs, &ids(leaves));
    // A node whose rule fails keeps its error until a consumer needs its tangent: the
    // body of a custom_function with its own jvp rule is walked but never needed.
    let mut failed: HashMap<usize, Error> = HashMap::new();
    for step in &order {
        let ts: Vec<Option<Array>> = step
            .inputs
            .iter()
            .map(|i| tan.get(&i.id()).cloned())
            .collect();
        let bad = step.inputs.iter().find(|i| failed.contains_key(&i.id()));
        if let Some(bad) = bad {
            // only the function's body (inputs past its primals) may lack tangents
            let body_only = |n: usize| {
                step.inputs[..n.min(step.inputs.len())]
                    .iter()
                    .all(|i| !failed.contains_key(&i.id()))
            };
            let own = match &step.prim {
                Primitive::Custom(c) if body_only(c.n_primals) => {
                    rules::custom_jvp_override(c, &step.inputs, &ts)?
                }
                _ => None,
            };
            match own {
                Some(t) => {
                    check_shape("jvp", &step.prim, &t, &step.node)?;
                    tan.insert(step.node.id(), t);
                    continue;
                }
                None => {
                    let e = failed.remove(&bad.id());
                    return Err(e.unwrap_or_else(|| Error::runtime("jvp", "a rule failed")));
                }
            }
        }
        if ts.iter().all(Option::is_none) {
            continue;
        }
        match rules::jvp(&step.prim, &step.inputs, &step.node, &ts) {
            Ok(Some(t)) => {
                check_shape("jvp", &step.prim, &t, &step.node)?;
                tan.insert(step.node.id(), t);
            }
            Ok(None) => {}
            Err(e) => {
                failed.insert(step.node.id(), e);
            }
        }
    }
    outputs
        .iter()
        .map(|o| {
            if let Some(e) = failed.remove(&o.id()) {
                return Err(e);
            }
            match tan.get(&o.id()) {
                Some(t) => Ok(t.clone()),
                None => crate::ops::zeros(o.shape().to_vec(), o.dtype()),
            }
        })
        .collect()
}

/// Batched `outputs`: the graph built from `leaves` (one element of each batched input)
/// replayed over `batched` inputs whose batch axis is `in_axes[i]` (size `batch`).
/// Returns each output with its batch axis (None: the output does not depend on the
/// batched inputs).
pub fn vmap(
    leaves: &[Array],
    batched: &[Array],
    in_axes: &[usize],
    batch: usize,
    outputs: &[Array],
) -> Result<Vec<(Array, Option<usize>)>> {
    if leaves.len() != batched.len() || leaves.len() != in_axes.len() {
        return Err(Error::value(
            "vmap",
            "One batched input and axis per leaf is required.",
        ));
    }
    let mut map: HashMap<usize, (Array, Option<usize>)> = HashMap::new();
    for ((l, b), &ax) in leaves.iter().zip(batched).zip(in_axes) {
        if b.shape().get(ax) != Some(&batch) {
            return Err(Error::value(
                "vmap",
                "Batched inputs must share the mapped axis size.",
            ));
        }
        map.insert(l.id(), (b.clone(), Some(ax)));
    }
    let order = walk(outputs, &ids(leaves));
    for step in &order {
        let (ins, axes): (Vec<Array>, Vec<Option<usize>>) = step
            .inputs
            .iter()
            .map(|i| match map.get(&i.id()) {
                Some((a, ax)) => (a.clone(), *ax),
                None => (i.clone(), None),
            })
            .unzip();
        if axes.iter().all(Option::is_none) {
            continue;
        }
        let r = rules::vmap(&step.prim, &ins, &axes, batch, &step.node)?;
        map.insert(step.node.id(), r);
    }
    Ok(outputs
        .iter()
        .map(|o| map.get(&o.id()).cloned().unwrap_or((o.clone(), None)))
        .collect())
}

/// Run `f` on leaves of `primals` under a new trace; returns the outputs and the leaves.
fn traced<F>(primals: &[Array], f: F) -> Result<(Vec<Array>, Vec<Array>, TraceGuard)>
where
    F: FnOnce(&[Array]) -> Result<Vec<Array>>,
{
    let guard = TraceGuard(Trace::new());
    let leaves: Vec<Array> = primals.iter().map(|p| leaf(p, &guard.0)).collect();
    let outs = f(&leaves)?;
    Ok((outs, leaves, guard))
}

/// `(f(primals), vjp)`: the outputs of `f` and the cotangents of its inputs.
pub fn vjp_fn<F>(f: F, primals: &[Array], cotangents: &[Array]) -> Result<(Vec<Array>, Vec<Array>)>
where
    F: FnOnce(&[Array]) -> Result<Vec<Array>>,
{
    let (outs, leaves, _guard) = traced(primals, f)?;
    let grads = vjp(&leaves, &outs, cotangents)?;
    Ok((outs, grads))
}

/// `(f(primals), jvp)`: the outputs of `f` and their tangents.
pub fn jvp_fn<F>(f: F, primals: &[Array], tangents: &[Array]) -> Result<(Vec<Array>, Vec<Array>)>
where
    F: FnOnce(&[Array]) -> Result<Vec<Array>>,
{
    let (outs, leaves, _guard) = traced(primals, f)?;
    let t = jvp(&leaves, tangents, &outs)?;
    Ok((outs, t))
}

/// Stop gradients: an identity whose vjp and jvp are zero.
pub fn stop_gradient(x: &Array) -> Array {
    Array::pending(
        x.shape().to_vec(),
        x.dtype(),
        Primitive::StopGradient,
        vec![x.clone()],
    )
}

/// Wrap the `outputs` that `primals` produced through a function with custom `rules`.
pub fn custom(
    rules: Arc<dyn crate::primitive::CustomRules>,
    primals: &[Array],
    outputs: &[Array],
) -> Vec<Array> {
    let mut inputs = primals.to_vec();
    inputs.extend_from_slice(outputs);
    outputs
        .iter()
        .enumerate()
        .map(|(index, o)| {
            Array::pending(
                o.shape().to_vec(),
                o.dtype(),
                Primitive::Custom(crate::primitive::Custom {
                    rules: Arc::clone(&rules),
                    n_primals: primals.len(),
                    index,
                }),
                inputs.clone(),
            )
        })
        .collect()
}
