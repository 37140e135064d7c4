//! The fused kernels of `oxmx.core.fast` (`FastKernel`): row-wise norms, rotary
//! embeddings, attention and cross-entropy. Inputs are read once into contiguous
//! rows of the compute type (f32, or f64 for float64 data; borrowed when already so),
//! rows run in parallel, and results are rounded once into the output dtype.

use crate::elem::Elem;
use crate::lanes::row_logsumexp;
use crate::matmul::{gemm_into, GemmElem};
use crate::norm;
use crate::strided::{map1, View};
use oxmx_core::backend::Input;
use oxmx_core::memory::Buffer;
use oxmx_core::primitive::{FastKernel, SdpaMask};
use oxmx_core::shape::size_of;
use oxmx_core::{Dtype, Error, Result};
use rayon::prelude::*;
use std::borrow::Cow;

/// The compute type: f32 for f16/bf16/f32 data, f64 for f64.
pub(crate) trait Acc:
    num_traits::Float + GemmElem + Elem + Default + Send + Sync + std::iter::Sum
{
    const DTYPE: Dtype;
    fn of(v: f64) -> Self;
    /// exp in a form loops vectorize (softmax's branch-free f32 exp).
    fn fast_exp(self) -> Self;
}
impl Acc for f32 {
    const DTYPE: Dtype = Dtype::Float32;
    fn of(v: f64) -> Self {
        v as f32
    }
    fn fast_exp(self) -> Self {
        crate::softmax::exp_f32(self)
    }
}
impl Acc for f64 {
    const DTYPE: Dtype = Dtype::Float64;
    fn of(v: f64) -> Self {
        v
    }
    fn fast_exp(self) -> Self {
        self.exp()
    }
}

/// Rows processed per rayon task at least (keeps tasks from being tiny).
pub(crate) const MIN_ROWS: usize = 16;

/// `x` as contiguous values of the compute type, borrowed when it already is.
pub(crate) fn load<F: Acc>(x: &Input) -> Cow<'_, [F]> {
    let n = x.size();
    if x.dtype == F::DTYPE && x.is_contiguous() {
        if let Some(s) = x
            .data
            .buffer
            .typed::<F>()
            .get(x.data.offset..x.data.offset + n)
        {
            return Cow::Borrowed(s);
        }
    }
    let mut v = vec![F::zero(); n];
    crate::with_dtype!(x.dtype, S, {
        map1(&x.shape, View::<S>::of(x), &mut v, |e: S| F::of(e.to_f64()))
    });
    Cow::Owned(v)
}

/// Integer input (int64 after the op's cast) as contiguous i64.
pub(crate) fn load_i64(x: &Input) -> Vec<i64> {
    let mut v = vec![0i64; x.size()];
    crate::with_dtype!(x.dtype, S, {
        map1(&x.shape, View::<S>::of(x), &mut v, |e: S| e.to_i64())
    });
    v
}

/// Runs `f` on an `n`-element slice of the compute type that ends up in `out` (of dtype
/// `d`): the output itself when `d` is the compute type, else a temporary rounded once.
pub(crate) fn with_out<F: Acc>(
    out: &mut Buffer,
    d: Dtype,
    n: usize,
    f: impl FnOnce(&mut [F]) -> Result<()>,
) -> Result<()> {
    if d == F::DTYPE {
        let dst = out
            .typed_mut::<F>()
            .get_mut(..n)
            .ok_or_else(|| Error::runtime("fast", "output too small"))?;
        return f(dst);
    }
    let mut tmp = vec![F::zero(); n];
    f(&mut tmp)?;
    // Threads only for large outputs: a hand-off to the pool and back costs tens of µs
    // here, more than a GEMV's whole 4096-value result takes to round (measured: 35 µs
    // of a 50 µs float16 64x64 quantized_matmul).
    crate::with_dtype!(d, D, {
        let dst = out.typed_mut::<D>();
        if n < crate::strided::PAR_THRESHOLD {
            dst.iter_mut()
                .zip(&tmp)
                .for_each(|(o, &v)| *o = D::from_f64(v.to_f64()));
        } else {
            dst.par_iter_mut()
                .zip(tmp.par_iter())
                .for_each(|(o, &v)| *o = D::from_f64(v.to_f64()));
        }
    });
    Ok(())
}

