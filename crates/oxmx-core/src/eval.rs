//! Evaluation: an iterative topological walk (no recursion on graph depth), then each
//! pending node is computed in order. Computing a node drops its inputs, so
//! intermediates are freed as soon as their last consumer has run.

use crate::array::{Array, ArrayData, State};
use crate::backend::{self, Input};
use crate::error::{Error, Result};
use crate::eval_fusion::{Group, IdMap, Role};
use std::collections::HashSet;

/// Pending nodes reachable from `outputs`, inputs before consumers, and where each is
/// in that order (by node id).
fn topo_order(outputs: &[Array]) -> (Vec<Array>, IdMap<usize>) {
    const VISITED: usize = usize::MAX;
    let mut order = Vec::new();
    let mut pos: IdMap<usize> = IdMap::default();
    let mut stack: Vec<(Array, bool)> = outputs.iter().rev().map(|a| (a.clone(), false)).collect();
    while let Some((a, expanded)) = stack.pop() {
        if expanded {
            pos.insert(a.id(), order.len());
            order.push(a);
            continue;
        }
        if pos.contains_key(&a.id()) {
            continue;
        }
        let inputs = match &*a.lock() {
            State::Pending(p) => p.inputs.clone(),
            _ => continue,
        };
        pos.insert(a.id(), VISITED);
        stack.push((a, true));
        for i in inputs.into_iter().rev() {
            if !pos.contains_key(&i.id()) {
                stack.push((i, false));
            }
        }
    }
    (order, pos)
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
    let (order, pos) = topo_order(outputs);
    let mut roles = crate::eval_fusion::plan(&order, &pos);
    drop(pos);
    let depth = EvalDepth::enter();
    let mut result = Ok(());
    // Iterated by value: each node's clone is dropped once computed, so intermediates
    // are freed (and donated) as soon as their last consumer has run.
    for (k, node) in order.into_iter().enumerate() {
        let role = match roles.as_mut().and_then(|r| r.get_mut(k)) {
            Some(r) => std::mem::replace(r, Role::Plain),
            None => Role::Plain,
        };
        let done = match role {
            Role::Plain => run_node(&node),
            // computed with its group's last node
            Role::Member => Ok(()),
            Role::Root(group) => run_group(&node, group),
        };
        if let Err(e) = done {
            result = Err(e);
            break;
        }
    }
    // Errors the backends found in queued work come first: they were raised by nodes
    // that ran before any node that failed here, and may be its cause. An evaluation
    // nested in a node's computation leaves them to the outermost one, which asks every
    // backend (nested evaluations may have used other devices than its own nodes).
    if !depth.outermost() {
        return result;
    }
    let deferred = backend::finish_all();
    let tainted = TAINTED.with(|t| std::mem::take(&mut *t.borrow_mut()));
    if let Err(e) = &deferred {
        // Every array computed from checked work (or from such an array) may derive
        // from the bad index: its data is dropped. Other arrays keep theirs.
        for node in tainted.nodes.iter().filter_map(|w| w.upgrade().map(Array)) {
            let mut st = node.lock();
            if matches!(&*st, State::Ready(_) | State::Traced(..)) {
                let old = std::mem::replace(&mut *st, State::Failed(e.clone()));
                drop(st);
                drop(old);
            }
        }
        return deferred;
    }
    result
}

/// Nodes computed by this thread's current evaluation (nested ones included) from work
/// whose checks a backend deferred: they queued a check, or an input is such a node.
/// Held weakly, so they are freed as usual; cleared by the outermost evaluation.
#[derive(Default)]
struct Tainted {
    ids: HashSet<usize>,
    nodes: Vec<std::sync::Weak<crate::array::Node>>,
}

thread_local! {
    static DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    static TAINTED: std::cell::RefCell<Tainted> = std::cell::RefCell::new(Tainted::default());
}

fn taint(node: &Array) {
    TAINTED.with(|t| {
        let mut t = t.borrow_mut();
        if t.ids.insert(node.id()) {
            t.nodes.push(std::sync::Arc::downgrade(&node.0));
        }
    });
}

/// Nesting of evaluations on this thread (a node whose computation evaluates arrays).
struct EvalDepth(usize);

impl EvalDepth {
    fn enter() -> EvalDepth {
        EvalDepth(DEPTH.with(|d| {
            let v = d.get();
            d.set(v + 1);
            v
        }))
    }

    fn outermost(&self) -> bool {
        self.0 == 0
    }
}

impl Drop for EvalDepth {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(self.0));
    }
}

/// Whether one of a pending node's inputs is tainted.
fn has_tainted_input(node: &Array) -> bool {
    match &*node.lock() {
        State::Pending(p) => any_tainted(&p.inputs),
        _ => false,
    }
}

fn any_tainted(arrays: &[Array]) -> bool {
    TAINTED.with(|t| {
        let t = t.borrow();
        !t.ids.is_empty() && arrays.iter().any(|i| t.ids.contains(&i.id()))
    })
}

/// Computes a node on its own, tainting it as its inputs or its backend require.
fn run_node(node: &Array) -> Result<()> {
    let tainted_input = has_tainted_input(node);
    if compute_node(node, None)? || tainted_input {
        taint(node);
    }
    Ok(())
}

/// Computes a fused group's last node by the fused node. Should that fail, the group's
/// nodes are computed one by one (an error they raise is the one reported), and a
/// program the backend has no kernel for is not fused again.
fn run_group(root: &Array, group: Group) -> Result<()> {
    let tainted_input = any_tainted(&group.inputs);
    let fused = if crate::eval_fusion::failing_for_tests() {
        Err(Error::Unsupported {
            op: "fused".into(),
            msg: "Fused nodes fail (a test of the fallback).".into(),
        })
    } else {
        compute_node(root, Some(&group))
    };
    match fused {
        Ok(queued) => {
            if queued || tainted_input {
                taint(root);
            }
            Ok(())
        }
        Err(e) => {
            if matches!(e, Error::Unsupported { .. }) {
                crate::eval_fusion::mark_failed(&group.prim);
            }
            for m in group.skipped.iter().chain(&group.members) {
                run_node(m)?;
            }
            run_node(root)
        }
    }
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
            State::Failed(e) => return Err(e.clone()),
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

/// Computes a pending node (by its group's fused node when given); true when its
/// backend queued deferred checks meanwhile.
fn compute_node(node: &Array, fused: Option<&Group>) -> Result<bool> {
    let mut st = node.lock();
    let (prim, stream, inputs) = match &*st {
        State::Pending(p) => (&p.prim, p.stream, &p.inputs),
        _ => return Ok(false),
    };
    let ins = match fused {
        Some(g) => gather_inputs(&g.inputs, false)?,
        // A traced node keeps its inputs for the transform: they cannot be donated.
        None => gather_inputs(inputs, prim.may_donate() && !node.is_traced())?,
    };
    let prim = fused.map_or(prim, |g| &g.prim);
    let shape = node.shape();
    let dtype = node.dtype();
    let mut queued = false;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<ArrayData> {
        if prim.is_view() {
            crate::view::run_view(prim, ins, shape, dtype, stream.device)
        } else {
            NODES_RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let b = backend::get(stream.device)?;
            let before = b.checks_queued();
            let data = b.run(prim, ins, shape, dtype);
            queued = b.checks_queued() != before;
            data
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
    Ok(queued)
}
