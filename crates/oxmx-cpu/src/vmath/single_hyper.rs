//! float32-lane kernels of the hyperbolic functions and their inverses (see `single.rs`
//! for the float32-lane scheme):
//! tanh: n / (n + 2), n = e^2|x| - 1 = (2^k - 1) + 2^k (r + r^2/2 + rest) summed in
//! double-float, the quotient's rounding corrected.
//! sinh, cosh: (2^(k-1) -+ 2^(-k-1)) cosh r + (2^(k-1) +- 2^(-k-1)) sinh r, the leading
//! terms summed exactly, the Taylor rest added once.
//! arcsinh, arccosh, arctanh: a logarithm of a double-float argument w (the tail as a
//! relative correction), k ln2 + f - f^2/2 summed exactly; x -+ x^3/c below 2^-12 for
//! the odd two.
//! Each was checked through the vectorized block loop against float64 libm on every
//! float32 input of its domain (max ulp: tanh 0.548, sinh 0.622, cosh 0.636, arcsinh
//! 0.683, arccosh 0.664, arctanh 0.697).

use super::consts::{
    COSH_R_F32, LN2_HI_F32, LN2_LO_F32, LN2_SHORT_F32, LN2_SHORT_LO_F32, LOG2E_F32, LOG_ATANH_F32,
    SINH_R_F32, TANH_E2R_F32, TANH_ODD_F32,
};
use super::horner;
use super::single::split;

/// (k, r, c) with x = k ln2 + r + c, |r| <= ln2/2 (+ rounding), c the
/// rounding error of r, for 0 <= x <= 90. x - k LN2_HI_F32 is exact: both are multiples
/// of 2^-25 once k != 0 (x >= ln2/2), and the difference is below 1/2.
#[inline(always)]
fn reduce_ln2_32(x: f32) -> (i32, f32, f32) {
    const SHIFT: f32 = 12582912.0; // 1.5 * 2^23: rounds to an integer in the low bits
    let t = x.mul_add(LOG2E_F32, SHIFT);
    let kf = t - SHIFT;
    let k = (t.to_bits() as i32).wrapping_sub(SHIFT.to_bits() as i32);
    let hi = (-kf).mul_add(LN2_HI_F32, x);
    let lo = kf * LN2_LO_F32;
    let r = hi - lo;
    (k, r, (hi - r) - lo)
}

/// 2^k for -126 <= k <= 127.
#[inline(always)]
fn pow2_32(k: i32) -> f32 {
    f32::from_bits((k.wrapping_add(127) as u32).wrapping_shl(23))
}

/// Below this tanh32 takes its odd polynomial: from here on tanh x >= 1/2, where the
/// exponential form's errors (relative to 2/(e^2|x| + 1) <= 1/2) stay small in ulps.
const TANH_POLY_BELOW: f32 = 0.55;

/// Beyond this tanh x rounds to +-1 (1 - tanh x < 2^-25 from 13 ln2 / 2 = 9.0109 on).
const TANH_ONE_ABOVE: f32 = 9.011;

/// tanh x: x + x^3 P(x^2) (minimax to x^13, one final rounding) for |x| < 0.55; beyond,
/// (E - 1)/(E + 1), E = e^2|x| = 2^k (1 + s), 2|x| = k ln2 + 2r, s = r P(r) (minimax),
/// with M = (2^k + 1) + 2^k s summed exactly (Fast2Sum), N = M - 2 exact, and the one
/// quotient N/M corrected by its FMA residual and the tail of M (1/M from the quotient);
/// |x| clamped to 8.6 (so that M < 2^25 and M - 2 stays exact; the rounded result is
/// already 1 - 2^-24 there) and +-1 beyond 9.011. Keeps the sign of a zero x.
#[inline(always)]
pub(super) fn tanh32(x: f32) -> f32 {
    const SHIFT: f32 = 12582912.0; // 1.5 * 2^23: rounds to an integer in the low bits
    let a = x.abs();
    let z = a * a;
    let poly = (a * z).mul_add(horner(z, &TANH_ODD_F32), a);
    // 2b = k ln2 + 2r: b - k ln2/2 with ln2/2 in two float32 parts (the first product exact)
    let b = a.min(8.6);
    let t = b.mul_add(2.0 * LOG2E_F32, SHIFT);
    let kf = t - SHIFT;
    let k = (t.to_bits() as i32).wrapping_sub(SHIFT.to_bits() as i32);
    let r = (-kf).mul_add(0.5 * LN2_HI_F32, b);
    let r = (-kf).mul_add(0.5 * LN2_LO_F32, r);
    let s = r * horner(r, &TANH_E2R_F32);
    // M + ml = e^2b + 1 (2^k + 1 exact to k = 24, 2^k s exact)
    let p2 = pow2_32(k);
    let one_p = p2 + 1.0;
    let ps = p2 * s;
    let m = one_p + ps;
    let ml = (one_p - m) + ps;
    let n = m - 2.0;
    let q = n / m;
    let rho = (-q).mul_add(m, n);
    // (n + ml)/(m + ml) = q + (rho + ml (1 - q))/m to first order; 1/m = (1 - q)/2
    let hu = (-0.5f32).mul_add(q, 0.5);
    let expo = (ml + ml).mul_add(hu, rho).mul_add(hu, q);
    let big = if a > TANH_ONE_ABOVE { 1.0 } else { expo };
    (if a < TANH_POLY_BELOW { poly } else { big }).copysign(x)
}