pub(crate) fn input<'a>(ins: &'a [Input], i: usize, op: &str) -> Result<&'a Input> {
    ins.get(i)
        .ok_or_else(|| Error::runtime(op, "missing input"))
}

pub fn run(k: &FastKernel, ins: &[Input], out: &mut Buffer, out_dtype: Dtype) -> Result<()> {
    // f64 data computes in f64; everything else in f32.
    let wide = ins.first().map(|x| x.dtype) == Some(Dtype::Float64);
    match (k, wide) {
        (FastKernel::RmsNorm { eps, weight }, false) => {
            norm::norm::<f32>(ins, *eps, *weight, false, true, out, out_dtype)
        }
        (FastKernel::RmsNorm { eps, weight }, true) => {
            norm::norm::<f64>(ins, *eps, *weight, false, true, out, out_dtype)
        }
        (FastKernel::LayerNorm { eps, weight, bias }, false) => {
            norm::norm::<f32>(ins, *eps, *weight, *bias, false, out, out_dtype)
        }
        (FastKernel::LayerNorm { eps, weight, bias }, true) => {
            norm::norm::<f64>(ins, *eps, *weight, *bias, false, out, out_dtype)
        }
        (FastKernel::Rope { .. }, false) => rope::<f32>(k, ins, out, out_dtype),
        (FastKernel::Rope { .. }, true) => rope::<f64>(k, ins, out, out_dtype),
        (FastKernel::Sdpa { .. }, false) => sdpa::<f32>(k, ins, out, out_dtype),
        (FastKernel::Sdpa { .. }, true) => sdpa::<f64>(k, ins, out, out_dtype),
        (FastKernel::SdpaGrad { .. }, false) => sdpa_grad::<f32>(k, ins, out, out_dtype),
        (FastKernel::SdpaGrad { .. }, true) => sdpa_grad::<f64>(k, ins, out, out_dtype),
        (FastKernel::CrossEntropy, false) => cross_entropy::<f32>(ins, out),
        (FastKernel::CrossEntropy, true) => cross_entropy::<f64>(ins, out),
        (FastKernel::CrossEntropyGrad, false) => cross_entropy_grad::<f32>(ins, out, out_dtype),
        (FastKernel::CrossEntropyGrad, true) => cross_entropy_grad::<f64>(ins, out, out_dtype),
        (FastKernel::NormGrad { .. }, false) => norm::norm_grad::<f32>(k, ins, out, out_dtype),
        (FastKernel::NormGrad { .. }, true) => norm::norm_grad::<f64>(k, ins, out, out_dtype),
        (FastKernel::AdamStep { c }, true) => adam_step::<f64>(ins, c, out),
        (FastKernel::AdamStep { c }, false) => match out_dtype {
            Dtype::Bfloat16 => adam_step_half(ins, c, out, bf16_rounding()),
            Dtype::Float16 => adam_step_half(ins, c, out, f16_rounding()),
            _ => adam_step::<f32>(ins, c, out),
        },
    }
}

