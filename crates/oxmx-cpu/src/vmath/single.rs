//! float32 kernels evaluated in float32 lanes (twice the lanes of the float64 kernels)
//! for the functions where that keeps the float32 result within 1 ulp:
//! exp: x = k ln2 + r with ln2 in two float32 parts (x - k LN2_HI_F32 is exact), e^r by
//! its Taylor series to r^8 (truncation below 0.01 ulp), scaled by 2^k.
//! log: x = 2^k (1 + f), log(1+f) = f - f^2/2 + s (f^2/2 + R(s^2)), s = f/(2+f), R to
//! s^8, summed small terms first.
//! log2, log10: the same pieces, with f - f^2/2 split into a 12-bit head (whose products
//! with the 12-bit heads of 1/ln 2, 1/ln 10, log10(2) are exact) and a tail.
//! log1p: log of u = 1 + x plus the rounding error of u divided by u; where u is in
//! [sqrt(1/2), sqrt 2) the series takes f = x itself.
//! expm1: k = trunc(x / ln 2), so that 2^k (1 + u) - 1 = 2^k u + (2^k - 1) adds terms of
//! one sign; u = e^r - 1 by its Taylor series with the rounding errors of the reduction
//! and of r^2/2 carried.
//! Each was checked against float64 libm on every float32 input of its domain (max ulp:
//! log2 0.880, log10 0.847, log1p 0.858, expm1 0.966); tests/test_math_ulp.py holds them
//! to 1 ulp. Lanes outside a kernel's domain take the float64 kernel (see
//! `Unary::fast32`).

use super::consts::{
    EXPM1_Q_F32, EXP_TAYLOR_F32, INV_LN10_HI_F32, INV_LN10_LO_F32, INV_LN2_HI_F32, INV_LN2_LO_F32,
    LN2_HI_F32, LN2_LO_F32, LN2_SHORT_F32, LN2_SHORT_LO_F32, LOG10_2_HI_F32, LOG10_2_LO_F32,
    LOG2E_F32, LOG_ATANH_F32,
};
use super::horner;

/// e^x for |x| <= 87 (2^k and the result stay normal).
#[inline(always)]
pub(super) fn exp32(x: f32) -> f32 {
    const SHIFT: f32 = 12582912.0; // 1.5 * 2^23: rounds to an integer in the low bits
    let t = x.mul_add(LOG2E_F32, SHIFT);
    let kf = t - SHIFT;
    let k = (t.to_bits() as i32).wrapping_sub(SHIFT.to_bits() as i32);
    let r = (-kf).mul_add(LN2_HI_F32, x);
    let r = (-kf).mul_add(LN2_LO_F32, r);
    let p = 1.0 + (r * r).mul_add(horner(r, &EXP_TAYLOR_F32), r);
    p * f32::from_bits((k.wrapping_add(127) as u32).wrapping_shl(23))
}

#[inline(always)]
pub(super) fn exp32_domain(x: f32) -> bool {
    x.abs() <= 87.0
}

/// (k, f) with x = 2^k (1 + f), 1 + f in [sqrt(1/2), sqrt 2), for positive normal x.
#[inline(always)]
pub(super) fn split(x: f32) -> (f32, f32) {
    const SQRT_HALF: u32 = 0x3F35_04F3;
    let rel = x.to_bits().wrapping_sub(SQRT_HALF);
    let k = ((rel as i32) >> 23) as f32;
    let f = f32::from_bits((rel & 0x007F_FFFF).wrapping_add(SQRT_HALF)) - 1.0;
    (k, f)
}

/// (f^2/2, s (f^2/2 + R(s^2))): log(1 + f) = f - f^2/2 + the second.
#[inline(always)]
fn log_parts(f: f32) -> (f32, f32) {
    let s = f / (2.0 + f);
    let z = s * s;
    let r = z * horner(z, &LOG_ATANH_F32);
    let hfsq = 0.5 * f * f;
    (hfsq, s * (hfsq + r))
}

/// log(x) for positive normal finite x.
#[inline(always)]
pub(super) fn log32(x: f32) -> f32 {
    let (k, f) = split(x);
    let (hfsq, t) = log_parts(f);
    k.mul_add(LN2_HI_F32, ((t + k * LN2_LO_F32) - hfsq) + f)
}

