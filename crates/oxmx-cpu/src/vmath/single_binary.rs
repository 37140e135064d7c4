//! float32-lane kernels of the two-argument functions power and arctan2 (see `single.rs`
//! for the float32-lane scheme; `Binary` runs them the same way, lanes outside the domain
//! taking the float64 kernel):
//! power: y log2|x| as a double-float (log2 to about 2^-34 relative: s = f/(2 + f)
//! carried as sh + sl, the leading terms of log2(1 + f) = s (C1 + C3 s^2 + ...) in two
//! parts each), then 2^n e^v with v carrying the product's tail.
//! arctan2: the angle J pi/4 +- arctan(u), u = min/max or (|y| - |x|)/(|y| + |x|) (the
//! middle interval), the quotient's rounding carried, J pi/4 in two float32 parts.
//! Checked through the vectorized block loop against float64 libm on billions of pairs
//! (random bits, the benchmark ranges, every x for fixed y and the reverse, the reduction's
//! hardest region); max ulp: power 0.812, arctan2 0.654. The coefficients are minimax fits
//! with float32 coefficients (scripts/vmath_constants.py).

use super::consts::{
    LN2_HI_F32, LN2_LO_F32, PIO2_1_F32, PIO2_2_F32, POW_C1_HI_F32, POW_C1_LO_F32, POW_C3_HI_F32,
    POW_C3_LO_F32, POW_EXP_P_F32, POW_LOG2_R_F32, TAN_PI8_F32, THREE_PIO4_HI_F32,
    THREE_PIO4_LO_F32,
};
use super::horner;
use super::single::split;
use super::single_trig::atan_plus32;

/// y log2 x = th + tl (a double-float, |tl| <= ~ulp(th)) for positive normal |x| and
/// finite y: |x| = 2^k (1 + f); s = f/(2 + f) as sh + sl (the reciprocal's quotient
/// corrected by its exact residual); log2(1 + f) = s (C1 + C3 z + z^2 P(z)), z = s^2,
/// with C1 = 2/ln 2 and C3 = 2/(3 ln 2) in two float32 parts, z carried as z + zl and
/// the head C1 + C3 z summed exactly (Fast2Sum), P minimax to z^3 in float32 (relative
/// error 6e-14 of the sum); k + s Q by Fast2Sum; y times that by an exact two-product.
/// log2 |x| comes out within about 2^-34 relative (measured on every x in [1/2, 2)), so
/// th + tl is within about 2^-27 of y log2 |x| for |th| <= 125.
#[inline(always)]
fn pow32_t(x: f32, y: f32) -> (f32, f32) {
    let (k, f) = split(x.abs());
    // s = f/(2 + f) = sh + sl, 2 + f = dh + dl exactly (Fast2Sum)
    let dh = 2.0 + f;
    let dl = f - (dh - 2.0);
    let inv = 1.0 / dh;
    let sh = f * inv;
    let sl = (-sh).mul_add(dl, (-sh).mul_add(dh, f)) * inv;
    // z = s^2 = z + zl to ~2^-46 relative (zl up to ~2^-22 z: sh is the quotient
    // rounded twice); zr = z + zl rounded, for z^2 P(z)
    let z = sh * sh;
    let zl = (sh + sh).mul_add(sl, sh.mul_add(sh, -z));
    let zr = z + zl;
    // Q = C1 + C3 z + z^2 P(z) = qh + ql: qh = C1_HI + C3_HI z rounded, the small
    // terms (that rounding error, C3_HI z's, C3_HI zl, C3_LO z, C1_LO) summed before
    // z^2 P(z), so that one rounding at the size of z^2 P(z) remains
    let w = z * POW_C3_HI_F32;
    let qh = POW_C1_HI_F32 + w;
    let small = ((POW_C1_HI_F32 - qh) + w)
        + (z.mul_add(POW_C3_HI_F32, -w)
            + zl.mul_add(POW_C3_HI_F32, z.mul_add(POW_C3_LO_F32, POW_C1_LO_F32)));
    let ql = (zr * zr).mul_add(horner(zr, &POW_LOG2_R_F32), small);
    // log2(1 + f) = s Q = lh + ll
    let lh = sh * qh;
    let ll = sh.mul_add(ql, sh.mul_add(qh, -lh) + sl * qh);
    // log2 |x| = k + lh + ll = hh + hl (Fast2Sum: |k| >= 1 > |lh| or k = 0)
    let hh = k + lh;
    let hl = ((k - hh) + lh) + ll;
    // y log2 |x| = th + tl
    let th = y * hh;
    (th, y.mul_add(hl, y.mul_add(hh, -th)))
}