fn rope<F: Acc>(k: &FastKernel, ins: &[Input], out: &mut Buffer, d: Dtype) -> Result<()> {
    let op = "rope";
    let FastKernel::Rope {
        dims,
        traditional,
        base,
        scale,
    } = *k
    else {
        return Err(Error::runtime(op, "not a rope kernel"));
    };
    let xin = input(ins, 0, op)?;
    let nd = xin.shape.len();
    let total = xin.size();
    if total == 0 || nd < 3 {
        return Ok(());
    }
    let (t_len, d_len) = (xin.shape[nd - 2], xin.shape[nd - 1]);
    let batch = xin.shape[0];
    let offsets = load_i64(input(ins, 1, op)?);
    let half = dims / 2;
    // 1 / freq_i, in the order the composite formula computes it
    let inv: Vec<F> = match base {
        Some(base) => {
            let (step, ln_base) = (F::of(2.0 / dims as f64), F::of(base.ln()));
            (0..half)
                .map(|i| (-(F::of(i as f64) * step) * ln_base).exp())
                .collect()
        }
        None => load::<F>(input(ins, 2, op)?)
            .iter()
            .map(|f| f.recip())
            .collect(),
    };
    let x = load::<F>(xin);
    let per_batch = (total / d_len / t_len)
        .checked_div(batch)
        .unwrap_or(1)
        .max(1);
    let scale = F::of(scale);
    // cos/sin of every (offset, position, pair) once, not once per row
    let mut table = vec![(F::zero(), F::zero()); offsets.len() * t_len * half];
    table
        .par_chunks_mut(half.max(1))
        .enumerate()
        .for_each(|(bt, row)| {
            let (b, t) = (bt / t_len, bt % t_len);
            let off = offsets.get(b).copied().unwrap_or(0);
            let pos = (F::of(t as f64) + F::of(off as f64)) * scale;
            for (cs, &inv_i) in row.iter_mut().zip(&inv) {
                let theta = pos * inv_i;
                *cs = (theta.cos(), theta.sin());
            }
        });
    with_out::<F>(out, d, total, |dst| {
        dst.par_chunks_mut(d_len)
            .zip(x.par_chunks(d_len))
            .enumerate()
            .with_min_len(MIN_ROWS)
            .for_each(|(row, (o, r))| {
                let t = row % t_len;
                let b = if offsets.len() == 1 {
                    0
                } else {
                    row / t_len / per_batch
                };
                let start = (b * t_len + t) * half;
                let cs = table.get(start..start + half).unwrap_or(&[]);
                for (i, &(c, s)) in cs.iter().enumerate() {
                    let (a, bidx) = if traditional {
                        (2 * i, 2 * i + 1)
                    } else {
                        (i, i + half)
                    };
                    let (x1, x2) = (r[a], r[bidx]);
                    o[a] = x1 * c - x2 * s;
                    o[bidx] = x1 * s + x2 * c;
                }
                o[dims..].copy_from_slice(&r[dims..]);
            });
        Ok(())
    })
}

/// Strides (in elements) of a contiguous 4-d array broadcast to 4 dims: 0 where size 1.
fn bcast_strides(shape: &[usize]) -> [usize; 4] {
    let mut st = [0usize; 4];
    let mut acc = 1usize;
    for i in (0..4).rev() {
        let s = shape.get(i).copied().unwrap_or(1);
        st[i] = if s == 1 { 0 } else { acc };
        acc = acc.saturating_mul(s);
    }
    st
}