#[inline(always)]
pub(super) fn tanh32_domain(x: f32) -> bool {
    !x.is_nan()
}

/// The pieces of sinh and cosh of a = |x| = k ln2 + r + c:
/// (A - B) cosh r + (A + B) sinh r and (A + B) cosh r + (A - B) sinh r with A = 2^(k-1),
/// B = 2^(-k-1). Returns (r, r2/2, cosh r - 1 - r^2/2 (with the rounding error of r^2/2),
/// sinh r - r + c, P, Pe, M, Me) where P + Pe = A + B and M + Me = A - B exactly.
#[inline(always)]
fn sinh_cosh_parts(a: f32) -> (f32, f32, f32, f32, f32, f32, f32, f32) {
    let (k, r, c) = reduce_ln2_32(a);
    let r2 = r * r;
    let h = 0.5 * r;
    let hr2 = h * r;
    let eh2 = h.mul_add(r, -hr2);
    let even = (r2 * r2).mul_add(horner(r2, &COSH_R_F32), eh2);
    let odd = (r * r2).mul_add(horner(r2, &SINH_R_F32), c);
    // 2^(k-1) and 2^(-k-1) (0 below the normal range: negligible there)
    let pa = f32::from_bits((k.wrapping_add(126) as u32).wrapping_shl(23));
    let pb = f32::from_bits((126i32.wrapping_sub(k).max(0) as u32).wrapping_shl(23));
    let p = pa + pb;
    let m = pa - pb;
    (r, hr2, even, odd, p, (pa - p) + pb, m, (pa - m) - pb)
}

/// u cosh r + v sinh r from `sinh_cosh_parts` (u, v each an exact head + tail; sinh takes
/// u = A - B, v = A + B, cosh the other way round): u + v r summed exactly (Fast2Sum,
/// |v r| < u), u (cosh r - 1) + v (sinh r - r) added once.
#[inline(always)]
fn assemble(
    (u, ue): (f32, f32),
    (v, ve): (f32, f32),
    r: f32,
    hr2: f32,
    even: f32,
    odd: f32,
) -> f32 {
    let vr = v * r;
    let vre = v.mul_add(r, -vr);
    let d = u + vr;
    let dl = (u - d) + vr;
    let lo = ve.mul_add(r, (dl + vre) + ue);
    let lo = v.mul_add(odd, u.mul_add(even, lo));
    d + u.mul_add(hr2, lo)
}

/// sinh x for |x| <= 89: with |x| = k ln2 + r, sinh|x| = (A - B) cosh r + (A + B) sinh r,
/// A = 2^(k-1), B = 2^(-k-1) (A +- B as exact head + tail): (A - B) + (A + B) r summed
/// exactly (Fast2Sum, |r| < 0.35), the rest (A - B) (cosh r - 1) + (A + B) (sinh r - r),
/// at most 0.07 (A - B), added once (Taylor series of r^2). k = 0 is sinh r itself.
/// Keeps the sign of a zero x.
#[inline(always)]
pub(super) fn sinh32(x: f32) -> f32 {
    let (r, hr2, even, odd, p, pe, m, me) = sinh_cosh_parts(x.abs());
    assemble((m, me), (p, pe), r, hr2, even, odd).copysign(x)
}

#[inline(always)]
pub(super) fn sinh32_domain(x: f32) -> bool {
    x.abs() <= 89.0
}

/// cosh x for |x| <= 89: (A + B) cosh r + (A - B) sinh r as in sinh32.
#[inline(always)]
pub(super) fn cosh32(x: f32) -> f32 {
    let (r, hr2, even, odd, p, pe, m, me) = sinh_cosh_parts(x.abs());
    assemble((p, pe), (m, me), r, hr2, even, odd)
}

#[inline(always)]
pub(super) fn cosh32_domain(x: f32) -> bool {
    x.abs() <= 89.0
}

/// log(w (1 + corr)) for positive normal finite w and |corr| < 2^-20, to about 2^-28
/// absolute (relative where the result is small): x = 2^k (1 + f),
/// log(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2)), with k ln2 + f - f^2/2 summed exactly
/// (Fast2Sum twice, ln2 to 16 bits) and the small rest added once.
#[inline(always)]
fn log_corr32(w: f32, corr: f32) -> f32 {
    let (k, f) = split(w);
    let s = f / (2.0 + f);
    let z = s * s;
    let r = z * horner(z, &LOG_ATANH_F32);
    let h = 0.5 * f;
    let hfsq = h * f;
    let eh = h.mul_add(f, -hfsq);
    let t = s * (hfsq + r);
    let kh = k * LN2_SHORT_F32; // exact
    let s1 = kh + f;
    let e1 = (kh - s1) + f;
    let s2 = s1 - hfsq;
    let e2 = (s1 - s2) - hfsq;
    let lo = (((t - eh) + k * LN2_SHORT_LO_F32) + corr) + (e1 + e2);
    s2 + lo
}

