//! Walking strided inputs into a contiguous output. Dimensions are collapsed first;
//! the innermost dimension is a tight loop, the outer rows are split across threads.
//! All offsets come from views validated by `ArrayData::new`, so every index computed
//! here lies inside its buffer (slice indexing still checks it).

use oxmx_core::backend::Input;
use oxmx_core::shape::{collapse_dims, contiguous_strides, size_of};
use rayon::prelude::*;

/// Below this many elements a kernel runs on the calling thread.
pub const PAR_THRESHOLD: usize = 1 << 15;

/// A typed strided input.
#[derive(Clone, Copy)]
pub struct View<'a, T> {
    pub data: &'a [T],
    pub offset: usize,
    pub strides: &'a [isize],
}

impl<'a, T: bytemuck::Pod> View<'a, T> {
    pub fn of(x: &'a impl ViewSource) -> View<'a, T> {
        let bytes = x.bytes();
        let size = std::mem::size_of::<T>().max(1);
        let whole = &bytes[..bytes.len() / size * size];
        View {
            data: bytemuck::try_cast_slice(whole).unwrap_or_default(),
            offset: x.offset(),
            strides: x.strides(),
        }
    }
}

/// Where a strided operand's elements are: an evaluated input, or a `Src` over any
/// aligned bytes (a fused node's registers and blocks).
pub trait ViewSource {
    fn bytes(&self) -> &[u8];
    fn offset(&self) -> usize;
    fn strides(&self) -> &[isize];
}

impl ViewSource for Input {
    fn bytes(&self) -> &[u8] {
        self.data.buffer.bytes()
    }
    fn offset(&self) -> usize {
        self.data.offset
    }
    fn strides(&self) -> &[isize] {
        &self.data.strides
    }
}

/// A borrowed strided operand of the elementwise kernels: `shape`, `dtype`, and the
/// elements at `offset + sum(index * strides)` of `bytes` (aligned for the dtype, every
/// reachable element inside).
#[derive(Clone, Copy)]
pub struct Src<'a> {
    pub shape: &'a [usize],
    pub dtype: oxmx_core::Dtype,
    pub bytes: &'a [u8],
    pub offset: usize,
    pub strides: &'a [isize],
}

impl<'a> Src<'a> {
    pub fn of(x: &'a Input) -> Src<'a> {
        Src {
            shape: &x.shape,
            dtype: x.dtype,
            bytes: x.data.buffer.bytes(),
            offset: x.data.offset,
            strides: &x.data.strides,
        }
    }
}

impl ViewSource for Src<'_> {
    fn bytes(&self) -> &[u8] {
        self.bytes
    }
    fn offset(&self) -> usize {
        self.offset
    }
    fn strides(&self) -> &[isize] {
        self.strides
    }
}

/// Row iterator state over the outer (all but last) collapsed dims.
pub struct Rows {
    outer: Vec<usize>,
    strides: Vec<Vec<isize>>,
    idx: Vec<usize>,
    pub offs: Vec<isize>,
}

impl Rows {
    /// Position at row `start` (row-major over `outer`).
    pub fn new(outer: &[usize], strides: Vec<Vec<isize>>, base: &[isize], start: usize) -> Rows {
        let nd = outer.len();
        let mut idx = vec![0usize; nd];
        let mut r = start;
        for d in (0..nd).rev() {
            if outer[d] > 0 {
                idx[d] = r % outer[d];
                r /= outer[d];
            }
        }
        let offs = strides
            .iter()
            .zip(base)
            .map(|(s, &b)| {
                b + idx
                    .iter()
                    .zip(s)
                    .map(|(&i, &st)| i as isize * st)
                    .sum::<isize>()
            })
            .collect();
        Rows {
            outer: outer.to_vec(),
            strides,
            idx,
            offs,
        }
    }
    /// Advance to the next row.
    pub fn step(&mut self) {
        for d in (0..self.outer.len()).rev() {
            self.idx[d] += 1;
            for (o, s) in self.offs.iter_mut().zip(&self.strides) {
                *o += s[d];
            }
            if self.idx[d] < self.outer[d] {
                return;
            }
            for (o, s) in self.offs.iter_mut().zip(&self.strides) {
                *o -= s[d] * self.outer[d] as isize;
            }
            self.idx[d] = 0;
        }
    }
}