fn sdpa<F: Acc>(k: &FastKernel, ins: &[Input], out: &mut Buffer, d: Dtype) -> Result<()> {
    let op = "scaled_dot_product_attention";
    let FastKernel::Sdpa { scale, mask, sinks } = *k else {
        return Err(Error::runtime(op, "not an attention kernel"));
    };
    let (qi, ki, vi) = (input(ins, 0, op)?, input(ins, 1, op)?, input(ins, 2, op)?);
    let (bsz, hq, lq, dk) = (qi.shape[0], qi.shape[1], qi.shape[2], qi.shape[3]);
    let (hkv, lk, dv) = (ki.shape[1], ki.shape[2], vi.shape[3]);
    let total = size_of(&[bsz, hq, lq, dv]);
    if total == 0 {
        return Ok(());
    }
    let group = hq / hkv.max(1);
    let (q, kk, v) = (load::<F>(qi), load::<F>(ki), load::<F>(vi));
    let mut next = 3;
    let (mask_bool, mask_add, mstride) = match mask {
        SdpaMask::Bool | SdpaMask::Additive => {
            let m = input(ins, next, op)?;
            next += 1;
            let st = bcast_strides(&m.shape);
            if mask == SdpaMask::Bool {
                let mut b = vec![0u8; m.size()];
                map1(&m.shape, View::<u8>::of(m), &mut b, |e| e);
                (Some(b), None, st)
            } else {
                (None, Some(load::<F>(m).into_owned()), st)
            }
        }
        _ => (None, None, [0; 4]),
    };
    let sink = if sinks {
        Some(load::<F>(input(ins, next, op)?))
    } else {
        None
    };
    // Query rows per block: a block's score matrix stays within ~4 MiB.
    let qb = ((1usize << 20) / lk.max(1)).clamp(1, 64);
    let scale = F::of(scale);
    let shift = lk as i64 - lq as i64;
    with_out::<F>(out, d, total, |dst| {
        dst.par_chunks_mut(lq * dv)
            .enumerate()
            .try_for_each(|(bh, o_bh)| -> Result<()> {
                let (b, h) = (bh / hq, bh % hq);
                let kvh = b * hkv + h / group.max(1);
                let qm = &q[bh * lq * dk..(bh + 1) * lq * dk];
                let km = &kk[kvh * lk * dk..(kvh + 1) * lk * dk];
                let vm = &v[kvh * lk * dv..(kvh + 1) * lk * dv];
                // the first key whose value row is not finite (lk: none)
                let bad_v = if mask == SdpaMask::Causal {
                    vm.chunks(dv.max(1))
                        .position(|r| r.iter().any(|x| !x.is_finite()))
                        .unwrap_or(lk)
                } else {
                    lk
                };
                o_bh.par_chunks_mut(qb * dv)
                    .enumerate()
                    .try_for_each(|(blk, o)| -> Result<()> {
                        let q0 = blk * qb;
                        let rows = o.len() / dv.max(1);
                        // causal: the keys after the block's last query are hidden from
                        // all its rows, so its scores stop there (about half the work).
                        // Not when a row of the block sees no key, nor past a hidden
                        // value row that is not finite (0 * NaN is NaN, as the composite)
                        let seen = match mask {
                            SdpaMask::Causal if q0 as i64 + shift >= 0 => {
                                ((q0 + rows) as i64 + shift).clamp(0, lk as i64) as usize
                            }
                            _ => lk,
                        };
                        // (bad_v == lk: every value row is finite)
                        let mut keys = if bad_v < lk {
                            seen.max(bad_v + 1)
                        } else {
                            seen
                        };
                        // the softmax of the block's rows over `keys` keys into `o`;
                        // true when a row's largest score is the fill (it sees no key
                        // or only -inf scores: it averages every hidden value)
                        let block = |keys: usize, o: &mut [F]| -> Result<bool> {
                            let mut filled = false;
                            let mut s = vec![F::zero(); rows * keys];
                            // scores = q_blk @ k^T (k^T[d, j] = k[j * dk + d])
                            gemm_into(
                                rows,
                                keys,
                                dk,
                                (&qm[q0 * dk..], dk as isize, 1),
                                (km, 1, dk as isize),
                                &mut s,
                            )?;
                            for (r, srow) in s.chunks_mut(keys.max(1)).enumerate() {
                                let i = q0 + r;
                                let mbase = b * mstride[0] + h * mstride[1] + i * mstride[2];
                                let mut m = F::neg_infinity();
                                for (j, sv) in srow.iter_mut().enumerate() {
                                    let mut val = *sv * scale;
                                    let keep = match mask {
                                        SdpaMask::Causal => (j as i64) <= i as i64 + shift,
                                        SdpaMask::Bool => mask_bool.as_ref().is_none_or(|mb| {
                                            mb.get(mbase + j * mstride[3]) != Some(&0)
                                        }),
                                        _ => true,
                                    };
                                    if let Some(ma) = &mask_add {
                                        val = val
                                            + ma.get(mbase + j * mstride[3])
                                                .copied()
                                                .unwrap_or(F::zero());
                                    }
                                    if !keep {
                                        // MLX's fill: a row with every key hidden averages v
                                        val = F::min_value();
                                    }
                                    if val > m || val.is_nan() {
                                        m = if m.is_nan() { m } else { val };
                                    }
                                    *sv = val;
                                }
                                let sink_v = sink.as_ref().map(|s| s[h]);
                                if let Some(sv) = sink_v {
                                    if sv > m {
                                        m = sv;
                                    }
                                }
                                let mut sum = F::zero();
                                for sv in srow.iter_mut() {
                                    *sv = (*sv - m).fast_exp();
                                    sum = sum + *sv;
                                }
                                if let Some(sv) = sink_v {
                                    sum = sum + (sv - m).exp();
                                }
                                filled |= m == F::min_value();
                                let inv = sum.recip();
                                srow.iter_mut().for_each(|p| *p = *p * inv);
                            }
                            // out_blk = p @ v
                            gemm_into(
                                rows,
                                dv,
                                keys,
                                (&s, keys as isize, 1),
                                (vm, dv as isize, 1),
                                o,
                            )?;
                            Ok(filled)
                        };
                        while block(keys, &mut *o)? && keys < lk {
                            keys = lk;
                        }
                        Ok(())
                    })
            })
    })
}

