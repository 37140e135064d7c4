//! exp, expm1, log, log2, log10, log1p and power.
//!
//! exp: x = k ln2 + r (Cody-Waite, |r| <= ln2/2, r kept as r + c to double precision),
//! e^r by its Taylor series to r^13 (truncation below 2^-60), scaled by 2^k.
//! log: x = 2^k (1 + f), sqrt(1/2) <= 1 + f < sqrt(2); log(1+f) = 2 atanh(s),
//! s = f/(2+f), |s| < 0.172, as f - f^2/2 + s (f^2/2 + R(s^2)) with R to s^22; the
//! pieces are summed in double-double so that the base-2/10 scalings stay within 1 ulp.

use super::consts::*;
use super::{horner, horner_first, keep_zero, pow2i, round_int, two_sum, Binary, Unary};

/// x = k ln2 + r + c: (k, r, c), r + c accurate to about 2^-100 relative.
#[inline(always)]
fn reduce_ln2(x: f64) -> (i64, f64, f64) {
    let (kf, k) = round_int(x * LOG2E);
    // exact: k * LN2_CW_HI has at most 43 bits and cancels against x
    let hi = (-kf).mul_add(LN2_CW_HI, x);
    let lo = kf * LN2_CW_LO;
    let r = hi - lo;
    (k, r, (hi - r) - lo)
}

/// e^(r + c) - 1 for |r| <= ln2/2 (+ rounding), c tiny; NARROW: to r^9.
#[inline(always)]
fn expm1_reduced<const NARROW: bool>(r: f64, c: f64) -> f64 {
    let q = if NARROW {
        horner_first::<f64, 8, 12>(r, &EXP_TAYLOR)
    } else {
        horner(r, &EXP_TAYLOR)
    };
    let em = (r * r).mul_add(q, r);
    // e^(r+c) - 1 = em + c e^r to first order in c
    c.mul_add(1.0 + em, em)
}

/// e^x for |x| <= 708 (the result stays normal).
#[inline(always)]
pub(super) fn exp<const NARROW: bool>(x: f64) -> f64 {
    let (k, r, c) = reduce_ln2(x);
    (1.0 + expm1_reduced::<NARROW>(r, c)) * pow2i(k)
}

/// Below this, expm1 takes its Taylor series of x itself: with k = 1 just above ln2/2
/// the final 2 (1 + em) - 1 would lose up to a bit.
const EXPM1_DIRECT: f64 = 0.75;

/// e^x - 1 for |x| <= 708.
#[inline(always)]
pub(super) fn expm1<const NARROW: bool>(x: f64) -> f64 {
    let (k, r, c) = reduce_ln2(x);
    let em = expm1_reduced::<NARROW>(r, c);
    let s = pow2i(k);
    // 2^k (1 + em) - 1 with one rounding; s - 1 is exact for |k| <= 53
    let reduced = s.mul_add(em, s - 1.0);
    let q = if NARROW {
        horner_first::<f64, 11, 18>(x, &EXPM1_TAYLOR)
    } else {
        horner(x, &EXPM1_TAYLOR)
    };
    let direct = (x * x).mul_add(q, x);
    keep_zero(
        x,
        if x.abs() < EXPM1_DIRECT {
            direct
        } else {
            reduced
        },
    )
}

/// x = 2^k (1 + f) with sqrt(1/2) <= 1 + f < sqrt(2), for positive normal x: (k, f).
#[inline(always)]
fn split_exponent(x: f64) -> (f64, f64) {
    const SQRT_HALF: u64 = 0x3FE6_A09E_667F_3BCD;
    const MANTISSA: u64 = 0x000F_FFFF_FFFF_FFFF;
    let rel = x.to_bits().wrapping_sub(SQRT_HALF);
    let k = (rel as i64) >> 52;
    let m = f64::from_bits((rel & MANTISSA).wrapping_add(SQRT_HALF));
    (k as f64, m - 1.0)
}

/// log(1 + f) = hi + lo for f in [sqrt(1/2) - 1, sqrt(2) - 1]; NARROW: R to s^12.
#[inline(always)]
fn log1p_reduced<const NARROW: bool>(f: f64) -> (f64, f64) {
    let s = f / (2.0 + f);
    let z = s * s;
    let r = z * if NARROW {
        horner_first::<f64, 6, 11>(z, &LOG_ATANH)
    } else {
        horner(z, &LOG_ATANH)
    };
    let hfsq = 0.5 * f * f;
    let hi = f - hfsq;
    // (f - hi) - hfsq is the exact rounding error of hi (Sterbenz, then Fast2Sum)
    (hi, ((f - hi) - hfsq) + s * (hfsq + r))
}

/// k a + (hi + lo) b in double-double, for a = a_hi + a_lo and b = b_hi + b_lo
/// (NARROW: in plain float64).
#[inline(always)]
fn combine<const NARROW: bool>(k: f64, hi: f64, lo: f64, a: (f64, f64), b: (f64, f64)) -> f64 {
    if NARROW {
        return k.mul_add(a.0, (hi + lo) * b.0);
    }
    let p = k * a.0;
    let pe = k.mul_add(a.0, -p);
    let q = hi * b.0;
    let qe = hi.mul_add(b.0, -q);
    let (s, se) = two_sum(p, q);
    let tail = se + pe + qe + k * a.1 + hi.mul_add(b.1, lo * b.0);
    s + tail
}

const LN2: (f64, f64) = (LN2_HI, LN2_LO);
const ONE: (f64, f64) = (1.0, 0.0);

