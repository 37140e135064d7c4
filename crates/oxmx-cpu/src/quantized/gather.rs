//! `GatherQmm` on the CPU: product i multiplies x matrix `lhs[i]` by weight matrix
//! `rhs[i]`, read in place. Consecutive products that share a weight matrix (every
//! product of a sorted mixture-of-experts batch) run together over their stacked x rows:
//! a short run as GEMVs of `GEMV_ROWS` rows, a long one through gemm.

use super::{avx512_gemv, dims, load_words, matrices, params, product, GEMV_ROWS};
use crate::fast::{load, load_i64, with_out};
use oxmx_core::backend::Input;
use oxmx_core::memory::Buffer;
use oxmx_core::ops::quantized::{checked_index, product_dims, runs_of};
use oxmx_core::primitive::QuantSpec;
use oxmx_core::{Dtype, Error, Result};
use std::borrow::Cow;

const OP: &str = "gather_qmm";

/// Runs of up to this many rows of x take the GEMV kernel, `GEMV_ROWS` rows at a time
/// (the expert stays in cache between them); longer runs expand the expert for gemm,
/// which costs about as much as a hundred GEMV rows (a 1408x2048 4-bit expert: 2.3 ms
/// expanded against 0.09 ms for a one-row GEMV, on the 2-core EPYC VM).
const RUN_GEMV_MAX: usize = 64;

/// `idx` wrapped NumPy-style into [0, dim); an IndexError for any index outside.
fn checked_indices(x: &Input, dim: usize) -> Result<Vec<usize>> {
    load_i64(x)
        .into_iter()
        .map(|i| checked_index(OP, i, dim))
        .collect()
}

/// `GatherQmm`: x (Bx, M, K), w (E, R, packed), scales [, biases], lhs, rhs (Nb,)
/// -> (Nb, M, N).
pub fn gather_matmul(
    s: &QuantSpec,
    transpose: bool,
    ins: &[Input],
    out: &mut Buffer,
    d: Dtype,
) -> Result<()> {
    let (x, w, lhs, rhs) = match ins {
        [x, w, .., lhs, rhs] if ins.len() >= 5 => (x, w, lhs, rhs),
        _ => return Err(Error::runtime(OP, "missing inputs")),
    };
    let (experts, rows, packed, cols) = dims(w, s)?;
    let (k, n) = product_dims(transpose, rows, cols);
    let (bx, m) = match x.shape[..] {
        [bx, m, kx] if kx == k => (bx, m),
        _ => return Err(Error::runtime(OP, "x does not match the quantized matrix")),
    };
    let lhs = checked_indices(lhs, bx)?;
    let rhs = checked_indices(rhs, experts)?;
    if lhs.len() != rhs.len() {
        return Err(Error::runtime(OP, "index arrays disagree"));
    }
    let runs = runs_of(&rhs);
    let xs = load::<f32>(x);
    let words = load_words(w)?;
    // half scales stay half when every run takes the AVX-512 GEMV (which reads them as
    // it goes); otherwise all are converted, a cost the gemm runs amortize
    let gemv_only = m <= GEMV_ROWS && runs.iter().all(|r| r.len() * m <= RUN_GEMV_MAX);
    let p = params(s, ins, 2, transpose && gemv_only && k > 0 && avx512_gemv(s))?;
    let mats = matrices(s, &words, &p, experts, rows, packed, cols)?;
    let (mk, mn) = (m * k, m * n);
    if xs.len() != bx * mk {
        return Err(Error::runtime(OP, "x does not match its shape"));
    }
    with_out::<f32>(out, d, lhs.len() * mn, |dst| {
        if dst.is_empty() {
            return Ok(());
        }
        if k == 0 {
            dst.fill(0.0);
            return Ok(());
        }
        for r in &runs {
            let (start, len, e) = (r.start, r.len(), rhs[r.start]);
            let run = &lhs[r.clone()];
            let consecutive = run.windows(2).all(|p| p[1] == p[0] + 1);
            let xr: Cow<[f32]> = if consecutive {
                Cow::Borrowed(&xs[run[0] * mk..(run[0] + len) * mk])
            } else {
                Cow::Owned(
                    run.iter()
                        .flat_map(|&i| &xs[i * mk..(i + 1) * mk])
                        .copied()
                        .collect(),
                )
            };
            let o = &mut dst[start * mn..(start + len) * mn];
            if m <= GEMV_ROWS && len * m <= RUN_GEMV_MAX {
                let per = (GEMV_ROWS / m.max(1)).max(1);
                for (xc, oc) in xr.chunks(per * mk).zip(o.chunks_mut(per * mn)) {
                    product(&mats[e], transpose, xc, oc.len() / n.max(1), oc)?;
                }
            } else {
                product(&mats[e], transpose, &xr, len * m, o)?;
            }
        }
        Ok(())
    })
}
