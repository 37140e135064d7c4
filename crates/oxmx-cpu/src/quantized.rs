//! `Dequantize` and `QuantizedMatmul` on the CPU. A packed row is a little-endian bit
//! stream of `bits`-bit levels in uint32 words; a level becomes a float through the
//! mode (`q` for affine, an E2M1 or E4M3 value for mx/nv) and then its group's scale
//! (and bias). Products with few rows decode each group into a small buffer and take
//! dot products from it (the affine bias folds into a per-group sum of x); larger ones
//! expand blocks of the matrix to f32 and hand them to gemm.

use crate::fast::{load, with_out};
use crate::matmul::gemm_into;
use oxmx_core::backend::Input;
use oxmx_core::memory::Buffer;
use oxmx_core::primitive::{QuantMode, QuantSpec};
use oxmx_core::{Dtype, Error, Result};
use rayon::prelude::*;
use std::borrow::Cow;

const OP: &str = "quantized_matmul";

mod gather;
pub use gather::gather_matmul;

/// E2M1 values by code (sign in bit 3).
const FP4: [f32; 16] = [
    0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0,
];

/// E4M3 (no infinities; 0x7f/0xff are NaN) to f32, exactly.
pub fn e4m3(c: u8) -> f32 {
    let sign = if c & 0x80 != 0 { -1.0 } else { 1.0 };
    let e = i32::from((c >> 3) & 0xf);
    let m = f32::from(c & 7);
    let v = if e == 15 && m == 7.0 {
        f32::NAN
    } else if e == 0 {
        m * (2f32).powi(-9)
    } else {
        (1.0 + m / 8.0) * (2f32).powi(e - 7)
    };
    sign * v
}

/// E8M0 (a power of two, 255 is NaN) to f32, exactly.
fn e8m0(c: u8) -> f32 {
    match c {
        0 => f32::from_bits(0x0040_0000),
        255 => f32::NAN,
        c => f32::from_bits(u32::from(c) << 23),
    }
}

/// Level → value before the group's scale.
struct Levels {
    table: Option<Vec<f32>>,
}

impl Levels {
    fn new(mode: QuantMode) -> Self {
        let table = match mode {
            QuantMode::Affine => None,
            QuantMode::Mxfp4 | QuantMode::Nvfp4 => Some(FP4.to_vec()),
            QuantMode::Mxfp8 => Some((0..=255u8).map(e4m3).collect()),
        };
        Levels { table }
    }
    #[inline(always)]
    fn value(&self, q: u32) -> f32 {
        match &self.table {
            None => q as f32,
            Some(t) => t.get(q as usize).copied().unwrap_or(f32::NAN),
        }
    }
}

/// The levels of the first `out.len()` elements of a packed row (`words` starts at a
/// multiple of 32 elements).
#[inline(always)]
fn unpack(bits: usize, words: &[u32], out: &mut [u32]) {
    let mask = (1u32 << bits) - 1;
    if 32usize.is_multiple_of(bits) {
        let per = 32 / bits;
        for (chunk, &w) in out.chunks_mut(per).zip(words) {
            for (j, q) in chunk.iter_mut().enumerate() {
                *q = (w >> (j * bits)) & mask;
            }
        }
        return;
    }
    // 3, 5, 6 bits: 32 levels fill exactly `bits` words; read through a 64-bit window.
    for (chunk, ws) in out.chunks_mut(32).zip(words.chunks(bits)) {
        let mut acc: u64 = 0;
        let mut have = 0usize;
        let mut next = ws.iter();
        for q in chunk.iter_mut() {
            if have < bits {
                acc |= u64::from(next.next().copied().unwrap_or(0)) << have;
                have += 32;
            }
            *q = (acc as u32) & mask;
            acc >>= bits;
            have -= bits;
        }
    }
}

/// Per-group scales and biases as f32, row-major like the scales array; or, for the
/// GEMV path that converts them row by row as it goes (`half`), left in their half type
/// (`scales` and `biases` then empty).
struct Params<'a> {
    scales: F32s<'a>,
    biases: Option<F32s<'a>>,
    half: Option<(Halves<'a>, Halves<'a>)>,
}

/// Contiguous float16 or bfloat16 values.
#[derive(Clone, Copy)]
enum Halves<'a> {
    F16(&'a [half::f16]),
    Bf16(&'a [half::bf16]),
}

impl<'a> Halves<'a> {
    /// The contiguous half-typed values of `x`, if that is what it holds.
    fn of(x: &'a Input) -> Option<Self> {
        let range = x.data.offset..x.data.offset.checked_add(x.size())?;
        if !x.is_contiguous() {
            return None;
        }
        match x.dtype {
            Dtype::Float16 => x.data.buffer.typed::<half::f16>().get(range).map(Self::F16),
            Dtype::Bfloat16 => x
                .data
                .buffer
                .typed::<half::bf16>()
                .get(range)
                .map(Self::Bf16),
            _ => None,
        }
    }
    fn len(&self) -> usize {
        match self {
            Self::F16(v) => v.len(),
            Self::Bf16(v) => v.len(),
        }
    }
    fn slice(&self, r: std::ops::Range<usize>) -> Self {
        match self {
            Self::F16(v) => Self::F16(v.get(r).unwrap_or(&[])),
            Self::Bf16(v) => Self::Bf16(v.get(r).unwrap_or(&[])),
        }
    }
    /// Values `r` as f32 into `dst` (F16C when the CPU has it); `dst` is cut to the values
    /// there are.
    fn convert<'b>(&self, r: std::ops::Range<usize>, dst: &'b mut [f32]) -> &'b [f32] {
        use half::slice::HalfFloatSliceExt;
        let n = r.len().min(dst.len());
        let dst = &mut dst[..n];
        let done = match self {
            Self::F16(v) => v
                .get(r.start..r.start + n)
                .map(|h| h.convert_to_f32_slice(dst)),
            Self::Bf16(v) => v
                .get(r.start..r.start + n)
                .map(|h| h.convert_to_f32_slice(dst)),
        };
        if done.is_some() {
            dst
        } else {
            &[]
        }
    }
}

/// Scales or biases as f32: borrowed, or converted into a pool buffer (reused from call
/// to call, so a large conversion does not fault in fresh pages each time).
enum F32s<'a> {
    Borrowed(&'a [f32]),
    Owned(Vec<f32>),
    Pooled(oxmx_core::memory::Buffer, usize),
}

impl std::ops::Deref for F32s<'_> {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            F32s::Borrowed(s) => s,
            F32s::Owned(v) => v,
            F32s::Pooled(b, n) => b.typed::<f32>().get(..*n).unwrap_or(&[]),
        }
    }
}

