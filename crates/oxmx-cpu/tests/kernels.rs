//! Reduce, arg_reduce, softmax, matmul, gather/scatter kernels against naive loops.

use half::{bf16, f16};
use num_complex::Complex32;
use oxmx_core::ops;
use oxmx_core::primitive::ScatterMode;
use oxmx_core::{Array, Dtype, Error, Result};
use std::sync::Arc;

fn setup() {
    oxmx_core::backend::register(Arc::new(oxmx_cpu::CpuBackend));
}

fn try_vals<T: bytemuck::Pod>(a: &Array) -> Result<Vec<T>> {
    let c = ops::contiguous(a)?;
    let d = c.data()?;
    Ok(d.buffer.typed::<T>()[d.offset..d.offset + c.size()].to_vec())
}

fn vals<T: bytemuck::Pod>(a: &Array) -> Vec<T> {
    try_vals(a).unwrap()
}

/// Deterministic pseudo-random values in [-1, 1).
fn rand(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn arr(v: &[f32], shape: &[usize]) -> Array {
    ops::from_slice(v, shape.to_vec(), Dtype::Float32).unwrap()
}

fn strides_of(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Naive reduction of row-major `data` over `axes` (keepdims layout, row-major).
fn naive_reduce(
    data: &[f64],
    shape: &[usize],
    axes: &[usize],
    init: f64,
    f: impl Fn(f64, f64) -> f64,
) -> Vec<f64> {
    let oshape: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect();
    let on: usize = oshape.iter().product();
    let mut out = vec![init; on];
    let st = strides_of(shape);
    let ost = strides_of(&oshape);
    for (flat, &v) in data.iter().enumerate() {
        let mut o = 0;
        for d in 0..shape.len() {
            let i = (flat / st[d]) % shape[d].max(1);
            if !axes.contains(&d) {
                o += i * ost[d];
            }
        }
        out[o] = f(out[o], v);
    }
    out
}

/// Row-major values of a (possibly non-contiguous) f32 array, as f64.
fn f64s(a: &Array) -> Vec<f64> {
    vals::<f32>(a).iter().map(|&v| v as f64).collect()
}

fn close(a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len());
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        if x.is_nan() || y.is_nan() {
            assert!(x.is_nan() && y.is_nan(), "at {i}: {x} vs {y}");
            continue;
        }
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "at {i}: {x} vs {y}");
    }
}

fn subsets(nd: usize) -> Vec<Vec<usize>> {
    (1..(1usize << nd))
        .map(|m| (0..nd).filter(|i| m >> i & 1 == 1).collect())
        .collect()
}

/// Several views of the same logical values: contiguous, transposed, reversed, strided.
fn views(shape: &[usize], seed: u64) -> Vec<Array> {
    let n: usize = shape.iter().product();
    let v = rand(n, seed);
    let a = arr(&v, shape);
    let nd = shape.len();
    let mut out = vec![a.clone()];
    // transposed copy, transposed back: a non-contiguous view with the same values
    let perm: Vec<i64> = (0..nd as i64).rev().collect();
    let t = ops::contiguous(&ops::transpose(&a, Some(&perm)).unwrap()).unwrap();
    out.push(ops::transpose(&t, Some(&perm)).unwrap());
    // reversed along axis 0 twice -> negative strides
    let rev: Vec<i64> = vec![-1; nd];
    let start: Vec<i64> = shape.iter().map(|&d| d as i64 - 1).collect();
    let stop: Vec<i64> = vec![i64::MIN; nd];
    let r = ops::contiguous(&ops::slice(&a, &start, &stop, Some(&rev)).unwrap()).unwrap();
    out.push(ops::slice(&r, &start, &stop, Some(&rev)).unwrap());
    // every other element of a doubled last axis
    let mut big = shape.to_vec();
    big[nd - 1] *= 2;
    let bv: Vec<f32> = (0..v.len() * 2)
        .map(|i| if i % 2 == 0 { v[i / 2] } else { 99.0 })
        .collect();
    let b = arr(&bv, &big);
    let zeros = vec![0i64; nd];
    let stops: Vec<i64> = big.iter().map(|&d| d as i64).collect();
    let mut steps = vec![1i64; nd];
    steps[nd - 1] = 2;
    out.push(ops::slice(&b, &zeros, &stops, Some(&steps)).unwrap());
    for x in &out {
        assert_eq!(vals::<f32>(x), v);
    }
    out
}