/// The gradients of attention without a mask or with the causal mask
/// (`FastKernel::SdpaGrad`): per key/value head, for each query head of its group,
/// P = softmax(scale Q·Kᵀ) again (masked scores are the forward's lowest float: a
/// constant, so no gradient), dV += Pᵀ·G, dS = P ∘ (G·Vᵀ - rowsum(G ∘ O)),
/// dQ = scale dS·K, dK += scale dSᵀ·Q. Output: dq, dk, dv one after another.
fn sdpa_grad<F: Acc>(k: &FastKernel, ins: &[Input], out: &mut Buffer, d: Dtype) -> Result<()> {
    let op = "scaled_dot_product_attention_grad";
    let FastKernel::SdpaGrad { scale, causal } = *k else {
        return Err(Error::runtime(op, "not an attention gradient"));
    };
    let at = |i| input(ins, i, op);
    let (qi, ki) = (at(0)?, at(1)?);
    let (bsz, hq, lq, dh) = (qi.shape[0], qi.shape[1], qi.shape[2], qi.shape[3]);
    let (hkv, lk) = (ki.shape[1], ki.shape[2]);
    let (nq, nk) = (qi.size(), ki.size());
    let total = nq + 2 * nk;
    if total == 0 {
        return Ok(());
    }
    let group = hq / hkv.max(1);
    let (q, kk, v) = (load::<F>(qi), load::<F>(ki), load::<F>(at(2)?));
    let (o, g) = (load::<F>(at(3)?), load::<F>(at(4)?));
    let scale = F::of(scale);
    let shift = lk as i64 - lq as i64;
    let keep = |i: usize, j: usize| !causal || (j as i64) <= i as i64 + shift;
    with_out::<F>(out, d, total, |dst| {
        let (dq_all, rest) = dst.split_at_mut(nq);
        let (dk_all, dv_all) = rest.split_at_mut(nk);
        dq_all.fill(F::zero());
        dk_all.fill(F::zero());
        dv_all.fill(F::zero());
        if lq == 0 || lk == 0 || dh == 0 || bsz == 0 || hq == 0 {
            return Ok(());
        }
        dq_all
            .par_chunks_mut(group * lq * dh)
            .zip(dk_all.par_chunks_mut(lk * dh))
            .zip(dv_all.par_chunks_mut(lk * dh))
            .enumerate()
            .try_for_each(|(bkv, ((dq, dk), dv))| -> Result<()> {
                let (b, kvh) = (bkv / hkv, bkv % hkv);
                let km = &kk[bkv * lk * dh..(bkv + 1) * lk * dh];
                let vm = &v[bkv * lk * dh..(bkv + 1) * lk * dh];
                let mut p = vec![F::zero(); lq * lk];
                let mut ds = vec![F::zero(); lq * lk];
                let mut tmp = vec![F::zero(); lk * dh];
                for gh in 0..group {
                    let bh = b * hq + kvh * group + gh;
                    let span = bh * lq * dh..(bh + 1) * lq * dh;
                    let (qm, om, gm) = (&q[span.clone()], &o[span.clone()], &g[span]);
                    // P, as the forward computes it
                    gemm_into(
                        lq,
                        lk,
                        dh,
                        (qm, dh as isize, 1),
                        (km, 1, dh as isize),
                        &mut p,
                    )?;
                    for (i, row) in p.chunks_mut(lk).enumerate() {
                        let mut m = F::neg_infinity();
                        for (j, sv) in row.iter_mut().enumerate() {
                            let val = if keep(i, j) {
                                *sv * scale
                            } else {
                                F::min_value()
                            };
                            if val > m || val.is_nan() {
                                m = if m.is_nan() { m } else { val };
                            }
                            *sv = val;
                        }
                        let mut sum = F::zero();
                        for sv in row.iter_mut() {
                            // the forward's exp (vectorizable; libm's took most of the time)
                            *sv = (*sv - m).fast_exp();
                            sum = sum + *sv;
                        }
                        let inv = sum.recip();
                        row.iter_mut().for_each(|x| *x = *x * inv);
                    }
                    // dV += Pᵀ G
                    gemm_into(
                        lk,
                        dh,
                        lq,
                        (&p, 1, lk as isize),
                        (gm, dh as isize, 1),
                        &mut tmp,
                    )?;
                    dv.iter_mut().zip(&tmp).for_each(|(a, &t)| *a = *a + t);
                    // dS = P (G Vᵀ - rowsum(G O)), zero where masked
                    gemm_into(
                        lq,
                        lk,
                        dh,
                        (gm, dh as isize, 1),
                        (vm, 1, dh as isize),
                        &mut ds,
                    )?;
                    for (i, (row, prow)) in ds.chunks_mut(lk).zip(p.chunks(lk)).enumerate() {
                        let gi = &gm[i * dh..(i + 1) * dh];
                        let oi = &om[i * dh..(i + 1) * dh];
                        let delta = gi.iter().zip(oi).fold(F::zero(), |a, (&x, &y)| a + x * y);
                        for (j, (x, &pv)) in row.iter_mut().zip(prow).enumerate() {
                            *x = if keep(i, j) {
                                pv * (*x - delta)
                            } else {
                                F::zero()
                            };
                        }
                    }
                    // dQ = scale dS K;  dK += scale dSᵀ Q
                    let dqh = &mut dq[gh * lq * dh..(gh + 1) * lq * dh];
                    gemm_into(lq, dh, lk, (&ds, lk as isize, 1), (km, dh as isize, 1), dqh)?;
                    dqh.iter_mut().for_each(|x| *x = *x * scale);
                    gemm_into(
                        lk,
                        dh,
                        lq,
                        (&ds, 1, lk as isize),
                        (qm, dh as isize, 1),
                        &mut tmp,
                    )?;
                    dk.iter_mut()
                        .zip(&tmp)
                        .for_each(|(a, &t)| *a = *a + t * scale);
                }
                Ok(())
            })
    })
}

