//! `Primitive::Conv` on the CPU: im2col in row blocks, each block multiplied by the
//! weight with gemm, blocks in parallel. A block's windows (rows of kernel-position x
//! channel values) stay in cache between the gather and the product, which is what
//! makes this faster than materialising every window at once. float16 and bfloat16 are
//! computed in float32 and rounded once at the end.

use crate::elem::Elem;
use crate::linalg::contiguous;
use crate::matmul::{gemm_into, GemmElem};
use half::{bf16, f16};
use oxmx_core::backend::Input;
use oxmx_core::memory::Buffer;
use oxmx_core::primitive::{ConvKind, ConvSpec};
use oxmx_core::shape::size_of;
use oxmx_core::{Dtype, Error, Result};
use rayon::prelude::*;

const OP: &str = "conv";
/// Window values gathered per block (elements): about 1 MiB of float32.
const BLOCK_ELEMS: usize = 1 << 18;
/// Extra accumulators the input gradient may hold at once (bytes).
const ACC_BYTES: usize = 256 << 20;

/// The geometry of one correlation: x (N, *S, C), zero-padded, w (O, *K, Cg),
/// y (N, *out, O). Rows (batch x output position) whose window lies inside the input
/// read it through precomputed offsets; rows at a padded border check each kernel
/// position.
struct Geometry {
    /// input offset of each output row's first window element (rows inside only)
    row_base: Vec<usize>,
    /// whether each row's window lies wholly inside the input
    inside: Vec<bool>,
    /// each row's window origin per spatial axis (may be negative), `nd` per row
    origin: Vec<i64>,
    /// output positions per batch item
    positions: usize,
    /// input offset of each kernel position relative to its window's start
    k_off: Vec<usize>,
    /// each kernel position's offset per spatial axis (index x dilation)
    k_pos: Vec<Vec<usize>>,
    spatial: Vec<usize>,
    xst: Vec<usize>,
    batch_stride: usize,
    cg: usize,
    o: usize,
    groups: usize,
    batch: usize,
    /// 1x1 kernel, stride 1, no padding: row r's window is row r of x itself
    direct: bool,
}

impl Geometry {
    fn new(
        x_shape: &[usize],
        kernel: &[usize],
        out: &[usize],
        o: usize,
        spec: &ConvSpec,
    ) -> Result<Geometry> {
        let nd = kernel.len();
        let c = *x_shape
            .last()
            .ok_or_else(|| Error::runtime(OP, "bad input"))?;
        let groups = spec.groups.max(1);
        let spatial = x_shape.get(1..=nd).ok_or_else(oob)?.to_vec();
        // element strides of the contiguous input, spatial axes only
        let mut xst = vec![0usize; nd];
        let mut acc = c;
        for i in (0..nd).rev() {
            xst[i] = acc;
            acc = acc
                .checked_mul(spatial[i])
                .ok_or_else(|| Error::overflow(OP))?;
        }
        let batch_stride = acc;
        let mut k_off = Vec::with_capacity(size_of(kernel));
        let mut k_pos = Vec::with_capacity(size_of(kernel));
        let mut kidx = vec![0usize; nd];
        for _ in 0..size_of(kernel) {
            let pos: Vec<usize> = (0..nd).map(|i| kidx[i] * spec.dilation[i]).collect();
            k_off.push((0..nd).map(|i| pos[i] * xst[i]).sum());
            k_pos.push(pos);
            for i in (0..nd).rev() {
                kidx[i] += 1;
                if kidx[i] < kernel[i] {
                    break;
                }
                kidx[i] = 0;
            }
        }
        let span: Vec<usize> = (0..nd)
            .map(|i| (kernel[i] - 1) * spec.dilation[i])
            .collect();
        let positions = size_of(out);
        let n = x_shape[0];
        let rows = n * positions;
        let mem = |_| Error::memory(OP, "Not enough memory for the convolution's row table.");
        let (mut row_base, mut inside, mut origin) = (Vec::new(), Vec::new(), Vec::new());
        row_base.try_reserve_exact(rows).map_err(mem)?;
        inside.try_reserve_exact(rows).map_err(mem)?;
        origin
            .try_reserve_exact(rows.checked_mul(nd).ok_or_else(|| Error::overflow(OP))?)
            .map_err(mem)?;
        let mut idx = vec![0usize; nd];
        let mut org = vec![0i64; nd];
        for b in 0..n {
            for _ in 0..positions {
                for i in 0..nd {
                    org[i] = (idx[i] as i64)
                        .saturating_mul(spec.strides[i] as i64)
                        .saturating_sub(spec.padding[i] as i64);
                }
                let ok = (0..nd).all(|i| org[i] >= 0 && org[i] as usize + span[i] < spatial[i]);
                let base = if ok {
                    b * batch_stride + (0..nd).map(|i| org[i] as usize * xst[i]).sum::<usize>()
                } else {
                    0
                };
                row_base.push(base);
                inside.push(ok);
                origin.extend_from_slice(&org);
                for i in (0..nd).rev() {
                    idx[i] += 1;
                    if idx[i] < out[i] {
                        break;
                    }
                    idx[i] = 0;
                }
            }
        }
        Ok(Geometry {
            row_base,
            inside,
            origin,
            positions,
            k_off,
            k_pos,
            spatial,
            xst,
            batch_stride,
            cg: c / groups,
            o,
            groups,
            batch: n,
            direct: kernel.iter().all(|&k| k == 1)
                && spec.strides.iter().all(|&v| v == 1)
                && spec.padding.iter().all(|&v| v == 0),
        })
    }