#[test]
fn reduce_f32_all_axes_and_views() {
    setup();
    for shape in [vec![3usize, 4, 5], vec![2, 33, 17], vec![40, 3]] {
        for (k, x) in views(&shape, 7).iter().enumerate() {
            let data = f64s(x);
            for axes in subsets(shape.len()) {
                let ax: Vec<i64> = axes.iter().map(|&a| a as i64).collect();
                let got = f64s(&ops::sum(x, Some(&ax), true).unwrap());
                close(
                    &got,
                    &naive_reduce(&data, &shape, &axes, 0.0, |a, b| a + b),
                    1e-5,
                );
                let got = f64s(&ops::prod(x, Some(&ax), true).unwrap());
                close(
                    &got,
                    &naive_reduce(&data, &shape, &axes, 1.0, |a, b| a * b),
                    1e-4,
                );
                let got = f64s(&ops::max(x, Some(&ax), true).unwrap());
                close(
                    &got,
                    &naive_reduce(&data, &shape, &axes, f64::NEG_INFINITY, f64::max),
                    0.0,
                );
                let got = f64s(&ops::min(x, Some(&ax), true).unwrap());
                close(
                    &got,
                    &naive_reduce(&data, &shape, &axes, f64::INFINITY, f64::min),
                    0.0,
                );
                let gt = ops::greater(
                    x,
                    &ops::scalar(oxmx_core::Scalar::Float(0.5), Dtype::Float32).unwrap(),
                )
                .unwrap();
                let gd: Vec<f64> = data.iter().map(|&v| (v > 0.5) as u8 as f64).collect();
                let got: Vec<f64> = vals::<u8>(&ops::all(&gt, Some(&ax), true).unwrap())
                    .iter()
                    .map(|&v| v as f64)
                    .collect();
                close(&got, &naive_reduce(&gd, &shape, &axes, 1.0, f64::min), 0.0);
                let got: Vec<f64> = vals::<u8>(&ops::any(&gt, Some(&ax), true).unwrap())
                    .iter()
                    .map(|&v| v as f64)
                    .collect();
                close(&got, &naive_reduce(&gd, &shape, &axes, 0.0, f64::max), 0.0);
                let _ = k;
            }
        }
    }
}

#[test]
fn reduce_large_paths() {
    setup();
    // one big contiguous output (parallel pairwise), many outputs, row accumulation,
    // split reduced rows, strided.
    for (shape, axes) in [
        (vec![1 << 20], vec![0usize]),
        (vec![300, 1000], vec![1]),
        (vec![1000, 300], vec![0]),
        (vec![100_000, 20], vec![0]),
        (vec![64, 50, 40], vec![0, 2]),
        (vec![3, 200_000], vec![1]),
        (vec![200_000, 3], vec![1]),
    ] {
        for x in views(&shape, 3) {
            let data = f64s(&x);
            let ax: Vec<i64> = axes.iter().map(|&a| a as i64).collect();
            let got = f64s(&ops::sum(&x, Some(&ax), true).unwrap());
            let want = naive_reduce(&data, &shape, &axes, 0.0, |a, b| a + b);
            let scale = (shape.iter().product::<usize>() / want.len()) as f64;
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 1e-6 * scale,
                    "{shape:?} {axes:?}: {g} vs {w}"
                );
            }
            let got = f64s(&ops::max(&x, Some(&ax), true).unwrap());
            close(
                &got,
                &naive_reduce(&data, &shape, &axes, f64::NEG_INFINITY, f64::max),
                0.0,
            );
        }
    }
}