/// Natural log of a positive normal finite x, scaled: k a + log(1+f) b.
#[inline(always)]
fn log_scaled<const NARROW: bool>(x: f64, a: (f64, f64), b: (f64, f64)) -> f64 {
    let (k, f) = split_exponent(x);
    let (hi, lo) = log1p_reduced::<NARROW>(f);
    combine::<NARROW>(k, hi, lo, a, b)
}

/// log(1 + x) for -1 < x < inf.
#[inline(always)]
pub(super) fn log1p<const NARROW: bool>(x: f64) -> f64 {
    let u = 1.0 + x;
    // the rounding error of u = 1 + x (Fast2Sum with the larger operand first)
    let c = if x.abs() < 1.0 {
        x - (u - 1.0)
    } else {
        1.0 - (u - x)
    };
    let (k, f) = split_exponent(u);
    let (hi, lo) = log1p_reduced::<NARROW>(f);
    // log(u + c) = log(u) + c/u to first order
    keep_zero(x, combine::<NARROW>(k, hi, lo + c / u, LN2, ONE))
}

#[inline(always)]
fn positive_normal(x: f64) -> bool {
    (f64::MIN_POSITIVE..f64::INFINITY).contains(&x)
}

pub struct Exp;
impl Unary for Exp {
    both_precisions!(exp);
    float32_lanes!(exp32, exp32_domain);
    #[inline(always)]
    fn in_domain(x: f64) -> bool {
        x.abs() <= 708.0
    }
    fn exact(x: f64) -> f64 {
        x.exp()
    }
}

pub struct Expm1;
impl Unary for Expm1 {
    both_precisions!(expm1);
    float32_lanes!(expm1_32, expm1_32_domain);
    #[inline(always)]
    fn in_domain(x: f64) -> bool {
        x.abs() <= 708.0
    }
    fn exact(x: f64) -> f64 {
        x.exp_m1()
    }
}

pub struct Log;
impl Unary for Log {
    #[inline(always)]
    fn fast(x: f64) -> f64 {
        log_scaled::<false>(x, LN2, ONE)
    }
    #[inline(always)]
    fn fast_narrow(x: f64) -> f64 {
        log_scaled::<true>(x, LN2, ONE)
    }
    float32_lanes!(log32, log32_domain);
    #[inline(always)]
    fn in_domain(x: f64) -> bool {
        positive_normal(x)
    }
    fn exact(x: f64) -> f64 {
        x.ln()
    }
}

pub struct Log2;
impl Unary for Log2 {
    #[inline(always)]
    fn fast(x: f64) -> f64 {
        log_scaled::<false>(x, ONE, (INV_LN2_HI, INV_LN2_LO))
    }
    #[inline(always)]
    fn fast_narrow(x: f64) -> f64 {
        log_scaled::<true>(x, ONE, (INV_LN2_HI, INV_LN2_LO))
    }
    float32_lanes!(log2_32, log32_domain);
    #[inline(always)]
    fn in_domain(x: f64) -> bool {
        positive_normal(x)
    }
    fn exact(x: f64) -> f64 {
        x.log2()
    }
}

pub struct Log10;
impl Unary for Log10 {
    #[inline(always)]
    fn fast(x: f64) -> f64 {
        log_scaled::<false>(x, (LOG10_2_HI, LOG10_2_LO), (INV_LN10_HI, INV_LN10_LO))
    }
    #[inline(always)]
    fn fast_narrow(x: f64) -> f64 {
        log_scaled::<true>(x, (LOG10_2_HI, LOG10_2_LO), (INV_LN10_HI, INV_LN10_LO))
    }
    float32_lanes!(log10_32, log32_domain);
    #[inline(always)]
    fn in_domain(x: f64) -> bool {
        positive_normal(x)
    }
    fn exact(x: f64) -> f64 {
        x.log10()
    }
}

pub struct Log1p;
impl Unary for Log1p {
    both_precisions!(log1p);
    float32_lanes!(log1p32, log1p32_domain);
    #[inline(always)]
    fn in_domain(x: f64) -> bool {
        x > -1.0 && x < f64::INFINITY
    }
    fn exact(x: f64) -> f64 {
        x.ln_1p()
    }
}

/// x^y for float32/float16/bfloat16 values (evaluated in float64: y log x carries a
/// relative error near 2^-52 |y log x|, far below a float32 ulp; not used for float64).
/// Negative x with an integer y is |x|^y with the sign of an odd power.
pub struct Power;
impl Binary for Power {
    #[inline(always)]
    fn fast(x: f64, y: f64) -> f64 {
        let a = x.abs();
        let (k, f) = split_exponent(a);
        let (hi, lo) = log1p_reduced::<false>(f);
        let l = k.mul_add(LN2_HI, hi + k.mul_add(LN2_LO, lo));
        let r = exp::<false>(y * l);
        // y odd: y/2 is not an integer (only reached for integer y when x < 0)
        let odd = (0.5 * y).floor() != 0.5 * y;
        if x < 0.0 && odd {
            -r
        } else {
            r
        }
    }
    #[inline(always)]
    fn in_domain(x: f64, y: f64) -> bool {
        let a = x.abs();
        // |y ln a| < 1000 ln 2 < 708 keeps exp() in its domain
        let e = ((a.to_bits() >> 52) as f64 - 1023.0).abs() + 1.0;
        positive_normal(a) && y.abs() * e < 1000.0 && (x > 0.0 || y.floor() == y)
    }
    fn exact(x: f64, y: f64) -> f64 {
        x.powf(y)
    }
}