    /// The windows of rows `r0..r0 + rows` of group `g` with their row stride: rows of
    /// `x` itself when `direct`, else gathered into `col`.
    fn windows<'a, T: Copy + Default>(
        &self,
        x: &'a [T],
        r0: usize,
        rows: usize,
        g: usize,
        col: &'a mut [T],
    ) -> Result<(&'a [T], isize)> {
        if self.direct {
            let c = self.cg * self.groups;
            let at = r0 * c + g * self.cg;
            return Ok((x.get(at..).ok_or_else(oob)?, c as isize));
        }
        self.gather(x, r0, rows, g, col)?;
        Ok((col, self.cols() as isize))
    }

    /// Rows per block for `total` rows: `block_rows`, but at least one block per thread.
    fn block_for(&self, total: usize) -> usize {
        let threads = rayon::current_num_threads().max(1);
        self.block_rows().min(total.div_ceil(threads)).max(1)
    }

    /// The input offset of kernel position `kp` of row `r`'s window (None: padding).
    fn offset(&self, r: usize, kp: usize) -> Option<usize> {
        if *self.inside.get(r)? {
            return Some(self.row_base.get(r)? + self.k_off.get(kp)?);
        }
        let nd = self.spatial.len();
        let org = self.origin.get(r * nd..(r + 1) * nd)?;
        let b = r / self.positions.max(1);
        let pos = self.k_pos.get(kp)?;
        let mut at = b * self.batch_stride;
        for i in 0..org.len() {
            let p = org[i] + pos[i] as i64;
            if p < 0 || p as usize >= self.spatial[i] {
                return None;
            }
            at += p as usize * self.xst[i];
        }
        Some(at)
    }

    /// Columns of the window matrix of one group.
    fn cols(&self) -> usize {
        self.k_off.len() * self.cg
    }

    /// Rows per block so that a block's windows are about `BLOCK_ELEMS`.
    fn block_rows(&self) -> usize {
        (BLOCK_ELEMS / self.cols().max(1)).clamp(16, 4096)
    }

    /// The windows of rows `r0..r0 + rows` of group `g` into `col` (rows x cols).
    fn gather<T: Copy + Default>(
        &self,
        x: &[T],
        r0: usize,
        rows: usize,
        g: usize,
        col: &mut [T],
    ) -> Result<()> {
        let zero = T::default();
        let (cg, cols) = (self.cg, self.cols());
        for (r, dst) in col.chunks_exact_mut(cols).take(rows).enumerate() {
            for (kp, d) in dst.chunks_exact_mut(cg).enumerate() {
                match self.offset(r0 + r, kp) {
                    Some(at) => {
                        let at = at + g * cg;
                        d.copy_from_slice(x.get(at..at + cg).ok_or_else(oob)?);
                    }
                    None => d.iter_mut().for_each(|v| *v = zero),
                }
            }
        }
        Ok(())
    }
}