#[test]
fn reduce_nan_and_empty() {
    setup();
    let mut v = rand(100_000, 1);
    v[54_321] = f32::NAN;
    let x = arr(&v, &[100_000]);
    assert!(vals::<f32>(&ops::max(&x, None, false).unwrap())[0].is_nan());
    assert!(vals::<f32>(&ops::min(&x, None, false).unwrap())[0].is_nan());
    assert!(vals::<f32>(&ops::sum(&x, None, false).unwrap())[0].is_nan());
    let x = arr(&[1.0, f32::NAN, 3.0, 0.5, -1.0, 2.0], &[2, 3]);
    let m = vals::<f32>(&ops::max(&x, Some(&[0]), false).unwrap());
    assert_eq!(m[0], 1.0);
    assert!(m[1].is_nan());
    assert_eq!(m[2], 3.0);
    let m = vals::<f32>(&ops::min(&x, Some(&[1]), false).unwrap());
    assert!(m[0].is_nan());
    assert_eq!(m[1], -1.0);

    let e = arr(&[], &[0, 3]);
    assert_eq!(
        vals::<f32>(&ops::sum(&e, Some(&[0]), false).unwrap()),
        vec![0.0; 3]
    );
    assert_eq!(
        vals::<f32>(&ops::prod(&e, Some(&[0]), false).unwrap()),
        vec![1.0; 3]
    );
    assert_eq!(ops::sum(&e, Some(&[1]), false).unwrap().shape(), &[0]);
    assert!(vals::<f32>(&ops::sum(&e, Some(&[1]), false).unwrap()).is_empty());
    assert_eq!(vals::<f32>(&ops::sum(&e, None, false).unwrap()), vec![0.0]);
    let eb = ops::astype(&e, Dtype::Bool).unwrap();
    assert_eq!(vals::<u8>(&ops::all(&eb, None, false).unwrap()), vec![1]);
    assert_eq!(
        vals::<u8>(&ops::any(&eb, Some(&[0]), false).unwrap()),
        vec![0; 3]
    );
    assert!(ops::max(&e, Some(&[0]), false).is_err());
}

#[test]
fn reduce_dtypes() {
    setup();
    let v: Vec<f32> = (0..60).map(|i| ((i * 37) % 23) as f32 - 11.0).collect();
    let base = arr(&v, &[3, 4, 5]);
    let want_sum = naive_reduce(
        &v.iter().map(|&x| x as f64).collect::<Vec<_>>(),
        &[3, 4, 5],
        &[1],
        0.0,
        |a, b| a + b,
    );
    let want_max = naive_reduce(
        &v.iter().map(|&x| x as f64).collect::<Vec<_>>(),
        &[3, 4, 5],
        &[0, 2],
        f64::NEG_INFINITY,
        f64::max,
    );
    for d in [
        Dtype::Int8,
        Dtype::Int16,
        Dtype::Int32,
        Dtype::Int64,
        Dtype::Float16,
        Dtype::Bfloat16,
        Dtype::Float64,
        Dtype::Complex64,
    ] {
        let x = ops::astype(&base, d).unwrap();
        let s = ops::astype(&ops::sum(&x, Some(&[1]), true).unwrap(), Dtype::Float64).unwrap();
        close(&vals::<f64>(&s), &want_sum, 1e-3);
        let m = ops::astype(&ops::max(&x, Some(&[0, 2]), true).unwrap(), Dtype::Float64).unwrap();
        close(&vals::<f64>(&m), &want_max, 0.0);
    }
    // unsigned: values shifted to be positive
    for d in [Dtype::Uint8, Dtype::Uint16, Dtype::Uint32, Dtype::Uint64] {
        let x = ops::astype(
            &ops::add(
                &base,
                &ops::scalar(oxmx_core::Scalar::Float(11.0), Dtype::Float32).unwrap(),
            )
            .unwrap(),
            d,
        )
        .unwrap();
        let s = ops::astype(&ops::sum(&x, Some(&[1]), true).unwrap(), Dtype::Float64).unwrap();
        let w: Vec<f64> = want_sum.iter().map(|v| v + 44.0).collect();
        close(&vals::<f64>(&s), &w, 0.0);
        let p = ops::astype(&ops::min(&x, None, false).unwrap(), Dtype::Float64).unwrap();
        assert_eq!(vals::<f64>(&p), vec![0.0]);
    }
    // bool max/min
    let b = ops::astype(&base, Dtype::Bool).unwrap();
    assert_eq!(vals::<u8>(&ops::max(&b, None, false).unwrap()), vec![1]);
    assert_eq!(vals::<u8>(&ops::min(&b, None, false).unwrap()), vec![0]);
    // complex prod
    let c = ops::from_slice(
        &[Complex32::new(1.0, 1.0), Complex32::new(0.0, 2.0)],
        vec![2],
        Dtype::Complex64,
    )
    .unwrap();
    assert_eq!(
        vals::<Complex32>(&ops::prod(&c, None, false).unwrap()),
        vec![Complex32::new(-2.0, 2.0)]
    );
    assert_eq!(
        vals::<Complex32>(&ops::max(&c, None, false).unwrap()),
        vec![Complex32::new(1.0, 1.0)]
    );
    // f16 sums accumulate in f32: 4096 ones is exact
    let h = ops::astype(&arr(&vec![1.0; 4096], &[4096]), Dtype::Float16).unwrap();
    assert_eq!(
        vals::<f16>(&ops::sum(&h, None, false).unwrap()),
        vec![f16::from_f32(4096.0)]
    );
}