/// x^y for positive normal x (or negative normal x with an integer y), finite y and
/// |y log2 |x|| <= 125, in float32 lanes: y log2 |x| = th + tl (`pow32_t`), th = n + r
/// (n rounded, r exact), r + tl = r2 + rl exactly (Fast2Sum), (r2 + rl) ln 2 = v + c
/// (ln 2 in two float32 parts, the product split exactly), e^(v + c) =
/// h + (e1 + c + v^2 P(v)) with h + e1 = 1 + v exactly and P minimax to v^5 (relative
/// error 7e-10), scaled by 2^n (the result stays normal); negated for x < 0 and an odd y.
#[inline(always)]
pub(super) fn pow32(x: f32, y: f32) -> f32 {
    const SHIFT: f32 = 12582912.0; // 1.5 * 2^23: rounds to an integer in the low bits
    let (th, tl) = pow32_t(x, y);
    let tt = th + SHIFT;
    let r = th - (tt - SHIFT);
    let r2 = r + tl;
    let rl = tl - (r2 - r);
    let v = r2 * LN2_HI_F32;
    let c = rl.mul_add(
        LN2_HI_F32,
        r2.mul_add(LN2_LO_F32, r2.mul_add(LN2_HI_F32, -v)),
    );
    let h = 1.0 + v;
    let e1 = v - (h - 1.0);
    let p = h + (v * v).mul_add(horner(v, &POW_EXP_P_F32), e1 + c);
    // 2^n from the low bits of tt (n + 127 in [2, 252])
    let res = p * f32::from_bits(tt.to_bits().wrapping_add(127).wrapping_shl(23));
    // y odd: y/2 is not an integer (only reached for integer y when x < 0)
    let odd = (0.5 * y).floor() != 0.5 * y;
    if x < 0.0 && odd {
        -res
    } else {
        res
    }
}

#[inline(always)]
pub(super) fn pow32_domain(x: f32, y: f32) -> bool {
    // the same pow32_t as in pow32 (computed once where both are inlined together)
    let (th, _) = pow32_t(x, y);
    (f32::MIN_POSITIVE..f32::INFINITY).contains(&x.abs())
        && th.abs() <= 125.0
        && (x > 0.0 || y.floor() == y)
}

/// arctan2(y, x) for finite (x, y) with max(|x|, |y|) <= 2^125 and the smaller at least
/// 2^-100 max(1, the larger), or zero with the larger >= 2^-100: with m = min(|x|, |y|)
/// and M = max(|x|, |y|), the angle is J pi/4 +- arctan(u) with u = m/M (u <= tan(pi/8))
/// or u = (|y| - |x|)/(|y| + |x|) (the middle interval; the difference and sum by
/// Fast2Sum with their exact rounding errors carried), J in 0..4 by the quadrant and
/// interval, the sign folded into the numerator; u from one reciprocal with the
/// quotient's rounding error carried; arctan(u) = u + u^3 P(u^2) (minimax to u^13,
/// ATAN_F32); J pi/4 in two float32 parts and J pi/4 + u by Fast2Sum; the result takes
/// the sign of y (signed zeros kept: arctan2(+-0, x > 0) = +-0, arctan2(+-0, x < 0) =
/// +-pi, arctan2(y, +-0) = +-pi/2).
#[inline(always)]
pub(super) fn atan2_32(y: f32, x: f32) -> f32 {
    let a = x.abs();
    let b = y.abs();
    let swap = b > a;
    let (num, den) = if swap { (a, b) } else { (b, a) };
    let mid = num > TAN_PI8_F32 * den;
    let neg = x.is_sign_negative();
    // num - den and num + den with their exact rounding errors (Fast2Sum, den >= num)
    let dif = num - den;
    let dife = num - (dif + den);
    let sum = num + den;
    let sume = num - (sum - den);
    let (n, ne, d, de) = if mid {
        (dif, dife, sum, sume)
    } else {
        (num, 0.0, den, 0.0)
    };
    // arctan(u) enters negated for swap xor neg (pi/2 - .., pi - .., 3 pi/4 - ..; in the
    // middle interval b - a = -dif for swap)
    let (n, ne) = if swap != neg { (-n, -ne) } else { (n, ne) };
    let (bh, bl) = if mid {
        if neg {
            (THREE_PIO4_HI_F32, THREE_PIO4_LO_F32)
        } else {
            (0.5 * PIO2_1_F32, 0.5 * PIO2_2_F32)
        }
    } else if swap {
        (PIO2_1_F32, PIO2_2_F32)
    } else if neg {
        (2.0 * PIO2_1_F32, 2.0 * PIO2_2_F32)
    } else {
        (0.0, 0.0)
    };
    atan_plus32(n, ne, d, de, bh, bl).copysign(y)
}

#[inline(always)]
pub(super) fn atan2_32_domain(y: f32, x: f32) -> bool {
    const BIG: f32 = f32::from_bits((127 + 125) << 23); // 2^125
    const TINY: f32 = f32::from_bits((127 - 100) << 23); // 2^-100
    let a = x.abs();
    let b = y.abs();
    let (lo, hi) = if b > a { (a, b) } else { (b, a) };
    a <= BIG && b <= BIG && (lo >= TINY * hi.max(1.0) || (lo == 0.0 && hi >= TINY))
}
