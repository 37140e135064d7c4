//! Softmax along the last axis, one row at a time (rows in parallel): a max pass, an
//! exp-and-sum pass writing the output row, then a scale pass, all on a row that is in
//! cache. f32 uses a branch-free, vectorizable exp; f16/bf16 compute in f32.

use crate::strided::{layout, Rows, PAR_THRESHOLD};
use half::{bf16, f16};
use oxmx_core::backend::Input;
use oxmx_core::memory::Buffer;
use oxmx_core::{Dtype, Error, Result};
use rayon::prelude::*;

/// exp for f32, within ~1-2 ulp of the correctly rounded result over the whole range
/// (subnormal results included). exp(-inf) = 0, exp(x > 88.73) = inf, NaN → NaN.
/// Branch-free so that loops over it vectorize.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const HI: f32 = 88.8;
    const LO: f32 = -104.0;
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const MAGIC: f32 = 12582912.0; // 1.5 * 2^23: adding it rounds to an integer
    const C1: f32 = 0.693_359_4; // ln2 split (Cephes): C1 + C2 == ln2
    const C2: f32 = -2.121_944_4e-4;
    // Below LO the result rounds to 0 (exp(-104) is under half the smallest subnormal).
    // Those lanes compute exp(0) and are zeroed at the end: computing their subnormal
    // intermediates takes x86 microcode assists, 50-100x slower (a masked softmax,
    // whose hidden scores sit far below the row's max, ran 3x slower than an unmasked
    // one). NaN compares false and stays NaN.
    let under = x < LO;
    let x = if x > HI { HI } else { x };
    let x = if under { 0.0 } else { x };
    let t = x * LOG2E + MAGIC;
    let k = (t.to_bits() as i32).wrapping_sub(0x4B40_0000); // round(x / ln2)
    let n = t - MAGIC;
    let r = x - n * C1 - n * C2; // |r| <= ln2 / 2
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5e-1;
    let y = p * r * r + r + 1.0;
    // 2^k as two normal powers of two (k in [-150, 128]).
    let k1 = k >> 1;
    let k2 = k.wrapping_sub(k1);
    let s1 = f32::from_bits((k1.wrapping_add(127) as u32).wrapping_shl(23));
    let s2 = f32::from_bits((k2.wrapping_add(127) as u32).wrapping_shl(23));
    if under {
        0.0
    } else {
        y * s1 * s2
    }
}

const LANES: usize = 16;

#[allow(clippy::eq_op)]
#[inline]
fn row_max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut it = xs.chunks_exact(LANES);
    for c in &mut it {
        if let Ok(c) = <&[f32; LANES]>::try_from(c) {
            for i in 0..LANES {
                let v = c[i];
                acc[i] = if v > acc[i] || v != v { v } else { acc[i] };
            }
        }
    }
    let mut m = f32::NEG_INFINITY;
    for v in acc.into_iter().chain(it.remainder().iter().copied()) {
        m = if v > m || v != v { v } else { m };
    }
    m
}

/// out = exp(x - max), returns the sum.
#[inline]
fn exp_sum(xs: &[f32], out: &mut [f32], m: f32) -> f32 {
    let mut acc = [0f32; LANES];
    let n = xs.len().min(out.len());
    let (xs, out) = (&xs[..n], &mut out[..n]);
    let mut xi = xs.chunks_exact(LANES);
    let mut oi = out.chunks_exact_mut(LANES);
    for (c, o) in (&mut xi).zip(&mut oi) {
        if let (Ok(c), Ok(o)) = (
            <&[f32; LANES]>::try_from(c),
            <&mut [f32; LANES]>::try_from(o),
        ) {
            for i in 0..LANES {
                let e = exp_f32(c[i] - m);
                o[i] = e;
                acc[i] += e;
            }
        }
    }
    let mut s = 0f32;
    for (o, &v) in oi.into_remainder().iter_mut().zip(xi.remainder()) {
        let e = exp_f32(v - m);
        *o = e;
        s += e;
    }
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for i in 0..w {
            acc[i] += acc[i + w];
        }
    }
    acc[0] + s
}

/// Softmax of one f32 row into `out` (same length).
#[inline]
fn softmax_row_f32(x: &[f32], out: &mut [f32]) {
    let m = row_max(x);
    let s = exp_sum(x, out, m);
    let inv = 1.0 / s;
    out.iter_mut().for_each(|v| *v *= inv);
}

fn softmax_row_f64(x: &[f64], out: &mut [f64]) {
    let mut m = f64::NEG_INFINITY;
    for &v in x {
        if v > m || v.is_nan() {
            m = v;
        }
    }
    let mut s = 0f64;
    for (o, &v) in out.iter_mut().zip(x) {
        let e = (v - m).exp();
        *o = e;
        s += e;
    }
    let inv = 1.0 / s;
    out.iter_mut().for_each(|v| *v *= inv);
}

/// Element type handled through an f32 (or native f64) working row.
trait SoftElem: Copy + Send + Sync + bytemuck::Pod {
    /// Softmax of row `x` (length n, stride `s` from `start` in `data`) into `out`.
    fn row(
        data: &[Self],
        start: isize,
        s: isize,
        out: &mut [Self],
        tmp: &mut Vec<f32>,
        tmp2: &mut Vec<f32>,
    );
}

