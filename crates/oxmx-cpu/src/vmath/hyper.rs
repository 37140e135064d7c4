//! sinh, cosh, tanh, sigmoid, arcsinh, arccosh, arctanh and logaddexp, written over the
//! exp/expm1/log1p kernels.

use super::consts::{LN2_HI, SINH_TAYLOR};
use super::exp_log::{exp, expm1, log1p};
use super::{horner, horner_first, two_sum, Binary, Unary};

/// |x| <= 708: exp(|x|) stays normal.
#[inline(always)]
fn exp_range(x: f64) -> bool {
    x.abs() <= 708.0
}

#[inline(always)]
fn sinh<const NARROW: bool>(x: f64) -> f64 {
    let a = x.abs();
    let z = a * a;
    // Taylor series below 1 (no cancellation), exponentials above
    let p = if NARROW {
        horner_first::<f64, 6, 9>(z, &SINH_TAYLOR)
    } else {
        horner(z, &SINH_TAYLOR)
    };
    let small = a.mul_add(z * p, a);
    let e = exp::<NARROW>(a);
    let big = 0.5 * (e - 1.0 / e);
    (if a < 1.0 { small } else { big }).copysign(x)
}

pub struct Sinh;
impl Unary for Sinh {
    both_precisions!(sinh);
    float32_lanes!(single_hyper, sinh32, sinh32_domain);
    #[inline(always)]
    fn in_domain(x: f64) -> bool {
        exp_range(x)
    }
    fn exact(x: f64) -> f64 {
        x.sinh()
    }
}

#[inline(always)]
fn cosh<const NARROW: bool>(x: f64) -> f64 {
    let e = exp::<NARROW>(x.abs());
    0.5 * (e + 1.0 / e)
}

pub struct Cosh;
impl Unary for Cosh {
    both_precisions!(cosh);
    float32_lanes!(single_hyper, cosh32, cosh32_domain);
    #[inline(always)]
    fn in_domain(x: f64) -> bool {
        exp_range(x)
    }
    fn exact(x: f64) -> f64 {
        x.cosh()
    }
}

/// tanh x = e / (e + 2), e = expm1(2|x|); exactly +-1 beyond 22 (float64 rounds there).
#[inline(always)]
fn tanh<const NARROW: bool>(x: f64) -> f64 {
    let a = x.abs();
    let e = expm1::<NARROW>(2.0 * a.min(22.0));
    let d = e + 2.0;
    let q = e / d;
    let t = if NARROW {
        q
    } else {
        // the roundings of d = e + 2 (Fast2Sum) and of the quotient, corrected
        let de = if e < 2.0 {
            (2.0 - d) + e
        } else {
            (e - d) + 2.0
        };
        let rem = q.mul_add(-d, e) - q * de;
        q + rem / d
    };
    (if a < 22.0 { t } else { 1.0 }).copysign(x)
}

pub struct Tanh;
impl Unary for Tanh {
    both_precisions!(tanh);
    float32_lanes!(single_hyper, tanh32, tanh32_domain);
    #[inline(always)]
    fn in_domain(x: f64) -> bool {
        !x.is_nan()
    }
    fn exact(x: f64) -> f64 {
        x.tanh()
    }
}

/// 1 / (1 + e^-x), as e^x / (1 + e^x) below zero (no overflow, no loss for tiny results).
#[inline(always)]
fn sigmoid<const NARROW: bool>(x: f64) -> f64 {
    let e = exp::<NARROW>(-x.abs());
    let num = if x < 0.0 { e } else { 1.0 };
    let d = 1.0 + e;
    let q = num / d;
    if NARROW {
        return q;
    }
    // the roundings of d (Fast2Sum, e <= 1) and of the quotient, corrected
    let de = (1.0 - d) + e;
    q + (q.mul_add(-d, num) - q * de) / d
}

pub struct Sigmoid;
impl Unary for Sigmoid {
    both_precisions!(sigmoid);
    #[inline(always)]
    fn in_domain(x: f64) -> bool {
        exp_range(x)
    }
    fn exact(x: f64) -> f64 {
        // e^x / (1 + e^x) below zero keeps the subnormal results of large negative x
        if x < 0.0 {
            let e = x.exp();
            e / (1.0 + e)
        } else {
            1.0 / (1.0 + (-x).exp())
        }
    }
}