/// Collapsed layout: (outer dims, inner length, per-input outer strides, per-input inner stride).
pub struct Layout {
    pub outer: Vec<usize>,
    pub inner: usize,
    pub outer_strides: Vec<Vec<isize>>,
    pub inner_strides: Vec<isize>,
}

pub fn layout(shape: &[usize], strides: &[&[isize]]) -> Layout {
    let out_strides = contiguous_strides(shape);
    let mut all: Vec<&[isize]> = vec![&out_strides];
    all.extend_from_slice(strides);
    let (cshape, cstrides) = collapse_dims(shape, &all);
    if cshape.is_empty() {
        return Layout {
            outer: vec![],
            inner: 1,
            outer_strides: vec![vec![]; strides.len()],
            inner_strides: vec![0; strides.len()],
        };
    }
    let nd = cshape.len();
    let inner = cshape[nd - 1];
    let outer = cshape[..nd - 1].to_vec();
    let outer_strides = cstrides[1..].iter().map(|s| s[..nd - 1].to_vec()).collect();
    let inner_strides = cstrides[1..].iter().map(|s| s[nd - 1]).collect();
    Layout {
        outer,
        inner,
        outer_strides,
        inner_strides,
    }
}

#[inline(always)]
fn at<T: Copy>(v: &[T], off: isize) -> T {
    v[off as usize]
}

/// out[i] = f(a[i]) for a strided `a` with the output's shape.
pub fn map1<A: Copy + Sync, O: Send>(
    shape: &[usize],
    a: View<A>,
    out: &mut [O],
    f: impl Fn(A) -> O + Sync,
) {
    let n = size_of(shape);
    if n == 0 {
        return;
    }
    if oxmx_core::shape::is_row_contiguous(shape, a.strides) {
        let src = &a.data[a.offset..a.offset + n];
        if n < PAR_THRESHOLD {
            out.iter_mut().zip(src).for_each(|(o, &x)| *o = f(x));
        } else {
            let chunk = n.div_ceil(rayon::current_num_threads() * 4).max(4096);
            out.par_chunks_mut(chunk)
                .zip(src.par_chunks(chunk))
                .for_each(|(o, s)| {
                    o.iter_mut().zip(s).for_each(|(o, &x)| *o = f(x));
                });
        }
        return;
    }
    let l = layout(shape, &[a.strides]);
    let sa = l.inner_strides[0];
    for_segments(n, &l, &[a.offset as isize], out, usize::MAX, |offs, seg| {
        let oa = offs[0];
        if sa == 1 {
            let s = &a.data[oa as usize..oa as usize + seg.len()];
            seg.iter_mut().zip(s).for_each(|(o, &x)| *o = f(x));
        } else {
            for (i, o) in seg.iter_mut().enumerate() {
                *o = f(at(a.data, oa + i as isize * sa));
            }
        }
    });
}