fn cross_entropy<F: Acc>(ins: &[Input], out: &mut Buffer) -> Result<()> {
    let op = "cross_entropy";
    let li = input(ins, 0, op)?;
    let rows = size_of(&li.shape[..li.shape.len().saturating_sub(1)]);
    let c = li.shape.last().copied().unwrap_or(0);
    if rows == 0 {
        return Ok(());
    }
    let targets = load_i64(input(ins, 1, op)?);
    let o = out
        .typed_mut::<f32>()
        .get_mut(..rows)
        .ok_or_else(|| Error::runtime(op, "output too small"))?;
    let axis = li.shape.len() - 1;
    let bad = |t: i64| {
        Error::index(
            op,
            format!("Index {t} is out of bounds for axis {axis} with size {c}."),
        )
    };
    if c == 0 {
        return Err(bad(targets.first().copied().unwrap_or(0)));
    }
    let x = load::<F>(li);
    o.par_iter_mut()
        .zip(x.par_chunks(c))
        .zip(targets.par_iter())
        .with_min_len(MIN_ROWS)
        .try_for_each(|((o, r), &t)| -> Result<()> {
            let lse = row_logsumexp(r);
            let picked = usize::try_from(t)
                .ok()
                .and_then(|t| r.get(t))
                .ok_or_else(|| bad(t))?;
            *o = (lse - *picked).to_f64() as f32;
            Ok(())
        })?;
    Ok(())
}

