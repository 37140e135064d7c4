//! The memory limit lives in its own test binary: it changes process-wide state.

use oxmx::{ops, Dtype, Error};

#[test]
fn memory_limit_gives_memory_error_and_recovers() {
    oxmx::init();
    let pool = oxmx::memory::pool();
    let old = pool.set_limit(pool.active() + 1024);
    let big = ops::zeros(vec![1 << 20], Dtype::Float32).unwrap();
    let r = oxmx::eval::eval(std::slice::from_ref(&big));
    pool.set_limit(old);
    assert!(matches!(r, Err(Error::Memory { .. })));
    let small = ops::ones(vec![4], Dtype::Float32).unwrap();
    assert_eq!(oxmx::to_vec::<f32>(&small).unwrap(), vec![1.0; 4]);
}