fn oob() -> Error {
    Error::runtime(OP, "window outside the input")
}

/// y (rows x O) = windows(x) @ w^T, by row blocks.
fn forward<T: GemmElem + Copy + Default>(
    geo: &Geometry,
    x: &[T],
    w: &[T],
    y: &mut [T],
) -> Result<()> {
    let (o, g_n, cols) = (geo.o, geo.groups, geo.cols());
    let og = o / g_n;
    let block = geo.block_for(geo.row_base.len());
    y.par_chunks_mut(block * o)
        .enumerate()
        .try_for_each(|(bi, yb)| {
            let rows = yb.len() / o;
            let r0 = bi * block;
            let mut col = vec![T::default(); if geo.direct { 0 } else { rows * cols }];
            let mut tmp = if g_n > 1 {
                vec![T::default(); rows * og]
            } else {
                Vec::new()
            };
            for g in 0..g_n {
                let (win, rs) = geo.windows(x, r0, rows, g, &mut col)?;
                // group g's weights: og rows of `cols`, read transposed (cols x og)
                let wg = w.get(g * og * cols..(g + 1) * og * cols).ok_or_else(oob)?;
                let dst = if g_n > 1 { &mut tmp[..] } else { &mut yb[..] };
                gemm_into(rows, og, cols, (win, rs, 1), (wg, 1, cols as isize), dst)?;
                if g_n > 1 {
                    for (yr, tr) in yb.chunks_exact_mut(o).zip(tmp.chunks_exact(og)) {
                        yr[g * og..(g + 1) * og].copy_from_slice(tr);
                    }
                }
            }
            Ok(())
        })
}

/// dw (O x cols) = sum over row blocks of dy_block^T (per group) @ windows_block.
fn weight_grad<T: GemmElem + Copy + Default + std::ops::AddAssign>(
    geo: &Geometry,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
) -> Result<()> {
    let (o, g_n, cols) = (geo.o, geo.groups, geo.cols());
    let og = o / g_n;
    let total = geo.row_base.len();
    // about two tasks per thread, each walking its rows in cache-sized blocks into one
    // accumulator the size of dw (memory stays a few dw's, whatever the batch)
    let threads = rayon::current_num_threads().max(1);
    let per_task = total.div_ceil(threads * 2).max(1);
    let block = (BLOCK_ELEMS * 4 / cols.max(1)).clamp(16, per_task.max(16));
    let tasks = total.div_ceil(per_task);
    let partial = (0..tasks)
        .into_par_iter()
        .map(|ti| -> Result<Vec<T>> {
            let end = ((ti + 1) * per_task).min(total);
            let mut col = vec![T::default(); if geo.direct { 0 } else { block * cols }];
            let mut acc = vec![T::default(); o * cols];
            let mut tmp = vec![T::default(); og * cols];
            let mut r0 = ti * per_task;
            while r0 < end {
                let rows = block.min(end - r0);
                for g in 0..g_n {
                    let (win, rs) = geo.windows(x, r0, rows, g, &mut col)?;
                    // dy rows r0.., columns of group g, read transposed (og x rows)
                    let d = dy.get(r0 * o + g * og..).ok_or_else(oob)?;
                    gemm_into(og, cols, rows, (d, 1, o as isize), (win, rs, 1), &mut tmp)?;
                    for (a, t) in acc[g * og * cols..(g + 1) * og * cols].iter_mut().zip(&tmp) {
                        *a += *t;
                    }
                }
                r0 += rows;
            }
            Ok(acc)
        })
        .collect::<Result<Vec<_>>>()?;
    dw.iter_mut().for_each(|v| *v = T::default());
    for p in partial {
        for (a, v) in dw.iter_mut().zip(p) {
            *a += v;
        }
    }
    Ok(())
}