/// out[i] = f(a[i], b[i]).
pub fn map2<A: Copy + Sync, B: Copy + Sync, O: Send>(
    shape: &[usize],
    a: View<A>,
    b: View<B>,
    out: &mut [O],
    f: impl Fn(A, B) -> O + Sync,
) {
    let n = size_of(shape);
    if n == 0 {
        return;
    }
    let ca = oxmx_core::shape::is_row_contiguous(shape, a.strides);
    let cb = oxmx_core::shape::is_row_contiguous(shape, b.strides);
    if ca && cb {
        let sa = &a.data[a.offset..a.offset + n];
        let sb = &b.data[b.offset..b.offset + n];
        if n < PAR_THRESHOLD {
            for ((o, &x), &y) in out.iter_mut().zip(sa).zip(sb) {
                *o = f(x, y);
            }
        } else {
            let chunk = n.div_ceil(rayon::current_num_threads() * 4).max(4096);
            out.par_chunks_mut(chunk)
                .zip(sa.par_chunks(chunk))
                .zip(sb.par_chunks(chunk))
                .for_each(|((o, x), y)| {
                    for ((o, &x), &y) in o.iter_mut().zip(x).zip(y) {
                        *o = f(x, y);
                    }
                });
        }
        return;
    }
    // A small block of one contiguous operand and one broadcast value (a fused node's
    // `x * 2`): no layout to collapse.
    if n < PAR_THRESHOLD && shape.len() == 1 {
        let (sa, sb) = (a.strides[0], b.strides[0]);
        let m = n.min(out.len());
        let out = &mut out[..m];
        if sa == 1 && sb == 0 {
            let (xa, y) = (
                &a.data[a.offset..a.offset + n],
                at(b.data, b.offset as isize),
            );
            out.iter_mut().zip(xa).for_each(|(o, &x)| *o = f(x, y));
            return;
        }
        if sa == 0 && sb == 1 {
            let (x, xb) = (
                at(a.data, a.offset as isize),
                &b.data[b.offset..b.offset + n],
            );
            out.iter_mut().zip(xb).for_each(|(o, &y)| *o = f(x, y));
            return;
        }
    }
    let l = layout(shape, &[a.strides, b.strides]);
    let (sa, sb) = (l.inner_strides[0], l.inner_strides[1]);
    let bases = [a.offset as isize, b.offset as isize];
    for_segments(n, &l, &bases, out, usize::MAX, |offs, seg| {
        let (oa, ob, len) = (offs[0], offs[1], seg.len());
        if sa == 1 && sb == 1 {
            let xa = &a.data[oa as usize..oa as usize + len];
            let xb = &b.data[ob as usize..ob as usize + len];
            for ((o, &x), &y) in seg.iter_mut().zip(xa).zip(xb) {
                *o = f(x, y);
            }
        } else if sa == 1 && sb == 0 {
            let xa = &a.data[oa as usize..oa as usize + len];
            let y = at(b.data, ob);
            for (o, &x) in seg.iter_mut().zip(xa) {
                *o = f(x, y);
            }
        } else if sa == 0 && sb == 1 {
            let x = at(a.data, oa);
            let xb = &b.data[ob as usize..ob as usize + len];
            for (o, &y) in seg.iter_mut().zip(xb) {
                *o = f(x, y);
            }
        } else {
            for (i, o) in seg.iter_mut().enumerate() {
                let i = i as isize;
                *o = f(at(a.data, oa + i * sa), at(b.data, ob + i * sb));
            }
        }
    });
}

/// out[i] = f(a[i], b[i], c[i]).
pub fn map3<A: Copy + Sync, B: Copy + Sync, C: Copy + Sync, O: Send>(
    shape: &[usize],
    a: View<A>,
    b: View<B>,
    c: View<C>,
    out: &mut [O],
    f: impl Fn(A, B, C) -> O + Sync,
) {
    let n = size_of(shape);
    if n == 0 {
        return;
    }
    let l = layout(shape, &[a.strides, b.strides, c.strides]);
    let (sa, sb, sc) = (l.inner_strides[0], l.inner_strides[1], l.inner_strides[2]);
    let bases = [a.offset as isize, b.offset as isize, c.offset as isize];
    for_segments(n, &l, &bases, out, usize::MAX, |offs, seg| {
        let (oa, ob, oc) = (offs[0], offs[1], offs[2]);
        for (i, o) in seg.iter_mut().enumerate() {
            let i = i as isize;
            *o = f(
                at(a.data, oa + i * sa),
                at(b.data, ob + i * sb),
                at(c.data, oc + i * sc),
            );
        }
    });
}

/// Element offsets (relative to the buffer) of every element of a strided view, in
/// row-major order. For gathers/scatters that need random access to positions.
pub fn offsets_of(shape: &[usize], strides: &[isize], offset: usize) -> Vec<usize> {
    let n = size_of(shape);
    let mut out = vec![0usize; n];
    if n == 0 {
        return out;
    }
    let idx = View {
        data: &[0u8][..0],
        offset,
        strides,
    };
    let _ = idx;
    let l = layout(shape, &[strides]);
    let inner = l.inner;
    let s = l.inner_strides[0];
    let mut rows = Rows::new(&l.outer, l.outer_strides.clone(), &[offset as isize], 0);
    for orow in out.chunks_mut(inner) {
        let o = rows.offs[0];
        for (i, x) in orow.iter_mut().enumerate() {
            *x = (o + i as isize * s) as usize;
        }
        rows.step();
    }
    out
}

/// Elements per run handed to a run kernel: a strided or broadcast operand is gathered
/// into a scratch buffer of this size.
const RUN: usize = 4096;

/// Visits `out` in runs of at most `RUN` elements lying inside one row of the collapsed
/// layout (see `for_segments`).
fn for_runs<O: Send>(
    n: usize,
    l: &Layout,
    bases: &[isize],
    out: &mut [O],
    f: impl Fn(&[isize], &mut [O]) + Sync,
) {
    for_segments(n, l, bases, out, RUN, f)
}

