//! Reductions (sum, prod, max, min, all, any) over sorted axes; the output keeps the
//! reduced dims with size 1.
//!
//! Reduced dims are reordered (largest stride outermost, negative strides flipped) and
//! collapsed: reduction order does not change the result beyond float rounding. Then:
//! * (a) innermost reduced run contiguous: each output reduces contiguous segments with
//!   16 independent accumulators (vectorizes) and pairwise blocks (accuracy); one big
//!   output splits its segment across threads, many outputs run in parallel;
//! * (b) innermost kept run contiguous (e.g. sum over axis 0 of a matrix): whole rows are
//!   accumulated into an output block that stays in cache;
//! * otherwise a strided walk per output.

use crate::binary::Cmp;
use crate::elem::Elem;
use crate::strided::{layout, Rows, PAR_THRESHOLD};
use half::{bf16, f16};
use num_complex::Complex32;
use oxmx_core::backend::Input;
use oxmx_core::memory::Buffer;
use oxmx_core::primitive::ReduceOp;
use oxmx_core::shape::{collapse_dims, size_of};
use oxmx_core::{Error, Result};
use rayon::prelude::*;

/// A reduction over inputs `T`: accumulator `A`, output `O`.
pub trait Red<T>: Sync {
    type A: Copy + Send + Sync;
    type O: Copy + Send + Sync;
    fn init() -> Self::A;
    fn step(a: Self::A, x: T) -> Self::A;
    fn merge(a: Self::A, b: Self::A) -> Self::A;
    fn fin(a: Self::A) -> Self::O;
}

pub struct Sum;
pub struct Prod;
pub struct Max;
pub struct Min;
pub struct All;
pub struct Any;

macro_rules! int_red {
    ($($t:ty),*) => {$(
        impl Red<$t> for Sum {
            type A = $t; type O = $t;
            #[inline(always)] fn init() -> $t { 0 }
            #[inline(always)] fn step(a: $t, x: $t) -> $t { a.wrapping_add(x) }
            #[inline(always)] fn merge(a: $t, b: $t) -> $t { a.wrapping_add(b) }
            #[inline(always)] fn fin(a: $t) -> $t { a }
        }
        impl Red<$t> for Prod {
            type A = $t; type O = $t;
            #[inline(always)] fn init() -> $t { 1 }
            #[inline(always)] fn step(a: $t, x: $t) -> $t { a.wrapping_mul(x) }
            #[inline(always)] fn merge(a: $t, b: $t) -> $t { a.wrapping_mul(b) }
            #[inline(always)] fn fin(a: $t) -> $t { a }
        }
        impl Red<$t> for Max {
            type A = $t; type O = $t;
            #[inline(always)] fn init() -> $t { <$t>::MIN }
            #[inline(always)] fn step(a: $t, x: $t) -> $t { if x > a { x } else { a } }
            #[inline(always)] fn merge(a: $t, b: $t) -> $t { if b > a { b } else { a } }
            #[inline(always)] fn fin(a: $t) -> $t { a }
        }
        impl Red<$t> for Min {
            type A = $t; type O = $t;
            #[inline(always)] fn init() -> $t { <$t>::MAX }
            #[inline(always)] fn step(a: $t, x: $t) -> $t { if x < a { x } else { a } }
            #[inline(always)] fn merge(a: $t, b: $t) -> $t { if b < a { b } else { a } }
            #[inline(always)] fn fin(a: $t) -> $t { a }
        }
    )*};
}
int_red!(u8, u16, u32, u64, i8, i16, i32, i64);

