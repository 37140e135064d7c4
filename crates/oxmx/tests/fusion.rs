//! Fused nodes (`Primitive::Fused`) under transforms: their vjp, jvp and vmap rules
//! expand the program into the nodes it replaced, so the results must equal the
//! unfused function's exactly.

use oxmx::ops::fused::{FusedArg, FusedKernel, FusedProgram, FusedStep};
use oxmx::primitive::{BinaryOp, Primitive, UnaryOp};
use oxmx::transforms::{jvp_fn, vjp_fn};
use oxmx::{ops, Array, Dtype, Result};
use std::sync::Arc;

fn arr(v: &[f32]) -> Array {
    oxmx::init();
    ops::from_slice(v, vec![v.len()], Dtype::Float32).unwrap()
}

/// exp(sin(x) * w) as one fused node.
fn fused(xs: &[Array]) -> Result<Vec<Array>> {
    let step = |prim, args| FusedStep {
        prim,
        args,
        dtype: Dtype::Float32,
    };
    let p = FusedProgram {
        inputs: vec![Dtype::Float32; 2],
        steps: vec![
            step(Primitive::Unary(UnaryOp::Sin), vec![FusedArg::Input(0)]),
            step(
                Primitive::Binary(BinaryOp::Multiply),
                vec![FusedArg::Step(0), FusedArg::Input(1)],
            ),
            step(Primitive::Unary(UnaryOp::Exp), vec![FusedArg::Step(1)]),
        ],
    };
    Ok(vec![Array::pending(
        xs[0].shape().to_vec(),
        Dtype::Float32,
        Primitive::Fused(FusedKernel(Arc::new(p))),
        xs.to_vec(),
    )])
}

fn plain(xs: &[Array]) -> Result<Vec<Array>> {
    let s = ops::unary(UnaryOp::Sin, &xs[0])?;
    let m = ops::multiply(&s, &xs[1])?;
    Ok(vec![ops::unary(UnaryOp::Exp, &m)?])
}

fn values(a: &Array) -> Vec<f32> {
    oxmx::to_vec::<f32>(a).unwrap()
}

#[test]
fn fused_node_values_and_vjp_equal_the_unfused_graph() {
    let xs = [arr(&[0.1, 0.5, 1.3, -2.0]), arr(&[2.0, 3.0, -4.0, 0.5])];
    let cot = [arr(&[1.0, -1.0, 0.5, 2.0])];
    let (fo, fg) = vjp_fn(fused, &xs, &cot).unwrap();
    let (po, pg) = vjp_fn(plain, &xs, &cot).unwrap();
    assert_eq!(values(&fo[0]), values(&po[0]));
    for (a, b) in fg.iter().zip(&pg) {
        assert_eq!(values(a), values(b));
    }
}

#[test]
fn fused_node_jvp_equals_the_unfused_graph() {
    let xs = [arr(&[0.1, 0.5, 1.3]), arr(&[2.0, 3.0, -4.0])];
    let tans = [arr(&[1.0, 0.0, -1.0]), arr(&[0.5, 0.25, 2.0])];
    let (_, ft) = jvp_fn(fused, &xs, &tans).unwrap();
    let (_, pt) = jvp_fn(plain, &xs, &tans).unwrap();
    assert_eq!(values(&ft[0]), values(&pt[0]));
}

#[test]
fn fused_node_vmap_equals_the_unfused_graph() {
    let trace = oxmx::array::Trace::new();
    let _guard = oxmx::transforms::TraceGuard(Arc::clone(&trace));
    let one = [arr(&[0.1, 0.5]), arr(&[2.0, 3.0])];
    let leaves: Vec<Array> = one
        .iter()
        .map(|x| oxmx::transforms::leaf(x, &trace))
        .collect();
    let batched = [ops::from_slice(
        &[0.1f32, 0.5, 0.7, -1.0, 2.0, 0.3],
        vec![3, 2],
        Dtype::Float32,
    )
    .unwrap()];
    let outs_f = fused(&leaves).unwrap();
    let outs_p = plain(&leaves).unwrap();
    // only the first input is batched; the second leaf is a constant to this vmap
    let f = oxmx::transforms::vmap(&leaves[..1], &batched[..1], &[0], 3, &outs_f).unwrap();
    let p = oxmx::transforms::vmap(&leaves[..1], &batched[..1], &[0], 3, &outs_p).unwrap();
    assert_eq!(f[0].1, p[0].1);
    assert_eq!(values(&f[0].0), values(&p[0].0));
}
