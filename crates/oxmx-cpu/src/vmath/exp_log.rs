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

/// c[0] + x c[1] + ... + x^(N-1) c[N-1] for N <= 16 by Estrin's scheme, depth first:
/// each half is evaluated and combined with x^(2^m) before the next is started (a
/// dependency chain of about log2 N fmas, and few values live at once).
#[inline(always)]
fn estrin<const N: usize>(x: f64, c: &[f64; N]) -> f64 {
    const { assert!(N >= 1 && N <= 16) };
    let x2 = x * x;
    let x4 = x2 * x2;
    let x8 = x4 * x4;
    let pair = |i: usize| {
        if i + 1 < N {
            c[i + 1].mul_add(x, c[i])
        } else if i < N {
            c[i]
        } else {
            0.0
        }
    };
    let quad = |i: usize| {
        if i + 2 < N {
            pair(i + 2).mul_add(x2, pair(i))
        } else {
            pair(i)
        }
    };
    let oct = |i: usize| {
        if i + 4 < N {
            quad(i + 4).mul_add(x4, quad(i))
        } else {
            quad(i)
        }
    };
    if N > 8 {
        oct(8).mul_add(x8, oct(0))
    } else {
        oct(0)
    }
}

/// ln x = hi + lo for positive normal x, relative error below 2^-63 (measured 2^-63.9;
/// |lo| < |k| 2^-32 + ulp(hi): not a normalized double-double).
///
/// x = 2^k (1 + f) with sqrt(1/2) <= 1 + f < sqrt(2); log(1 + f) = 2 atanh(s) with
/// s = f/(2 + f) = sh + sl (one division; sl from the exact remainder by fma), summed as
/// 2s + s^3 (2/3 + z W(z)), z = s^2: 2 sh exact, s^3 B as a double-double product
/// (s^3 and B = 2/3 + z W each carried as double-doubles), sl to first order, and
/// k ln2 = k LN2_CW_HI (exact) + k LN2_CW_LO.
#[inline(always)]
fn log_dd(x: f64) -> (f64, f64) {
    let (k, f) = split_exponent(x);
    // 2 + f = d + dl exactly
    let d = 2.0 + f;
    let dl = (2.0 - d) + f;
    let sh = f / d;
    // s = sh + sl: sl from the exact remainder f - sh d (fma) less sh dl, divided by d as
    // a product with 1/d = (1 - s)/2; sl2 = 2 sl
    let sl2 = (-sh).mul_add(dl, (-sh).mul_add(d, f)) * (1.0 - sh);
    // sh^2 = z + zl and sh^3 = s3 + s3l (to about 2^-100)
    let z = sh * sh;
    let zl = sh.mul_add(sh, -z);
    let s3 = z * sh;
    let s3l = zl.mul_add(sh, z.mul_add(sh, -s3));
    // B = bh + bl = 2/3 + w, w = z W(z) in float64 (|w| < 0.012: its rounding is 2^-64 of
    // the log), the rounding error of z to first order
    let w = z * estrin(z, &POW_LOG);
    let bh = TWO_THIRDS_HI + w;
    let bl = ((TWO_THIRDS_HI - bh) + w) + zl.mul_add(POW_LOG[0], TWO_THIRDS_LO);
    // s^3 B = t + tl, then 2 sh + t = sm + sml (Fast2Sum: |t| < |sh| / 20)
    let t = s3 * bh;
    let tl = s3l.mul_add(bh, s3.mul_add(bl, s3.mul_add(bh, -t)));
    let s2 = 2.0 * sh;
    let sm = s2 + t;
    let sml = (s2 - sm) + t;
    // the first-order effect of sl: d(2 atanh s)/ds = 2 (1 + z + z^2 + ...)
    let tail = (sml + tl) + sl2.mul_add(z.mul_add(z, z), sl2);
    // k LN2_CW_HI is exact; Fast2Sum as k = 0 or |k LN2_CW_HI| >= ln2 > |sm|
    let kh = k * LN2_CW_HI;
    let hi = kh + sm;
    (hi, ((kh - hi) + sm) + k.mul_add(LN2_CW_LO, tail))
}