// Floats: `x != x` (NaN) wins in max/min and then sticks, like NumPy.
macro_rules! float_red {
    ($t:ty, $a:ty, $to:expr, $from:expr) => {
        impl Red<$t> for Sum {
            type A = $a;
            type O = $t;
            #[inline(always)]
            fn init() -> $a {
                0.0
            }
            #[inline(always)]
            fn step(a: $a, x: $t) -> $a {
                a + $to(x)
            }
            #[inline(always)]
            fn merge(a: $a, b: $a) -> $a {
                a + b
            }
            #[inline(always)]
            fn fin(a: $a) -> $t {
                $from(a)
            }
        }
        impl Red<$t> for Prod {
            type A = $a;
            type O = $t;
            #[inline(always)]
            fn init() -> $a {
                1.0
            }
            #[inline(always)]
            fn step(a: $a, x: $t) -> $a {
                a * $to(x)
            }
            #[inline(always)]
            fn merge(a: $a, b: $a) -> $a {
                a * b
            }
            #[inline(always)]
            fn fin(a: $a) -> $t {
                $from(a)
            }
        }
        impl Red<$t> for Max {
            type A = $a;
            type O = $t;
            #[inline(always)]
            fn init() -> $a {
                <$a>::NEG_INFINITY
            }
            #[inline(always)]
            #[allow(clippy::eq_op)]
            fn step(a: $a, x: $t) -> $a {
                let x = $to(x);
                if x > a || x != x {
                    x
                } else {
                    a
                }
            }
            #[inline(always)]
            #[allow(clippy::eq_op)]
            fn merge(a: $a, b: $a) -> $a {
                if b > a || b != b {
                    b
                } else {
                    a
                }
            }
            #[inline(always)]
            fn fin(a: $a) -> $t {
                $from(a)
            }
        }
        impl Red<$t> for Min {
            type A = $a;
            type O = $t;
            #[inline(always)]
            fn init() -> $a {
                <$a>::INFINITY
            }
            #[inline(always)]
            #[allow(clippy::eq_op)]
            fn step(a: $a, x: $t) -> $a {
                let x = $to(x);
                if x < a || x != x {
                    x
                } else {
                    a
                }
            }
            #[inline(always)]
            #[allow(clippy::eq_op)]
            fn merge(a: $a, b: $a) -> $a {
                if b < a || b != b {
                    b
                } else {
                    a
                }
            }
            #[inline(always)]
            fn fin(a: $a) -> $t {
                $from(a)
            }
        }
    };
}
float_red!(f32, f32, |x: f32| x, |a: f32| a);
float_red!(f64, f64, |x: f64| x, |a: f64| a);
float_red!(f16, f32, |x: f16| x.to_f32(), f16::from_f32);
float_red!(bf16, f32, |x: bf16| x.to_f32(), crate::elem::bf16_of);

fn c_nan(x: Complex32) -> bool {
    x.re.is_nan() || x.im.is_nan()
}

impl Red<Complex32> for Sum {
    type A = Complex32;
    type O = Complex32;
    #[inline(always)]
    fn init() -> Complex32 {
        Complex32::new(0.0, 0.0)
    }
    #[inline(always)]
    fn step(a: Complex32, x: Complex32) -> Complex32 {
        a + x
    }
    #[inline(always)]
    fn merge(a: Complex32, b: Complex32) -> Complex32 {
        a + b
    }
    #[inline(always)]
    fn fin(a: Complex32) -> Complex32 {
        a
    }
}
impl Red<Complex32> for Prod {
    type A = Complex32;
    type O = Complex32;
    #[inline(always)]
    fn init() -> Complex32 {
        Complex32::new(1.0, 0.0)
    }
    #[inline(always)]
    fn step(a: Complex32, x: Complex32) -> Complex32 {
        a * x
    }
    #[inline(always)]
    fn merge(a: Complex32, b: Complex32) -> Complex32 {
        a * b
    }
    #[inline(always)]
    fn fin(a: Complex32) -> Complex32 {
        a
    }
}
// Complex max/min: lexicographic (NumPy), NaN propagates.
impl Red<Complex32> for Max {
    type A = Complex32;
    type O = Complex32;
    fn init() -> Complex32 {
        Complex32::new(f32::NEG_INFINITY, f32::NEG_INFINITY)
    }
    fn step(a: Complex32, x: Complex32) -> Complex32 {
        if c_nan(a) {
            a
        } else if c_nan(x) || a.lt(x) {
            x
        } else {
            a
        }
    }
    fn merge(a: Complex32, b: Complex32) -> Complex32 {
        Self::step(a, b)
    }
    fn fin(a: Complex32) -> Complex32 {
        a
    }
}
impl Red<Complex32> for Min {
    type A = Complex32;
    type O = Complex32;
    fn init() -> Complex32 {
        Complex32::new(f32::INFINITY, f32::INFINITY)
    }
    fn step(a: Complex32, x: Complex32) -> Complex32 {
        if c_nan(a) {
            a
        } else if c_nan(x) || x.lt(a) {
            x
        } else {
            a
        }
    }
    fn merge(a: Complex32, b: Complex32) -> Complex32 {
        Self::step(a, b)
    }
    fn fin(a: Complex32) -> Complex32 {
        a
    }
}

