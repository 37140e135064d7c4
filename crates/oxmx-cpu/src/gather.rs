//! Gathers and scatters with data-dependent indices. Every index is wrapped NumPy-style
//! (i < 0 → i + dim) and checked before any element is touched: an index still outside
//! [0, dim) is an IndexError. Scatters run serially in index order, so with `Set` the
//! last write of a duplicated index wins.

use crate::binary::Cmp;
use crate::elem::Elem;
use crate::reduce::rel_offsets;
use crate::strided::{map1, View, PAR_THRESHOLD};
use half::{bf16, f16};
use num_complex::Complex32;
use oxmx_core::backend::Input;
use oxmx_core::memory::Buffer;
use oxmx_core::primitive::ScatterMode;
use oxmx_core::shape::{contiguous_strides, size_of};
use oxmx_core::{Dtype, Error, Result};
use rayon::prelude::*;

/// Index values of `x` in row-major order of `shape` (any integer dtype).
fn read_indices(x: &Input, shape: &[usize]) -> Vec<i64> {
    let mut v = vec![0i64; size_of(shape)];
    crate::with_dtype!(
        x.dtype,
        T,
        map1(shape, View::<T>::of(x), &mut v, |e: T| e.to_i64())
    );
    v
}

/// NumPy wrap-around and bounds check.
#[inline]
fn wrap(op: &str, i: i64, dim: usize, axis: usize) -> Result<usize> {
    let d = dim as i64;
    let j = if i < 0 { i.wrapping_add(d) } else { i };
    if j < 0 || j >= d {
        return Err(Error::index(
            op,
            format!("Index {i} is out of bounds for axis {axis} with size {dim}."),
        ));
    }
    Ok(j as usize)
}

fn input<'a>(op: &str, ins: &'a [Input], i: usize) -> Result<&'a Input> {
    ins.get(i)
        .ok_or_else(|| Error::runtime(op, "missing input"))
}

/// Strided offsets of the dims of `x` not in `axes`: (shape, strides).
fn rest_dims(x: &Input, axes: &[usize]) -> (Vec<usize>, Vec<isize>) {
    let mut rs = Vec::new();
    let mut rst = Vec::new();
    for (i, (&d, &s)) in x.shape.iter().zip(&x.data.strides).enumerate() {
        if !axes.contains(&i) {
            rs.push(d);
            rst.push(s);
        }
    }
    (rs, rst)
}

/// Source element offsets (absolute) of each index position for `axes`: validated.
fn base_offsets(
    op: &str,
    src_shape: &[usize],
    src_strides: &[isize],
    src_off: isize,
    axes: &[usize],
    idx: &[Vec<i64>],
    n: usize,
) -> Result<Vec<isize>> {
    let mut bases = vec![src_off; n];
    for (k, &ax) in axes.iter().enumerate() {
        let (Some(&dim), Some(&st), Some(iv)) =
            (src_shape.get(ax), src_strides.get(ax), idx.get(k))
        else {
            return Err(Error::runtime(op, "Bad axis."));
        };
        for (b, &i) in bases.iter_mut().zip(iv) {
            *b += wrap(op, i, dim, ax)? as isize * st;
        }
    }
    Ok(bases)
}

