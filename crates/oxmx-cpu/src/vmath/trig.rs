//! sin, cos, tan, arctan, arcsin, arccos, arctan2.
//!
//! sin/cos/tan: x = k pi/2 + r with pi/2 in three float64 parts (about 160 bits, enough
//! for |x| <= 2^19; larger arguments go to libm's full reduction), r kept as rh + rl;
//! Taylor series of sin to r^19 and cos to r^18 on |r| <= pi/4.
//! arctan: |x| > 1 folds to pi/2 - arctan(1/|x|); then t = tan(J pi/16 + u') around the
//! nearest of five centres tan(j pi/16), u = tan(u') = (t - c)/(1 + t c), |u| <=
//! tan(pi/32), Taylor series to u^17. The result J pi/16 + atan(u) is summed with one
//! rounding (J * PI16_HI is exact).

use super::consts::*;
use super::{horner, horner_first, keep_zero, round_int, two_sum, Binary, Unary};

/// x = k pi/2 + rh + rl for |x| <= 2^19: (k, rh, rl), |rh| <= pi/4 + tiny (NARROW:
/// rh alone, to about 2^-50 relative).
#[inline(always)]
fn reduce_pio2<const NARROW: bool>(x: f64) -> (i64, f64, f64) {
    let (kf, k) = round_int(x * TWO_OVER_PI);
    // exact: the difference is a multiple of min(ulp(x), 2^-52) below 1 in magnitude
    let r1 = (-kf).mul_add(PIO2_1, x);
    if NARROW {
        return (k, (-kf).mul_add(PIO2_3, (-kf).mul_add(PIO2_2, r1)), 0.0);
    }
    let p = kf * PIO2_2;
    let pe = kf.mul_add(PIO2_2, -p);
    let (rh, e) = two_sum(r1, -p);
    (k, rh, e - pe - kf * PIO2_3)
}

/// sin(rh + rl), |rh| <= pi/4 (NARROW: to r^11).
#[inline(always)]
fn sin_reduced<const NARROW: bool>(rh: f64, rl: f64) -> f64 {
    let z = rh * rh;
    let p = z * if NARROW {
        horner_first::<f64, 5, 9>(z, &SIN_TAYLOR)
    } else {
        horner(z, &SIN_TAYLOR)
    };
    // sin(rh + rl) = sin(rh) + rl cos(rh) to first order, cos(rh) ~ 1 - z/2
    rh + rh.mul_add(p, rl * (-0.5f64).mul_add(z, 1.0))
}

/// cos(rh + rl), |rh| <= pi/4 (NARROW: to r^12).
#[inline(always)]
fn cos_reduced<const NARROW: bool>(rh: f64, rl: f64) -> f64 {
    let z = rh * rh;
    let hz = 0.5 * z;
    let w = 1.0 - hz;
    let p = if NARROW {
        horner_first::<f64, 5, 8>(z, &COS_TAYLOR)
    } else {
        horner(z, &COS_TAYLOR)
    };
    // (1 - w) - hz is the rounding error of w; -rh rl is the first-order rl term
    let tail = ((1.0 - w) - hz) + (z * z).mul_add(p, -rh * rl);
    w + tail
}

/// sin(x + q pi/2) for the quadrant offset q (0 for sin, 1 for cos).
#[inline(always)]
fn sin_quadrant<const NARROW: bool>(x: f64, q: i64) -> f64 {
    let (k, rh, rl) = reduce_pio2::<NARROW>(x);
    let (s, c) = (sin_reduced::<NARROW>(rh, rl), cos_reduced::<NARROW>(rh, rl));
    let k = k.wrapping_add(q);
    let v = if k & 1 == 0 { s } else { c };
    if k & 2 == 0 {
        v
    } else {
        -v
    }
}

const TRIG_LIMIT: f64 = 524288.0; // 2^19

pub struct Sin;
impl Unary for Sin {
    float32_lanes!(single_trig, sin32, sin32_domain);
    #[inline(always)]
    fn fast(x: f64) -> f64 {
        keep_zero(x, sin_quadrant::<false>(x, 0))
    }
    #[inline(always)]
    fn fast_narrow(x: f64) -> f64 {
        keep_zero(x, sin_quadrant::<true>(x, 0))
    }
    #[inline(always)]
    fn in_domain(x: f64) -> bool {
        x.abs() <= TRIG_LIMIT
    }
    fn exact(x: f64) -> f64 {
        x.sin()
    }
}

pub struct Cos;
impl Unary for Cos {
    float32_lanes!(single_trig, cos32, cos32_domain);
    #[inline(always)]
    fn fast(x: f64) -> f64 {
        sin_quadrant::<false>(x, 1)
    }
    #[inline(always)]
    fn fast_narrow(x: f64) -> f64 {
        sin_quadrant::<true>(x, 1)
    }
    #[inline(always)]
    fn in_domain(x: f64) -> bool {
        x.abs() <= TRIG_LIMIT
    }
    fn exact(x: f64) -> f64 {
        x.cos()
    }
}

