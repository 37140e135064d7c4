//! Special functions not in `std`: erf (libm) and erfinv.

/// Inverse error function (single precision: Giles' polynomial approximation).
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
    let mut w = -((1.0 - x) * (1.0 + x)).ln();
    let p;
    if w < 5.0 {
        w -= 2.5;
        let mut q = 2.810_226_4e-08_f32;
        q = 3.432_739_4e-07 + q * w;
        q = -3.523_387_7e-06 + q * w;
        q = -4.391_506_5e-06 + q * w;
        q = 0.000_218_580_87 + q * w;
        q = -0.001_253_725 + q * w;
        q = -0.004_177_681_6 + q * w;
        q = 0.246_640_73 + q * w;
        p = 1.501_409_4 + q * w;
    } else {
        w = w.sqrt() - 3.0;
        let mut q = -0.000_200_214_26_f32;
        q = 0.000_100_950_56 + q * w;
        q = 0.001_349_343_2 + q * w;
        q = -0.003_673_428_4 + q * w;
        q = 0.005_739_507_7 + q * w;
        q = -0.007_622_461_3 + q * w;
        q = 0.009_438_870_5 + q * w;
        q = 1.001_674 + q * w;
        p = 2.832_976_8 + q * w;
    }
    p * x
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