/// `Gather { axes }`: inputs src, idx_0..idx_k (shape S). Output S ++ src dims not in axes.
pub fn gather(ins: &[Input], axes: &[usize], out: &mut Buffer) -> Result<()> {
    let op = "gather";
    let src = input(op, ins, 0)?;
    if ins.len() != axes.len() + 1 {
        return Err(Error::runtime(op, "One index array is needed per axis."));
    }
    let ishape = input(op, ins, 1)?.shape.clone();
    if ins[1..].iter().any(|x| x.shape != ishape) {
        return Err(Error::runtime(op, "Index arrays must share one shape."));
    }
    let n = size_of(&ishape);
    let idx: Vec<Vec<i64>> = ins[1..].iter().map(|x| read_indices(x, &ishape)).collect();
    let bases = base_offsets(
        op,
        &src.shape,
        &src.data.strides,
        src.data.offset as isize,
        axes,
        &idx,
        n,
    )?;
    let (rs, rst) = rest_dims(src, axes);
    let m = size_of(&rs);
    if n == 0 || m == 0 {
        return Ok(());
    }
    let l = crate::strided::layout(&rs, &[&rst]);
    let row_offs = rel_offsets(&l.outer, &l.outer_strides[0]);
    let (inner, si) = (l.inner, l.inner_strides[0]);
    crate::with_size!(src.dtype.size(), T, {
        let data = src.data.buffer.typed::<T>();
        let o = &mut out.typed_mut::<T>()[..n * m];
        let fill = |b: isize, dst: &mut [T]| {
            for (drow, &ro) in dst.chunks_mut(inner).zip(&row_offs) {
                let s0 = b + ro;
                if si == 1 {
                    let s0 = s0 as usize;
                    drow.copy_from_slice(&data[s0..s0 + inner]);
                } else {
                    for (j, d) in drow.iter_mut().enumerate() {
                        *d = data[(s0 + j as isize * si) as usize];
                    }
                }
            }
        };
        if n * m >= PAR_THRESHOLD {
            let per = (PAR_THRESHOLD / m).max(1);
            o.par_chunks_mut(m * per)
                .zip(bases.par_chunks(per))
                .for_each(|(dst, bs)| {
                    for (d, &b) in dst.chunks_mut(m).zip(bs) {
                        fill(b, d);
                    }
                });
        } else {
            for (d, &b) in o.chunks_mut(m).zip(&bases) {
                fill(b, d);
            }
        }
    });
    Ok(())
}

/// `GatherAxis { axis }` (take_along_axis): out[p] = src[p with p[axis] = idx[p]].
pub fn gather_axis(ins: &[Input], axis: usize, out: &mut Buffer) -> Result<()> {
    let op = "take_along_axis";
    let src = input(op, ins, 0)?;
    let ix = input(op, ins, 1)?;
    let shape = &ix.shape;
    let n = size_of(shape);
    let (Some(&dim), Some(&st)) = (src.shape.get(axis), src.data.strides.get(axis)) else {
        return Err(Error::runtime(op, "Bad axis."));
    };
    if src.shape.len() != shape.len()
        || shape
            .iter()
            .zip(&src.shape)
            .enumerate()
            .any(|(d, (&a, &b))| d != axis && a != b)
    {
        return Err(Error::runtime(
            op,
            "Index shape must match the source outside the axis.",
        ));
    }
    let idx = read_indices(ix, shape);
    // source offsets with the axis coordinate at 0
    let mut s0 = src.data.strides.clone();
    s0[axis] = 0;
    let offs = crate::strided::offsets_of(shape, &s0, src.data.offset);
    let mut pos = Vec::with_capacity(n);
    for (&o, &i) in offs.iter().zip(&idx) {
        pos.push(o as isize + wrap(op, i, dim, axis)? as isize * st);
    }
    crate::with_size!(src.dtype.size(), T, {
        let data = src.data.buffer.typed::<T>();
        let o = &mut out.typed_mut::<T>()[..n];
        if n >= PAR_THRESHOLD {
            o.par_iter_mut()
                .zip(pos.par_iter())
                .with_min_len(4096)
                .for_each(|(d, &p)| *d = data[p as usize]);
        } else {
            o.iter_mut()
                .zip(&pos)
                .for_each(|(d, &p)| *d = data[p as usize]);
        }
    });
    Ok(())
}