/// The operands' shapes: the first input and the second (weight or cotangent).
struct Shapes<'a> {
    a: &'a [usize],
    b: &'a [usize],
    out: &'a [usize],
}

/// dx (N, *S, C): each output row's window gets dy_row @ w scattered (added) back. Work
/// is split by batch item, each written by one task; with fewer items than threads,
/// an item's rows are also split into ranges with their own accumulators (at most
/// `ACC_BYTES` of them at once), summed at the end.
fn input_grad<T: GemmElem + Copy + Default + std::ops::AddAssign + Send + Sync>(
    geo: &Geometry,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
) -> Result<()> {
    let n = geo.batch.max(1);
    let rows_per = geo.row_base.len() / n;
    let item = dx.len() / n;
    if item == 0 {
        return Ok(());
    }
    let threads = rayon::current_num_threads().max(1);
    let budget = (ACC_BYTES / (item * std::mem::size_of::<T>()).max(1)).max(1);
    let split = threads.div_ceil(n).min(rows_per.max(1)).min(budget);
    dx.iter_mut().for_each(|v| *v = T::default());
    if split <= 1 {
        return dx
            .par_chunks_mut(item)
            .enumerate()
            .try_for_each(|(b, acc)| {
                scatter_rows(geo, dy, w, b * rows_per, (b + 1) * rows_per, b * item, acc)
            });
    }
    let per = rows_per.div_ceil(split).max(1);
    let tasks: Vec<(usize, usize, usize)> = (0..n)
        .flat_map(|b| {
            (0..split).filter_map(move |s| {
                let r0 = b * rows_per + s * per;
                let r1 = (b * rows_per + (s + 1) * per).min((b + 1) * rows_per);
                (r0 < r1).then_some((b, r0, r1))
            })
        })
        .collect();
    let parts = tasks
        .par_iter()
        .map(|&(b, r0, r1)| -> Result<(usize, Vec<T>)> {
            let mut acc = vec![T::default(); item];
            scatter_rows(geo, dy, w, r0, r1, b * item, &mut acc)?;
            Ok((b, acc))
        })
        .collect::<Result<Vec<_>>>()?;
    for (b, acc) in parts {
        let dst = dx.get_mut(b * item..(b + 1) * item).ok_or_else(oob)?;
        for (a, v) in dst.iter_mut().zip(acc) {
            *a += v;
        }
    }
    Ok(())
}

/// Adds rows `r0..r1`'s window gradients (dy_row @ w) into `acc`, which holds the input
/// elements from `origin` on.
fn scatter_rows<T: GemmElem + Copy + Default + std::ops::AddAssign>(
    geo: &Geometry,
    dy: &[T],
    w: &[T],
    r0: usize,
    r1: usize,
    origin: usize,
    acc: &mut [T],
) -> Result<()> {
    let (o, g_n, cols, cg) = (geo.o, geo.groups, geo.cols(), geo.cg);
    let og = o / g_n;
    let block = geo.block_rows();
    let mut tmp = vec![T::default(); block * cols];
    let mut r = r0;
    while r < r1 {
        let rows = block.min(r1 - r);
        for g in 0..g_n {
            let d = dy.get(r * o + g * og..).ok_or_else(oob)?;
            let wg = w.get(g * og * cols..(g + 1) * og * cols).ok_or_else(oob)?;
            let t = &mut tmp[..rows * cols];
            gemm_into(
                rows,
                cols,
                og,
                (d, o as isize, 1),
                (wg, cols as isize, 1),
                t,
            )?;
            for (i, win) in t.chunks_exact(cols).enumerate() {
                for (kp, v) in win.chunks_exact(cg).enumerate() {
                    // kernel positions in the padding receive nothing
                    let Some(at) = geo.offset(r + i, kp) else {
                        continue;
                    };
                    let at = (at + g * cg).checked_sub(origin).ok_or_else(oob)?;
                    let dst = acc.get_mut(at..at + cg).ok_or_else(oob)?;
                    for (a, v) in dst.iter_mut().zip(v) {
                        *a += *v;
                    }
                }
            }
        }
        r += rows;
    }
    Ok(())
}