impl<T: Elem> Red<T> for All {
    type A = u8;
    type O = u8;
    #[inline(always)]
    fn init() -> u8 {
        1
    }
    #[inline(always)]
    fn step(a: u8, x: T) -> u8 {
        a & (!x.is_zero()) as u8
    }
    #[inline(always)]
    fn merge(a: u8, b: u8) -> u8 {
        a & b
    }
    #[inline(always)]
    fn fin(a: u8) -> u8 {
        a
    }
}
impl<T: Elem> Red<T> for Any {
    type A = u8;
    type O = u8;
    #[inline(always)]
    fn init() -> u8 {
        0
    }
    #[inline(always)]
    fn step(a: u8, x: T) -> u8 {
        a | (!x.is_zero()) as u8
    }
    #[inline(always)]
    fn merge(a: u8, b: u8) -> u8 {
        a | b
    }
    #[inline(always)]
    fn fin(a: u8) -> u8 {
        a
    }
}

const LANES: usize = 16;
/// Pairwise leaves: accuracy of a pairwise sum, speed of a flat loop.
const BLOCK: usize = 4096;

/// Flat reduce with `LANES` independent accumulators (LLVM vectorizes the lane loop).
#[inline]
fn lanes<T: Copy, R: Red<T>>(xs: &[T]) -> R::A {
    let mut it = xs.chunks_exact(LANES);
    let mut r = R::init();
    if xs.len() >= LANES {
        let mut acc = [R::init(); LANES];
        for c in &mut it {
            if let Ok(c) = <&[T; LANES]>::try_from(c) {
                for i in 0..LANES {
                    acc[i] = R::step(acc[i], c[i]);
                }
            }
        }
        // tree merge of the lanes
        let mut w = LANES;
        while w > 1 {
            w /= 2;
            for i in 0..w {
                acc[i] = R::merge(acc[i], acc[i + w]);
            }
        }
        r = acc[0];
    }
    for &x in it.remainder() {
        r = R::step(r, x);
    }
    r
}

/// Pairwise reduce of a contiguous slice (serial).
fn pairwise<T: Copy, R: Red<T>>(xs: &[T]) -> R::A {
    if xs.len() <= BLOCK {
        return lanes::<T, R>(xs);
    }
    let mid = (xs.len() / 2).div_ceil(LANES) * LANES;
    let (a, b) = xs.split_at(mid.min(xs.len()));
    R::merge(pairwise::<T, R>(a), pairwise::<T, R>(b))
}

/// Pairwise merge of partial results (keeps the pairwise error bound).
fn merge_tree<T, R: Red<T>>(mut v: Vec<R::A>) -> R::A {
    while v.len() > 1 {
        v = v
            .chunks(2)
            .map(|c| {
                if c.len() == 2 {
                    R::merge(c[0], c[1])
                } else {
                    c[0]
                }
            })
            .collect();
    }
    v.first().copied().unwrap_or_else(R::init)
}

