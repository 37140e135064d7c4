//! Special functions not in `std`: erf (libm) and erfinv.

/// Inverse error function in single precision.
///
/// N. Juffa's published minimax approximation in `t = log(1 - x^2)` (two polynomial
/// pieces, < 2.4 ulp). Evaluated with fused multiply-adds and the C library's `logf`,
/// it gives the same bits as MLX's `erfinv` (which `mx.random.normal` is built on).
pub fn erfinv_f32(x: f32) -> f32 {
    if x.is_nan() || !(-1.0..=1.0).contains(&x) {
        return f32::NAN;
    }
    if x == 1.0 {
        return f32::INFINITY;
    }
    if x == -1.0 {
        return f32::NEG_INFINITY;
    }
    // The published decimal coefficients, kept verbatim (they round to the f32s used).
    #[allow(clippy::excessive_precision)]
    const TAIL: [f32; 9] = [
        3.03697567e-10,
        2.93243101e-8,
        1.22150334e-6,
        2.84108955e-5,
        3.93552968e-4,
        3.02698812e-3,
        4.83185798e-3,
        -2.64646143e-1,
        8.40016484e-1,
    ];
    #[allow(clippy::excessive_precision)]
    const CENTRE: [f32; 10] = [
        5.43877832e-9,
        1.43285448e-7,
        1.22774793e-6,
        1.12963626e-7,
        -5.61530760e-5,
        -1.47697632e-4,
        2.31468678e-3,
        1.15392581e-2,
        -2.32015476e-1,
        8.86226892e-1,
    ];
    let t = x.mul_add(-x, 1.0).ln();
    let coeffs: &[f32] = if t.abs() > 6.125 { &TAIL } else { &CENTRE };
    let mut p = 0.0f32;
    for (i, &c) in coeffs.iter().enumerate() {
        p = if i == 0 { c } else { p.mul_add(t, c) };
    }
    x * p
}

/// Inverse error function in double precision: single-precision start, then Newton
/// steps on erf.
pub fn erfinv_f64(x: f64) -> f64 {
    if x.is_nan() || !(-1.0..=1.0).contains(&x) {
        return f64::NAN;
    }
    if x == 1.0 {
        return f64::INFINITY;
    }
    if x == -1.0 {
        return f64::NEG_INFINITY;
    }
    let mut y = erfinv_f32(x as f32) as f64;
    if !y.is_finite() {
        return y;
    }
    let two_over_sqrt_pi = 2.0 / std::f64::consts::PI.sqrt();
    for _ in 0..3 {
        let err = libm::erf(y) - x;
        let d = two_over_sqrt_pi * (-y * y).exp();
        if d == 0.0 {
            break;
        }
        y -= err / d;
    }
    y
}