fn run_typed<T>(
    spec: &ConvSpec,
    kind: ConvKind,
    sh: &Shapes,
    x: &[T],
    y: &[T],
    out: &mut [T],
) -> Result<()>
where
    T: GemmElem + Copy + Default + std::ops::AddAssign,
{
    let nd = sh.a.len().saturating_sub(2);
    let spatial = |s: &[usize]| s.get(1..=nd).map(<[usize]>::to_vec).ok_or_else(oob);
    // the input's shape, the kernel, the output channels and the output's spatial dims
    let (x_shape, kernel, o, out_sp) = match kind {
        ConvKind::Forward => (sh.a, spatial(sh.b)?, sh.b[0], spatial(sh.out)?),
        ConvKind::WeightGrad => (sh.a, spatial(sh.out)?, sh.out[0], spatial(sh.b)?),
        ConvKind::InputGrad => (sh.out, spatial(sh.b)?, sh.b[0], spatial(sh.a)?),
    };
    if out.is_empty() {
        return Ok(());
    }
    let geo = Geometry::new(x_shape, &kernel, &out_sp, o, spec)?;
    if geo.cols() == 0 || geo.row_base.is_empty() {
        // no channels or no positions: nothing is summed
        out.iter_mut().for_each(|v| *v = T::default());
        return Ok(());
    }
    match kind {
        ConvKind::Forward => forward(&geo, x, y, out),
        ConvKind::WeightGrad => weight_grad(&geo, x, y, out),
        ConvKind::InputGrad => input_grad(&geo, x, y, out),
    }
}

/// Half-precision inputs widened to float32, the result rounded back.
fn run_widened<H: Elem + Default>(
    spec: &ConvSpec,
    kind: ConvKind,
    ins: [&Input; 2],
    sh: &Shapes,
    out: &mut Buffer,
) -> Result<()> {
    let wide = |x: &Input| -> Vec<f32> {
        contiguous::<H>(x)
            .into_iter()
            .map(|e| e.to_f64() as f32)
            .collect()
    };
    let mut tmp = vec![0f32; size_of(sh.out)];
    run_typed(spec, kind, sh, &wide(ins[0]), &wide(ins[1]), &mut tmp)?;
    for (d, s) in out.typed_mut::<H>().iter_mut().zip(tmp) {
        *d = H::from_f64(s as f64);
    }
    Ok(())
}

pub fn run(
    spec: &ConvSpec,
    kind: ConvKind,
    ins: &[Input],
    out_shape: &[usize],
    out: &mut Buffer,
) -> Result<()> {
    let (a, b) = match ins {
        [a, b] => (a, b),
        _ => return Err(Error::runtime(OP, "two inputs expected")),
    };
    if a.shape.len() != out_shape.len() || b.shape.len() != out_shape.len() || out_shape.len() < 3 {
        return Err(Error::runtime(OP, "operands of unexpected rank"));
    }
    let sh = Shapes {
        a: &a.shape,
        b: &b.shape,
        out: out_shape,
    };
    match a.dtype {
        Dtype::Float32 => run_typed(
            spec,
            kind,
            &sh,
            &contiguous::<f32>(a),
            &contiguous::<f32>(b),
            out.typed_mut::<f32>(),
        ),
        Dtype::Float64 => run_typed(
            spec,
            kind,
            &sh,
            &contiguous::<f64>(a),
            &contiguous::<f64>(b),
            out.typed_mut::<f64>(),
        ),
        Dtype::Float16 => run_widened::<f16>(spec, kind, [a, b], &sh, out),
        Dtype::Bfloat16 => run_widened::<bf16>(spec, kind, [a, b], &sh, out),
        _ => Err(Error::unsupported(OP, "this dtype")),
    }
}
