//! Passes over a recorded program: common-subexpression merging, dead-step removal and
//! the fusion plan. Each pass is one loop over the steps in order (or in reverse), so
//! none recurses on the graph's depth.

use super::{Program, Ref, TapeStep};
use crate::ops::fused::{is_fusable, FusedArg, FusedKernel, FusedProgram, FusedStep};
use crate::ops::fused::{MAX_INPUTS, MAX_STEPS};
use crate::primitive::Primitive;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A reference as a hashable key: constants by identity, except scalars (a single
/// value, possibly broadcast), which are keyed by value so that `x * 2` written twice
/// is recognised as one expression.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Key {
    Input(usize),
    Step(usize),
    Const(usize),
    Scalar(crate::Dtype, Vec<usize>, Vec<u8>),
}

fn key(r: &Ref) -> Key {
    match r {
        Ref::Input(i) => Key::Input(*i),
        Ref::Step(j) => Key::Step(*j),
        Ref::Const(a) => scalar_bytes(a)
            .map(|b| Key::Scalar(a.dtype(), a.shape().to_vec(), b))
            .unwrap_or(Key::Const(a.id())),
    }
}

/// The bytes of a constant holding one value: an evaluated array of one element in host
/// memory, or a broadcast of one.
fn scalar_bytes(a: &crate::Array) -> Option<Vec<u8>> {
    let source = match a.history() {
        Some((Primitive::Broadcast, ins)) => ins.first()?.clone(),
        Some(_) => return None,
        None => a.clone(),
    };
    if source.size() != 1 || source.dtype() != a.dtype() {
        return None;
    }
    let d = source.ready_data()?;
    if !d.buffer.on_host() {
        return None;
    }
    let size = a.dtype().size();
    let start = d.offset.checked_mul(size)?;
    d.buffer
        .bytes()
        .get(start..start.checked_add(size)?)
        .map(<[u8]>::to_vec)
}

fn remap(r: &Ref, to: &[usize]) -> Ref {
    match r {
        Ref::Step(j) => Ref::Step(to.get(*j).copied().unwrap_or(*j)),
        other => other.clone(),
    }
}

/// Whether two equal steps may share one node: every primitive that computes a
/// function of its inputs. User kernels, custom functions and collectives stay apart
/// (their identity carries rules or side effects the engine cannot compare: two equal
/// sends are two messages).
fn mergeable(p: &Primitive) -> bool {
    !matches!(
        p,
        Primitive::UserKernel(_) | Primitive::Custom(_) | Primitive::Collective { .. }
    )
}

/// Steps with the same primitive, inputs, shape and dtype become one.
pub(super) fn merge_common(p: Program) -> Program {
    let mut to: Vec<usize> = Vec::with_capacity(p.steps.len());
    let mut kept: Vec<TapeStep> = Vec::with_capacity(p.steps.len());
    let mut seen: HashMap<(&'static str, Vec<Key>), Vec<usize>> = HashMap::new();
    for s in p.steps {
        let inputs: Vec<Ref> = s.inputs.iter().map(|r| remap(r, &to)).collect();
        let step = TapeStep { inputs, ..s };
        if !mergeable(&step.prim) {
            to.push(kept.len());
            kept.push(step);
            continue;
        }
        let k = (step.prim.name(), step.inputs.iter().map(key).collect());
        let same = seen.get(&k).and_then(|c| {
            c.iter().copied().find(|&j| {
                kept.get(j).is_some_and(|o| {
                    o.prim == step.prim && o.shape == step.shape && o.dtype == step.dtype
                })
            })
        });
        match same {
            Some(j) => to.push(j),
            None => {
                seen.entry(k).or_default().push(kept.len());
                to.push(kept.len());
                kept.push(step);
            }
        }
    }
    let outputs = p.outputs.iter().map(|r| remap(r, &to)).collect();
    Program {
        steps: kept,
        outputs,
    }
}

/// Drops steps no output depends on.
pub(super) fn drop_unused(p: Program) -> Program {
    let mut live = vec![false; p.steps.len()];
    for r in &p.outputs {
        if let Ref::Step(j) = r {
            if let Some(l) = live.get_mut(*j) {
                *l = true;
            }
        }
    }
    for k in (0..p.steps.len()).rev() {
        if !live[k] {
            continue;
        }
        for r in &p.steps[k].inputs {
            if let Ref::Step(j) = r {
                if let Some(l) = live.get_mut(*j) {
                    *l = true;
                }
            }
        }
    }
    let mut to = vec![usize::MAX; p.steps.len()];
    let mut steps = Vec::with_capacity(p.steps.len());
    for (k, s) in p.steps.into_iter().enumerate() {
        if live[k] {
            to[k] = steps.len();
            let inputs = s.inputs.iter().map(|r| remap(r, &to)).collect();
            steps.push(TapeStep { inputs, ..s });
        }
    }
    let outputs = p.outputs.iter().map(|r| remap(r, &to)).collect();
    Program { steps, outputs }
}

/// Shape of a reference's value.
fn shape_of<'a>(
    r: &'a Ref,
    steps: &'a [TapeStep],
    inputs: &'a [Vec<usize>],
) -> Option<&'a [usize]> {
    match r {
        Ref::Input(i) => inputs.get(*i).map(Vec::as_slice),
        Ref::Step(j) => steps.get(*j).map(|s| s.shape.as_slice()),
        Ref::Const(a) => Some(a.shape()),
    }
}