/// arcsinh |x| = log1p(a + a^2 / (1 + sqrt(1 + a^2))), with a^2/(..) written as
/// a / (1/a + sqrt(1/a^2 + 1)) so that nothing overflows for large a.
#[inline(always)]
fn asinh<const NARROW: bool>(x: f64) -> f64 {
    let a = x.abs();
    let ia = 1.0 / a;
    let w = a + a / (ia + ia.mul_add(ia, 1.0).sqrt());
    log1p::<NARROW>(w).copysign(x)
}

pub struct ArcSinh;
impl Unary for ArcSinh {
    both_precisions!(asinh);
    float32_lanes!(single_hyper, asinh32, asinh32_domain);
    #[inline(always)]
    fn in_domain(x: f64) -> bool {
        x.abs() <= 1e300
    }
    fn exact(x: f64) -> f64 {
        // ln(2|x|) where x^2 would overflow (exact to float64 beyond 2^28)
        if x.abs() > 1e300 {
            (x.abs().ln() + LN2_HI).copysign(x)
        } else {
            x.asinh()
        }
    }
}

/// arccosh x = log1p(t + sqrt(t (t + 2))), t = x - 1 (exact near 1).
#[inline(always)]
fn acosh<const NARROW: bool>(x: f64) -> f64 {
    let t = x - 1.0;
    log1p::<NARROW>(t + t.mul_add(t, 2.0 * t).sqrt())
}

pub struct ArcCosh;
impl Unary for ArcCosh {
    both_precisions!(acosh);
    float32_lanes!(single_hyper, acosh32, acosh32_domain);
    #[inline(always)]
    fn in_domain(x: f64) -> bool {
        (1.0..=1e150).contains(&x)
    }
    fn exact(x: f64) -> f64 {
        if x > 1e150 {
            x.ln() + LN2_HI
        } else {
            x.acosh()
        }
    }
}

/// arctanh |x| = log1p(2a + 2a^2 / (1 - a)) / 2.
#[inline(always)]
fn atanh<const NARROW: bool>(x: f64) -> f64 {
    let a = x.abs();
    let a2 = 2.0 * a;
    (0.5 * log1p::<NARROW>(a2.mul_add(a / (1.0 - a), a2))).copysign(x)
}

pub struct ArcTanh;
impl Unary for ArcTanh {
    both_precisions!(atanh);
    float32_lanes!(single_hyper, atanh32, atanh32_domain);
    #[inline(always)]
    fn in_domain(x: f64) -> bool {
        x.abs() < 1.0
    }
    fn exact(x: f64) -> f64 {
        x.atanh()
    }
}

/// log(e^x + e^y) = max + log1p(e^-|x - y|) for finite x, y; full precision for every
/// dtype, since the two terms cancel where the result is near 0.
#[inline(always)]
fn logaddexp(x: f64, y: f64) -> f64 {
    let m = x.max(y);
    // d = -|x - y| and the rounding error of the difference (it moves e^d by as much)
    let (s, err) = two_sum(x, -y);
    let (d, dl) = if s > 0.0 { (-s, -err) } else { (s, err) };
    // below -708 the term is under 2^-1000 and vanishes against m
    let e = if d >= -708.0 { exp::<false>(d) } else { 0.0 };
    m + log1p::<false>(e.mul_add(dl, e))
}

pub struct LogAddExp;
impl Binary for LogAddExp {
    #[inline(always)]
    fn fast(x: f64, y: f64) -> f64 {
        logaddexp(x, y)
    }
    #[inline(always)]
    fn in_domain(x: f64, y: f64) -> bool {
        // x - y finite too: its rounding error is part of the fast path
        x.is_finite() && y.is_finite() && (x - y).is_finite()
    }
    fn exact(x: f64, y: f64) -> f64 {
        if x.is_nan() || y.is_nan() {
            return f64::NAN;
        }
        let m = x.max(y);
        if m.is_infinite() {
            return m;
        }
        m + (-(x - y).abs()).exp().ln_1p()
    }
}