/// Pairwise reduce of a contiguous slice; split across threads when `par` and big.
pub fn reduce_slice<T: Copy + Sync, R: Red<T>>(xs: &[T], par: bool) -> R::A {
    if !par || xs.len() < 2 * PAR_THRESHOLD {
        return pairwise::<T, R>(xs);
    }
    // power-of-two parts of whole blocks, so the tree matches the serial one closely
    let parts = (threads() * 4).next_power_of_two();
    let per = xs.len().div_ceil(parts).div_ceil(BLOCK) * BLOCK;
    let n = xs.len().div_ceil(per);
    merge_tree::<T, R>(par_map_dyn(n, &|i| {
        let lo = (i * per).min(xs.len());
        pairwise::<T, R>(&xs[lo..(lo + per).min(xs.len())])
    }))
}

/// `f(0..n)` in parallel. Type-erased so that rayon's machinery is instantiated per
/// result type only, not per kernel (keeps compile time and code size down).
pub(crate) fn par_map_dyn<A: Send>(n: usize, f: &(dyn Fn(usize) -> A + Sync)) -> Vec<A> {
    (0..n).into_par_iter().map(f).collect()
}

/// `f(i, unit_i)` over disjoint mutable units in parallel (type-erased like `par_map_dyn`).
pub(crate) fn par_units<O: Send>(units: Vec<&mut [O]>, f: &(dyn Fn(usize, &mut [O]) + Sync)) {
    units.into_par_iter().enumerate().for_each(|(i, u)| f(i, u));
}

/// Offsets (relative) of every element of (shape, strides), row-major.
pub(crate) fn rel_offsets(shape: &[usize], strides: &[isize]) -> Vec<isize> {
    let mut v = vec![0isize];
    for (&d, &s) in shape.iter().zip(strides) {
        let mut nv = Vec::with_capacity(v.len() * d);
        for &o in &v {
            for i in 0..d {
                nv.push(o + i as isize * s);
            }
        }
        v = nv;
    }
    v
}

/// Walk the output positions `start..start+out.len()` of a kept-dims layout, giving
/// each output its input offset.
fn walk_out<O>(
    l: &crate::strided::Layout,
    base: isize,
    start: usize,
    out: &mut [O],
    mut f: impl FnMut(isize) -> O,
) {
    let inner = l.inner.max(1);
    let si = l.inner_strides[0];
    let mut rows = Rows::new(&l.outer, l.outer_strides.clone(), &[base], start / inner);
    let mut j = start % inner;
    for o in out.iter_mut() {
        *o = f(rows.offs[0] + j as isize * si);
        j += 1;
        if j == inner {
            j = 0;
            rows.step();
        }
    }
}

fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