fn dtype_of(r: &Ref, steps: &[TapeStep], inputs_dtypes: &[crate::Dtype]) -> Option<crate::Dtype> {
    match r {
        Ref::Input(i) => inputs_dtypes.get(*i).copied(),
        Ref::Step(j) => steps.get(*j).map(|s| s.dtype),
        Ref::Const(a) => Some(a.dtype()),
    }
}

/// The fused form of `p` and a description of each group, or None when nothing fuses.
///
/// Groups are found from the outputs back: an elementwise step joins the group of its
/// consumers when all of them are in that one group (so a group has a single exit, its
/// last step, and replacing it by one node keeps the order valid), it is not itself an
/// output, and the group stays within `MAX_STEPS` steps and `MAX_INPUTS` inputs.
pub(super) fn fuse(
    p: &Program,
    input_shapes: &[Vec<usize>],
    input_dtypes: &[crate::Dtype],
) -> (Option<Program>, Vec<String>) {
    let n = p.steps.len();
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (k, s) in p.steps.iter().enumerate() {
        for r in &s.inputs {
            if let Ref::Step(j) = r {
                if let Some(c) = consumers.get_mut(*j) {
                    if !c.contains(&k) {
                        c.push(k);
                    }
                }
            }
        }
    }
    let mut is_output = vec![false; n];
    for r in &p.outputs {
        if let Ref::Step(j) = r {
            if let Some(o) = is_output.get_mut(*j) {
                *o = true;
            }
        }
    }
    let fusable: Vec<bool> = p
        .steps
        .iter()
        .map(|s| {
            let dts: Option<Vec<_>> = s
                .inputs
                .iter()
                .map(|r| dtype_of(r, &p.steps, input_dtypes))
                .collect();
            let same_shape = s
                .inputs
                .iter()
                .all(|r| shape_of(r, &p.steps, input_shapes) == Some(s.shape.as_slice()));
            same_shape && dts.is_some_and(|d| is_fusable(&s.prim, s.dtype, &d))
        })
        .collect();
    // group[k]: the last step (root) of k's group; members[root]: the group's steps;
    // external[root]: what the group reads from outside.
    let mut group: Vec<Option<usize>> = vec![None; n];
    let mut members: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut external: HashMap<usize, HashSet<Key>> = HashMap::new();
    for k in (0..n).rev() {
        if !fusable[k] {
            continue;
        }
        let reads: HashSet<Key> = p.steps[k].inputs.iter().map(key).collect();
        let joined = consumers[k]
            .first()
            .and_then(|&c| group[c])
            .filter(|&g| {
                !is_output[k]
                    && consumers[k].iter().all(|&c| group[c] == Some(g))
                    && members.get(&g).is_some_and(|m| m.len() < MAX_STEPS)
            })
            .and_then(|g| {
                let mut ext = external.get(&g)?.clone();
                ext.remove(&Key::Step(k));
                ext.extend(reads.iter().cloned());
                (ext.len() <= MAX_INPUTS).then_some((g, ext))
            });
        let (g, ext) = joined.unwrap_or((k, reads));
        if ext.len() > MAX_INPUTS {
            continue;
        }
        group[k] = Some(g);
        members.entry(g).or_default().push(k);
        external.insert(g, ext);
    }
    let mut roots: Vec<usize> = members
        .iter()
        .filter(|(_, m)| m.len() >= 2)
        .map(|(&r, _)| r)
        .collect();
    if roots.is_empty() {
        return (None, Vec::new());
    }
    roots.sort_unstable();
    let mut fused_at: HashMap<usize, (FusedProgram, Vec<Ref>)> = HashMap::new();
    let mut descriptions = Vec::with_capacity(roots.len());
    for &root in &roots {
        let mut m = members.get(&root).cloned().unwrap_or_default();
        m.sort_unstable();
        let (prog, ext) = program_of(p, &m, input_dtypes);
        let s = &p.steps[root];
        descriptions.push(format!(
            "{} steps over {} inputs, shape {:?}, {}: {}",
            prog.steps.len(),
            ext.len(),
            s.shape,
            s.dtype,
            prog.describe()
        ));
        fused_at.insert(root, (prog, ext));
    }
    // Rebuild: a group becomes one step at its root's place; its other members go.
    let mut to = vec![usize::MAX; n];
    let mut steps = Vec::with_capacity(n);
    for (k, s) in p.steps.iter().enumerate() {
        match group[k] {
            Some(g) if g != k && fused_at.contains_key(&g) => continue,
            _ => {}
        }
        let step = match fused_at.remove(&k) {
            Some((prog, ext)) => TapeStep {
                prim: Primitive::Fused(FusedKernel(Arc::new(prog))),
                inputs: ext.iter().map(|r| remap(r, &to)).collect(),
                shape: s.shape.clone(),
                dtype: s.dtype,
            },
            None => TapeStep {
                prim: s.prim.clone(),
                inputs: s.inputs.iter().map(|r| remap(r, &to)).collect(),
                shape: s.shape.clone(),
                dtype: s.dtype,
            },
        };
        to[k] = steps.len();
        steps.push(step);
    }
    let outputs = p.outputs.iter().map(|r| remap(r, &to)).collect();
    (Some(Program { steps, outputs }), descriptions)
}