/// `x` as contiguous f32: half scales through `half`'s SIMD slice conversion (F16C when
/// the CPU has it), everything else through `load`.
fn load_f32(x: &Input) -> Result<F32s<'_>> {
    if let Some(h) = Halves::of(x) {
        let n = h.len();
        let mut buf = oxmx_core::memory::alloc(OP, n * 4)?;
        let dst = buf
            .typed_mut::<f32>()
            .get_mut(..n)
            .ok_or_else(|| Error::runtime(OP, "scratch too small"))?;
        if h.convert(0..n, dst).len() == n {
            return Ok(F32s::Pooled(buf, n));
        }
    }
    Ok(match load::<f32>(x) {
        Cow::Borrowed(s) => F32s::Borrowed(s),
        Cow::Owned(v) => F32s::Owned(v),
    })
}

/// Scales and biases of a node from input `first` on; `half_ok`: affine half-typed ones
/// may stay in their type (`Params::half`).
fn params<'a>(s: &QuantSpec, ins: &'a [Input], first: usize, half_ok: bool) -> Result<Params<'a>> {
    let sc = ins
        .get(first)
        .ok_or_else(|| Error::runtime(OP, "missing scales"))?;
    if half_ok && s.mode == QuantMode::Affine {
        if let (Some(hs), Some(hb)) = (Halves::of(sc), ins.get(first + 1).and_then(Halves::of)) {
            if std::mem::discriminant(&hs) == std::mem::discriminant(&hb) {
                return Ok(Params {
                    scales: F32s::Borrowed(&[]),
                    biases: Some(F32s::Borrowed(&[])),
                    half: Some((hs, hb)),
                });
            }
        }
    }
    let scales = match s.mode {
        QuantMode::Affine => load_f32(sc)?,
        mode => {
            let codes: Vec<u8> = match load_u8(sc) {
                Some(v) => v,
                None => return Err(Error::runtime(OP, "scales must be uint8")),
            };
            let f = if mode == QuantMode::Nvfp4 { e4m3 } else { e8m0 };
            F32s::Owned(codes.into_iter().map(f).collect())
        }
    };
    let biases = match s.mode {
        QuantMode::Affine => Some(load_f32(
            ins.get(first + 1)
                .ok_or_else(|| Error::runtime(OP, "missing biases"))?,
        )?),
        _ => None,
    };
    Ok(Params {
        scales,
        biases,
        half: None,
    })
}

fn load_u8(x: &Input) -> Option<Vec<u8>> {
    if x.dtype != Dtype::Uint8 {
        return None;
    }
    let mut v = vec![0u8; x.size()];
    crate::strided::map1(
        &x.shape,
        crate::strided::View::<u8>::of(x),
        &mut v,
        |e: u8| e,
    );
    Some(v)
}

fn load_words(x: &Input) -> Result<Cow<'_, [u32]>> {
    if x.dtype != Dtype::Uint32 {
        return Err(Error::runtime(OP, "packed weights must be uint32"));
    }
    let n = x.size();
    if x.is_contiguous() {
        if let Some(s) = x
            .data
            .buffer
            .typed::<u32>()
            .get(x.data.offset..x.data.offset + n)
        {
            return Ok(Cow::Borrowed(s));
        }
    }
    let mut v = vec![0u32; n];
    crate::strided::map1(
        &x.shape,
        crate::strided::View::<u32>::of(x),
        &mut v,
        |e: u32| e,
    );
    Ok(Cow::Owned(v))
}

/// One packed matrix of the batch: `rows` rows of `packed` words, `cols` values each.
#[derive(Clone, Copy)]
struct Packed<'a> {
    spec: QuantSpec,
    words: &'a [u32],
    scales: &'a [f32],
    biases: Option<&'a [f32]>,
    /// Scales and biases still in a half type (then `scales`, `biases` are empty): only
    /// for the AVX-512 GEMV, which converts a row's as it reaches it.
    half: Option<(Halves<'a>, Halves<'a>)>,
    rows: usize,
    cols: usize,
    packed: usize,
}

impl Packed<'_> {
    fn groups(&self) -> usize {
        self.cols / self.spec.group_size
    }
    /// Values of row `r`, columns [c0, c0 + out.len()) (c0 a multiple of 32 and of the
    /// group size), scaled, rounded as f32.
    fn decode(&self, lv: &Levels, r: usize, c0: usize, out: &mut [f32], q: &mut [u32]) {
        let gs = self.spec.group_size;
        let w0 = r * self.packed + c0 * self.spec.bits / 32;
        let words = self.words.get(w0..(r + 1) * self.packed).unwrap_or(&[]);
        let q = &mut q[..out.len()];
        unpack(self.spec.bits, words, q);
        let g0 = r * self.groups() + c0 / gs;
        for (i, (vals, qs)) in out.chunks_mut(gs).zip(q.chunks(gs)).enumerate() {
            let s = self.scales.get(g0 + i).copied().unwrap_or(f32::NAN);
            match self.biases {
                Some(b) => {
                    let b = b.get(g0 + i).copied().unwrap_or(f32::NAN);
                    for (v, &l) in vals.iter_mut().zip(qs) {
                        *v = l as f32 * s + b;
                    }
                }
                None => {
                    for (v, &l) in vals.iter_mut().zip(qs) {
                        *v = lv.value(l) * s;
                    }
                }
            }
        }
    }
}

/// Inputs of one node split into per-matrix pieces: (batch, rows, packed, cols).
fn dims(w: &Input, s: &QuantSpec) -> Result<(usize, usize, usize, usize)> {
    let nd = w.shape.len();
    if nd < 2 {
        return Err(Error::runtime(OP, "packed matrix must be 2-d"));
    }
    let (rows, packed) = (w.shape[nd - 2], w.shape[nd - 1]);
    let batch: usize = w.shape[..nd - 2].iter().product();
    let cols = packed * 32 / s.bits;
    if !(packed * 32).is_multiple_of(s.bits) || !cols.is_multiple_of(s.group_size) {
        return Err(Error::runtime(OP, "packed width does not match the format"));
    }
    Ok((batch, rows, packed, cols))
}

fn matrices<'a>(
    s: &QuantSpec,
    words: &'a [u32],
    p: &'a Params<'a>,
    batch: usize,
    rows: usize,
    packed: usize,
    cols: usize,
) -> Result<Vec<Packed<'a>>> {
    let groups = cols / s.group_size;
    let (wn, gn) = (rows * packed, rows * groups);
    let sizes_agree = match &p.half {
        Some((hs, hb)) => hs.len() == batch * gn && hb.len() == batch * gn,
        None => {
            p.scales.len() == batch * gn && p.biases.as_ref().is_none_or(|b| b.len() == batch * gn)
        }
    };
    if words.len() != batch * wn || !sizes_agree {
        return Err(Error::runtime(OP, "operand sizes disagree"));
    }
    Ok((0..batch)
        .map(|i| Packed {
            spec: *s,
            words: &words[i * wn..(i + 1) * wn],
            scales: p.scales.get(i * gn..(i + 1) * gn).unwrap_or(&[]),
            biases: p
                .biases
                .as_ref()
                .map(|b| b.get(i * gn..(i + 1) * gn).unwrap_or(&[])),
            half: p.half.map(|(hs, hb)| {
                (
                    hs.slice(i * gn..(i + 1) * gn),
                    hb.slice(i * gn..(i + 1) * gn),
                )
            }),
            rows,
            cols,
            packed,
        })
        .collect())
}