/// e^(th + tl) for |th| <= 700 and |tl| < 2^-20, rounded once.
///
/// th + tl = k ln2 + r + c (Cody-Waite with tl folded into the low part: |r| <= ln2/2,
/// c the rounding error of r); e^r = 1 + r + r^2 P(r); 1 + r = u + ul exactly, and
/// 2^k (u + (ul + c e^r + r^2 P)) is rounded once by an fma (the low part's own rounding
/// is below 2^-58 as |r^2 P| < 0.07). |th| <= 700 keeps that low part normal (k >= -1010).
#[inline(always)]
fn exp_dd(th: f64, tl: f64) -> f64 {
    let (kf, k) = round_int(th * LOG2E);
    // exact: k LN2_CW_HI has at most 43 bits and cancels against th
    let hi = (-kf).mul_add(LN2_CW_HI, th);
    let lo = kf.mul_add(LN2_CW_LO, -tl);
    let r = hi - lo;
    let c = (hi - r) - lo;
    let p = (r * r) * estrin(r, &POW_EXP);
    // 1 + r = u + ul exactly (Fast2Sum); e^(r + c) = u + (ul + c (1 + r) + p) to first
    // order in c, the low part rounded once (|p| < 0.07: 2^-58 absolute)
    let u = 1.0 + r;
    let ul = (1.0 - u) + r;
    let el = (ul + c.mul_add(r, c)) + p;
    let scale = pow2i(k);
    scale.mul_add(u, scale * el)
}

/// x^y in float64 lanes, within 1 ulp on `pow64_domain` (measured max 0.743 ulp):
/// |x|^y = e^(y ln|x|) with ln|x| a double-double (`log_dd`), y ln|x| = th + tl with the
/// exact fma product of y and the leading part, and `exp_dd`; negative x (integer y only)
/// takes the sign of an odd power. x^0 = 1 and 1^y = 1 exactly, and every exactly
/// representable result (x^1, 2^k, 3^5, ...) comes out exact.
#[inline(always)]
pub(super) fn pow64(x: f64, y: f64) -> f64 {
    let (lh, ll) = log_dd(x.abs());
    let th = y * lh;
    let tl = y.mul_add(ll, y.mul_add(lh, -th));
    let r = exp_dd(th, tl);
    // y odd: y/2 is not an integer (only reached for integer y when x < 0)
    let odd = (0.5 * y).floor() != 0.5 * y;
    if x < 0.0 && odd {
        -r
    } else {
        r
    }
}

/// Where `pow64` holds: |x| positive normal, |y ln|x|| <= 700 (false for NaN or infinite
/// y: the result is normal, and the low part of the final fma stays normal), and an
/// integer y for negative x. Zeros, subnormals, inf/NaN and the overflow/underflow edges go
/// to libm.
#[inline(always)]
pub(super) fn pow64_domain(x: f64, y: f64) -> bool {
    let a = x.abs();
    // the kernel's own y ln|x| (the same expression: computed once after inlining)
    let th = y * log_dd(a).0;
    positive_normal(a) && th.abs() <= 700.0 && (x > 0.0 || y.floor() == y)
}

/// x^y: `pow64` in float64 lanes, `pow32` (`single_binary.rs`) in float32 lanes for
/// float32 and the half types; libm outside their domains.
pub struct Power;
impl Binary for Power {
    #[inline(always)]
    fn fast(x: f64, y: f64) -> f64 {
        pow64(x, y)
    }
    #[inline(always)]
    fn in_domain(x: f64, y: f64) -> bool {
        pow64_domain(x, y)
    }
    fn exact(x: f64, y: f64) -> f64 {
        x.powf(y)
    }
    float32_binary_lanes!(single_binary, pow32, pow32_domain);
}
