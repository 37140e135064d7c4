//! erf: its Taylor series below 1 (x P(x^2), 21 terms); on [1, 6) 1 - e^(-x^2) g(x)
//! with g = erfc(x) e^(x^2) as a 32-term Chebyshev series (fitted in
//! scripts/vmath_constants.py); exactly +-1 from 6 on (float64 rounds there).

use super::consts::{ERFC_CHEB, ERF_TAYLOR};
use super::exp_log::exp;
use super::{horner, Unary};

/// c[0] + c[1] T1(t) + c[2] T2(t) + ... by Clenshaw's recurrence.
#[inline(always)]
fn clenshaw<const N: usize>(t: f64, c: &[f64; N]) -> f64 {
    let t2 = 2.0 * t;
    let (mut b1, mut b2) = (0.0f64, 0.0f64);
    let mut i = N;
    while i > 1 {
        i -= 1;
        let b0 = t2.mul_add(b1, c[i] - b2);
        b2 = b1;
        b1 = b0;
    }
    t.mul_add(b1, c[0] - b2)
}

pub struct Erf;
impl Unary for Erf {
    #[inline(always)]
    fn fast(x: f64) -> f64 {
        let a = x.abs();
        let z = a * a;
        let small = a * horner(z, &ERF_TAYLOR);
        // e^-(a^2) with a^2 = z + zl exactly: e^-z (1 - zl)
        let zl = a.mul_add(a, -z);
        let e = exp::<false>(-z.min(40.0)) * (1.0 - zl);
        let g = clenshaw(a.mul_add(0.4, -1.4), &ERFC_CHEB);
        let big = (-e).mul_add(g, 1.0);
        let r = if a < 1.0 {
            small
        } else if a < 6.0 {
            big
        } else {
            1.0
        };
        r.copysign(x)
    }
    #[inline(always)]
    fn in_domain(x: f64) -> bool {
        !x.is_nan()
    }
    fn exact(x: f64) -> f64 {
        libm::erf(x)
    }
}