#[inline(always)]
pub(super) fn log32_domain(x: f32) -> bool {
    (f32::MIN_POSITIVE..f32::INFINITY).contains(&x)
}

/// (head, tail) of log(1 + f) = f - f^2/2 + t: the head has 12 significant bits.
#[inline(always)]
fn head_tail(f: f32, hfsq: f32, t: f32) -> (f32, f32) {
    let hi = f32::from_bits((f - hfsq).to_bits() & 0xFFFF_F000);
    (hi, ((f - hi) - hfsq) + t)
}

/// log2(x) for positive normal finite x.
#[inline(always)]
pub(super) fn log2_32(x: f32) -> f32 {
    let (k, f) = split(x);
    let (hfsq, t) = log_parts(f);
    let (hi, lo) = head_tail(f, hfsq, t);
    (((lo + hi) * INV_LN2_LO_F32 + lo * INV_LN2_HI_F32) + hi * INV_LN2_HI_F32) + k
}

/// log10(x) for positive normal finite x.
#[inline(always)]
pub(super) fn log10_32(x: f32) -> f32 {
    let (k, f) = split(x);
    let (hfsq, t) = log_parts(f);
    let (hi, lo) = head_tail(f, hfsq, t);
    let small = ((lo + hi) * INV_LN10_LO_F32 + k * LOG10_2_LO_F32) + lo * INV_LN10_HI_F32;
    (small + hi * INV_LN10_HI_F32) + k * LOG10_2_HI_F32
}

/// log(1 + x) for x > -1 with 1 + x finite; keeps the sign of a zero x.
#[inline(always)]
pub(super) fn log1p32(x: f32) -> f32 {
    let u = 1.0 + x;
    let (ku, fu) = split(u);
    // the rounding error of u = 1 + x, relative to u
    let c = if u >= 2.0 {
        (1.0 - (u - x)) / u
    } else {
        (x - (u - 1.0)) / u
    };
    let (k, f, c) = if ku == 0.0 {
        (0.0, x, 0.0)
    } else {
        (ku, fu, c)
    };
    let (hfsq, t) = log_parts(f);
    let r = k.mul_add(LN2_HI_F32, ((t + k.mul_add(LN2_LO_F32, c)) - hfsq) + f);
    if x == 0.0 {
        x
    } else {
        r
    }
}

#[inline(always)]
pub(super) fn log1p32_domain(x: f32) -> bool {
    x > -1.0 && x < f32::MAX
}

/// e^x - 1 for -87 <= x <= 17 (beyond 17 the lost "- 1" would need another term);
/// keeps the sign of a zero x.
#[inline(always)]
pub(super) fn expm1_32(x: f32) -> f32 {
    const SHIFT: f32 = 12582912.0; // 1.5 * 2^23: kf + SHIFT holds the integer kf in its low bits
    let kf = (x * LOG2E_F32).trunc();
    // (not `kf as i32`: its saturating conversion kept the loop from vectorizing, 3x slower)
    let k = ((kf + SHIFT).to_bits() as i32).wrapping_sub(SHIFT.to_bits() as i32);
    let hi = x - kf * LN2_SHORT_F32; // exact
    let lo = kf * LN2_SHORT_LO_F32;
    let r = hi - lo;
    let c = (hi - r) - lo;
    // u = r + r^2/2 + r^3 Q(r), with c and the rounding error of r^2/2 folded in
    let h = 0.5 * r;
    let hr2 = h * r;
    let e = h.mul_add(r, -hr2);
    let s = hr2 + (r * r * r).mul_add(horner(r, &EXPM1_Q_F32), e + c);
    let u = r + s;
    let p2 = f32::from_bits((k.wrapping_add(127) as u32).wrapping_shl(23));
    let res = p2.mul_add(u, p2 - 1.0);
    if x == 0.0 {
        x
    } else {
        res
    }
}

#[inline(always)]
pub(super) fn expm1_32_domain(x: f32) -> bool {
    (-87.0..=17.0).contains(&x)
}