/// `exp(x - lse) * g + (j == t ? -g : 0) + (lse - lse)` per row (`CrossEntropyGrad`),
/// with the forward's logsumexp.
fn cross_entropy_grad<F: Acc>(ins: &[Input], out: &mut Buffer, d: Dtype) -> Result<()> {
    let op = "cross_entropy_grad";
    let li = input(ins, 0, op)?;
    let c = li.shape.last().copied().unwrap_or(0);
    let total = li.size();
    if total == 0 {
        return Ok(());
    }
    let targets = load_i64(input(ins, 1, op)?);
    let g = load::<F>(input(ins, 2, op)?);
    let x = load::<F>(li);
    with_out::<F>(out, d, total, |dst| {
        dst.par_chunks_mut(c)
            .zip(x.par_chunks(c))
            .zip(targets.par_iter().zip(g.par_iter()))
            .with_min_len(MIN_ROWS)
            .for_each(|((o, r), (&t, &g))| {
                let lse = row_logsumexp(r);
                // lse - lse: +0, or NaN for a row whose logsumexp is not finite
                let nan_row = if lse.is_finite() { F::zero() } else { F::nan() };
                let zero = F::zero();
                for (o, &v) in o.iter_mut().zip(r) {
                    *o = (v - lse).fast_exp() * g + zero + nan_row;
                }
                // the target's own -g (a target outside the row gets none)
                if let Some((o, &v)) = usize::try_from(t)
                    .ok()
                    .and_then(|t| o.get_mut(t).zip(r.get(t)))
                {
                    *o = (v - lse).fast_exp() * g + -g + nan_row;
                }
            });
        Ok(())
    })
}

/// How a half type's ops round: f32 → storage (as the elementwise kernels store each
/// op's result), storage → f32, and a Python number → storage (as a scalar operand is
/// made).
#[derive(Clone, Copy)]
struct HalfRounding<H> {
    store: fn(f32) -> H,
    load: fn(H) -> f32,
    scalar: fn(f64) -> H,
}

fn bf16_rounding() -> HalfRounding<half::bf16> {
    HalfRounding {
        store: crate::elem::bf16_of,
        load: half::bf16::to_f32,
        scalar: <half::bf16 as Elem>::from_f64,
    }
}

fn f16_rounding() -> HalfRounding<half::f16> {
    HalfRounding {
        store: half::f16::from_f32,
        load: half::f16::to_f32,
        scalar: half::f16::from_f64,
    }
}

