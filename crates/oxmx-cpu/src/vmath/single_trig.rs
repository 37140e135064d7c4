//! float32-lane kernels of sin, cos, tan, arctan, arcsin, arccos (see `single.rs` for the
//! float32-lane scheme):
//! sin, cos, tan: x = k pi/2 + rh + rl with pi/2 in three float32 parts (x - k PIO2_1_F32
//! exact, k PIO2_2_F32 an exact two-product, a TwoSum), |x| <= 2^20; minimax
//! polynomials in rh^2 with the rounding errors of rh^2 and rh^3 carried; tan as a
//! double-float d + dl, -1/(d + dl) for odd k from a reciprocal corrected by its residual.
//! arctan: u = |x|, (|x| - 1)/(|x| + 1) or -1/|x| added to 0, pi/4 or pi/2 (two float32
//! parts each), the quotient's rounding carried; u + u^3 P(u^2).
//! arcsin, arccos: s + s^3 P(s^2) for |x| <= 1/2, else pi/2 - 2 arcsin(sqrt((1 - |x|)/2))
//! (or 2 arcsin(...), pi - 2 arcsin(...) for arccos) with the square root's error carried.
//! Each was checked through the vectorized block loop against float64 libm on every
//! float32 input of its domain (max ulp: sin 0.632, cos 0.636, tan 0.682, arctan 0.646,
//! arcsin 0.620, arccos 0.602). The coefficients are minimax fits with float32
//! coefficients (scripts/vmath_constants.py).

use super::consts::{
    ASIN_F32, ATAN_F32, COS_F32, PIO2_1_F32, PIO2_2_F32, PIO2_3_F32, SIN_F32, TAN_3PI8_F32,
    TAN_F32, TAN_P0_F32, TAN_PI8_F32, TWO_OVER_PI_F32,
};
use super::horner;

/// `x` itself where it is zero (keeps the sign of -0 in odd functions), else `r`.
#[inline(always)]
fn keep_zero32(x: f32, r: f32) -> f32 {
    if x == 0.0 {
        x
    } else {
        r
    }
}

/// Largest |x| of the float32 sin/cos/tan kernels: from 2^21 on, the rounding of
/// k PIO2_3_F32 in rl nears ulp(r) where r comes closest to zero.
const TRIG32_LIMIT: f32 = 1048576.0; // 2^20

/// x = k pi/2 + rh + rl for |x| <= TRIG32_LIMIT: (bits whose lowest two are k mod 4, rh,
/// rl), |rh| <= pi/4 + 0.043 (k rounded from x TWO_OVER_PI_F32), |rl| <= 2^-24.
#[inline(always)]
fn reduce_pio2_32(x: f32) -> (u32, f32, f32) {
    const SHIFT: f32 = 12582912.0; // 1.5 * 2^23: rounds to an integer in the low bits
    let t = x.mul_add(TWO_OVER_PI_F32, SHIFT);
    let kf = t - SHIFT;
    // exact: x and kf PIO2_1_F32 are multiples of min(ulp(x), 2^-23), the difference < 0.9
    let r1 = (-kf).mul_add(PIO2_1_F32, x);
    let p = kf * PIO2_2_F32;
    let pe = kf.mul_add(PIO2_2_F32, -p);
    // rh + e = r1 - p exactly (TwoSum)
    let rh = r1 - p;
    let bb = rh - r1;
    let e = (r1 - (rh - bb)) - (p + bb);
    (t.to_bits(), rh, (-kf).mul_add(PIO2_3_F32, e - pe))
}

/// sin(rh + rl) - rh = rh^3 P(rh^2) + rl (1 - rh^2/2) (to first order in rl),
/// |rh| <= 0.83, with the rounding errors of rh^2 and rh^3 carried.
#[inline(always)]
fn sin_tail32(rh: f32, rl: f32) -> f32 {
    let z = rh * rh;
    let ze = rh.mul_add(rh, -z); // rh^2 = z + ze exactly
    let r3 = rh * z;
    let r3e = rh.mul_add(z, -r3) + rh * ze; // rh^3 = r3 + r3e to ~2^-48
    let p = horner(z, &SIN_F32);
    r3.mul_add(p, r3e.mul_add(p, (-0.5 * z).mul_add(rl, rl)))
}

/// cos(rh + rl) as w + tail: w = 1 - rh^2/2 rounded, the tail holding its rounding error
/// (that of rh^2 included), rh^4 P(rh^2) and -rh rl.
#[inline(always)]
fn cos_parts32(rh: f32, rl: f32) -> (f32, f32) {
    let z = rh * rh;
    let ze = rh.mul_add(rh, -z); // rh^2 = z + ze exactly
    let hz = 0.5 * z;
    let w = 1.0 - hz;
    let small = (z * z).mul_add(horner(z, &COS_F32), -rh.mul_add(rl, 0.5 * ze));
    (w, ((1.0 - w) - hz) + small)
}

