//! float32 kernels evaluated in float32 lanes (twice the lanes of the float64 kernels)
//! for the functions where that keeps the float32 result within 1 ulp:
//! exp: x = k ln2 + r with ln2 in two float32 parts (x - k LN2_HI_F32 is exact), e^r by
//! its Taylor series to r^8 (truncation below 0.01 ulp), scaled by 2^k.
//! log: x = 2^k (1 + f), log(1+f) = f - f^2/2 + s (f^2/2 + R(s^2)), s = f/(2+f), R to
//! s^8, summed small terms first.
//! Lanes outside a kernel's domain take the float64 kernel (see `Unary::fast32`).

use super::consts::{EXP_TAYLOR_F32, LN2_HI_F32, LN2_LO_F32, LOG2E_F32, LOG_ATANH_F32};

/// c[0] + x c[1] + ... in float32.
#[inline(always)]
fn horner32<const N: usize>(x: f32, c: &[f32; N]) -> f32 {
    let mut acc = c[N - 1];
    let mut i = N - 1;
    while i > 0 {
        i -= 1;
        acc = acc.mul_add(x, c[i]);
    }
    acc
}

/// e^x for |x| <= 87 (2^k and the result stay normal).
#[inline(always)]
pub(super) fn exp32(x: f32) -> f32 {
    const SHIFT: f32 = 12582912.0; // 1.5 * 2^23: rounds to an integer in the low bits
    let t = x.mul_add(LOG2E_F32, SHIFT);
    let kf = t - SHIFT;
    let k = (t.to_bits() as i32).wrapping_sub(SHIFT.to_bits() as i32);
    let r = (-kf).mul_add(LN2_HI_F32, x);
    let r = (-kf).mul_add(LN2_LO_F32, r);
    let p = 1.0 + (r * r).mul_add(horner32(r, &EXP_TAYLOR_F32), r);
    p * f32::from_bits((k.wrapping_add(127) as u32).wrapping_shl(23))
}

#[inline(always)]
pub(super) fn exp32_domain(x: f32) -> bool {
    x.abs() <= 87.0
}

/// log(x) for positive normal finite x.
#[inline(always)]
pub(super) fn log32(x: f32) -> f32 {
    const SQRT_HALF: u32 = 0x3F35_04F3;
    let rel = x.to_bits().wrapping_sub(SQRT_HALF);
    let k = ((rel as i32) >> 23) as f32;
    let f = f32::from_bits((rel & 0x007F_FFFF).wrapping_add(SQRT_HALF)) - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let r = z * horner32(z, &LOG_ATANH_F32);
    let hfsq = 0.5 * f * f;
    k.mul_add(
        LN2_HI_F32,
        ((s.mul_add(hfsq + r, k * LN2_LO_F32)) - hfsq) + f,
    )
}

#[inline(always)]
pub(super) fn log32_domain(x: f32) -> bool {
    (f32::MIN_POSITIVE..f32::INFINITY).contains(&x)
}