/// Below 2^-12 arcsinh and arctanh take x -+ x^3/c (the next terms are below 2^-50
/// relative): the rounding of the logarithm's correction term (up to 2^-48 absolute)
/// would show next to such small results.
const ODD_SERIES_BELOW: f32 = 1.0 / 4096.0;

/// w = a + sqrt(qh + ql) for a >= 0, qh >= 0 (ql small): (wh, corr) with w = wh (1 + corr)
/// to about 2^-48, wh = a + sqrt(qh) rounded; the square root's residual is exact and the
/// sum's rounding error exact by TwoSum.
#[inline(always)]
fn plus_sqrt(a: f32, qh: f32, ql: f32) -> (f32, f32) {
    let sh = qh.sqrt();
    let res = (-sh).mul_add(sh, qh);
    let wh = a + sh;
    let bb = wh - a;
    let e = (a - (wh - bb)) + (sh - bb);
    let sh2 = 2.0 * sh;
    (wh, sh2.mul_add(e, res + ql) / (sh2 * wh))
}

/// arcsinh x for |x| <= 1e38: log(w), w = |x| + sqrt(x^2 + 1) in double-float (x^2 + 1
/// exact, the square root's FMA residual), the tail passed to the logarithm as a relative
/// correction; log(2|x|) above 2^12 (the dropped 1/(4x^2) is below 2^-26); x - x^3/6
/// below 2^-12. Keeps the sign of a zero x.
#[inline(always)]
pub(super) fn asinh32(x: f32) -> f32 {
    let a = x.abs();
    let a2 = a * a;
    let a2l = a.mul_add(a, -a2);
    let (big, sm) = if a2 > 1.0 { (a2, 1.0) } else { (1.0, a2) };
    let qh = big + sm;
    let ql = ((big - qh) + sm) + a2l;
    let (wh, corr) = plus_sqrt(a, qh, ql);
    let huge = a > 4096.0;
    let w = if huge { 2.0 * a } else { wh };
    let corr = if huge { 0.0 } else { corr };
    let tiny = a.mul_add(a2 * (-1.0 / 6.0), a);
    let v = if a < ODD_SERIES_BELOW {
        tiny
    } else {
        log_corr32(w, corr)
    };
    v.copysign(x)
}

#[inline(always)]
pub(super) fn asinh32_domain(x: f32) -> bool {
    x.abs() <= 1e38
}

/// arccosh x for 1 <= x <= 1e38: log(w), w = x + sqrt(x^2 - 1) in double-float as in
/// asinh32 (x^2 - 1 exact near 1); log(2x) above 2^12.
#[inline(always)]
pub(super) fn acosh32(x: f32) -> f32 {
    let x2 = x * x;
    let x2l = x.mul_add(x, -x2);
    let qh = x2 - 1.0;
    let ql = ((x2 - qh) - 1.0) + x2l;
    let (wh, corr) = plus_sqrt(x, qh, ql);
    let huge = x > 4096.0;
    let w = if huge { 2.0 * x } else { wh };
    // x = 1: sh = 0 and the correction is 0/0
    let corr = if huge || x == 1.0 { 0.0 } else { corr };
    log_corr32(w, corr)
}

#[inline(always)]
pub(super) fn acosh32_domain(x: f32) -> bool {
    (1.0..=1e38).contains(&x)
}

/// arctanh x for |x| < 1: log(w) / 2, w = (1 + |x|) / (1 - |x|) with the rounding errors
/// of 1 +- |x| and of the quotient passed to the logarithm as a relative correction;
/// x + x^3/3 below 2^-12. Keeps the sign of a zero x.
#[inline(always)]
pub(super) fn atanh32(x: f32) -> f32 {
    let a = x.abs();
    let nh = 1.0 + a;
    let nl = (1.0 - nh) + a;
    let dh = 1.0 - a;
    let dl = (1.0 - dh) - a;
    let q = nh / dh;
    let res = (-q).mul_add(dh, nh);
    // (n / d - q) / q = (res + nl - q dl) / (q d), q d ~ n
    let corr = (q.mul_add(-dl, res) + nl) / nh;
    let tiny = a.mul_add((a * a) * (1.0 / 3.0), a);
    let v = if a < ODD_SERIES_BELOW {
        tiny
    } else {
        0.5 * log_corr32(q, corr)
    };
    v.copysign(x)
}

#[inline(always)]
pub(super) fn atanh32_domain(x: f32) -> bool {
    x.abs() < 1.0
}