/// `Dequantize`: every row expanded; half outputs round `q*s` and then `+ b` in their
/// own precision, as MLX computes them.
pub fn dequantize(s: &QuantSpec, ins: &[Input], out: &mut Buffer, d: Dtype) -> Result<()> {
    let w = ins.first().ok_or_else(|| Error::runtime(OP, "missing w"))?;
    let (batch, rows, packed, cols) = dims(w, s)?;
    let words = load_words(w)?;
    let p = params(s, ins, 1, false)?;
    let mats = matrices(s, &words, &p, 1, batch * rows, packed, cols)?;
    let m = mats[0];
    let lv = Levels::new(s.mode);
    let round: fn(f32) -> f32 = match d {
        Dtype::Float16 => |v| half::f16::from_f32(v).to_f32(),
        Dtype::Bfloat16 => |v| crate::elem::bf16_of(v).to_f32(),
        _ => |v| v,
    };
    let half = matches!(d, Dtype::Float16 | Dtype::Bfloat16);
    let n = batch * rows * cols;
    if cols == 0 {
        return Ok(());
    }
    with_out::<f32>(out, d, n, |dst| {
        dst.par_chunks_mut(cols).enumerate().for_each(|(r, row)| {
            let mut q = vec![0u32; cols];
            if half && s.mode == QuantMode::Affine {
                // q*s rounded, then + b rounded (MLX's two half-precision operations).
                let unbiased = Packed { biases: None, ..m };
                unbiased.decode(&Levels::new(QuantMode::Affine), r, 0, row, &mut q);
                let g0 = r * m.groups();
                for (i, vals) in row.chunks_mut(s.group_size).enumerate() {
                    let b = m.biases.and_then(|b| b.get(g0 + i)).copied().unwrap_or(0.0);
                    for v in vals {
                        *v = round(round(*v) + b);
                    }
                }
            } else {
                m.decode(&lv, r, 0, row, &mut q);
            }
        });
        Ok(())
    })
}

/// Below this many rows of x a product decodes per group and takes dot products;
/// above, it expands blocks of w and uses gemm.
const GEMV_ROWS: usize = 8;
/// Rows (transpose) or columns of w that one task expands for gemm.
const BLOCK: usize = 64;

/// `QuantizedMatmul`: x (B, M, K), w (B, R, packed) -> (B, M, N).
pub fn matmul(
    s: &QuantSpec,
    transpose: bool,
    ins: &[Input],
    out: &mut Buffer,
    d: Dtype,
) -> Result<()> {
    let (x, w) = match (ins.first(), ins.get(1)) {
        (Some(x), Some(w)) => (x, w),
        _ => return Err(Error::runtime(OP, "missing inputs")),
    };
    let (batch, rows, packed, cols) = dims(w, s)?;
    let (k, n) = oxmx_core::ops::quantized::product_dims(transpose, rows, cols);
    let m = x
        .shape
        .get(x.shape.len().wrapping_sub(2))
        .copied()
        .unwrap_or(0);
    let xs = load::<f32>(x);
    let words = load_words(w)?;
    // half scales stay half for the AVX-512 GEMV (converting them all first cost up to a
    // fifth of a 4096x14336 4-bit GEMV)
    let p = params(
        s,
        ins,
        2,
        transpose && m <= GEMV_ROWS && k > 0 && avx512_gemv(s),
    )?;
    let mats = matrices(s, &words, &p, batch, rows, packed, cols)?;
    if xs.len() != batch * m * k {
        return Err(Error::runtime(OP, "x does not match the quantized matrix"));
    }
    let total = batch * m * n;
    with_out::<f32>(out, d, total, |dst| {
        if total == 0 {
            return Ok(());
        }
        if k == 0 {
            // a sum over no terms (the kernels below split rows of x by k)
            dst.fill(0.0);
            return Ok(());
        }
        for (bi, mat) in mats.iter().enumerate() {
            let xb = &xs[bi * m * k..(bi + 1) * m * k];
            let ob = &mut dst[bi * m * n..(bi + 1) * m * n];
            product(mat, transpose, xb, m, ob)?;
        }
        Ok(())
    })
}

/// `out (m, n) = x (m, k) @ mat^T` (`transpose`) or `x @ mat`: per-group dot products
/// for a few rows of x, blocks of `mat` expanded for gemm above that.
fn product(mat: &Packed, transpose: bool, x: &[f32], m: usize, out: &mut [f32]) -> Result<()> {
    match (transpose, m <= GEMV_ROWS) {
        (true, true) => gemv_t(mat, x, m, out),
        (true, false) => blocks_t(mat, x, m, out)?,
        (false, true) => gemv_n(mat, x, m, out),
        (false, false) => blocks_n(mat, x, m, out)?,
    }
    Ok(())
}