fn gather<T: Copy>(
    data: &[T],
    start: isize,
    s: isize,
    n: usize,
    f: impl Fn(T) -> f32,
    dst: &mut Vec<f32>,
) {
    dst.clear();
    if s == 1 {
        let b = start as usize;
        dst.extend(data[b..b + n].iter().map(|&v| f(v)));
    } else {
        dst.extend((0..n).map(|j| f(data[(start + j as isize * s) as usize])));
    }
}

impl SoftElem for f32 {
    fn row(
        data: &[f32],
        start: isize,
        s: isize,
        out: &mut [f32],
        tmp: &mut Vec<f32>,
        _: &mut Vec<f32>,
    ) {
        let n = out.len();
        if s == 1 {
            let b = start as usize;
            softmax_row_f32(&data[b..b + n], out);
        } else {
            gather(data, start, s, n, |v| v, tmp);
            softmax_row_f32(tmp, out);
        }
    }
}

macro_rules! half_soft {
    ($t:ty) => {
        impl SoftElem for $t {
            fn row(
                data: &[$t],
                start: isize,
                s: isize,
                out: &mut [$t],
                tmp: &mut Vec<f32>,
                tmp2: &mut Vec<f32>,
            ) {
                let n = out.len();
                gather(data, start, s, n, |v| v.to_f32(), tmp);
                tmp2.clear();
                tmp2.resize(n, 0.0);
                softmax_row_f32(tmp, tmp2);
                for (o, &v) in out.iter_mut().zip(tmp2.iter()) {
                    *o = <$t as crate::elem::Elem>::from_f64(v as f64);
                }
            }
        }
    };
}
half_soft!(f16);
half_soft!(bf16);

impl SoftElem for f64 {
    fn row(
        data: &[f64],
        start: isize,
        s: isize,
        out: &mut [f64],
        _: &mut Vec<f32>,
        _: &mut Vec<f32>,
    ) {
        let n = out.len();
        if s == 1 {
            let b = start as usize;
            softmax_row_f64(&data[b..b + n], out);
        } else {
            let row: Vec<f64> = (0..n)
                .map(|j| data[(start + j as isize * s) as usize])
                .collect();
            softmax_row_f64(&row, out);
        }
    }
}

fn go<T: SoftElem>(x: &Input, out: &mut [T]) {
    let data: &[T] = x.data.buffer.typed::<T>();
    let shape = &x.shape;
    let strides = &x.data.strides;
    let (n, s) = match (shape.last(), strides.last()) {
        (Some(&n), Some(&s)) => (n, s),
        _ => (1, 1),
    };
    let total = oxmx_core::shape::size_of(shape).min(out.len());
    if total == 0 || n == 0 {
        return;
    }
    let out = &mut out[..total];
    let nd = shape.len().saturating_sub(1);
    let l = layout(&shape[..nd], &[&strides[..nd]]);
    let base = x.data.offset as isize;
    let rows_do = |first_row: usize, chunk: &mut [T]| {
        let inner = l.inner.max(1);
        let si = l.inner_strides[0];
        let mut rows = Rows::new(
            &l.outer,
            l.outer_strides.clone(),
            &[base],
            first_row / inner,
        );
        let mut j = first_row % inner;
        let (mut tmp, mut tmp2) = (Vec::new(), Vec::new());
        for orow in chunk.chunks_mut(n) {
            T::row(
                data,
                rows.offs[0] + j as isize * si,
                s,
                orow,
                &mut tmp,
                &mut tmp2,
            );
            j += 1;
            if j == inner {
                j = 0;
                rows.step();
            }
        }
    };
    let nrows = total / n;
    if total < PAR_THRESHOLD || nrows == 1 {
        rows_do(0, out);
    } else {
        let per = nrows
            .div_ceil(rayon::current_num_threads().max(1) * 8)
            .max(1);
        out.par_chunks_mut(per * n)
            .enumerate()
            .for_each(|(c, o)| rows_do(c * per, o));
    }
}

pub fn run(x: &Input, out: &mut Buffer) -> Result<()> {
    match x.dtype {
        Dtype::Float32 => go::<f32>(x, out.typed_mut::<f32>()),
        Dtype::Float64 => go::<f64>(x, out.typed_mut::<f64>()),
        Dtype::Float16 => go::<f16>(x, out.typed_mut::<f16>()),
        Dtype::Bfloat16 => go::<bf16>(x, out.typed_mut::<bf16>()),
        d => return Err(Error::value("softmax", format!("Not supported for {d}."))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::exp_f32;

    /// Within 2 ulp of the correctly rounded exp over the whole range, subnormal results
    /// included; exactly 0 where that rounds to 0; the special values.
    #[test]
    fn exp_f32_is_accurate_everywhere() {
        let mut x = -110.0f32;
        while x < 89.0 {
            let want = (x as f64).exp() as f32;
            let got = exp_f32(x);
            let ulps = (got.to_bits() as i64 - want.to_bits() as i64).abs();
            assert!(ulps <= 2, "exp({x}) = {got:e}, want {want:e} ({ulps} ulp)");
            if x < -103.98 {
                assert_eq!(got, 0.0, "exp({x})");
            }
            x += 0.0137;
        }
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(f32::MIN), 0.0);
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert!(exp_f32(f32::NAN).is_nan());
        assert_eq!(exp_f32(0.0), 1.0);
    }
}