/// `v` negated where bit 1 of `q` is set (the quadrants k = 2, 3 mod 4).
#[inline(always)]
fn flip_q2(v: f32, q: u32) -> f32 {
    f32::from_bits(v.to_bits() ^ ((q & 2) << 30))
}

/// sin(x + q0 pi/2): the sine or cosine of the reduced argument by the parity of k + q0.
#[inline(always)]
fn sin_quadrant32(x: f32, q0: u32) -> f32 {
    let (q, rh, rl) = reduce_pio2_32(x);
    let s = rh + sin_tail32(rh, rl);
    let (w, tail) = cos_parts32(rh, rl);
    let c = w + tail;
    let q = q.wrapping_add(q0);
    flip_q2(if q & 1 == 0 { s } else { c }, q)
}

/// sin x for |x| <= 2^20: x = k pi/2 + rh + rl with pi/2 in three float32 parts (the
/// second product split exactly, rh + rl by TwoSum), then sin(rh) = rh + rh^3 P(rh^2)
/// (minimax to rh^9) or cos(rh) = 1 - rh^2/2 + rh^4 Q(rh^2) (minimax to rh^8, the
/// rounding errors of rh^2 and 1 - rh^2/2 carried), rl entering at first order, the
/// quadrant chosen from the bits of k; keeps the sign of a zero x.
#[inline(always)]
pub(super) fn sin32(x: f32) -> f32 {
    keep_zero32(x, sin_quadrant32(x, 0))
}

#[inline(always)]
pub(super) fn sin32_domain(x: f32) -> bool {
    x.abs() <= TRIG32_LIMIT
}

/// cos x for |x| <= 2^20: sin(x + pi/2) by the pieces of `sin32`.
#[inline(always)]
pub(super) fn cos32(x: f32) -> f32 {
    sin_quadrant32(x, 1)
}

#[inline(always)]
pub(super) fn cos32_domain(x: f32) -> bool {
    x.abs() <= TRIG32_LIMIT
}

/// tan x for |x| <= 2^20: the reduction of `sin32` (x = k pi/2 + rh + rl), then
/// tan(rh + rl) = rh + T, T = rh^3 P0 + rh^5 P(rh^2) + rl (1 + 1.5 rh^2) (minimax to rh^15;
/// the rounding errors of rh^2 and rh^3 carried, P0 kept apart from P so that the
/// rounding of the polynomial acts on the rh^5 part only; 1 + 1.5 rh^2 stands for
/// sec^2 rh within 0.04 ulp of the result as |rl| <= ulp(rh)/2), th + tl = rh + T by
/// Fast2Sum; th itself for even k, for odd k -1/(th + tl) from c = -1/th corrected by the
/// exact residual 1 + c th; tan(-x) = -tan(x) exactly, and the sign of a zero x is kept.
#[inline(always)]
pub(super) fn tan32(x: f32) -> f32 {
    // tan is odd: |x| reduced, the sign of x put back at the end (a zero x gives th = +0)
    let (q, rh, rl) = reduce_pio2_32(x.abs());
    let z = rh * rh;
    let ze = rh.mul_add(rh, -z); // rh^2 = z + ze exactly
    let r3 = rh * z;
    let r3e = rh.mul_add(ze, rh.mul_add(z, -r3)); // rh^3 = r3 + r3e to ~2^-48
    let r5 = r3 * z;
    let small = r3e.mul_add(TAN_P0_F32, (1.5 * rl).mul_add(z, rl));
    let tt = r3.mul_add(TAN_P0_F32, r5.mul_add(horner(z, &TAN_F32), small));
    let th = rh + tt;
    let tl = (rh - th) + tt;
    // -1/(th + tl) = c + c (1 + c th + c tl) to first order, c = -1/th
    let c = -1.0 / th;
    let cot = c.mul_add(c.mul_add(tl, c.mul_add(th, 1.0)), c);
    let v = if q & 1 == 0 { th } else { cot };
    f32::from_bits(v.to_bits() ^ (x.to_bits() & 0x8000_0000))
}

#[inline(always)]
pub(super) fn tan32_domain(x: f32) -> bool {
    x.abs() <= TRIG32_LIMIT
}

/// arctan x for finite x: |x| = tan(b + atan u) with b = 0, pi/4 or pi/2 and u = |x|,
/// (|x| - 1)/(|x| + 1) or -1/|x| (|u| <= tan(pi/8)), u from one reciprocal with the
/// rounding errors of the quotient and of |x| -+ 1 carried; arctan(u) = u + u^3 P(u^2)
/// (minimax to u^13); b in two float32 parts, b + u by Fast2Sum; keeps the sign of a
/// zero x.
#[inline(always)]
pub(super) fn atan32(x: f32) -> f32 {
    let a = x.abs();
    let mid = a > TAN_PI8_F32;
    let big = a > TAN_3PI8_F32;
    // the middle interval's n = a - 1 and d = a + 1 with their (exact) rounding errors
    let nm = a - 1.0;
    let dm = a + 1.0;
    let nme = a - (nm + 1.0);
    let dme = a - (dm - 1.0);
    let (n, ne, d, de) = if big {
        (-1.0, 0.0, a, 0.0)
    } else if mid {
        (nm, nme, dm, dme)
    } else {
        (a, 0.0, 1.0, 0.0)
    };
    let (b, bl) = if big {
        (PIO2_1_F32, PIO2_2_F32)
    } else if mid {
        (0.5 * PIO2_1_F32, 0.5 * PIO2_2_F32)
    } else {
        (0.0, 0.0)
    };
    atan_plus32(n, ne, d, de, b, bl).copysign(x)
}