/// Sums of x over each quantization group: (M, K / group).
fn group_sums(x: &[f32], m: usize, k: usize, gs: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(m * (k / gs));
    for row in x.chunks(k).take(m) {
        v.extend(row.chunks(gs).map(|g| g.iter().sum::<f32>()));
    }
    v
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight partial sums so the loop vectorizes (a fixed reassociation).
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for j in 0..8 {
            acc[j] += x[j] * y[j];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ar.iter().zip(br) {
        s += x * y;
    }
    s
}

/// Values per word for the vectorized affine paths (4 and 8 bits).
fn per_word(bits: usize) -> usize {
    32 / bits
}

/// The words one vector step reads: 8 (one lane per word).
const LANES: usize = 8;

/// `x` reordered so that the vector loops read it contiguously: within each block of
/// `LANES` words (`LANES * per` values), value `per * i + j` (word i, slot j) moves to
/// `j * LANES + i`. Blocks never straddle a group (groups are multiples of 32 values).
fn lane_order(x: &[f32], per: usize) -> Vec<f32> {
    let block = LANES * per;
    let mut out = vec![0f32; x.len()];
    for (src, dst) in x.chunks(block).zip(out.chunks_mut(block)) {
        if src.len() < block {
            dst.copy_from_slice(src);
            continue;
        }
        for i in 0..LANES {
            for j in 0..per {
                dst[j * LANES + i] = src[per * i + j];
            }
        }
    }
    out
}

/// Sum of level * x over whole blocks of `LANES` words, x in `lane_order`: each step
/// shifts eight words by the same amount, so the loop is a plain vector loop.
// The vector loops below index with plain counters over fixed-size arrays: iterator
// adapters (zip, chunks) were left as calls inside the dispatched loop, out of line.
#[inline(always)]
fn dot_levels<const BITS: usize, const XB: usize>(words: &[u32], xp: &[f32]) -> [f32; LANES] {
    // XB = LANES * 32 / BITS values per block of LANES words; every index below is a
    // constant-bounded offset into fixed-size arrays, so the block is one unrolled run
    // of vector instructions with no bounds checks.
    let mask = (1u32 << BITS) - 1;
    // Four independent accumulators: a single one would chain every FMA on the last.
    let mut acc = [[0f32; LANES]; 4];
    let blocks = (words.len() / LANES).min(xp.len() / XB);
    let mut blk = 0;
    while blk < blocks {
        let w8 = words
            .get(blk * LANES..(blk + 1) * LANES)
            .map(<&[u32; LANES]>::try_from);
        let xb = xp.get(blk * XB..(blk + 1) * XB).map(<&[f32; XB]>::try_from);
        let (Some(Ok(w8)), Some(Ok(xb))) = (w8, xb) else {
            break;
        };
        blk += 1;
        for j in 0..XB / LANES {
            let shift = (BITS * j) as u32;
            let a = &mut acc[j % 4];
            for i in 0..LANES {
                // mul_add: one FMA per lane on the AVX2/AVX-512 paths
                a[i] = (((w8[i] >> shift) & mask) as f32).mul_add(xb[j * LANES + i], a[i]);
            }
        }
    }
    let mut out = [0f32; LANES];
    for i in 0..LANES {
        out[i] = (acc[0][i] + acc[1][i]) + (acc[2][i] + acc[3][i]);
    }
    out
}

/// One row of `x @ W^T` on the vector path: per group a lane vector of level * x dot
/// products, scaled into a row accumulator (one horizontal sum per row, not per group);
/// the biases meet the group sums of x.
#[inline(always)]
fn row_dot<const BITS: usize, const XB: usize>(
    wrow: &[u32],
    xp: &[f32],
    scales: &[f32],
    biases: &[f32],
    sums: &[f32],
    gs: usize,
) -> f32 {
    let wpg = gs * BITS / 32;
    let groups = scales
        .len()
        .min(biases.len())
        .min(sums.len())
        .min(wrow.len() / wpg.max(1))
        .min(xp.len() / gs.max(1));
    let mut acc = [0f32; LANES];
    let mut bias = 0f32;
    let mut g = 0;
    while g < groups {
        let ws = &wrow[g * wpg..(g + 1) * wpg];
        let xg = &xp[g * gs..(g + 1) * gs];
        let d = dot_levels::<BITS, XB>(ws, xg);
        let s = scales[g];
        for i in 0..LANES {
            acc[i] = s.mul_add(d[i], acc[i]);
        }
        bias = biases[g].mul_add(sums[g], bias);
        g += 1;
    }
    let mut total = bias;
    for a in acc {
        total += a;
    }
    total
}

/// Whether `gemv_t` takes the AVX-512 path for this format on this CPU.
fn avx512_gemv(s: &QuantSpec) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        s.mode == QuantMode::Affine
            && avx512::fits(s.bits, s.group_size)
            && pulp::x86::V4::try_new().is_some()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = s;
        false
    }
}

/// out (M, N) = x (M, K) @ W^T for few rows: per row of W, per group, one decode and M
/// dot products.
fn gemv_t(mat: &Packed, x: &[f32], m: usize, out: &mut [f32]) {
    let (k, n, gs) = (mat.cols, mat.rows, mat.spec.group_size);
    #[cfg(target_arch = "x86_64")]
    if (mat.biases.is_some() || mat.half.is_some()) && k > 0 && avx512_gemv(&mat.spec) {
        if let Some(simd) = pulp::x86::V4::try_new() {
            return avx512::gemv_t(simd, mat, x, m, out);
        }
    }
    let sums = if mat.biases.is_some() {
        group_sums(x, m, k, gs)
    } else {
        Vec::new()
    };
    // The vector path needs whole 8-word blocks per group: 4-bit groups of 64+, 8-bit 32+.
    let bits = mat.spec.bits;
    let vector =
        mat.biases.is_some() && (bits == 4 || bits == 8) && (gs * bits / 32).is_multiple_of(LANES);
    let xp: Vec<f32> = if vector {
        x.chunks(k)
            .flat_map(|row| lane_order(row, per_word(bits)))
            .collect()
    } else {
        Vec::new()
    };
    // Results as (N, M), transposed into out afterwards.
    let mut t = vec![0f32; n * m];
    let rows_per_task = (n / (4 * rayon::current_num_threads().max(1))).clamp(4, 256);
    t.par_chunks_mut(rows_per_task * m)
        .enumerate()
        .for_each(|(task, chunk)| {
            pulp::Arch::new().dispatch(GemvRows {
                mat,
                x: if vector { &xp } else { x },
                vector,
                m,
                sums: &sums,
                r0: task * rows_per_task,
                out: chunk,
            })
        });
    for (r, res) in t.chunks(m).enumerate() {
        for (mi, &v) in res.iter().enumerate() {
            out[mi * n + r] = v;
        }
    }
}

/// Rows `r0..` of `x @ W^T`, written as (row, M) into `out`; compiled per instruction
/// set by pulp so that the decode and dot loops vectorize.
struct GemvRows<'a> {
    mat: &'a Packed<'a>,
    /// x, in `lane_order` when `vector`.
    x: &'a [f32],
    vector: bool,
    m: usize,
    sums: &'a [f32],
    r0: usize,
    out: &'a mut [f32],
}

impl pulp::WithSimd for GemvRows<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let GemvRows {
            mat,
            x,
            vector: fast,
            m,
            sums,
            r0,
            out,
        } = self;
        let (k, gs, bits) = (mat.cols, mat.spec.group_size, mat.spec.bits);
        let groups = mat.groups();
        let lv = Levels::new(mat.spec.mode);
        let mut q = vec![0u32; gs];
        let mut buf = vec![0f32; gs];
        for (i, res) in out.chunks_mut(m).enumerate() {
            let r = r0 + i;
            let wrow = mat
                .words
                .get(r * mat.packed..(r + 1) * mat.packed)
                .unwrap_or(&[]);
            let srow = mat.scales.get(r * groups..(r + 1) * groups).unwrap_or(&[]);
            let brow = mat.biases.and_then(|b| b.get(r * groups..(r + 1) * groups));
            if fast {
                let brow = brow.unwrap_or(&[]);
                for (mi, o) in res.iter_mut().enumerate() {
                    let xr = x.get(mi * k..(mi + 1) * k).unwrap_or(&[]);
                    let sr = sums.get(mi * groups..(mi + 1) * groups).unwrap_or(&[]);
                    *o = if bits == 4 {
                        row_dot::<4, { LANES * 8 }>(wrow, xr, srow, brow, sr, gs)
                    } else {
                        row_dot::<8, { LANES * 4 }>(wrow, xr, srow, brow, sr, gs)
                    };
                }
                continue;
            }
            for g in 0..groups {
                let s = srow.get(g).copied().unwrap_or(0.0);
                let b = brow.and_then(|b| b.get(g)).copied();
                let w0 = g * gs * bits / 32;
                unpack(bits, wrow.get(w0..).unwrap_or(&[]), &mut q);
                for (v, &l) in buf.iter_mut().zip(&q) {
                    *v = lv.value(l);
                }
                for (mi, o) in res.iter_mut().enumerate() {
                    let xg = x.get(mi * k + g * gs..mi * k + (g + 1) * gs).unwrap_or(&[]);
                    let d = dot(&buf, xg);
                    *o += match b {
                        Some(b) => s * d + b * sums.get(mi * groups + g).copied().unwrap_or(0.0),
                        None => s * d,
                    };
                }
            }
        }
    }
}