fn naive_arg(data: &[f64], n_outer: usize, n: usize, n_inner: usize, max: bool) -> Vec<u32> {
    let mut out = vec![];
    for o in 0..n_outer {
        for i in 0..n_inner {
            let mut bi = 0;
            let mut bv = data[o * n * n_inner + i];
            for j in 1..n {
                let v = data[(o * n + j) * n_inner + i];
                let better = if bv.is_nan() {
                    false
                } else if v.is_nan() {
                    true
                } else if max {
                    v > bv
                } else {
                    v < bv
                };
                if better {
                    bi = j;
                    bv = v;
                }
            }
            out.push(bi as u32);
        }
    }
    out
}

#[test]
fn arg_reduce() {
    setup();
    for shape in [vec![4usize, 7, 5], vec![50, 1000], vec![1000, 50]] {
        for x in views(&shape, 11) {
            // quantize to create ties
            let x = ops::round(
                &ops::multiply(
                    &x,
                    &ops::scalar(oxmx_core::Scalar::Float(3.0), Dtype::Float32).unwrap(),
                )
                .unwrap(),
                0,
            )
            .unwrap();
            let data = f64s(&x);
            for axis in 0..shape.len() {
                let n_outer: usize = shape[..axis].iter().product();
                let n_inner: usize = shape[axis + 1..].iter().product();
                for max in [true, false] {
                    let r = if max {
                        ops::argmax(&x, Some(axis as i64), false)
                    } else {
                        ops::argmin(&x, Some(axis as i64), false)
                    };
                    assert_eq!(
                        vals::<u32>(&r.unwrap()),
                        naive_arg(&data, n_outer, shape[axis], n_inner, max),
                        "{shape:?} {axis} {max}"
                    );
                }
            }
        }
    }
    let x = arr(&[1.0, f32::NAN, 3.0, f32::NAN, 0.0, 5.0], &[6]);
    assert_eq!(vals::<u32>(&ops::argmax(&x, None, false).unwrap()), vec![1]);
    assert_eq!(vals::<u32>(&ops::argmin(&x, None, false).unwrap()), vec![1]);
    let x = arr(&[2.0, 2.0, 1.0, 1.0], &[4]);
    assert_eq!(vals::<u32>(&ops::argmax(&x, None, false).unwrap()), vec![0]);
    assert_eq!(vals::<u32>(&ops::argmin(&x, None, false).unwrap()), vec![2]);
    let xi = ops::astype(&x, Dtype::Int16).unwrap();
    assert_eq!(
        vals::<u32>(&ops::argmin(&xi, Some(0), true).unwrap()),
        vec![2]
    );
}

#[test]
fn exp_accuracy() {
    let mut worst = 0i64;
    let mut x = -103.0f32;
    while x < 88.7 {
        let got = oxmx_cpu::softmax::exp_f32(x);
        let want = (x as f64).exp() as f32;
        if want > f32::MIN_POSITIVE {
            let d = (got.to_bits() as i64 - want.to_bits() as i64).abs();
            worst = worst.max(d);
        } else {
            assert!(
                (got - want).abs() <= 2.0 * f32::from_bits(1),
                "{x}: {got} vs {want}"
            );
        }
        x += 0.0137;
    }
    assert!(worst <= 2, "max ulp error {worst}");
    assert_eq!(oxmx_cpu::softmax::exp_f32(f32::NEG_INFINITY), 0.0);
    assert_eq!(oxmx_cpu::softmax::exp_f32(-200.0), 0.0);
    assert_eq!(oxmx_cpu::softmax::exp_f32(0.0), 1.0);
    assert_eq!(oxmx_cpu::softmax::exp_f32(89.0), f32::INFINITY);
    assert_eq!(oxmx_cpu::softmax::exp_f32(f32::INFINITY), f32::INFINITY);
    assert!(oxmx_cpu::softmax::exp_f32(f32::NAN).is_nan());
    assert!(oxmx_cpu::softmax::exp_f32(88.72).is_finite());
}