/// b + bl + arctan((n + ne)/(d + de)) for |n/d| <= tan(pi/8) (plus rounding) and b = 0
/// or |b| >= pi/4: u = n/d from one reciprocal with the quotient's rounding error and the
/// tails ne, de carried to first order; arctan(u) = u + u^3 P(u^2); b + u by Fast2Sum.
#[inline(always)]
pub(super) fn atan_plus32(n: f32, ne: f32, d: f32, de: f32, b: f32, bl: f32) -> f32 {
    let inv = 1.0 / d;
    let u = n * inv;
    // (n + ne)/(d + de) = u + ue to first order
    let ue = ((-u).mul_add(d, n) + (-u).mul_add(de, ne)) * inv;
    let z = u * u;
    // arctan(u + ue) = u + u^3 P(z) + ue/(1 + z), 1/(1 + z) ~ 1 - z (+-0.03)
    let t = (u * z).mul_add(horner(z, &ATAN_F32), ue.mul_add(1.0 - z, bl));
    let h = b + u;
    let err = u - (h - b);
    h + (err + t)
}

#[inline(always)]
pub(super) fn atan32_domain(x: f32) -> bool {
    x.is_finite()
}

/// For 0 <= a <= 1: (whether a > 1/2, s, t) with arcsin(a) = s + t (a <= 1/2), or
/// arcsin(sqrt((1 - a)/2)) = s + t (a > 1/2), s the rounded argument and t the rest.
#[inline(always)]
fn asin_parts32(a: f32) -> (bool, f32, f32) {
    let big = a > 0.5;
    let wb = (1.0 - a) * 0.5; // exact for a >= 1/2
    let sb = wb.sqrt();
    let (z, s) = if big { (wb, sb) } else { (a * a, a) };
    // the rounding error of the square root: (wb - sb^2) / (2 sb)
    let se = sb.mul_add(-sb, wb) / (sb + sb).max(f32::MIN_POSITIVE);
    let se = if big { se } else { 0.0 };
    (big, s, (s * z).mul_add(horner(z, &ASIN_F32), se))
}

/// b + m s + t + bl with one final rounding: Fast2Sum of b + m s (|m s| <= |b| or b = 0;
/// m s exact, m = +-1 or +-2).
#[inline(always)]
fn asin_assemble32(b: f32, bl: f32, m: f32, s: f32, t: f32) -> f32 {
    let ms = m * s;
    let h = b + ms;
    let err = ms - (h - b);
    h + (err + m.mul_add(t, bl))
}

/// arcsin x for |x| <= 1: arcsin(s) = s + s^3 P(s^2) (minimax to s^13) on |x| <= 1/2,
/// beyond pi/2 - 2 arcsin(sqrt((1 - |x|)/2)) with the square root's rounding error and
/// pi/2 in two float32 parts carried; keeps the sign of a zero x.
#[inline(always)]
pub(super) fn asin32(x: f32) -> f32 {
    let (big, s, t) = asin_parts32(x.abs());
    let (b, bl, m) = if big {
        (PIO2_1_F32, PIO2_2_F32, -2.0)
    } else {
        (0.0, 0.0, 1.0)
    };
    asin_assemble32(b, bl, m, s, t).copysign(x)
}

#[inline(always)]
pub(super) fn asin32_domain(x: f32) -> bool {
    x.abs() <= 1.0
}

/// arccos x for |x| <= 1 from the pieces of `asin32`: pi/2 - arcsin x on |x| <= 1/2,
/// 2 arcsin(sqrt((1 - x)/2)) for x > 1/2, pi - 2 arcsin(sqrt((1 + x)/2)) for x < -1/2.
#[inline(always)]
pub(super) fn acos32(x: f32) -> f32 {
    let (big, s, t) = asin_parts32(x.abs());
    let neg = x < 0.0;
    let (b, bl, m) = if !big {
        (PIO2_1_F32, PIO2_2_F32, if neg { 1.0 } else { -1.0 })
    } else if neg {
        (2.0 * PIO2_1_F32, 2.0 * PIO2_2_F32, -2.0)
    } else {
        (0.0, 0.0, 2.0)
    };
    asin_assemble32(b, bl, m, s, t)
}

#[inline(always)]
pub(super) fn acos32_domain(x: f32) -> bool {
    x.abs() <= 1.0
}
