//! Function transforms through the public Rust API: gradients of a million-op chain
//! (no recursion anywhere), forward mode, batching, and eval inside a transform.

use oxmx::transforms::{jvp_fn, vjp_fn};
use oxmx::{ops, Dtype, Scalar};

fn scalar(v: f32) -> oxmx::Array {
    oxmx::init();
    ops::scalar(Scalar::Float(v as f64), Dtype::Float32).unwrap()
}

#[test]
fn million_op_chain_differentiates_without_deep_recursion() {
    let x = scalar(1.0);
    let c = scalar(1e-6);
    let (outs, grads) = vjp_fn(
        |xs| {
            let mut y = xs[0].clone();
            for _ in 0..1_000_000 {
                y = ops::add(&y, &c)?;
            }
            Ok(vec![ops::multiply(&y, &xs[0])?])
        },
        std::slice::from_ref(&x),
        &[scalar(1.0)],
    )
    .unwrap();
    let y = oxmx::to_vec::<f32>(&outs[0]).unwrap()[0];
    let g = oxmx::to_vec::<f32>(&grads[0]).unwrap()[0];
    // d/dx (x + c*n) * x = (x + c*n) + x
    assert!((g - (y + 1.0)).abs() < 1e-5, "{g} vs {y}");
}

#[test]
fn jvp_and_eval_inside_the_function() {
    let x = scalar(2.0);
    let (outs, tans) = jvp_fn(
        |xs| {
            let sq = ops::multiply(&xs[0], &xs[0])?;
            // evaluating inside a transform keeps the graph for the walk
            oxmx::eval::eval(std::slice::from_ref(&sq))?;
            Ok(vec![ops::multiply(&sq, &xs[0])?])
        },
        std::slice::from_ref(&x),
        &[scalar(1.0)],
    )
    .unwrap();
    assert_eq!(oxmx::to_vec::<f32>(&outs[0]).unwrap(), vec![8.0]);
    assert_eq!(oxmx::to_vec::<f32>(&tans[0]).unwrap(), vec![12.0]);
}