fn naive_softmax(data: &[f64], n: usize) -> Vec<f64> {
    let mut out = vec![];
    for row in data.chunks(n) {
        let m = row.iter().copied().fold(f64::NEG_INFINITY, |a, b| {
            if b.is_nan() || a.is_nan() {
                f64::NAN
            } else {
                a.max(b)
            }
        });
        let e: Vec<f64> = row.iter().map(|&v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        out.extend(e.iter().map(|v| v / s));
    }
    out
}

#[test]
fn softmax() {
    setup();
    for shape in [vec![3usize, 5], vec![7, 33], vec![64, 1000], vec![2, 3, 40]] {
        for x in views(&shape, 5) {
            let x = ops::multiply(
                &x,
                &ops::scalar(oxmx_core::Scalar::Float(20.0), Dtype::Float32).unwrap(),
            )
            .unwrap();
            let data = f64s(&x);
            let n = *shape.last().unwrap();
            let got = f64s(&ops::softmax(&x, Some(&[-1]), false).unwrap());
            close(&got, &naive_softmax(&data, n), 1e-5);
            for d in [Dtype::Float16, Dtype::Bfloat16, Dtype::Float64] {
                let xd = ops::astype(&x, d).unwrap();
                let xr = f64s(&ops::astype(&xd, Dtype::Float32).unwrap());
                let got = vals::<f64>(
                    &ops::astype(
                        &ops::softmax(&xd, Some(&[-1]), true).unwrap(),
                        Dtype::Float64,
                    )
                    .unwrap(),
                );
                close(
                    &got,
                    &naive_softmax(&xr, n),
                    if d == Dtype::Float64 { 1e-12 } else { 1e-2 },
                );
            }
        }
    }
    // softmax over axis 0 (non-contiguous rows)
    let v = rand(60, 9);
    let x = arr(&v, &[6, 10]);
    let got = f64s(&ops::softmax(&x, Some(&[0]), false).unwrap());
    let t = f64s(&ops::transpose(&x, None).unwrap());
    let want = naive_softmax(&t, 6);
    let want_t: Vec<f64> = (0..60).map(|i| want[(i % 10) * 6 + i / 10]).collect();
    close(&got, &want_t, 1e-5);
    // -inf entries, all -inf row (NaN like NumPy), NaN row
    let ni = f32::NEG_INFINITY;
    let x = arr(&[0.0, ni, 0.0, ni, ni, ni, 1.0, f32::NAN, 2.0], &[3, 3]);
    let got = vals::<f32>(&ops::softmax(&x, Some(&[-1]), false).unwrap());
    assert_eq!(&got[..3], &[0.5, 0.0, 0.5]);
    assert!(got[3..].iter().all(|v| v.is_nan()));
    // large values do not overflow
    let x = arr(&[1000.0, 1000.0], &[2]);
    assert_eq!(
        vals::<f32>(&ops::softmax(&x, None, false).unwrap()),
        vec![0.5, 0.5]
    );
    // empty
    let e = arr(&[], &[0, 4]);
    assert!(vals::<f32>(&ops::softmax(&e, Some(&[-1]), false).unwrap()).is_empty());
}

fn naive_mm(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            for j in 0..n {
                c[i * n + j] += a[i * k + p] * b[p * n + j];
            }
        }
    }
    c
}

