//! Quick timings of the reduce / softmax / matmul kernels (best of N).
//! `cargo run --release -p oxmx-cpu --example kernel_bench`

use oxmx_core::ops;
use oxmx_core::{Array, Dtype};
use std::sync::Arc;
use std::time::Instant;

fn rand(n: usize) -> Vec<f32> {
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

fn best(reps: usize, f: impl Fn() -> Array) -> f64 {
    let _ = f().data().unwrap();
    let mut b = f64::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        let r = f();
        let _ = r.data().unwrap();
        b = b.min(t.elapsed().as_secs_f64());
    }
    b
}

fn main() {
    oxmx_core::backend::register(Arc::new(oxmx_cpu::CpuBackend));
    let only: Vec<String> = std::env::args().skip(1).collect();
    let want = |k: &str| only.is_empty() || only.iter().any(|o| o == k);
    if want("sum") {
        let x = ops::from_slice(&rand(16 << 20), vec![16 << 20], Dtype::Float32).unwrap();
        let t = best(20, || ops::sum(&x, None, false).unwrap());
        println!("sum 16M f32: {:.3} ms", t * 1e3);
        let y = ops::from_slice(&rand(4096 * 4096), vec![4096, 4096], Dtype::Float32).unwrap();
        let t = best(20, || ops::sum(&y, Some(&[0]), false).unwrap());
        println!("sum axis0 4096^2 f32: {:.3} ms", t * 1e3);
        let t = best(20, || ops::sum(&y, Some(&[1]), false).unwrap());
        println!("sum axis1 4096^2 f32: {:.3} ms", t * 1e3);
        let t = best(20, || ops::max(&y, Some(&[1]), false).unwrap());
        println!("max axis1 4096^2 f32: {:.3} ms", t * 1e3);
        let t = best(20, || ops::argmax(&y, Some(1), false).unwrap());
        println!("argmax axis1 4096^2 f32: {:.3} ms", t * 1e3);
    }
    if want("softmax") {
        let y = ops::from_slice(&rand(4096 * 4096), vec![4096, 4096], Dtype::Float32).unwrap();
        let t = best(10, || ops::softmax(&y, Some(&[-1]), false).unwrap());
        println!("softmax 4096^2 f32: {:.3} ms", t * 1e3);
    }
    if want("matmul") {
        for n in [256usize, 512, 1024, 2048] {
            let a = ops::from_slice(&rand(n * n), vec![n, n], Dtype::Float32).unwrap();
            let b = ops::from_slice(&rand(n * n), vec![n, n], Dtype::Float32).unwrap();
            let reps = if n >= 2048 { 5 } else { 10 };
            let t = best(reps, || ops::matmul(&a, &b).unwrap());
            println!(
                "matmul {n} f32: {:.3} ms, {:.1} GFLOP/s",
                t * 1e3,
                2.0 * (n as f64).powi(3) / t / 1e9
            );
        }
    }
}