/// Visits `out` in segments of at most `max_len` elements lying inside one row of the
/// collapsed layout `l`: `f(start_offset_per_input, out_segment)`; an input's elements in
/// a segment are `offset + i * l.inner_strides[input]`. Parallel over chunks of the
/// output when large, cut by element count: one long row (an operand broadcast from a
/// scalar) is split across the threads as many short rows are.
fn for_segments<O: Send>(
    n: usize,
    l: &Layout,
    bases: &[isize],
    out: &mut [O],
    max_len: usize,
    f: impl Fn(&[isize], &mut [O]) + Sync,
) {
    let inner = l.inner.max(1);
    let task = |first: usize, chunk: &mut [O]| {
        let mut rows = Rows::new(&l.outer, l.outer_strides.clone(), bases, first / inner);
        let mut col = first % inner;
        let mut offs = vec![0isize; bases.len()];
        let mut rest = chunk;
        while !rest.is_empty() {
            let len = (inner - col).min(max_len).min(rest.len());
            let (run, tail) = rest.split_at_mut(len);
            for ((o, &r), &s) in offs.iter_mut().zip(&rows.offs).zip(&l.inner_strides) {
                *o = r + col as isize * s;
            }
            f(&offs, run);
            col += len;
            if col == inner {
                col = 0;
                rows.step();
            }
            rest = tail;
        }
    };
    let len = n.min(out.len());
    let out = &mut out[..len];
    if n < PAR_THRESHOLD {
        task(0, out);
    } else {
        let chunk = n.div_ceil(rayon::current_num_threads() * 4).max(RUN);
        out.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(c, o)| task(c * chunk, o));
    }
}

/// `len` elements of `data` from `off` by `stride`: the slice itself when contiguous,
/// else gathered into `scratch`.
fn run_of<'a, T: Copy>(
    data: &'a [T],
    off: isize,
    stride: isize,
    len: usize,
    scratch: &'a mut Vec<T>,
) -> &'a [T] {
    if stride == 1 {
        let o = off as usize;
        return &data[o..o + len];
    }
    scratch.clear();
    scratch.extend((0..len).map(|i| at(data, off + i as isize * stride)));
    scratch
}

/// `run(a_run, out_run)` over runs of at most a few thousand elements: for kernels that
/// work on whole contiguous slices (the vector math of `vmath`).
pub fn map1_runs<A: Copy + Sync, O: Send>(
    shape: &[usize],
    a: View<A>,
    out: &mut [O],
    run: impl Fn(&[A], &mut [O]) + Sync,
) {
    let n = size_of(shape);
    if n == 0 {
        return;
    }
    // A small contiguous operand (a fused node's block): runs straight off the slice.
    if n < PAR_THRESHOLD && oxmx_core::shape::is_row_contiguous(shape, a.strides) {
        let src = &a.data[a.offset..a.offset + n];
        for (s, o) in src.chunks(RUN).zip(out.chunks_mut(RUN)) {
            run(s, o);
        }
        return;
    }
    let l = layout(shape, &[a.strides]);
    let sa = l.inner_strides[0];
    for_runs(n, &l, &[a.offset as isize], out, |offs, o| {
        let mut scratch = Vec::new();
        run(run_of(a.data, offs[0], sa, o.len(), &mut scratch), o);
    });
}

/// `run(a_run, b_run, out_run)`, the binary form of `map1_runs` (broadcast operands are
/// expanded into scratch runs).
pub fn map2_runs<A: Copy + Sync, B: Copy + Sync, O: Send>(
    shape: &[usize],
    a: View<A>,
    b: View<B>,
    out: &mut [O],
    run: impl Fn(&[A], &[B], &mut [O]) + Sync,
) {
    let n = size_of(shape);
    if n == 0 {
        return;
    }
    let l = layout(shape, &[a.strides, b.strides]);
    let (sa, sb) = (l.inner_strides[0], l.inner_strides[1]);
    let bases = [a.offset as isize, b.offset as isize];
    for_runs(n, &l, &bases, out, |offs, o| {
        let (mut ka, mut kb) = (Vec::new(), Vec::new());
        let xa = run_of(a.data, offs[0], sa, o.len(), &mut ka);
        let xb = run_of(b.data, offs[1], sb, o.len(), &mut kb);
        run(xa, xb, o);
    });
}