/// The AVX-512 path of `gemv_t` (affine 4- and 8-bit, the common LLM layouts), about
/// twice the 8-lane loop below: sixteen words per step; each slot of a step becomes one
/// vector of levels in one or two instructions and meets x in one FMA, so a step is
/// ~25 vector instructions for 128 4-bit values (the 8-lane loop: ~64). x is reordered
/// once per call to match.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::Packed;
    use core::arch::x86_64::{__m128, __m256i, __m512, __m512i, _MM_HINT_T1};
    use pulp::x86::V4;
    use rayon::prelude::*;

    /// Words per step: one 512-bit vector of them.
    const WORDS: usize = 16;
    /// How far ahead of the decode a row is prefetched into L2, in words (16 KiB): the
    /// hardware prefetchers stop at page boundaries and the busy decode loop keeps too
    /// few misses in flight (14336x4096 4-bit, 2 threads: 22 GB/s without, 30 with).
    const AHEAD: usize = 4096;
    /// Rows of W that share each load of x (see `Rows`).
    const X_SHARING_ROWS: usize = 4;

    /// Whether this path takes the layout: 4 or 8 bits in groups of a power-of-two number
    /// (4 or more) of words, so that a 16-word step holds whole groups or lies in one.
    pub(super) fn fits(bits: usize, gs: usize) -> bool {
        (bits == 4 || bits == 8) && gs.is_power_of_two() && gs * bits >= 128
    }

    /// The whole 16-word steps of a row of x, one vector of x per slot: value
    /// `SLOTS * i + j` (word i, slot j) of a step goes to lane i of vector j. 4-bit slots
    /// 1..6 decode to level * 2^4j (see `levels`), so their x is scaled by 2^-4j: a power
    /// of two, so each product is still the float level * x (unless |x| < 2^-102).
    fn lane_order<const SLOTS: usize>(x: &[f32]) -> Vec<[[f32; WORDS]; SLOTS]> {
        let mut scale = [1f32; SLOTS];
        if SLOTS == 8 {
            for (j, s) in scale.iter_mut().enumerate().take(7).skip(1) {
                *s = (0.5f32).powi(4 * j as i32);
            }
        }
        x.chunks_exact(WORDS * SLOTS)
            .map(|src| {
                let mut step = [[0f32; WORDS]; SLOTS];
                for i in 0..WORDS {
                    for j in 0..SLOTS {
                        step[j][i] = src[SLOTS * i + j] * scale[j];
                    }
                }
                step
            })
            .collect()
    }

    /// Sums of x over each quantization group, (M, K / gs): sixteen partial sums per
    /// group (a long serial sum took as long as a tenth of the product at K = 14336).
    fn group_sums(x: &[f32], m: usize, k: usize, gs: usize) -> Vec<f32> {
        let mut v = Vec::with_capacity(m * (k / gs.max(1)));
        for row in x.chunks(k.max(1)).take(m) {
            for g in row.chunks(gs.max(1)) {
                let mut acc = [0f32; WORDS];
                let c = g.chunks_exact(WORDS);
                let rest: f32 = c.remainder().iter().sum();
                for part in c {
                    for (a, &b) in acc.iter_mut().zip(part) {
                        *a += b;
                    }
                }
                v.push(acc.iter().sum::<f32>() + rest);
            }
        }
        v
    }

    /// Slot `j` of sixteen words as floats, in one or two instructions (the loop is
    /// bound by vector instructions: 4-bit, one step is 8 FMAs plus these 15).
    #[inline(always)]
    fn levels<const BITS: usize>(simd: V4, w: __m512i, j: usize) -> __m512 {
        let f = simd.avx512f;
        if BITS == 4 {
            match j {
                // vpermps reads only the low four bits of each index: a table lookup
                // with no shift or mask
                0 => f._mm512_permutexvar_ps(
                    w,
                    f._mm512_setr_ps(
                        0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0,
                        14.0, 15.0,
                    ),
                ),
                // the top nibble holds the sign bit of a signed convert: shift it down
                7 => f._mm512_cvtepi32_ps(f._mm512_srli_epi32::<28>(w)),
                // the nibble left in place converts to level * 2^4j exactly, with no
                // shift (lookups for these slots, shift + vpermps, ran ~5% slower: they
                // crowd the FMAs' ports)
                _ => f._mm512_cvtepi32_ps(
                    f._mm512_and_si512(w, f._mm512_set1_epi32((15u32 << (4 * j)) as i32)),
                ),
            }
        } else {
            let byte = match j {
                0 => f._mm512_and_si512(w, f._mm512_set1_epi32(0xff)),
                // shift + mask: LLVM makes these one vpshufb
                1 => f._mm512_and_si512(f._mm512_srli_epi32::<8>(w), f._mm512_set1_epi32(0xff)),
                2 => f._mm512_and_si512(f._mm512_srli_epi32::<16>(w), f._mm512_set1_epi32(0xff)),
                _ => f._mm512_srli_epi32::<24>(w),
            };
            f._mm512_cvtepi32_ps(byte)
        }
    }

    /// The scales of a step's sixteen lanes (words) from its `G` groups' scales: four
    /// groups of 4 words, two of 8, or one group holding the whole step.
    #[inline(always)]
    fn step_scales<const G: usize>(simd: V4, s: &[f32; G]) -> __m512 {
        let f = simd.avx512f;
        match *s.as_slice() {
            [s0, s1, s2, s3] => {
                let v: __m128 = pulp::cast([s0, s1, s2, s3]);
                let idx = f._mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
                f._mm512_permutexvar_ps(idx, f._mm512_castps128_ps512(v))
            }
            // 128-bit lanes [s0, s0, s1, s1]
            [s0, s1] => {
                f._mm512_shuffle_f32x4::<0b0100_0100>(f._mm512_set1_ps(s0), f._mm512_set1_ps(s1))
            }
            _ => f._mm512_set1_ps(s.first().copied().unwrap_or(0.0)),
        }
    }

    /// Sum of a[i] * b[i].
    #[inline(always)]
    fn dot(simd: V4, a: &[f32], b: &[f32]) -> f32 {
        let f = simd.avx512f;
        let mut acc = f._mm512_setzero_ps();
        let n = a.len().min(b.len()) / WORDS;
        for i in 0..n {
            let (Some(Ok(x)), Some(Ok(y))) = (
                a.get(i * WORDS..(i + 1) * WORDS)
                    .map(<[f32; WORDS]>::try_from),
                b.get(i * WORDS..(i + 1) * WORDS)
                    .map(<[f32; WORDS]>::try_from),
            ) else {
                break;
            };
            acc = f._mm512_fmadd_ps(pulp::cast(x), pulp::cast(y), acc);
        }
        let mut s = f._mm512_reduce_add_ps(acc);
        for (x, y) in a.iter().zip(b).skip(n * WORDS) {
            s = x.mul_add(*y, s);
        }
        s
    }

    /// Steps `s0..s1` of one row of x against `R` rows of W, without the biases: per
    /// 16-word step, each slot decoded and multiplied into x (in `lane_order`, loaded once
    /// for the R rows), the step's sums scaled by their groups' scales (2^`wshift` words
    /// per group). `pf`: how many words past the one decoded to prefetch, in each row.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn steps_dot<const BITS: usize, const SLOTS: usize, const G: usize, const R: usize>(
        simd: V4,
        wrows: &[&[u32]; R],
        xl: &[[[f32; WORDS]; SLOTS]],
        scales: &[&[f32]; R],
        wshift: u32,
        s0: usize,
        s1: usize,
        pf: usize,
    ) -> [f32; R] {
        let f = simd.avx512f;
        let zero = f._mm512_setzero_ps();
        let mut tot = [zero; R];
        'steps: for b in s0..s1 {
            // the step's groups: G of them from b * G, or the one it lies in
            let g0 = if G > 1 { b * G } else { (b * WORDS) >> wshift };
            let Some(xb) = xl.get(b) else {
                break;
            };
            let mut w = [f._mm512_setzero_si512(); R];
            let mut sc = [zero; R];
            for i in 0..R {
                let (Some(Ok(wi)), Some(Ok(si))) = (
                    wrows[i]
                        .get(b * WORDS..(b + 1) * WORDS)
                        .map(<[u32; WORDS]>::try_from),
                    scales[i].get(g0..g0 + G).map(<&[f32; G]>::try_from),
                ) else {
                    break 'steps;
                };
                simd.sse._mm_prefetch::<_MM_HINT_T1>(
                    wrows[i].as_ptr().wrapping_add(b * WORDS + pf).cast(),
                );
                w[i] = pulp::cast(wi);
                sc[i] = step_scales::<G>(simd, si);
            }
            // two chains per row: one would serialize eight FMAs per step
            let mut acc = [[zero; 2]; R];
            for (j, xj) in xb.iter().enumerate() {
                let xv: __m512 = pulp::cast(*xj);
                for i in 0..R {
                    let q = levels::<BITS>(simd, w[i], j);
                    acc[i][j % 2] = f._mm512_fmadd_ps(q, xv, acc[i][j % 2]);
                }
            }
            for i in 0..R {
                tot[i] = f._mm512_fmadd_ps(sc[i], f._mm512_add_ps(acc[i][0], acc[i][1]), tot[i]);
            }
        }
        tot.map(|t| f._mm512_reduce_add_ps(t))
    }

    /// Groups `g0..` of one row of x (plainly, `xn`) against one row of W, without the
    /// biases: the words after the last whole step, when a row has an odd number of 4-
    /// or 8-word groups. Inlined into the AVX-512 caller so that `mul_add` is one
    /// instruction (outside it, a call to libm's `fmaf` per value).
    #[inline(always)]
    fn tail_dot<const BITS: usize, const SLOTS: usize>(
        wrow: &[u32],
        xn: &[f32],
        scales: &[f32],
        wshift: u32,
        g0: usize,
    ) -> f32 {
        let (wpg, mask) = (1usize << wshift, (1u32 << BITS) - 1);
        let groups = scales.len().min(wrow.len() >> wshift);
        let mut out = 0f32;
        for g in g0..groups {
            let s = scales.get(g).copied().unwrap_or(0.0);
            let ws = wrow.get(g * wpg..(g + 1) * wpg).unwrap_or(&[]);
            let xg = xn
                .get(g * wpg * SLOTS..(g + 1) * wpg * SLOTS)
                .unwrap_or(&[]);
            let mut d = 0f32;
            for (&w, xw) in ws.iter().zip(xg.chunks_exact(SLOTS)) {
                for (j, &xv) in xw.iter().enumerate() {
                    d = (((w >> (BITS * j)) & mask) as f32).mul_add(xv, d);
                }
            }
            out = s.mul_add(d, out);
        }
        out
    }

    /// out (M, N) = x (M, K) @ W^T for few rows, W affine 4- or 8-bit with biases in a
    /// layout that `fits`, on a CPU with AVX-512.
    pub(super) fn gemv_t(simd: V4, mat: &Packed, x: &[f32], m: usize, out: &mut [f32]) {
        // by words per group: 4 or 8 (four or two groups per step) or 16 and more
        match (mat.spec.bits, mat.spec.group_size * mat.spec.bits / 32) {
            (4, 4) => gemv_bits::<4, 8, 4>(simd, mat, x, m, out),
            (4, 8) => gemv_bits::<4, 8, 2>(simd, mat, x, m, out),
            (4, _) => gemv_bits::<4, 8, 1>(simd, mat, x, m, out),
            (_, 4) => gemv_bits::<8, 4, 4>(simd, mat, x, m, out),
            (_, 8) => gemv_bits::<8, 4, 2>(simd, mat, x, m, out),
            _ => gemv_bits::<8, 4, 1>(simd, mat, x, m, out),
        }
    }

    fn gemv_bits<const BITS: usize, const SLOTS: usize, const G: usize>(
        simd: V4,
        mat: &Packed,
        x: &[f32],
        m: usize,
        out: &mut [f32],
    ) {
        let (k, n, gs) = (mat.cols, mat.rows, mat.spec.group_size);
        let (m, groups) = (m.max(1), mat.groups());
        let sums = group_sums(x, m, k, gs);
        let xl: Vec<_> = x
            .chunks(k.max(1))
            .take(m)
            .map(lane_order::<SLOTS>)
            .collect();
        // Results as (N, M), transposed into out afterwards.
        let mut t = vec![0f32; n * m];
        let mut rows_per_task = (n / (4 * rayon::current_num_threads().max(1))).clamp(4, 256);
        if m > 1 {
            // one pass over a task's rows per row of x: keep them in L2 (256 KiB)
            rows_per_task = rows_per_task.min((65536 / mat.packed.max(1)).max(4));
        }
        t.par_chunks_mut(rows_per_task * m)
            .enumerate()
            .for_each(|(task, chunk)| {
                // A row of x at a time, its W rows decoded again for each: a shared
                // decode for two or four rows of x was no faster (their x no longer
                // fits in L1 beside the stream of W).
                for mi in 0..m {
                    let xl = xl.get(mi).map(Vec::as_slice).unwrap_or(&[]);
                    let xn = x.get(mi * k..(mi + 1) * k).unwrap_or(&[]);
                    let sums = sums.get(mi * groups..(mi + 1) * groups).unwrap_or(&[]);
                    pulp::Simd::vectorize(
                        simd,
                        Rows::<BITS, SLOTS, G> {
                            simd,
                            mat,
                            xl,
                            xn,
                            sums,
                            m,
                            mi,
                            r0: task * rows_per_task,
                            out: &mut *chunk,
                        },
                    );
                }
            });
        for (r, res) in t.chunks(m).enumerate() {
            for (mi, &v) in res.iter().enumerate() {
                if let Some(o) = out.get_mut(mi * n + r) {
                    *o = v;
                }
            }
        }
    }

    /// Rows converted from half scales and biases at a time in the short-row loop (one
    /// conversion call per row cost a fifth of a 4096x4096 GEMV).
    const CONVERT_ROWS: usize = 16;

    /// Scales and biases of rows `r..r + n` (as many of them as there are) as f32, row
    /// after row: the matrix's own, or its half-typed ones converted into `buf`.
    #[inline(always)]
    fn block_params<'b>(
        simd: V4,
        mat: &'b Packed,
        r: usize,
        n: usize,
        buf: &'b mut [f32],
    ) -> (&'b [f32], &'b [f32]) {
        let g = mat.groups();
        let n = n.min(mat.rows.saturating_sub(r));
        let range = r * g..(r + n) * g;
        match mat.half {
            Some((hs, hb)) => {
                let (sb, bb) = buf.split_at_mut((n * g).min(buf.len()));
                (
                    halves_to_f32(simd, hs, range.clone(), sb),
                    halves_to_f32(simd, hb, range, bb),
                )
            }
            None => (
                mat.scales.get(range.clone()).unwrap_or(&[]),
                mat.biases.and_then(|b| b.get(range)).unwrap_or(&[]),
            ),
        }
    }

    /// Values `r` of `h` as f32 into `dst`, sixteen per instruction (`half`'s slice
    /// conversion, a call per eight values, took a tenth of a float16 4096x4096 GEMV);
    /// `dst` is cut to the values there are.
    #[inline(always)]
    fn halves_to_f32<'b>(
        simd: V4,
        h: super::Halves,
        r: std::ops::Range<usize>,
        dst: &'b mut [f32],
    ) -> &'b [f32] {
        let f = simd.avx512f;
        let n = r.len().min(dst.len());
        let dst = &mut dst[..n];
        use half::slice::HalfFloatSliceExt;
        let bits: &[u16] = match h {
            super::Halves::F16(v) => v
                .get(r.start..r.start + n)
                .unwrap_or(&[])
                .reinterpret_cast(),
            super::Halves::Bf16(v) => v
                .get(r.start..r.start + n)
                .unwrap_or(&[])
                .reinterpret_cast(),
        };
        if bits.len() != n {
            return &[];
        }
        let mut src = bits.chunks_exact(WORDS);
        let mut out = dst.chunks_exact_mut(WORDS);
        for (s, d) in (&mut src).zip(&mut out) {
            let Ok(s) = <[u16; WORDS]>::try_from(s) else {
                break;
            };
            let v: __m256i = pulp::cast(s);
            let wide: __m512 = match h {
                super::Halves::F16(_) => f._mm512_cvtph_ps(v),
                // bfloat16 is the top half of a float32
                super::Halves::Bf16(_) => {
                    pulp::cast(f._mm512_slli_epi32::<16>(f._mm512_cvtepu16_epi32(v)))
                }
            };
            d.copy_from_slice(&pulp::cast::<__m512, [f32; WORDS]>(wide));
        }
        for (d, &s) in out.into_remainder().iter_mut().zip(src.remainder()) {
            *d = match h {
                super::Halves::F16(_) => half::f16::from_bits(s).to_f32(),
                super::Halves::Bf16(_) => half::bf16::from_bits(s).to_f32(),
            };
        }
        dst
    }

    /// Row `i` of a block of rows' scales and biases.
    fn row_of<'b>((s, b): (&'b [f32], &'b [f32]), i: usize, g: usize) -> (&'b [f32], &'b [f32]) {
        let range = i * g..(i + 1) * g;
        (
            s.get(range.clone()).unwrap_or(&[]),
            b.get(range).unwrap_or(&[]),
        )
    }

    /// Column `mi` (one row of x: `xl`, `xn`, `sums`) of rows `r0..` of `x @ W^T`, into
    /// `out` as (row, M); compiled with AVX-512 enabled.
    struct Rows<'a, const BITS: usize, const SLOTS: usize, const G: usize> {
        simd: V4,
        mat: &'a Packed<'a>,
        xl: &'a [[[f32; WORDS]; SLOTS]],
        xn: &'a [f32],
        sums: &'a [f32],
        m: usize,
        mi: usize,
        r0: usize,
        out: &'a mut [f32],
    }

    impl<const BITS: usize, const SLOTS: usize, const G: usize> pulp::WithSimd
        for Rows<'_, BITS, SLOTS, G>
    {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) {
            let Rows {
                simd,
                mat,
                xl,
                xn,
                sums,
                m,
                mi,
                r0,
                out,
            } = self;
            let groups = mat.groups();
            let wshift = (mat.spec.group_size * BITS / 32).trailing_zeros();
            let words = |r: usize| {
                mat.words
                    .get(r * mat.packed..(r + 1) * mat.packed)
                    .unwrap_or(&[])
            };
            // half scales and biases become f32 here, X_SHARING_ROWS rows at a time
            let mut buf = vec![
                0f32;
                if mat.half.is_some() {
                    CONVERT_ROWS.max(X_SHARING_ROWS) * 2 * groups
                } else {
                    0
                }
            ];
            // Whole steps in a row, and the rest of a row (its words after the last whole
            // step, its biases) added to a row's result.
            let steps = ((groups << wshift) / WORDS).min(xl.len());
            let g0 = (steps * WORDS) >> wshift;
            // a closure here was compiled without AVX-512 (its intrinsics became calls)
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn finish<const BITS: usize, const SLOTS: usize>(
                simd: V4,
                words: &[u32],
                xn: &[f32],
                (srow, brow): (&[f32], &[f32]),
                sums: &[f32],
                (wshift, g0, mi): (u32, usize, usize),
                v: f32,
                res: &mut [f32],
            ) {
                let v = v
                    + tail_dot::<BITS, SLOTS>(words, xn, srow, wshift, g0)
                    + dot(simd, brow, sums);
                if let Some(o) = res.get_mut(mi) {
                    *o += v;
                }
            }
            let mut done = 0;
            // X_SHARING_ROWS rows at a time share each load of x, each row prefetched at
            // the same place in the next X_SHARING_ROWS rows. Long rows' x does not stay in
            // L1 beside the stream of W (4096x14336 4-bit: 14 GB/s in 16 KiB spans of
            // x over all the rows, 20 in fours); short rows gain from the fewer x
            // loads and per-row costs (14336x4096 float16: 1.1-1.2 ms one row at a
            // time, 0.89 in fours).
            let pf = X_SHARING_ROWS * mat.packed;
            for (gi, res) in out.chunks_exact_mut(m * X_SHARING_ROWS).enumerate() {
                let rs: [usize; X_SHARING_ROWS] =
                    core::array::from_fn(|j| r0 + gi * X_SHARING_ROWS + j);
                let block = block_params(simd, mat, rs[0], X_SHARING_ROWS, &mut buf);
                let ps: [(&[f32], &[f32]); X_SHARING_ROWS] =
                    core::array::from_fn(|j| row_of(block, j, groups));
                let v = steps_dot::<BITS, SLOTS, G, X_SHARING_ROWS>(
                    simd,
                    &rs.map(words),
                    xl,
                    &ps.map(|p| p.0),
                    wshift,
                    0,
                    steps,
                    pf,
                );
                for (((r, p), res), v) in rs.into_iter().zip(ps).zip(res.chunks_mut(m)).zip(v) {
                    finish::<BITS, SLOTS>(simd, words(r), xn, p, sums, (wshift, g0, mi), v, res);
                }
                done += X_SHARING_ROWS;
            }
            let rest = out.get_mut(done * m..).unwrap_or(&mut []);
            for (bi, res) in rest.chunks_mut(m * CONVERT_ROWS).enumerate() {
                let rb = r0 + done + bi * CONVERT_ROWS;
                let block = block_params(simd, mat, rb, CONVERT_ROWS, &mut buf);
                for (i, res) in res.chunks_mut(m).enumerate() {
                    let (r, p) = (rb + i, row_of(block, i, groups));
                    let [v] = steps_dot::<BITS, SLOTS, G, 1>(
                        simd,
                        &[words(r)],
                        xl,
                        &[p.0],
                        wshift,
                        0,
                        steps,
                        AHEAD,
                    );
                    finish::<BITS, SLOTS>(simd, words(r), xn, p, sums, (wshift, g0, mi), v, res);
                }
            }
        }
    }
}