fn go<T: Copy + Send + Sync + bytemuck::Pod, R: Red<T>>(
    x: &Input,
    axes: &[usize],
    out: &mut [R::O],
) {
    let data: &[T] = x.data.buffer.typed::<T>();
    let shape = &x.shape;
    let strides = &x.data.strides;
    let mut base = x.data.offset as isize;
    // kept dims (output order) and reduced dims (any order)
    let mut ks = Vec::new();
    let mut kst = Vec::new();
    let mut red: Vec<(usize, isize)> = Vec::new();
    for (i, (&d, &s)) in shape.iter().zip(strides.iter()).enumerate() {
        if axes.contains(&i) {
            if s < 0 {
                // flip: same elements, positive stride
                base += (d as isize - 1) * s;
                red.push((d, -s));
            } else {
                red.push((d, s));
            }
        } else {
            ks.push(d);
            kst.push(s);
        }
    }
    let n_out = size_of(&ks).min(out.len());
    let out = &mut out[..n_out];
    if n_out == 0 {
        return;
    }
    red.sort_by_key(|r| std::cmp::Reverse(r.1));
    let rs: Vec<usize> = red.iter().map(|r| r.0).collect();
    let rst: Vec<isize> = red.iter().map(|r| r.1).collect();
    let n_red = size_of(&rs);
    if n_red == 0 {
        let v = R::fin(R::init());
        out.iter_mut().for_each(|o| *o = v);
        return;
    }
    let (cs, cst) = collapse_dims(&rs, &[&rst]);
    let cst = &cst[0];
    let (ri, rsi) = match (cs.last(), cst.last()) {
        (Some(&d), Some(&s)) => (d, s),
        _ => (1, 0),
    };
    let nrd = cs.len().saturating_sub(1);
    let kl = layout(&ks, &[&kst]);
    let total = n_out.saturating_mul(n_red);
    let par = total >= PAR_THRESHOLD;

    let kin = kl.inner;
    let kin_s = kl.inner_strides[0];
    if !(rsi == 1 && ri >= LANES) && kin_s == 1 && kin >= LANES && n_red > 1 {
        path_b::<T, R>(data, base, &kl, &rs, &rst, n_red, out, par);
        return;
    }

    // path (a): per output, reduce the reduced rows (contiguous or strided runs)
    let red_offs = rel_offsets(&cs[..nrd], &cst[..nrd]);
    let run = |start: isize, inner_par: bool| -> R::A {
        let one = |ro: isize, p: bool| -> R::A {
            let b = start + ro;
            if rsi == 1 {
                let b = b as usize;
                reduce_slice::<T, R>(&data[b..b + ri], p)
            } else {
                let mut acc = R::init();
                for t in 0..ri {
                    acc = R::step(acc, data[(b + t as isize * rsi) as usize]);
                }
                acc
            }
        };
        if inner_par && red_offs.len() >= 2 {
            let per = (PAR_THRESHOLD / ri.max(1))
                .max(1)
                .min(red_offs.len().div_ceil(threads() * 4));
            let parts = par_map_dyn(red_offs.len().div_ceil(per), &|i| {
                let lo = (i * per).min(red_offs.len());
                let offs = &red_offs[lo..(lo + per).min(red_offs.len())];
                offs.iter()
                    .fold(R::init(), |acc, &ro| R::merge(acc, one(ro, false)))
            });
            merge_tree::<T, R>(parts)
        } else {
            red_offs
                .iter()
                .fold(R::init(), |acc, &ro| R::merge(acc, one(ro, inner_par)))
        }
    };
    if !par {
        walk_out(&kl, base, 0, out, |o| R::fin(run(o, false)));
    } else if n_out >= 4 * threads() {
        let chunk = n_out
            .div_ceil(threads() * 8)
            .max(PAR_THRESHOLD.div_ceil(n_red).min(n_out))
            .max(1);
        par_units(out.chunks_mut(chunk).collect(), &|c, o| {
            walk_out(&kl, base, c * chunk, o, |off| R::fin(run(off, false)));
        });
    } else {
        walk_out(&kl, base, 0, out, |o| R::fin(run(o, true)));
    }
}

/// Column block width for row accumulation (accumulators stay in L1).
const COLS: usize = 2048;

/// Row accumulation: the kept inner run is contiguous; for each kept outer row and
/// column block, fold every reduced offset's row segment into the accumulators.
#[allow(clippy::too_many_arguments)]
fn path_b<T: Copy + Send + Sync, R: Red<T>>(
    data: &[T],
    base: isize,
    kl: &crate::strided::Layout,
    rs: &[usize],
    rst: &[isize],
    n_red: usize,
    out: &mut [R::O],
    par: bool,
) {
    let kin = kl.inner;
    let red_all = rel_offsets(rs, rst);
    let rows = rel_offsets(&kl.outer, &kl.outer_strides[0]);
    let fold_rows = |acc: &mut [R::A], start: isize, offs: &[isize]| {
        let len = acc.len();
        for &ro in offs {
            let b = (start + ro) as usize;
            for (a, &v) in acc.iter_mut().zip(&data[b..b + len]) {
                *a = R::step(*a, v);
            }
        }
    };
    let unit = |r: usize, c0: usize, o: &mut [R::O]| {
        let mut acc = vec![R::init(); o.len()];
        fold_rows(&mut acc, base + rows[r] + c0 as isize, &red_all);
        for (o, a) in o.iter_mut().zip(acc) {
            *o = R::fin(a);
        }
    };
    let n_units = rows.len() * kin.div_ceil(COLS);
    if !par {
        for (r, orow) in out.chunks_mut(kin).enumerate() {
            for (c, o) in orow.chunks_mut(COLS).enumerate() {
                unit(r, c * COLS, o);
            }
        }
    } else if n_units >= 2 * threads() || n_red < 4 * threads() {
        let ncb = kin.div_ceil(COLS);
        let units: Vec<&mut [R::O]> = out
            .chunks_mut(kin)
            .flat_map(|r| r.chunks_mut(COLS))
            .collect();
        par_units(units, &|i, o| unit(i / ncb, (i % ncb) * COLS, o));
    } else {
        // Few outputs, many reduced rows: split the reduced rows across threads.
        let n_out = out.len();
        let per = red_all.len().div_ceil(threads() * 4).max(1);
        let partial = par_map_dyn(red_all.len().div_ceil(per), &|i| {
            let lo = (i * per).min(red_all.len());
            let offs = &red_all[lo..(lo + per).min(red_all.len())];
            let mut acc = vec![R::init(); n_out];
            for (r, arow) in acc.chunks_mut(kin).enumerate() {
                fold_rows(arow, base + rows[r], offs);
            }
            acc
        });
        let mut acc = vec![R::init(); n_out];
        for p in partial {
            for (x, y) in acc.iter_mut().zip(p) {
                *x = R::merge(*x, y);
            }
        }
        for (o, a) in out.iter_mut().zip(acc) {
            *o = R::fin(a);
        }
    }
}

