//! `compile`'s trace: the graph between a function's inputs and outputs recorded as a
//! [`Tape`], simplified once (`passes.rs`: common subexpressions merged, unused steps
//! dropped) and given a second, fused form in which each group of elementwise nodes is
//! one `Primitive::Fused` node. Replaying a tape builds the graph again over new inputs
//! of the same shapes and dtypes without running Python; the fused form is used unless
//! an input belongs to an active transform (whose rules then see the plain nodes).

mod codec;
mod export;
mod narrow;
mod passes;
mod rebuild;

pub use codec::{decode, dtype_code, encode};
pub use export::{Graph, GraphRef, GraphStep};
pub use rebuild::{build, rebuild};

use crate::array::Array;
use crate::error::{Error, Result};
use crate::primitive::Primitive;
use crate::transforms::walk;
use std::collections::HashMap;

/// Where a replayed value comes from.
#[derive(Clone)]
pub(crate) enum Ref {
    Input(usize),
    Step(usize),
    Const(Array),
}

#[derive(Clone)]
pub(crate) struct TapeStep {
    pub(crate) prim: Primitive,
    pub(crate) inputs: Vec<Ref>,
    pub(crate) shape: Vec<usize>,
    pub(crate) dtype: crate::Dtype,
}

/// Steps in order (inputs before consumers) and the outputs they give.
#[derive(Clone)]
pub(crate) struct Program {
    pub(crate) steps: Vec<TapeStep>,
    pub(crate) outputs: Vec<Ref>,
}

/// A recorded graph from inputs to outputs (`compile`'s trace). Arrays that did not
/// depend on the inputs are kept as constants (computed once, on first use).
pub struct Tape {
    /// Shape and dtype of each input when captured.
    inputs: Vec<(Vec<usize>, crate::Dtype)>,
    plain: Program,
    /// The plain program with its elementwise groups fused, when there are any.
    fused: Option<Program>,
    groups: Vec<String>,
}

impl Tape {
    /// Record the graph between `leaves` and `outputs`, simplify it and plan fusion.
    pub fn capture(leaves: &[Array], outputs: &[Array]) -> Tape {
        Self::capture_with(leaves, outputs, true)
    }

    /// `capture`, with fusion planned only when `fuse` is set.
    pub fn capture_with(leaves: &[Array], outputs: &[Array], fuse: bool) -> Tape {
        let recorded = record(leaves, outputs);
        let plain = passes::drop_unused(passes::merge_common(recorded));
        let input_shapes: Vec<Vec<usize>> = leaves.iter().map(|l| l.shape().to_vec()).collect();
        let input_dtypes: Vec<crate::Dtype> = leaves.iter().map(Array::dtype).collect();
        let (fused, groups) = if fuse {
            // what runs when no transform traces the inputs: custom rules are not
            // needed there, and the loss may read half-precision logits directly
            let lean = passes::drop_unused(narrow::read_half_logits(
                narrow::strip_custom(&plain),
                &input_dtypes,
            ));
            let (fused, groups) = passes::fuse(&lean, &input_shapes, &input_dtypes);
            (Some(fused.unwrap_or(lean)), groups)
        } else {
            (None, Vec::new())
        };
        let tape = Tape {
            inputs: leaves
                .iter()
                .map(|l| (l.shape().to_vec(), l.dtype()))
                .collect(),
            plain,
            fused,
            groups,
        };
        if debug_enabled() {
            tape.print_plan();
        }
        tape
    }

    /// The outputs for new `inputs` (same shapes and dtypes as when captured).
    pub fn replay(&self, inputs: &[Array]) -> Result<Vec<Array>> {
        if inputs.len() != self.inputs.len() {
            return Err(Error::value(
                "compile",
                format!(
                    "Expected {} inputs but got {}.",
                    self.inputs.len(),
                    inputs.len()
                ),
            ));
        }
        let program = match &self.fused {
            Some(f) if !inputs.iter().any(Array::is_traced) => f,
            _ => &self.plain,
        };
        let mut vals: Vec<Array> = Vec::with_capacity(program.steps.len());
        let get = |r: &Ref, vals: &[Array]| -> Result<Array> {
            match r {
                Ref::Input(i) => inputs.get(*i).cloned(),
                Ref::Step(j) => vals.get(*j).cloned(),
                Ref::Const(a) => Some(a.clone()),
            }
            .ok_or_else(|| Error::runtime("compile", "Broken tape reference."))
        };
        for s in &program.steps {
            let ins = s
                .inputs
                .iter()
                .map(|r| get(r, &vals))
                .collect::<Result<Vec<_>>>()?;
            vals.push(Array::pending(
                s.shape.clone(),
                s.dtype,
                s.prim.clone(),
                ins,
            ));
        }
        program.outputs.iter().map(|r| get(r, &vals)).collect()
    }

    /// The trace as plain data (`export_function`, shapeless retraces); see
    /// [`export::graph_of`] for what `keep_custom` does.
    pub fn graph(&self, keep_custom: bool) -> Result<Graph> {
        export::graph_of(&self.plain, self.inputs.clone(), keep_custom)
    }

