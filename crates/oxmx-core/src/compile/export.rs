//! Traces as data, for `export_function` / `import_function`: a [`Graph`] lists a
//! trace's inputs, constants, steps and outputs (this file: made from a tape); each
//! step's primitive is written as an operation name with integer and float parameters
//! and read back with every parameter checked (`codec.rs`); `build` turns a graph into
//! arrays again by calling the op layer for each step (`rebuild.rs`), so an imported
//! graph passes the same shape, dtype and bounds checks as user code does and nothing
//! recorded in a file (shapes included) is trusted.
//!
//! What a graph cannot hold: a custom CUDA kernel (refused at export) and the rules of a
//! `custom_function` (its node is replaced by the outputs it computes, so an imported
//! function differentiates its forward graph).

use super::{Program, Ref};
use crate::array::Array;
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::ops;
use crate::primitive::*;
use std::collections::HashMap;

/// Where a graph step's input or a graph output comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphRef {
    Input(usize),
    Const(usize),
    Step(usize),
}

#[derive(Clone, Debug)]
pub struct GraphStep {
    pub prim: Primitive,
    pub inputs: Vec<GraphRef>,
    /// The shape and dtype recorded at export (checked against the rebuilt node).
    pub shape: Vec<usize>,
    pub dtype: Dtype,
}

/// One trace of a function as plain data.
#[derive(Clone)]
pub struct Graph {
    pub inputs: Vec<(Vec<usize>, Dtype)>,
    pub consts: Vec<Array>,
    pub steps: Vec<GraphStep>,
    pub outputs: Vec<GraphRef>,
}

/// `program` over inputs of `input_specs` as a graph: custom-function nodes replaced by
/// the values they forward (unless `keep_custom`: a shapeless compile keeps their
/// rules), constants numbered once each, unused steps dropped.
pub(super) fn graph_of(
    program: &Program,
    input_specs: Vec<(Vec<usize>, Dtype)>,
    keep_custom: bool,
) -> Result<Graph> {
    let mut g = Graph {
        inputs: input_specs,
        consts: Vec::new(),
        steps: Vec::new(),
        outputs: Vec::new(),
    };
    let mut const_pos: HashMap<usize, GraphRef> = HashMap::new();
    // each tape step becomes a graph reference (a custom node is an alias of its input)
    let mut value: Vec<GraphRef> = Vec::with_capacity(program.steps.len());
    for s in &program.steps {
        let ins = s
            .inputs
            .iter()
            .map(|r| resolve(r, &value, &mut g, &mut const_pos))
            .collect::<Result<Vec<_>>>()?;
        match &s.prim {
            Primitive::Custom(c) if !keep_custom => {
                let fwd = c
                    .n_primals
                    .checked_add(c.index)
                    .and_then(|i| ins.get(i))
                    .ok_or_else(|| Error::runtime("export_function", "Malformed custom node."))?;
                value.push(*fwd);
            }
            Primitive::UserKernel(_) => {
                return Err(Error::value(
                    "export_function",
                    "A custom CUDA kernel (mx.fast.cuda_kernel) cannot be exported: its source is code, and exported files hold data only.",
                ))
            }
            Primitive::Collective { op, .. } => {
                return Err(Error::value(
                    "export_function",
                    format!("A distributed {} cannot be exported: its process group exists only in this run.", op.name()),
                ))
            }
            Primitive::Fused(k) => {
                return Err(Error::runtime(
                    "export_function",
                    format!("Unexpected fused node in a plain trace: {}.", k.0.describe()),
                ))
            }
            p => {
                value.push(GraphRef::Step(g.steps.len()));
                g.steps.push(GraphStep {
                    prim: p.clone(),
                    inputs: ins,
                    shape: s.shape.clone(),
                    dtype: s.dtype,
                });
            }
        }
    }
    g.outputs = program
        .outputs
        .iter()
        .map(|r| resolve(r, &value, &mut g, &mut const_pos))
        .collect::<Result<Vec<_>>>()?;
    Ok(prune(g))
}

/// A tape reference in graph terms. A constant that is an unevaluated broadcast (how
/// `x * 2` holds its scalar) stays a broadcast step over the small constant, so files
/// do not store the expanded values and shapeless traces can re-broadcast it.
fn resolve(
    r: &Ref,
    value: &[GraphRef],
    g: &mut Graph,
    const_pos: &mut HashMap<usize, GraphRef>,
) -> Result<GraphRef> {
    Ok(match r {
        Ref::Input(i) => GraphRef::Input(*i),
        Ref::Step(j) => *value
            .get(*j)
            .ok_or_else(|| Error::runtime("export_function", "Broken tape reference."))?,
        Ref::Const(a) => {
            if let Some(&k) = const_pos.get(&a.id()) {
                return Ok(k);
            }
            let view = match broadcast_source(a)? {
                Some(src) => Some((src, Primitive::Broadcast)),
                None => {
                    transpose_source(a)?.map(|(src, perm)| (src, Primitive::Transpose { perm }))
                }
            };
            let k = match view {
                Some((src, prim)) => {
                    let inner = const_ref(&src, g, const_pos);
                    g.steps.push(GraphStep {
                        prim,
                        inputs: vec![inner],
                        shape: a.shape().to_vec(),
                        dtype: a.dtype(),
                    });
                    GraphRef::Step(g.steps.len() - 1)
                }
                _ => const_ref(a, g, const_pos),
            };
            const_pos.insert(a.id(), k);
            k
        }
    })
}