/// out (M, N) = x (M, K) @ W for few rows, W (K, N): column blocks in parallel, each
/// decoding its slice of every row and accumulating x[m, k] times it.
fn gemv_n(mat: &Packed, x: &[f32], m: usize, out: &mut [f32]) {
    let (k, n) = (mat.rows, mat.cols);
    let lv = Levels::new(mat.spec.mode);
    let width = block_width(mat.spec.group_size, n);
    let blocks: Vec<(usize, Vec<f32>)> = (0..n.div_ceil(width))
        .into_par_iter()
        .map(|bi| {
            let c0 = bi * width;
            let w = width.min(n - c0);
            let mut acc = vec![0f32; m * w];
            let mut vals = vec![0f32; w];
            let mut q = vec![0u32; w];
            for kk in 0..k {
                mat.decode(&lv, kk, c0, &mut vals, &mut q);
                for mi in 0..m {
                    let xv = x[mi * k + kk];
                    for (a, &v) in acc[mi * w..(mi + 1) * w].iter_mut().zip(&vals) {
                        *a += xv * v;
                    }
                }
            }
            (c0, acc)
        })
        .collect();
    for (c0, acc) in blocks {
        place_columns(out, n, m, c0, &acc);
    }
}

/// Writes `block` (M rows of `block.len() / M` values, computed for one range of output
/// columns) into columns `c0..` of the row-major (M, N) `out`.
fn place_columns(out: &mut [f32], n: usize, m: usize, c0: usize, block: &[f32]) {
    let w = block.len() / m.max(1);
    for (mi, src) in block.chunks(w.max(1)).take(m).enumerate() {
        out[mi * n + c0..mi * n + c0 + src.len()].copy_from_slice(src);
    }
}