/// Combining functions per storage type.
pub trait Combine: Copy {
    fn add(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn max(self, o: Self) -> Self;
    fn min(self, o: Self) -> Self;
}
macro_rules! comb_int {
    ($($t:ty),*) => {$(
        impl Combine for $t {
            fn add(self, o: Self) -> Self { self.wrapping_add(o) }
            fn mul(self, o: Self) -> Self { self.wrapping_mul(o) }
            fn max(self, o: Self) -> Self { if o > self { o } else { self } }
            fn min(self, o: Self) -> Self { if o < self { o } else { self } }
        }
    )*};
}
comb_int!(u8, u16, u32, u64, i8, i16, i32, i64);
macro_rules! comb_float {
    ($($t:ty),*) => {$(
        impl Combine for $t {
            fn add(self, o: Self) -> Self { self + o }
            fn mul(self, o: Self) -> Self { self * o }
            // MLX's scatter rule: the update wins unless the current value is strictly
            // greater (smaller): a NaN update wins, a NaN already there is replaced
            fn max(self, o: Self) -> Self { if self > o { self } else { o } }
            fn min(self, o: Self) -> Self { if self < o { self } else { o } }
        }
    )*};
}
comb_float!(f16, bf16, f32, f64);
impl Combine for Complex32 {
    fn add(self, o: Self) -> Self {
        self + o
    }
    fn mul(self, o: Self) -> Self {
        self * o
    }
    fn max(self, o: Self) -> Self {
        if Cmp::lt(o, self) {
            self
        } else {
            o
        }
    }
    fn min(self, o: Self) -> Self {
        if Cmp::lt(self, o) {
            self
        } else {
            o
        }
    }
}

fn combine_fn<T: Combine>(mode: ScatterMode) -> fn(T, T) -> T {
    match mode {
        ScatterMode::Set => |_, v| v,
        ScatterMode::Add => T::add,
        ScatterMode::Multiply => T::mul,
        ScatterMode::Maximum => T::max,
        ScatterMode::Minimum => T::min,
    }
}

fn bool_fn(mode: ScatterMode) -> fn(u8, u8) -> u8 {
    match mode {
        ScatterMode::Set => |_, v| v,
        ScatterMode::Add | ScatterMode::Maximum => |a, b| a | b,
        ScatterMode::Multiply | ScatterMode::Minimum => |a, b| a & b,
    }
}

/// Copy `src` into the contiguous `out`.
fn copy_src<T: bytemuck::Pod + Send + Sync>(src: &Input, out: &mut [T]) {
    map1(&src.shape, View::<T>::of(src), out, |v| v);
}

/// Apply `f(out[dst[i]], vals[i])` in order; every `dst` was validated.
fn apply<T: Copy>(out: &mut [T], dst: &[usize], vals: &[T], f: fn(T, T) -> T) -> Result<()> {
    for (&d, &v) in dst.iter().zip(vals) {
        let o = out
            .get_mut(d)
            .ok_or_else(|| Error::runtime("scatter", "destination out of range"))?;
        *o = f(*o, v);
    }
    Ok(())
}

fn values<T: bytemuck::Pod + Send + Sync + Default>(x: &Input, shape: &[usize]) -> Vec<T> {
    let mut v = vec![T::default(); size_of(shape)];
    map1(shape, View::<T>::of(x), &mut v, |e| e);
    v
}

macro_rules! with_combine {
    ($dt:expr, $mode:expr, $T:ident, $f:ident, $body:expr) => {{
        match $dt {
            Dtype::Bool => {
                type $T = u8;
                let $f = bool_fn($mode);
                $body
            }
            Dtype::Uint8 => {
                type $T = u8;
                let $f = combine_fn::<$T>($mode);
                $body
            }
            Dtype::Uint16 => {
                type $T = u16;
                let $f = combine_fn::<$T>($mode);
                $body
            }
            Dtype::Uint32 => {
                type $T = u32;
                let $f = combine_fn::<$T>($mode);
                $body
            }
            Dtype::Uint64 => {
                type $T = u64;
                let $f = combine_fn::<$T>($mode);
                $body
            }
            Dtype::Int8 => {
                type $T = i8;
                let $f = combine_fn::<$T>($mode);
                $body
            }
            Dtype::Int16 => {
                type $T = i16;
                let $f = combine_fn::<$T>($mode);
                $body
            }
            Dtype::Int32 => {
                type $T = i32;
                let $f = combine_fn::<$T>($mode);
                $body
            }
            Dtype::Int64 => {
                type $T = i64;
                let $f = combine_fn::<$T>($mode);
                $body
            }
            Dtype::Float16 => {
                type $T = f16;
                let $f = combine_fn::<$T>($mode);
                $body
            }
            Dtype::Bfloat16 => {
                type $T = bf16;
                let $f = combine_fn::<$T>($mode);
                $body
            }
            Dtype::Float32 => {
                type $T = f32;
                let $f = combine_fn::<$T>($mode);
                $body
            }
            Dtype::Float64 => {
                type $T = f64;
                let $f = combine_fn::<$T>($mode);
                $body
            }
            Dtype::Complex64 => {
                type $T = Complex32;
                let $f = combine_fn::<$T>($mode);
                $body
            }
        }
    }};
}

/// `ScatterAxis { axis, mode }` (put_along_axis): inputs src, idx, values (idx shape).
pub fn scatter_axis(ins: &[Input], axis: usize, mode: ScatterMode, out: &mut Buffer) -> Result<()> {
    let op = "put_along_axis";
    let src = input(op, ins, 0)?;
    let ix = input(op, ins, 1)?;
    let vals = input(op, ins, 2)?;
    let ishape = &ix.shape;
    let ostr = contiguous_strides(&src.shape);
    let (Some(&dim), Some(&st)) = (src.shape.get(axis), ostr.get(axis)) else {
        return Err(Error::runtime(op, "Bad axis."));
    };
    if ishape.len() != src.shape.len() || vals.shape != *ishape {
        return Err(Error::runtime(
            op,
            "Index, values and source shapes disagree.",
        ));
    }
    for (d, (&a, &b)) in ishape.iter().zip(&src.shape).enumerate() {
        if d != axis && a != b {
            return Err(Error::runtime(
                op,
                "Index shape must match the source outside the axis.",
            ));
        }
    }
    let idx = read_indices(ix, ishape);
    let mut s0 = ostr.clone();
    s0[axis] = 0;
    let offs = crate::strided::offsets_of(ishape, &s0, 0);
    let mut dst = Vec::with_capacity(offs.len());
    for (&o, &i) in offs.iter().zip(&idx) {
        dst.push(o + wrap(op, i, dim, axis)? * st as usize);
    }
    with_combine!(src.dtype, mode, T, f, {
        let o = out.typed_mut::<T>();
        copy_src::<T>(src, o);
        let v = values::<T>(vals, ishape);
        apply(o, &dst, &v, f)?;
    });
    Ok(())
}

/// `Scatter { axes, mode }`: inputs src, updates (S ++ src dims not in axes), idx_0..idx_k.
pub fn scatter(ins: &[Input], axes: &[usize], mode: ScatterMode, out: &mut Buffer) -> Result<()> {
    let op = "scatter";
    let src = input(op, ins, 0)?;
    let upd = input(op, ins, 1)?;
    if ins.len() != axes.len() + 2 {
        return Err(Error::runtime(op, "One index array is needed per axis."));
    }
    let ishape = input(op, ins, 2)?.shape.clone();
    if ins[2..].iter().any(|x| x.shape != ishape) {
        return Err(Error::runtime(op, "Index arrays must share one shape."));
    }
    let n = size_of(&ishape);
    let idx: Vec<Vec<i64>> = ins[2..].iter().map(|x| read_indices(x, &ishape)).collect();
    let ostr = contiguous_strides(&src.shape);
    let bases = base_offsets(op, &src.shape, &ostr, 0, axes, &idx, n)?;
    let mut rs = Vec::new();
    let mut rst = Vec::new();
    for (i, (&d, &s)) in src.shape.iter().zip(&ostr).enumerate() {
        if !axes.contains(&i) {
            rs.push(d);
            rst.push(s);
        }
    }
    let mut ushape = ishape.clone();
    ushape.extend_from_slice(&rs);
    if upd.shape != ushape {
        return Err(Error::runtime(
            op,
            "Updates shape must be the index shape followed by the remaining source dims.",
        ));
    }
    let rest = rel_offsets(&rs, &rst);
    let mut dst = Vec::with_capacity(n * rest.len());
    for &b in &bases {
        for &r in &rest {
            dst.push((b + r) as usize);
        }
    }
    with_combine!(src.dtype, mode, T, f, {
        let o = out.typed_mut::<T>();
        copy_src::<T>(src, o);
        let v = values::<T>(upd, &ushape);
        apply(o, &dst, &v, f)?;
    });
    Ok(())
}