/// The smaller array `a` broadcasts, if it is a broadcast: an unevaluated broadcast
/// node's input, or an evaluated view with stride 0 along some axis longer than 1 (that
/// axis' first slice).
fn broadcast_source(a: &Array) -> Result<Option<Array>> {
    if let Some((Primitive::Broadcast, ins)) = a.history() {
        return Ok(ins.into_iter().next());
    }
    let Some(d) = a.ready_data() else {
        return Ok(None);
    };
    let repeated = |(&st, &n): (&isize, &usize)| st == 0 && n > 1;
    if !d.strides.iter().zip(a.shape()).any(repeated) {
        return Ok(None);
    }
    let stop: Vec<i64> = d
        .strides
        .iter()
        .zip(a.shape())
        .map(|(&st, &n)| if st == 0 { n.min(1) as i64 } else { n as i64 })
        .collect();
    Ok(Some(ops::slice(a, &vec![0; stop.len()], &stop, None)?))
}

/// The array `a` is a transpose of, and the permutation, if it is one: an unevaluated
/// transpose node's input, or an evaluated view whose strides are a permutation of
/// row-major ones (`w.T` of a constant). Kept as a transpose step so that the imported
/// graph hands kernels the same layout (a matmul's summation order follows it).
fn transpose_source(a: &Array) -> Result<Option<(Array, Vec<usize>)>> {
    if let Some((Primitive::Transpose { perm }, ins)) = a.history() {
        return Ok(ins.into_iter().next().map(|i| (i, perm)));
    }
    let Some(d) = a.ready_data() else {
        return Ok(None);
    };
    let (shape, st) = (a.shape(), &d.strides);
    if shape.len() < 2 || st.len() != shape.len() || st.iter().any(|&s| s <= 0) {
        return Ok(None);
    }
    if crate::shape::is_row_contiguous(shape, st) {
        return Ok(None);
    }
    let mut order: Vec<usize> = (0..shape.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(st[i]));
    let pshape: Vec<usize> = order.iter().map(|&i| shape[i]).collect();
    let pst: Vec<isize> = order.iter().map(|&i| st[i]).collect();
    if !crate::shape::is_row_contiguous(&pshape, &pst) {
        return Ok(None);
    }
    let inner = ops::transpose(a, Some(&super::rebuild::i64s(&order)))?;
    let mut perm = vec![0; order.len()];
    for (j, &i) in order.iter().enumerate() {
        perm[i] = j;
    }
    Ok(Some((inner, perm)))
}

fn const_ref(a: &Array, g: &mut Graph, const_pos: &mut HashMap<usize, GraphRef>) -> GraphRef {
    *const_pos.entry(a.id()).or_insert_with(|| {
        g.consts.push(a.clone());
        GraphRef::Const(g.consts.len() - 1)
    })
}

/// The graph without steps no output depends on (left behind by replaced custom nodes).
fn prune(g: Graph) -> Graph {
    let mut live = vec![false; g.steps.len()];
    for r in &g.outputs {
        if let GraphRef::Step(j) = r {
            if let Some(l) = live.get_mut(*j) {
                *l = true;
            }
        }
    }
    for j in (0..g.steps.len()).rev() {
        if live[j] {
            for r in &g.steps[j].inputs {
                if let GraphRef::Step(k) = r {
                    if let Some(l) = live.get_mut(*k) {
                        *l = true;
                    }
                }
            }
        }
    }
    let mut new_pos = vec![usize::MAX; g.steps.len()];
    let remap = |r: GraphRef, new_pos: &[usize]| match r {
        GraphRef::Step(j) => GraphRef::Step(new_pos[j]),
        r => r,
    };
    let mut steps = Vec::new();
    for (j, s) in g.steps.into_iter().enumerate() {
        if live[j] {
            new_pos[j] = steps.len();
            let inputs = s.inputs.iter().map(|&r| remap(r, &new_pos)).collect();
            steps.push(GraphStep { inputs, ..s });
        }
    }
    let outputs = g.outputs.iter().map(|&r| remap(r, &new_pos)).collect();
    Graph {
        inputs: g.inputs,
        consts: g.consts,
        steps,
        outputs,
    }
}
