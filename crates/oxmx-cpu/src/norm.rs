//! rms_norm and layer_norm over the last axis (`FastKernel::RmsNorm`/`LayerNorm`) and
//! their gradients in one pass over the rows (`FastKernel::NormGrad`). Row sums run in
//! lanes (`lanes.rs`; with one running sum the forward took 5 ms for 4096 rows of 1024
//! floats, 1.4 ms now).

use crate::fast::{input, load, with_out, Acc, MIN_ROWS};
use crate::lanes::{sum2_by, sum_by};
use oxmx_core::backend::Input;
use oxmx_core::memory::Buffer;
use oxmx_core::primitive::FastKernel;
use oxmx_core::{Dtype, Error, Result};
use rayon::prelude::*;

/// Rows per task of the gradient: a fixed split of the rows (at most `PARTS` tasks), so
/// that the weight's and bias's gradients add their per-task sums in one order whatever
/// the thread count.
const PARTS: usize = 64;

/// The row's mean (0 for rms_norm) and `1 / sqrt(var + eps)`, var the mean of squared
/// deviations (of squares for rms_norm).
#[inline(always)]
fn row_stats<F: Acc>(r: &[F], rms: bool, eps: F) -> (F, F) {
    let nf = F::of(r.len() as f64);
    let mean = if rms {
        F::zero()
    } else {
        sum_by(r, |v| v) / nf
    };
    let var = sum_by(r, |v| (v - mean) * (v - mean)) / nf;
    (mean, (var + eps).sqrt().recip())
}

/// rms_norm (`rms`) or layer_norm over the last axis, with optional weight and bias.
pub(crate) fn norm<F: Acc>(
    ins: &[Input],
    eps: f64,
    weight: bool,
    bias: bool,
    rms: bool,
    out: &mut Buffer,
    d: Dtype,
) -> Result<()> {
    let op = if rms { "rms_norm" } else { "layer_norm" };
    let xin = input(ins, 0, op)?;
    let total = xin.size();
    let n = xin.shape.last().copied().unwrap_or(1);
    if total == 0 || n == 0 {
        return Ok(());
    }
    let x = load::<F>(xin);
    let w = if weight {
        Some(load::<F>(input(ins, 1, op)?))
    } else {
        None
    };
    let b = if bias {
        Some(load::<F>(input(ins, 1 + weight as usize, op)?))
    } else {
        None
    };
    let eps = F::of(eps);
    let (w, b) = (w.as_deref(), b.as_deref());
    let task = MIN_ROWS * n;
    with_out::<F>(out, d, total, |dst| {
        dst.par_chunks_mut(task)
            .zip(x.par_chunks(task))
            .for_each(|(o, xs)| {
                pulp::Arch::new().dispatch(ForwardRows {
                    o,
                    xs,
                    w,
                    b,
                    n,
                    rms,
                    eps,
                })
            });
        Ok(())
    })
}

/// The forward of rows `xs` into `o`, as a `WithSimd` task: its body is compiled inside
/// pulp's `#[target_feature]` function, so the row loops vectorize for AVX2/AVX-512 (the
/// build targets plain x86-64).
struct ForwardRows<'a, F> {
    o: &'a mut [F],
    xs: &'a [F],
    w: Option<&'a [F]>,
    b: Option<&'a [F]>,
    n: usize,
    rms: bool,
    eps: F,
}

impl<F: Acc> pulp::WithSimd for ForwardRows<'_, F> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for (o, r) in self.o.chunks_mut(self.n).zip(self.xs.chunks(self.n)) {
            let (mean, inv) = row_stats(r, self.rms, self.eps);
            for (o, &v) in o.iter_mut().zip(r) {
                *o = (v - mean) * inv;
            }
            if let Some(w) = self.w {
                o.iter_mut().zip(w).for_each(|(o, &w)| *o = *o * w);
            }
            if let Some(b) = self.b {
                o.iter_mut().zip(b).for_each(|(o, &b)| *o = *o + b);
            }
        }
    }
}

