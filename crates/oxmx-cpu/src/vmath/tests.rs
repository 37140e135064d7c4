//! Sanity checks of the kernels against float64 libm (the precise ulp bounds against an
//! extended-precision reference are in tests/test_math_ulp.py).

use super::{binary_run, unary_run};
use oxmx_core::primitive::{BinaryOp, UnaryOp};

/// Distance in representable float32 values.
fn ulps32(a: f32, b: f32) -> u32 {
    if a.is_nan() || b.is_nan() {
        return if a.is_nan() && b.is_nan() {
            0
        } else {
            u32::MAX
        };
    }
    let key = |v: f32| {
        let i = v.to_bits() as i32;
        if i < 0 {
            i32::MIN.wrapping_sub(i)
        } else {
            i
        }
    };
    key(a).abs_diff(key(b))
}

fn ulps64(a: f64, b: f64) -> u64 {
    if a.is_nan() || b.is_nan() {
        return if a.is_nan() && b.is_nan() {
            0
        } else {
            u64::MAX
        };
    }
    let key = |v: f64| {
        let i = v.to_bits() as i64;
        if i < 0 {
            i64::MIN.wrapping_sub(i)
        } else {
            i
        }
    };
    key(a).abs_diff(key(b))
}

/// Both signs of a log-uniform sweep from 1e-30 to `hi`, plus special values.
fn sweep(hi: f64, n: usize) -> Vec<f64> {
    let (l0, l1) = (1e-30f64.ln(), hi.ln());
    let mut v: Vec<f64> = (0..n)
        .map(|i| (l0 + (l1 - l0) * i as f64 / n as f64).exp())
        .flat_map(|x| [x, -x])
        .collect();
    v.extend([
        0.0,
        -0.0,
        1.0,
        -1.0,
        f64::INFINITY,
        -f64::INFINITY,
        f64::NAN,
    ]);
    v.extend([
        708.0,
        709.5,
        710.0,
        -745.0,
        1e6,
        1e20,
        3e38,
        f64::MAX,
        1e-310,
    ]);
    v
}

type Reference = fn(f64) -> f64;

/// e^x / (1 + e^x) below zero (keeps subnormal results), 1 / (1 + e^-x) above.
fn sigmoid_reference(x: f64) -> f64 {
    if x < 0.0 {
        let e = x.exp();
        e / (1.0 + e)
    } else {
        1.0 / (1.0 + (-x).exp())
    }
}

fn cases() -> Vec<(UnaryOp, Reference, f64)> {
    use UnaryOp::*;
    vec![
        (Exp, f64::exp, 800.0),
        (Expm1, f64::exp_m1, 800.0),
        (Log, f64::ln, 1e300),
        (Log2, f64::log2, 1e300),
        (Log10, f64::log10, 1e300),
        (Log1p, f64::ln_1p, 1e300),
        (Sin, f64::sin, 1e7),
        (Cos, f64::cos, 1e7),
        (Tan, f64::tan, 1e7),
        (ArcSin, f64::asin, 1.5),
        (ArcCos, f64::acos, 1.5),
        (ArcTan, f64::atan, 1e300),
        (Sinh, f64::sinh, 800.0),
        (Cosh, f64::cosh, 800.0),
        (Tanh, f64::tanh, 100.0),
        // the libm crate's (musl's) inverse hyperbolics: std's overflow near f64::MAX and
        // its atanh loses digits near +-1
        (ArcSinh, libm::asinh, 1e300),
        // (musl's acosh leaves x < 1 undefined: NaN there)
        (
            ArcCosh,
            |x| if x >= 1.0 { libm::acosh(x) } else { f64::NAN },
            1e300,
        ),
        (ArcTanh, libm::atanh, 1.5),
        (Erf, libm::erf, 10.0),
        (Sigmoid, sigmoid_reference, 800.0),
    ]
}

#[test]
fn float32_results_round_the_float64_reference() {
    for (op, reference, hi) in cases() {
        let xs: Vec<f32> = sweep(hi, 20_000).iter().map(|&x| x as f32).collect();
        let mut got = vec![0f32; xs.len()];
        unary_run(op, &xs, &mut got);
        for (&x, &g) in xs.iter().zip(&got) {
            let want = reference(x as f64) as f32;
            assert!(
                ulps32(g, want) <= 1,
                "{op:?}({x:e}) = {g:e}, float64 libm rounds to {want:e}"
            );
        }
    }
}

#[test]
fn float64_results_are_within_a_few_ulp_of_libm() {
    for (op, reference, hi) in cases() {
        let xs = sweep(hi, 20_000);
        let mut got = vec![0f64; xs.len()];
        unary_run(op, &xs, &mut got);
        for (&x, &g) in xs.iter().zip(&got) {
            let want = reference(x);
            assert!(ulps64(g, want) <= 4, "{op:?}({x:e}) = {g:e}, libm {want:e}");
            if x == 0.0 && want == 0.0 {
                assert_eq!(g.to_bits(), want.to_bits(), "{op:?}({x:e}) keeps the sign");
            }
        }
    }
}

#[test]
fn binary_kernels_match_libm() {
    let xs = sweep(1e3, 400);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for &x in &xs {
        for &y in xs.iter().step_by(7) {
            a.push(x);
            b.push(y);
        }
    }
    let mut got = vec![0f64; a.len()];
    binary_run(BinaryOp::ArcTan2, &a, &b, &mut got);
    for i in 0..a.len() {
        let want = a[i].atan2(b[i]);
        assert!(ulps64(got[i], want) <= 4, "atan2({}, {})", a[i], b[i]);
    }
    binary_run(BinaryOp::LogAddExp, &a, &b, &mut got);
    for i in 0..a.len() {
        let (x, y) = (a[i], b[i]);
        let m = x.max(y);
        let want = if m.is_infinite() || x.is_nan() || y.is_nan() {
            if x.is_nan() || y.is_nan() {
                f64::NAN
            } else {
                m
            }
        } else {
            m + (-(x - y).abs()).exp().ln_1p()
        };
        let tol = 4.0 * f64::EPSILON * want.abs().max(1.0);
        assert!(
            (got[i] - want).abs() <= tol || ulps64(got[i], want) <= 4,
            "logaddexp({x}, {y}) = {}, want {want}",
            got[i]
        );
    }
    let a32: Vec<f32> = a.iter().map(|&x| x as f32).collect();
    let b32: Vec<f32> = b.iter().map(|&x| (x as f32).clamp(-60.0, 60.0)).collect();
    let mut got32 = vec![0f32; a32.len()];
    binary_run(BinaryOp::Power, &a32, &b32, &mut got32);
    for i in 0..a32.len() {
        let want = (a32[i] as f64).powf(b32[i] as f64) as f32;
        assert!(
            ulps32(got32[i], want) <= 1,
            "power({}, {}) = {}, want {want}",
            a32[i],
            b32[i],
            got32[i]
        );
    }
}