pub struct Tan;
#[inline(always)]
fn tan<const NARROW: bool>(x: f64) -> f64 {
    let (k, rh, rl) = reduce_pio2::<NARROW>(x);
    let (s, c) = (sin_reduced::<NARROW>(rh, rl), cos_reduced::<NARROW>(rh, rl));
    let t = if k & 1 == 0 { s / c } else { -c / s };
    keep_zero(x, t)
}

impl Unary for Tan {
    float32_lanes!(single_trig, tan32, tan32_domain);
    both_precisions!(tan);
    #[inline(always)]
    fn in_domain(x: f64) -> bool {
        x.abs() <= TRIG_LIMIT
    }
    fn exact(x: f64) -> f64 {
        x.tan()
    }
}

/// arctan(t) for t >= 0 (inf included) as J pi/16 + a: (J, a), |a| <= pi/32 (NARROW:
/// the series to u^9).
#[inline(always)]
fn atan_parts<const NARROW: bool>(t: f64) -> (f64, f64) {
    let big = t > 1.0;
    let v = if big { 1.0 / t } else { t };
    let [m0, m1, m2, m3] = TAN_J_PI16_MID;
    let [c1, c2, c3, c4] = TAN_J_PI16;
    let (j, c) = if v > m3 {
        (4.0, c4)
    } else if v > m2 {
        (3.0, c3)
    } else if v > m1 {
        (2.0, c2)
    } else if v > m0 {
        (1.0, c1)
    } else {
        (0.0, 0.0)
    };
    let u = (v - c) / v.mul_add(c, 1.0);
    let z = u * u;
    let p = if NARROW {
        horner_first::<f64, 4, 8>(z, &ATAN_TAYLOR)
    } else {
        horner(z, &ATAN_TAYLOR)
    };
    let a = (u * z).mul_add(p, u);
    if big {
        (8.0 - j, -a)
    } else {
        (j, a)
    }
}

/// J pi/16 + a with one rounding.
#[inline(always)]
fn assemble(j: f64, a: f64) -> f64 {
    j.mul_add(PI16_HI, j.mul_add(PI16_LO, a))
}

#[inline(always)]
fn atan_abs<const NARROW: bool>(t: f64) -> f64 {
    let (j, a) = atan_parts::<NARROW>(t);
    assemble(j, a)
}

pub struct ArcTan;
impl Unary for ArcTan {
    float32_lanes!(single_trig, atan32, atan32_domain);
    #[inline(always)]
    fn fast(x: f64) -> f64 {
        atan_abs::<false>(x.abs()).copysign(x)
    }
    #[inline(always)]
    fn fast_narrow(x: f64) -> f64 {
        atan_abs::<true>(x.abs()).copysign(x)
    }
    #[inline(always)]
    fn in_domain(x: f64) -> bool {
        !x.is_nan()
    }
    fn exact(x: f64) -> f64 {
        x.atan()
    }
}

/// arcsin x = arctan(x / sqrt(1 - x^2)).
pub struct ArcSin;
#[inline(always)]
fn asin<const NARROW: bool>(x: f64) -> f64 {
    let a = x.abs();
    keep_zero(
        x,
        atan_abs::<NARROW>(a / (-a).mul_add(a, 1.0).sqrt()).copysign(x),
    )
}

impl Unary for ArcSin {
    float32_lanes!(single_trig, asin32, asin32_domain);
    both_precisions!(asin);
    #[inline(always)]
    fn in_domain(x: f64) -> bool {
        x.abs() <= 1.0
    }
    fn exact(x: f64) -> f64 {
        x.asin()
    }
}

/// arccos x = 2 arctan(sqrt((1 - x) / (1 + x))).
pub struct ArcCos;
impl Unary for ArcCos {
    float32_lanes!(single_trig, acos32, acos32_domain);
    #[inline(always)]
    fn fast(x: f64) -> f64 {
        2.0 * atan_abs::<false>(((1.0 - x) / (1.0 + x)).sqrt())
    }
    #[inline(always)]
    fn fast_narrow(x: f64) -> f64 {
        2.0 * atan_abs::<true>(((1.0 - x) / (1.0 + x)).sqrt())
    }
    #[inline(always)]
    fn in_domain(x: f64) -> bool {
        x.abs() <= 1.0
    }
    fn exact(x: f64) -> f64 {
        x.acos()
    }
}

/// arctan2(y, x): the angle of (x, y); `fast` covers finite non-zero pairs whose ratio
/// stays normal, libm the signed zeros and infinities.
pub struct ArcTan2;
impl Binary for ArcTan2 {
    #[inline(always)]
    fn fast(y: f64, x: f64) -> f64 {
        let (j, a) = atan_parts::<false>((y / x).abs());
        let (j, a) = if x < 0.0 { (16.0 - j, -a) } else { (j, a) };
        assemble(j, a).copysign(y)
    }
    #[inline(always)]
    fn in_domain(y: f64, x: f64) -> bool {
        let t = (y / x).abs();
        y.is_finite() && x.is_finite() && y != 0.0 && x != 0.0 && t >= 1e-300
    }
    fn exact(y: f64, x: f64) -> f64 {
        y.atan2(x)
    }
    float32_binary_lanes!(single_binary, atan2_32, atan2_32_domain);
}