/// `FastKernel::AdamStep` on float16/bfloat16 data: each operation in f32 and its result
/// rounded to the half type, exactly as the composite formula's separate ops (which
/// compute in f32 and store halves) round them.
fn adam_step_half<H: bytemuck::Pod + Send + Sync>(
    ins: &[Input],
    c: &[f64; 5],
    out: &mut Buffer,
    h: HalfRounding<H>,
) -> Result<()> {
    let [b1, omb1, b2, omb2, eps] = c.map(|x| (h.load)((h.scalar)(x)));
    let r = move |x: f32| (h.load)((h.store)(x));
    adam_loop::<f32, H, _>(ins, out, |[s1, s2, decay]| {
        move |p, g, m, v| {
            let mi = r(r(b1 * m) + r(omb1 * g));
            let vi = r(r(b2 * v) + r(omb2 * r(g * g)));
            let den = r(r(r(vi.sqrt()) * s2) + eps);
            [r(p * decay) - r(r(s1 * mi) / den), mi, vi].map(h.store)
        }
    })
}

/// Elements per rayon task of the optimizer update (a few pages of each stream).
const ADAM_CHUNK: usize = 1 << 14;

/// `FastKernel::AdamStep` in the data's own type (f32 or f64): every operation rounds
/// exactly as the composite formula's separate ops do (Rust never contracts to FMA).
fn adam_step<F: Acc + bytemuck::Pod>(ins: &[Input], c: &[f64; 5], out: &mut Buffer) -> Result<()> {
    let [b1, omb1, b2, omb2, eps] = c.map(F::of);
    adam_loop::<F, F, _>(ins, out, |[s1, s2, decay]| {
        move |p, g, m, v| {
            let mi = b1 * m + omb1 * g;
            let vi = b2 * v + omb2 * (g * g);
            [p * decay - (s1 * mi) / (vi.sqrt() * s2 + eps), mi, vi]
        }
    })
}

/// The Adam step's loop: p, g, m and v read as `F`, the 0-d s1, s2 and decay handed to
/// `make`, and `make`'s per-element step writing (p', m', v') of type `O` one block
/// after another, in chunks across threads.
fn adam_loop<F: Acc, O: bytemuck::Pod + Send + Sync, S>(
    ins: &[Input],
    out: &mut Buffer,
    make: impl FnOnce([F; 3]) -> S,
) -> Result<()>
where
    S: Fn(F, F, F, F) -> [O; 3] + Sync,
{
    let op = "adam_step";
    let n = input(ins, 0, op)?.size();
    let [p, g, m, v] = [0, 1, 2, 3].map(|i| input(ins, i, op).map(load::<F>));
    let (p, g, m, v) = (p?, g?, m?, v?);
    let scalar = |i: usize| -> Result<F> {
        load::<F>(input(ins, i, op)?)
            .first()
            .copied()
            .ok_or_else(|| Error::runtime(op, "empty scalar input"))
    };
    let step = make([scalar(4)?, scalar(5)?, scalar(6)?]);
    let len = n.checked_mul(3).ok_or_else(|| Error::overflow(op))?;
    let dst = out
        .typed_mut::<O>()
        .get_mut(..len)
        .ok_or_else(|| Error::runtime(op, "output too small"))?;
    let (po, rest) = dst.split_at_mut(n);
    let (mo, vo) = rest.split_at_mut(n);
    po.par_chunks_mut(ADAM_CHUNK)
        .zip(mo.par_chunks_mut(ADAM_CHUNK))
        .zip(vo.par_chunks_mut(ADAM_CHUNK))
        .zip(p.par_chunks(ADAM_CHUNK))
        .zip(g.par_chunks(ADAM_CHUNK))
        .zip(m.par_chunks(ADAM_CHUNK).zip(v.par_chunks(ADAM_CHUNK)))
        .for_each(|(((((po, mo), vo), p), g), (m, v))| {
            let outs = po.iter_mut().zip(mo.iter_mut()).zip(vo.iter_mut());
            let ins = p.iter().zip(g).zip(m).zip(v);
            for (((po, mo), vo), (((&p, &g), &m), &v)) in outs.zip(ins) {
                [*po, *mo, *vo] = step(p, g, m, v);
            }
        });
    Ok(())
}