/// `FastKernel::NormGrad`: dx row by row, dw and db as per-task column sums added in
/// task order.
pub(crate) fn norm_grad<F: Acc>(
    k: &FastKernel,
    ins: &[Input],
    out: &mut Buffer,
    d: Dtype,
) -> Result<()> {
    let op = k.name();
    let FastKernel::NormGrad {
        eps,
        rms,
        weight,
        bias,
    } = *k
    else {
        return Err(Error::runtime(op, "not a norm gradient"));
    };
    let xin = input(ins, 0, op)?;
    let total = xin.size();
    let n = xin.shape.last().copied().unwrap_or(0);
    let len = (weight as usize + bias as usize)
        .checked_mul(n)
        .and_then(|p| p.checked_add(total))
        .ok_or_else(|| Error::overflow(op))?;
    let x = load::<F>(xin);
    let ones;
    let w: &[F] = if weight {
        ones = load::<F>(input(ins, 1, op)?);
        &ones
    } else {
        ones = std::borrow::Cow::Owned(vec![F::of(1.0); n]);
        &ones
    };
    let g = load::<F>(input(ins, 1 + weight as usize, op)?);
    if x.len() != total || g.len() != total || w.len() != n {
        return Err(Error::runtime(op, "inputs disagree on their sizes"));
    }
    let eps = F::of(eps);
    with_out::<F>(out, d, len, |dst| {
        let (dx, params) = dst.split_at_mut(total);
        params.fill(F::zero());
        if total == 0 || n == 0 {
            return Ok(());
        }
        let rows = total / n;
        let task = rows.div_ceil(PARTS).max(MIN_ROWS) * n;
        let sums: Vec<(Vec<F>, Vec<F>)> = dx
            .par_chunks_mut(task)
            .zip(x.par_chunks(task).zip(g.par_chunks(task)))
            .map(|(o, (xs, gs))| {
                let (mut dw, mut db) = (vec![F::zero(); n], vec![F::zero(); n]);
                pulp::Arch::new().dispatch(GradRows {
                    o,
                    xs,
                    gs,
                    w,
                    rms,
                    eps,
                    dw: &mut dw,
                    db: &mut db,
                });
                (dw, db)
            })
            .collect();
        let (dw_out, db_out) = params.split_at_mut(if weight { n } else { 0 });
        for (dw, db) in &sums {
            dw_out.iter_mut().zip(dw).for_each(|(o, &v)| *o = *o + v);
            db_out.iter_mut().zip(db).for_each(|(o, &v)| *o = *o + v);
        }
        Ok(())
    })
}

/// The gradient of rows `xs` (cotangents `gs`) as a `WithSimd` task (see
/// `ForwardRows`): writes dx into `o`, adds `g * x_hat` into `dw` and `g` into `db`.
struct GradRows<'a, F> {
    o: &'a mut [F],
    xs: &'a [F],
    gs: &'a [F],
    w: &'a [F],
    rms: bool,
    eps: F,
    dw: &'a mut [F],
    db: &'a mut [F],
}

impl<F: Acc> pulp::WithSimd for GradRows<'_, F> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let Self {
            o,
            xs,
            gs,
            w,
            rms,
            eps,
            dw,
            db,
        } = self;
        let n = w.len().max(1);
        let nf = F::of(w.len() as f64);
        for (o, (xr, gr)) in o.chunks_mut(n).zip(xs.chunks(n).zip(gs.chunks(n))) {
            let (mean, r) = row_stats(xr, rms, eps);
            let (sa, sb) = sum2_by(xr, gr, w, |x, g, w| {
                let gw = g * w;
                (gw, gw * ((x - mean) * r))
            });
            let (ma, mb) = (if rms { F::zero() } else { sa / nf }, sb / nf);
            let finite = sa.is_finite() && sb.is_finite();
            if !rms && !finite {
                // an infinite or NaN g * w: the composite's vjp (MLX's) is NaN across
                // the row (its mean's gradient sums infinities of both signs)
                o.fill(F::nan());
            } else {
                for (((o, &x), &g), &w) in o.iter_mut().zip(xr).zip(gr).zip(w) {
                    let xh = (x - mean) * r;
                    *o = r * (g * w - ma - xh * mb);
                }
            }
            for ((dw, &x), &g) in dw.iter_mut().zip(xr).zip(gr) {
                *dw = *dw + g * ((x - mean) * r);
            }
            for (db, &g) in db.iter_mut().zip(gr) {
                *db = *db + g;
            }
        }
    }
}
