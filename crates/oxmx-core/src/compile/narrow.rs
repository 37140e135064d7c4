//! Rewrites for the program `compile` replays when no transform traces its inputs:
//! custom-function nodes become plain aliases of their real outputs (their rules only
//! matter to transforms), and the fused cross-entropy reads half-precision logits
//! directly instead of a float32 copy of them. One loop over the steps each, no
//! recursion.

use super::{Program, Ref, TapeStep};
use crate::primitive::{FastKernel, Primitive};
use crate::Dtype;

fn follow(r: &Ref, to: &[Ref]) -> Ref {
    match r {
        Ref::Step(j) => to.get(*j).cloned().unwrap_or_else(|| r.clone()),
        other => other.clone(),
    }
}

/// Every reference to a custom-function node replaced by its real output (the node's
/// input `n_primals + index`), so that its primals are no longer kept alive by it. The
/// nodes themselves stay in place, unused, for `drop_unused` to remove.
pub(super) fn strip_custom(p: &Program) -> Program {
    let mut to: Vec<Ref> = Vec::with_capacity(p.steps.len());
    let mut steps = Vec::with_capacity(p.steps.len());
    for (k, s) in p.steps.iter().enumerate() {
        let inputs: Vec<Ref> = s.inputs.iter().map(|r| follow(r, &to)).collect();
        let real = match &s.prim {
            Primitive::Custom(c) => c
                .n_primals
                .checked_add(c.index)
                .and_then(|i| inputs.get(i))
                .cloned(),
            _ => None,
        };
        to.push(real.unwrap_or(Ref::Step(k)));
        steps.push(TapeStep {
            prim: s.prim.clone(),
            inputs,
            shape: s.shape.clone(),
            dtype: s.dtype,
        });
    }
    let outputs = p.outputs.iter().map(|r| follow(r, &to)).collect();
    Program { steps, outputs }
}

/// The half-precision array a reference is a float32 cast of: `Some(source)` when `r` is
/// the step `astype(source, float32)` with `source` float16 or bfloat16.
fn widened_half(r: &Ref, steps: &[TapeStep], input_dtypes: &[Dtype]) -> Option<(Ref, Dtype)> {
    let Ref::Step(j) = r else { return None };
    let s = steps.get(*j)?;
    if s.prim != Primitive::AsType(Dtype::Float32) || s.dtype != Dtype::Float32 {
        return None;
    }
    let src = s.inputs.first()?;
    let d = match src {
        Ref::Input(i) => input_dtypes.get(*i).copied()?,
        Ref::Step(i) => steps.get(*i)?.dtype,
        Ref::Const(a) => a.dtype(),
    };
    matches!(d, Dtype::Float16 | Dtype::Bfloat16).then(|| (src.clone(), d))
}

/// `cross_entropy(astype(x, float32), t)` reads the float16/bfloat16 `x` itself (the
/// kernels compute in float32 either way), and `astype(cross_entropy_grad(astype(x,
/// float32), t, g), x.dtype)` becomes one gradient kernel storing x's dtype (rounding
/// once, as the cast did). The float32 copy of the logits and the two casts then have
/// no use left. Results are unchanged bit for bit: both backends sum a row in an order
/// set by its length alone, whatever its element type.
pub(super) fn read_half_logits(p: Program, input_dtypes: &[Dtype]) -> Program {
    let mut steps = p.steps;
    for k in 0..steps.len() {
        let Some(s) = steps.get(k) else { break };
        let replacement = match &s.prim {
            Primitive::Fast(FastKernel::CrossEntropy) => s
                .inputs
                .first()
                .and_then(|l| widened_half(l, &steps, input_dtypes))
                .map(|(src, _)| {
                    let mut inputs = s.inputs.clone();
                    if let Some(first) = inputs.first_mut() {
                        *first = src;
                    }
                    TapeStep {
                        inputs,
                        ..s.clone()
                    }
                }),
            Primitive::AsType(h) if matches!(h, Dtype::Float16 | Dtype::Bfloat16) => {
                half_gradient(s, *h, &steps, input_dtypes)
            }
            _ => None,
        };
        if let (Some(r), Some(slot)) = (replacement, steps.get_mut(k)) {
            *slot = r;
        }
    }
    Program {
        steps,
        outputs: p.outputs,
    }
}

/// The step `astype(cross_entropy_grad(astype(x, f32), t, g), h)` with x of dtype `h`,
/// as `cross_entropy_grad(x, t, g)` of dtype `h`.
fn half_gradient(
    cast: &TapeStep,
    h: Dtype,
    steps: &[TapeStep],
    input_dtypes: &[Dtype],
) -> Option<TapeStep> {
    let Some(Ref::Step(g)) = cast.inputs.first() else {
        return None;
    };
    let grad = steps.get(*g)?;
    if grad.prim != Primitive::Fast(FastKernel::CrossEntropyGrad) || grad.dtype != Dtype::Float32 {
        return None;
    }
    let (src, d) = widened_half(grad.inputs.first()?, steps, input_dtypes)?;
    if d != h || grad.shape != cast.shape {
        return None;
    }
    let mut inputs = grad.inputs.clone();
    if let Some(first) = inputs.first_mut() {
        *first = src;
    }
    Some(TapeStep {
        prim: grad.prim.clone(),
        inputs,
        shape: cast.shape.clone(),
        dtype: h,
    })
}