    /// A tape over `inputs` made from `graph` rebuilt through the op layer
    /// ([`export::build`]: exactly the recorded shapes unless `exact` is false).
    pub fn from_graph(graph: &Graph, inputs: &[Array], exact: bool) -> Result<Tape> {
        let outputs = build(graph, inputs, exact)?;
        Ok(Self::capture(inputs, &outputs))
    }

    /// Number of recorded primitives (after merging common subexpressions).
    pub fn len(&self) -> usize {
        self.plain.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.plain.steps.is_empty()
    }

    /// Number of nodes a replay outside transforms builds (each fused group counts once).
    pub fn fused_len(&self) -> usize {
        self.fused.as_ref().unwrap_or(&self.plain).steps.len()
    }

    /// Each node's operation and dtype (`"astype bfloat16"`), of the program a replay
    /// outside transforms builds (`fused`) or of the plain trace.
    pub fn op_names(&self, fused: bool) -> Vec<String> {
        let p = match (&self.fused, fused) {
            (Some(f), true) => f,
            _ => &self.plain,
        };
        p.steps
            .iter()
            .map(|s| format!("{} {}", s.prim.name(), s.dtype))
            .collect()
    }

    /// One line per fused group: its shape, dtype and steps.
    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    fn print_plan(&self) {
        eprintln!(
            "[compile] {} nodes traced, {} after fusion ({} fused groups)",
            self.plain.steps.len(),
            self.fused_len(),
            self.groups.len()
        );
        for (i, g) in self.groups.iter().enumerate() {
            eprintln!("[compile]   group {i}: {g}");
        }
    }
}

/// `OXMX_COMPILE_DEBUG` set to anything but "" or "0".
pub(crate) fn debug_enabled() -> bool {
    std::env::var("OXMX_COMPILE_DEBUG").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The walk from `leaves` to `outputs` as tape steps.
fn record(leaves: &[Array], outputs: &[Array]) -> Program {
    let leaf_pos: HashMap<usize, usize> = leaves
        .iter()
        .enumerate()
        .map(|(i, l)| (l.id(), i))
        .collect();
    let order = walk(outputs, &leaf_pos.keys().copied().collect());
    let mut step_pos: HashMap<usize, usize> = HashMap::new();
    let resolve = |a: &Array, step_pos: &HashMap<usize, usize>| -> Ref {
        if let Some(&i) = leaf_pos.get(&a.id()) {
            Ref::Input(i)
        } else if let Some(&j) = step_pos.get(&a.id()) {
            Ref::Step(j)
        } else {
            Ref::Const(a.clone())
        }
    };
    let mut steps = Vec::with_capacity(order.len());
    for s in &order {
        let inputs = s.inputs.iter().map(|i| resolve(i, &step_pos)).collect();
        step_pos.insert(s.node.id(), steps.len());
        steps.push(TapeStep {
            prim: s.prim.clone(),
            inputs,
            shape: s.node.shape().to_vec(),
            dtype: s.node.dtype(),
        });
    }
    let outputs = outputs.iter().map(|o| resolve(o, &step_pos)).collect();
    Program { steps, outputs }
}

/// The graph behind `outputs` in Graphviz DOT (`export_to_dot`): every unevaluated node
/// reachable from them, with evaluated arrays as its leaves. `names` label arrays.
pub fn dot(outputs: &[Array], names: &[(String, Array)]) -> String {
    let name_of: HashMap<usize, &str> = names.iter().map(|(n, a)| (a.id(), n.as_str())).collect();
    let mut ids: HashMap<usize, usize> = HashMap::new();
    let mut nodes = String::new();
    // (input array id, consumer node): inputs get their numbers when visited
    let mut edges: Vec<(usize, usize)> = Vec::new();
    let mut stack: Vec<Array> = outputs.iter().rev().cloned().collect();
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    while let Some(a) = stack.pop() {
        if ids.contains_key(&a.id()) {
            continue;
        }
        let k = ids.len();
        ids.insert(a.id(), k);
        let info = format!("{:?} {}", a.shape(), a.dtype());
        let named = name_of
            .get(&a.id())
            .map(|n| format!("{n}\\n"))
            .unwrap_or_default();
        match a.history() {
            Some((prim, inputs)) => {
                let what = match &prim {
                    Primitive::Fused(f) => format!("fused: {}", f.0.describe()),
                    Primitive::Unary(u) => format!("{u:?}").to_lowercase(),
                    p => p.name().to_string(),
                };
                nodes.push_str(&format!(
                    "  n{k} [shape=ellipse, label=\"{named}{}\\n{info}\"];\n",
                    quote(&what)
                ));
                for i in &inputs {
                    edges.push((i.id(), k));
                    stack.push(i.clone());
                }
            }
            None => nodes.push_str(&format!(
                "  n{k} [shape=box, label=\"{}{info}\"];\n",
                if named.is_empty() {
                    "array\\n".to_string()
                } else {
                    named
                }
            )),
        }
    }
    let mut out = String::from("digraph {\n  rankdir=TB;\n");
    out.push_str(&nodes);
    for (from, to) in edges {
        if let Some(f) = ids.get(&from) {
            out.push_str(&format!("  n{f} -> n{to};\n"));
        }
    }
    out.push_str("}\n");
    out
}