/// Column-block width: a multiple of 32 values and of the group size.
fn block_width(gs: usize, n: usize) -> usize {
    let unit = gs.max(32);
    (BLOCK.div_ceil(unit) * unit)
        .min(n.div_ceil(unit) * unit)
        .max(unit)
}

/// out (M, N) = x (M, K) @ W^T for many rows: blocks of W's rows expanded, then gemm.
fn blocks_t(mat: &Packed, x: &[f32], m: usize, out: &mut [f32]) -> Result<()> {
    let (k, n) = (mat.cols, mat.rows);
    let lv = Levels::new(mat.spec.mode);
    let parts: Vec<Result<(usize, Vec<f32>)>> = (0..n.div_ceil(BLOCK))
        .into_par_iter()
        .map(|bi| {
            let r0 = bi * BLOCK;
            let nb = BLOCK.min(n - r0);
            let mut dense = vec![0f32; nb * k];
            let mut q = vec![0u32; k];
            for (i, row) in dense.chunks_mut(k).enumerate() {
                mat.decode(&lv, r0 + i, 0, row, &mut q);
            }
            let mut y = vec![0f32; m * nb];
            // dense is (nb, K) row-major; as the (K, nb) operand: row stride 1, column K.
            gemm_into(
                m,
                nb,
                k,
                (x, k as isize, 1),
                (&dense, 1, k as isize),
                &mut y,
            )?;
            Ok((r0, y))
        })
        .collect();
    for part in parts {
        let (r0, y) = part?;
        place_columns(out, n, m, r0, &y);
    }
    Ok(())
}

/// out (M, N) = x (M, K) @ W for many rows: column blocks of W expanded, then gemm.
fn blocks_n(mat: &Packed, x: &[f32], m: usize, out: &mut [f32]) -> Result<()> {
    let (k, n) = (mat.rows, mat.cols);
    let lv = Levels::new(mat.spec.mode);
    let width = block_width(mat.spec.group_size, n);
    let parts: Vec<Result<(usize, Vec<f32>)>> = (0..n.div_ceil(width))
        .into_par_iter()
        .map(|bi| {
            let c0 = bi * width;
            let w = width.min(n - c0);
            let mut dense = vec![0f32; k * w];
            let mut q = vec![0u32; w];
            for (kk, row) in dense.chunks_mut(w).enumerate() {
                mat.decode(&lv, kk, c0, row, &mut q);
            }
            let mut y = vec![0f32; m * w];
            gemm_into(m, w, k, (x, k as isize, 1), (&dense, w as isize, 1), &mut y)?;
            Ok((c0, y))
        })
        .collect();
    for part in parts {
        let (c0, y) = part?;
        place_columns(out, n, m, c0, &y);
    }
    Ok(())
}