#[test]
fn matmul() {
    setup();
    for (m, k, n) in [
        (1, 1, 1),
        (3, 4, 5),
        (17, 33, 9),
        (70, 80, 90),
        (130, 64, 70),
    ] {
        let av = rand(m * k, 1);
        let bv = rand(k * n, 2);
        let want = naive_mm(
            &av.iter().map(|&v| v as f64).collect::<Vec<_>>(),
            &bv.iter().map(|&v| v as f64).collect::<Vec<_>>(),
            m,
            k,
            n,
        );
        let a = arr(&av, &[m, k]);
        let b = arr(&bv, &[k, n]);
        // transposed storage for both operands
        let at = ops::transpose(
            &ops::contiguous(&ops::transpose(&a, None).unwrap()).unwrap(),
            None,
        )
        .unwrap();
        let bt = ops::transpose(
            &ops::contiguous(&ops::transpose(&b, None).unwrap()).unwrap(),
            None,
        )
        .unwrap();
        // reversed (negative strides) twice
        let rev = |x: &Array, r: usize, c: usize| {
            let s = [r as i64 - 1, c as i64 - 1];
            let e = [i64::MIN, i64::MIN];
            let y = ops::contiguous(&ops::slice(x, &s, &e, Some(&[-1, -1])).unwrap()).unwrap();
            ops::slice(&y, &s, &e, Some(&[-1, -1])).unwrap()
        };
        for (x, y) in [
            (&a, &b),
            (&at, &b),
            (&a, &bt),
            (&at, &bt),
            (&rev(&a, m, k), &rev(&b, k, n)),
        ] {
            close(&f64s(&ops::matmul(x, y).unwrap()), &want, 1e-5);
        }
        for d in [
            Dtype::Float64,
            Dtype::Float16,
            Dtype::Bfloat16,
            Dtype::Complex64,
        ] {
            let r =
                ops::matmul(&ops::astype(&a, d).unwrap(), &ops::astype(&b, d).unwrap()).unwrap();
            let r = if d == Dtype::Complex64 {
                ops::real(&r).unwrap()
            } else {
                r
            };
            let got = vals::<f64>(&ops::astype(&r, Dtype::Float64).unwrap());
            close(
                &got,
                &want,
                if matches!(d, Dtype::Float16 | Dtype::Bfloat16) {
                    3e-2 * (k as f64).sqrt()
                } else {
                    1e-5
                },
            );
        }
    }
    // batched with broadcast batch dims: (2, 1, m, k) @ (3, k, n)
    let (m, k, n) = (5, 6, 7);
    let av = rand(2 * m * k, 3);
    let bv = rand(3 * k * n, 4);
    let a = arr(&av, &[2, 1, m, k]);
    let b = arr(&bv, &[3, k, n]);
    let got = f64s(&ops::matmul(&a, &b).unwrap());
    assert_eq!(got.len(), 2 * 3 * m * n);
    let a64: Vec<f64> = av.iter().map(|&v| v as f64).collect();
    let b64: Vec<f64> = bv.iter().map(|&v| v as f64).collect();
    for i in 0..2 {
        for j in 0..3 {
            let w = naive_mm(
                &a64[i * m * k..(i + 1) * m * k],
                &b64[j * k * n..(j + 1) * k * n],
                m,
                k,
                n,
            );
            close(&got[(i * 3 + j) * m * n..(i * 3 + j + 1) * m * n], &w, 1e-5);
        }
    }
    // many small batched products (parallel over batches)
    let (bn, m, k, n) = (64, 20, 30, 25);
    let av = rand(bn * m * k, 5);
    let bv = rand(bn * k * n, 6);
    let got = f64s(&ops::matmul(&arr(&av, &[bn, m, k]), &arr(&bv, &[bn, k, n])).unwrap());
    let a64: Vec<f64> = av.iter().map(|&v| v as f64).collect();
    let b64: Vec<f64> = bv.iter().map(|&v| v as f64).collect();
    for i in 0..bn {
        let w = naive_mm(
            &a64[i * m * k..(i + 1) * m * k],
            &b64[i * k * n..(i + 1) * k * n],
            m,
            k,
            n,
        );
        close(&got[i * m * n..(i + 1) * m * n], &w, 1e-5);
    }
    // K = 0 → zeros; M = 0 → empty
    let z = ops::matmul(&arr(&[], &[3, 0]), &arr(&[], &[0, 4])).unwrap();
    assert_eq!(vals::<f32>(&z), vec![0.0; 12]);
    let z = ops::matmul(&arr(&[], &[0, 3]), &arr(&rand(12, 1), &[3, 4])).unwrap();
    assert!(vals::<f32>(&z).is_empty());
    // vector @ matrix (broadcast views through reshape)
    let v = arr(&[1.0, 2.0], &[2]);
    let mtx = arr(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    assert_eq!(
        vals::<f32>(&ops::matmul(&v, &mtx).unwrap()),
        vec![7.0, 10.0]
    );
    let _ = (bf16::ONE, f16::ONE);
}

fn i64s(v: &[i64], shape: &[usize]) -> Array {
    ops::from_slice(v, shape.to_vec(), Dtype::Int64).unwrap()
}

fn is_index_err<T: std::fmt::Debug>(r: Result<T>) -> bool {
    matches!(r, Err(Error::Index { .. }))
}

#[test]
fn gather_ops() {
    setup();
    let v: Vec<f32> = (0..24).map(|i| i as f32).collect();
    let x = arr(&v, &[2, 3, 4]);
    // take along axis 1 with negative indices
    let idx = i64s(&[2, -1, 0, -3], &[2, 2]);
    let g = ops::take(&x, &idx, Some(1)).unwrap();
    assert_eq!(g.shape(), &[2, 2, 2, 4]);
    let got = vals::<f32>(&g);
    for a in 0..2 {
        for (p, &i) in [2usize, 2, 0, 0].iter().enumerate() {
            for c in 0..4 {
                assert_eq!(got[(a * 4 + p) * 4 + c], v[a * 12 + i * 4 + c]);
            }
        }
    }
    // two axes (0 and 2), on a transposed view
    let xt = ops::transpose(&x, Some(&[2, 1, 0])).unwrap(); // (4, 3, 2)
    let g = ops::gather(
        &xt,
        &[i64s(&[3, 0, -1], &[3]), i64s(&[1, 0, 1], &[3])],
        &[0, 2],
    )
    .unwrap();
    assert_eq!(g.shape(), &[3, 3]);
    let got = vals::<f32>(&g);
    for (p, (&i, &j)) in [3usize, 0, 3].iter().zip(&[1usize, 0, 1]).enumerate() {
        for b in 0..3 {
            // xt[i, b, j] = x[j, b, i]
            assert_eq!(got[p * 3 + b], v[j * 12 + b * 4 + i]);
        }
    }
    // out of range
    assert!(is_index_err(try_vals::<f32>(
        &ops::take(&x, &i64s(&[3], &[1]), Some(1)).unwrap()
    )));
    assert!(is_index_err(try_vals::<f32>(
        &ops::take(&x, &i64s(&[-4], &[1]), Some(1)).unwrap()
    )));
    let e = try_vals::<f32>(&ops::take(&x, &i64s(&[0, 7], &[2]), Some(2)).unwrap()).unwrap_err();
    assert!(
        e.to_string()
            .contains("Index 7 is out of bounds for axis 2 with size 4."),
        "{e}"
    );
    // empty index
    let g = ops::take(&x, &i64s(&[], &[0]), Some(0)).unwrap();
    assert!(vals::<f32>(&g).is_empty());
    // big gather (parallel path)
    let big: Vec<f32> = (0..100_000).map(|i| i as f32).collect();
    let bx = arr(&big, &[1000, 100]);
    let ids: Vec<i64> = (0..2000).map(|i| (i * 7919) % 1000 - 500).collect();
    let got = vals::<f32>(&ops::take(&bx, &i64s(&ids, &[2000]), Some(0)).unwrap());
    for (p, &i) in ids.iter().enumerate() {
        let r = if i < 0 { i + 1000 } else { i } as usize;
        assert_eq!(&got[p * 100..p * 100 + 100], &big[r * 100..r * 100 + 100]);
    }
}

#[test]
fn take_put_along_axis() {
    setup();
    let v: Vec<f32> = (0..12).map(|i| i as f32 * 10.0).collect();
    let x = arr(&v, &[3, 4]);
    let idx = i64s(&[3, 0, -1, 1, 2, 2], &[3, 2]);
    let g = vals::<f32>(&ops::take_along_axis(&x, &idx, Some(1)).unwrap());
    assert_eq!(g, vec![30.0, 0.0, 70.0, 50.0, 100.0, 100.0]);
    // transposed source
    let xt = ops::transpose(&x, None).unwrap(); // (4, 3)
    let idx0 = i64s(&[1, 0, 3], &[1, 3]);
    let g = vals::<f32>(&ops::take_along_axis(&xt, &idx0, Some(0)).unwrap());
    assert_eq!(g, vec![10.0, 40.0, 110.0]);
    assert!(is_index_err(try_vals::<f32>(
        &ops::take_along_axis(&x, &i64s(&[4, 0, 0, 0, 0, 0], &[3, 2]), Some(1)).unwrap()
    )));

    // put_along_axis: duplicates -> last write wins
    let vals_in = arr(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2]);
    let p = vals::<f32>(&ops::put_along_axis(&x, &idx, &vals_in, Some(1)).unwrap());
    let mut want = v.clone();
    want[3] = 1.0;
    want[0] = 2.0;
    want[7] = 3.0;
    want[5] = 4.0;
    want[10] = 6.0;
    assert_eq!(p, want);
    // scatter add with duplicates
    let p = vals::<f32>(
        &ops::scatter_along_axis(&x, &idx, &vals_in, Some(1), ScatterMode::Add).unwrap(),
    );
    let mut want = v.clone();
    want[3] += 1.0;
    want[0] += 2.0;
    want[7] += 3.0;
    want[5] += 4.0;
    want[10] += 11.0;
    assert_eq!(p, want);
    assert!(is_index_err(try_vals::<f32>(
        &ops::put_along_axis(&x, &i64s(&[0, 0, 0, -5, 0, 0], &[3, 2]), &vals_in, Some(1)).unwrap()
    )));
}