/// The fused program of the steps `m` (sorted, last = root) and its external reads.
fn program_of(p: &Program, m: &[usize], input_dtypes: &[crate::Dtype]) -> (FusedProgram, Vec<Ref>) {
    let pos: HashMap<usize, usize> = m.iter().enumerate().map(|(i, &k)| (k, i)).collect();
    let mut ext: Vec<Ref> = Vec::new();
    let mut ext_pos: HashMap<Key, usize> = HashMap::new();
    let mut dtypes = Vec::new();
    let mut steps = Vec::with_capacity(m.len());
    for &k in m {
        let s = &p.steps[k];
        let args = s
            .inputs
            .iter()
            .map(|r| {
                if let Ref::Step(j) = r {
                    if let Some(&i) = pos.get(j) {
                        return FusedArg::Step(i);
                    }
                }
                let i = *ext_pos.entry(key(r)).or_insert_with(|| {
                    ext.push(r.clone());
                    dtypes.push(dtype_of(r, &p.steps, input_dtypes).unwrap_or(s.dtype));
                    ext.len() - 1
                });
                FusedArg::Input(i)
            })
            .collect();
        steps.push(FusedStep {
            prim: s.prim.clone(),
            args,
            dtype: s.dtype,
        });
    }
    (
        FusedProgram {
            inputs: dtypes,
            steps,
        },
        ext,
    )
}
