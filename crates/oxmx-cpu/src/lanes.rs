//! Row reductions in `LANES` independent partial sums combined pairwise: a fixed order,
//! so results repeat run to run, and one the compiler vectorizes (a single running sum
//! is bound by the latency of its adds).

use crate::fast::Acc;

const LANES: usize = 16;

fn fold_lanes<F: Acc>(mut acc: [F; LANES]) -> F {
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for i in 0..w {
            acc[i] = acc[i] + acc[i + w];
        }
    }
    acc[0]
}

/// `Σ f(x)` over `xs` in `LANES` partial sums.
#[inline(always)]
pub(crate) fn sum_by<F: Acc>(xs: &[F], f: impl Fn(F) -> F) -> F {
    let mut acc = [F::zero(); LANES];
    let mut it = xs.chunks_exact(LANES);
    for c in &mut it {
        if let Ok(c) = <&[F; LANES]>::try_from(c) {
            for i in 0..LANES {
                acc[i] = acc[i] + f(c[i]);
            }
        }
    }
    let tail = it.remainder().iter().fold(F::zero(), |s, &v| s + f(v));
    fold_lanes(acc) + tail
}

/// `(Σ a, Σ b)` of `(a, b) = f(x, g, w)` over three equally long rows, in `LANES`
/// partial sums each.
#[inline(always)]
pub(crate) fn sum2_by<F: Acc>(
    xs: &[F],
    gs: &[F],
    ws: &[F],
    f: impl Fn(F, F, F) -> (F, F),
) -> (F, F) {
    let (mut sa, mut sb) = ([F::zero(); LANES], [F::zero(); LANES]);
    let mut xi = xs.chunks_exact(LANES);
    let mut gi = gs.chunks_exact(LANES);
    let mut wi = ws.chunks_exact(LANES);
    for ((x, g), w) in (&mut xi).zip(&mut gi).zip(&mut wi) {
        // fixed-size views: no bounds checks, so the lanes vectorize
        let (Ok(x), Ok(g), Ok(w)) = (
            <&[F; LANES]>::try_from(x),
            <&[F; LANES]>::try_from(g),
            <&[F; LANES]>::try_from(w),
        ) else {
            continue;
        };
        for i in 0..LANES {
            let (a, b) = f(x[i], g[i], w[i]);
            sa[i] = sa[i] + a;
            sb[i] = sb[i] + b;
        }
    }
    let (mut ta, mut tb) = (F::zero(), F::zero());
    for ((&x, &g), &w) in xi
        .remainder()
        .iter()
        .zip(gi.remainder())
        .zip(wi.remainder())
    {
        let (a, b) = f(x, g, w);
        ta = ta + a;
        tb = tb + b;
    }
    (fold_lanes(sa) + ta, fold_lanes(sb) + tb)
}

/// The largest value of `xs`, NaN if any is NaN (-inf when empty), in `LANES` partial
/// maxima.
#[allow(clippy::eq_op)]
#[inline(always)]
pub(crate) fn max_nan<F: Acc>(xs: &[F]) -> F {
    let pick = |a: F, v: F| if v > a || v != v { v } else { a };
    let mut acc = [F::neg_infinity(); LANES];
    let mut it = xs.chunks_exact(LANES);
    for c in &mut it {
        if let Ok(c) = <&[F; LANES]>::try_from(c) {
            for i in 0..LANES {
                acc[i] = pick(acc[i], c[i]);
            }
        }
    }
    let m = it
        .remainder()
        .iter()
        .fold(F::neg_infinity(), |a, &v| pick(a, v));
    acc.into_iter()
        .fold(m, |a, v| if a != a { a } else { pick(a, v) })
}

/// `log Σ exp(x)` of a row: its max, then the exponentials' sum in lanes (`fast_exp`).
/// An infinite or NaN max is the result itself.
#[inline(always)]
pub(crate) fn row_logsumexp<F: Acc>(xs: &[F]) -> F {
    let m = max_nan(xs);
    if !m.is_finite() {
        return m;
    }
    m + sum_by(xs, |v| (v - m).fast_exp()).ln()
}