#[test]
fn scatter_ops() {
    setup();
    let x = arr(&[0.0; 12], &[4, 3]);
    let idx = i64s(&[1, -1, 1], &[3]);
    let upd = arr(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], &[3, 3]);
    let modes = [
        (
            ScatterMode::Set,
            vec![0.0, 0.0, 0.0, 7.0, 8.0, 9.0, 0.0, 0.0, 0.0, 4.0, 5.0, 6.0],
        ),
        (
            ScatterMode::Add,
            vec![0.0, 0.0, 0.0, 8.0, 10.0, 12.0, 0.0, 0.0, 0.0, 4.0, 5.0, 6.0],
        ),
        (
            ScatterMode::Maximum,
            vec![0.0, 0.0, 0.0, 7.0, 8.0, 9.0, 0.0, 0.0, 0.0, 4.0, 5.0, 6.0],
        ),
        (ScatterMode::Minimum, vec![0.0; 12]),
        (ScatterMode::Multiply, vec![0.0; 12]),
    ];
    for (mode, want) in modes {
        let r = ops::scatter(&x, std::slice::from_ref(&idx), &upd, &[0], mode).unwrap();
        assert_eq!(vals::<f32>(&r), want, "{mode:?}");
    }
    // two axes, int dtype, broadcast updates
    let xi = ops::astype(&arr(&[1.0; 12], &[2, 3, 2]), Dtype::Int32).unwrap();
    let r = ops::scatter(
        &xi,
        &[i64s(&[0, 1], &[2]), i64s(&[-1, 0], &[2])],
        &ops::scalar(oxmx_core::Scalar::Int(5), Dtype::Int32).unwrap(),
        &[0, 2],
        ScatterMode::Multiply,
    )
    .unwrap();
    assert_eq!(vals::<i32>(&r), vec![1, 5, 1, 5, 1, 5, 5, 1, 5, 1, 5, 1]);
    // bool add is logical or
    let xb = ops::astype(&arr(&[0.0, 1.0, 0.0], &[3]), Dtype::Bool).unwrap();
    let ub = ops::astype(&arr(&[1.0, 1.0], &[2]), Dtype::Bool).unwrap();
    let r = ops::scatter(&xb, &[i64s(&[1, 1], &[2])], &ub, &[0], ScatterMode::Add).unwrap();
    assert_eq!(vals::<u8>(&r), vec![0, 1, 0]);
    // out of range
    let r = ops::scatter(
        &x,
        &[i64s(&[4], &[1])],
        &arr(&[1.0, 2.0, 3.0], &[1, 3]),
        &[0],
        ScatterMode::Set,
    )
    .unwrap();
    assert!(is_index_err(try_vals::<f32>(&r)));
    let r = ops::scatter(
        &x,
        &[i64s(&[i64::MIN], &[1])],
        &arr(&[1.0, 2.0, 3.0], &[1, 3]),
        &[0],
        ScatterMode::Add,
    )
    .unwrap();
    assert!(is_index_err(try_vals::<f32>(&r)));
}
