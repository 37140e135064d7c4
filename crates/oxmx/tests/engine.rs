//! Engine-level tests through the public Rust API: laziness, evaluation, promotion,
//! checked shapes, deep graphs, memory limits and index safety.

use oxmx::dtype::{promote, promote_weak, ScalarKind};
use oxmx::{ops, Dtype, Error, Scalar};

fn f32s(v: &[f32], shape: Vec<usize>) -> oxmx::Array {
    oxmx::init();
    ops::from_slice(v, shape, Dtype::Float32).unwrap()
}

#[test]
fn ops_are_lazy_until_read() {
    let a = f32s(&[1.0, 2.0, 3.0, 4.0], vec![2, 2]);
    let b = ops::add(&a, &a).unwrap();
    assert!(!b.is_evaluated());
    assert_eq!(b.shape(), &[2, 2]);
    assert_eq!(oxmx::to_vec::<f32>(&b).unwrap(), vec![2.0, 4.0, 6.0, 8.0]);
}

#[test]
fn evaluation_detaches_the_graph() {
    let a = f32s(&[1.0, 2.0], vec![2]);
    let b = ops::multiply(&a, &a).unwrap();
    oxmx::eval::eval(std::slice::from_ref(&b)).unwrap();
    assert!(b.is_evaluated());
    assert!(b.pending_parts().is_none());
}

#[test]
fn promotion_follows_mlx() {
    assert_eq!(promote(Dtype::Uint8, Dtype::Int8), Dtype::Int16);
    assert_eq!(promote(Dtype::Uint64, Dtype::Int64), Dtype::Float32);
    assert_eq!(promote(Dtype::Float16, Dtype::Bfloat16), Dtype::Float32);
    assert_eq!(promote(Dtype::Int32, Dtype::Float16), Dtype::Float16);
    assert_eq!(promote(Dtype::Bool, Dtype::Int8), Dtype::Int8);
    assert_eq!(
        promote_weak(Dtype::Float16, ScalarKind::Float),
        Dtype::Float16
    );
    assert_eq!(
        promote_weak(Dtype::Int32, ScalarKind::Float),
        Dtype::Float32
    );
    assert_eq!(promote_weak(Dtype::Bool, ScalarKind::Int), Dtype::Int32);
}

#[test]
fn bad_shapes_are_errors_not_panics() {
    oxmx::init();
    assert!(matches!(
        ops::zeros(vec![1 << 40, 1 << 40], Dtype::Float32),
        Err(Error::Value { .. })
    ));
    let a = f32s(&[0.0; 6], vec![2, 3]);
    assert!(matches!(
        ops::reshape(&a, &[4, 4]),
        Err(Error::Value { .. })
    ));
    assert!(matches!(
        ops::sum(&a, Some(&[2]), false),
        Err(Error::Axis { .. })
    ));
    let b = f32s(&[0.0; 4], vec![4]);
    assert!(matches!(ops::add(&a, &b), Err(Error::Value { .. })));
}

#[test]
fn a_million_op_chain_evaluates_and_drops_without_recursion() {
    let one = f32s(&[1.0], vec![]);
    let mut x = one.clone();
    for _ in 0..1_000_000 {
        x = ops::add(&x, &one).unwrap();
    }
    assert_eq!(oxmx::to_vec::<f32>(&x).unwrap(), vec![1_000_001.0]);
    let mut y = one.clone();
    for _ in 0..1_000_000 {
        y = ops::multiply(&y, &one).unwrap();
    }
    drop(y); // an unevaluated chain: Node::drop must not recurse
}

#[test]
fn out_of_range_gather_is_an_index_error() {
    let a = f32s(&[1.0, 2.0, 3.0], vec![3]);
    let idx = ops::from_slice(&[0i64, 3], vec![2], Dtype::Int64).unwrap();
    let g = ops::take(&a, &idx, Some(0)).unwrap();
    assert!(matches!(oxmx::to_vec::<f32>(&g), Err(Error::Index { .. })));
    let neg = ops::from_slice(&[-1i64], vec![1], Dtype::Int64).unwrap();
    let g = ops::take(&a, &neg, Some(0)).unwrap();
    assert_eq!(oxmx::to_vec::<f32>(&g).unwrap(), vec![3.0]);
}

#[test]
fn as_strided_cannot_reach_outside_its_input() {
    let a = f32s(&[0.0; 4], vec![4]);
    assert!(ops::as_strided(&a, &[2], &[3], 0).is_ok());
    assert!(matches!(
        ops::as_strided(&a, &[2], &[4], 0),
        Err(Error::Value { .. })
    ));
    assert!(matches!(
        ops::as_strided(&a, &[1], &[1], 9),
        Err(Error::Value { .. })
    ));
}

#[test]
fn integer_division_is_defined() {
    oxmx::init();
    let a = ops::from_slice(&[i32::MIN, 7, -7], vec![3], Dtype::Int32).unwrap();
    let b = ops::from_slice(&[-1i32, 0, 2], vec![3], Dtype::Int32).unwrap();
    let q = oxmx::to_vec::<i32>(&ops::floor_divide(&a, &b).unwrap()).unwrap();
    let r = oxmx::to_vec::<i32>(&ops::remainder(&a, &b).unwrap()).unwrap();
    assert_eq!(q, vec![i32::MIN, 0, -4]);
    assert_eq!(r, vec![0, 0, 1]);
}

#[test]
fn views_share_and_slice_correctly() {
    let a = ops::arange(0.0, 12.0, 1.0, Dtype::Float32).unwrap();
    let a = ops::reshape(&a, &[3, 4]).unwrap();
    let t = ops::transpose(&a, None).unwrap();
    let s = ops::slice(&t, &[3, 0], &[0, 3], Some(&[-2, 2])).unwrap();
    // rows 3 and 1 of the transpose, columns 0 and 2
    assert_eq!(oxmx::to_vec::<f32>(&s).unwrap(), vec![3.0, 11.0, 1.0, 9.0]);
}

#[test]
fn scalars_convert_with_defined_casts() {
    assert_eq!(
        Scalar::Float(f64::NAN).to_bytes(Dtype::Int32),
        0i32.to_le_bytes()
    );
    assert_eq!(
        Scalar::Float(1e20).to_bytes(Dtype::Int32),
        i32::MAX.to_le_bytes()
    );
    assert_eq!(Scalar::Int(-1).to_bytes(Dtype::Uint8), vec![255]);
}