macro_rules! same_type {
    ($R:ty, $x:expr, $axes:expr, $out:expr) => {
        crate::with_dtype!($x.dtype, T, go::<T, $R>($x, $axes, $out.typed_mut::<T>()))
    };
}

/// Sum/prod see only the accumulation dtypes the op layer produces (bool, int8/16 and
/// uint8/16 are cast to 32-bit first); the narrow ones are never instantiated.
macro_rules! accum_type {
    ($R:ty, $x:expr, $axes:expr, $out:expr) => {{
        use oxmx_core::Dtype as D;
        match $x.dtype {
            D::Uint32 => go::<u32, $R>($x, $axes, $out.typed_mut::<u32>()),
            D::Uint64 => go::<u64, $R>($x, $axes, $out.typed_mut::<u64>()),
            D::Int32 => go::<i32, $R>($x, $axes, $out.typed_mut::<i32>()),
            D::Int64 => go::<i64, $R>($x, $axes, $out.typed_mut::<i64>()),
            D::Float16 => go::<f16, $R>($x, $axes, $out.typed_mut::<f16>()),
            D::Bfloat16 => go::<bf16, $R>($x, $axes, $out.typed_mut::<bf16>()),
            D::Float32 => go::<f32, $R>($x, $axes, $out.typed_mut::<f32>()),
            D::Float64 => go::<f64, $R>($x, $axes, $out.typed_mut::<f64>()),
            D::Complex64 => go::<Complex32, $R>($x, $axes, $out.typed_mut::<Complex32>()),
            d => {
                return Err(Error::value(
                    "reduce",
                    format!("Sum and prod reduce {d} through a wider dtype (cast first)."),
                ))
            }
        }
    }};
}

pub fn run(op: ReduceOp, x: &Input, axes: &[usize], out: &mut Buffer) -> Result<()> {
    match op {
        // Inputs of all/any are bool (u8 0/1; any 1-byte dtype is tested for != 0).
        ReduceOp::All | ReduceOp::Any if x.dtype.size() != 1 => {
            return Err(Error::value(
                "reduce",
                format!("all/any expect a bool input, got {}.", x.dtype),
            ))
        }
        ReduceOp::All => go::<u8, All>(x, axes, out.typed_mut::<u8>()),
        ReduceOp::Any => go::<u8, Any>(x, axes, out.typed_mut::<u8>()),
        ReduceOp::Sum => accum_type!(Sum, x, axes, out),
        ReduceOp::Prod => accum_type!(Prod, x, axes, out),
        // bool is u8 0/1: integer max/min are any/all
        ReduceOp::Max => same_type!(Max, x, axes, out),
        ReduceOp::Min => same_type!(Min, x, axes, out),
    }
    Ok(())
}
