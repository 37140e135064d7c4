//! Buffer donation: elementwise kernels that write their output over a donated input.
//!
//! The engine hands over the data of an input no one else can reach; when that input is
//! contiguous, has the output's dtype and size, and no view shares its buffer, the
//! kernel updates it in place instead of allocating (a chain like `a * b + c` then
//! needs one temporary buffer, not two). Other operands must be contiguous or a single
//! broadcast element; anything else takes the allocating path.

use crate::strided::{View, PAR_THRESHOLD};
use oxmx_core::array::ArrayData;
use oxmx_core::backend::Input;
use oxmx_core::primitive::{BinaryOp, UnaryOp};
use oxmx_core::shape::{contiguous_strides, is_row_contiguous, size_of};
use oxmx_core::{Dtype, Result};
use rayon::prelude::*;
use std::sync::Arc;

/// Whether `x` can be overwritten with an output of `shape`/`dtype`.
fn reusable(x: &Input, shape: &[usize], dtype: Dtype) -> bool {
    x.donatable
        && x.dtype == dtype
        && x.shape == shape
        && x.data.offset == 0
        && is_row_contiguous(&x.shape, &x.data.strides)
        && size_of(shape).checked_mul(dtype.size()) == Some(x.data.buffer.nbytes())
}

/// The data of `ins[i]` as the output (after its buffer was written in place).
fn as_output(ins: &[Input], i: usize, shape: &[usize]) -> Option<ArrayData> {
    ins.get(i).map(|x| ArrayData {
        buffer: Arc::clone(&x.data.buffer),
        offset: 0,
        strides: contiguous_strides(shape),
    })
}

fn par_chunk(n: usize) -> usize {
    n.div_ceil(rayon::current_num_threads() * 4).max(4096)
}

/// acc[i] = f(acc[i]).
pub fn map1_inplace<T: Copy + Send + Sync>(acc: &mut [T], f: impl Fn(T) -> T + Sync) {
    if acc.len() < PAR_THRESHOLD {
        acc.iter_mut().for_each(|x| *x = f(*x));
    } else {
        let c = par_chunk(acc.len());
        acc.par_chunks_mut(c)
            .for_each(|ch| ch.iter_mut().for_each(|x| *x = f(*x)));
    }
}

/// acc = run(acc) for a slice kernel `run(src, dst)`: each piece is copied aside first.
pub fn runs_inplace<T: bytemuck::Pod + Send + Sync>(
    acc: &mut [T],
    run: impl Fn(&[T], &mut [T]) + Sync,
) {
    const PIECE: usize = 4096;
    let pieces = |ch: &mut [T]| {
        let mut src = Vec::with_capacity(PIECE.min(ch.len()));
        for piece in ch.chunks_mut(PIECE) {
            src.clear();
            src.extend_from_slice(piece);
            run(&src, piece);
        }
    };
    if acc.len() < PAR_THRESHOLD {
        pieces(acc);
    } else {
        acc.par_chunks_mut(par_chunk(acc.len())).for_each(pieces);
    }
}

/// The other operand of a binary kernel: a contiguous slice or one broadcast value.
#[derive(Clone, Copy)]
pub enum Other<'a, T> {
    Slice(&'a [T]),
    Scalar(T),
}

impl<'a, T: bytemuck::Pod> Other<'a, T> {
    /// `x` (of the output's `n` elements) as an operand, if it has one of the two forms.
    pub fn of(x: &'a Input, n: usize) -> Option<Other<'a, T>> {
        let v = View::<T>::of(x);
        if x.data.strides.iter().all(|&s| s == 0) {
            v.data.get(v.offset).map(|&s| Other::Scalar(s))
        } else if is_row_contiguous(&x.shape, v.strides) {
            v.data
                .get(v.offset..v.offset.checked_add(n)?)
                .map(Other::Slice)
        } else {
            None
        }
    }
}

/// acc[i] = f(acc[i], other[i]), or f(other[i], acc[i]) when `acc_second`.
pub fn map2_inplace<T: Copy + Send + Sync>(
    acc: &mut [T],
    other: Other<T>,
    acc_second: bool,
    f: impl Fn(T, T) -> T + Sync,
) {
    let run = |acc: &mut [T], start: usize| match other {
        Other::Scalar(o) if acc_second => acc.iter_mut().for_each(|a| *a = f(o, *a)),
        Other::Scalar(o) => acc.iter_mut().for_each(|a| *a = f(*a, o)),
        Other::Slice(s) => {
            let s = s.get(start..start + acc.len()).unwrap_or(&[]);
            if acc_second {
                acc.iter_mut().zip(s).for_each(|(a, &o)| *a = f(o, *a));
            } else {
                acc.iter_mut().zip(s).for_each(|(a, &o)| *a = f(*a, o));
            }
        }
    };
    if acc.len() < PAR_THRESHOLD {
        run(acc, 0);
    } else {
        let c = par_chunk(acc.len());
        acc.par_chunks_mut(c)
            .enumerate()
            .for_each(|(k, ch)| run(ch, k * c));
    }
}

fn is_float(d: Dtype) -> bool {
    matches!(
        d,
        Dtype::Float32 | Dtype::Float64 | Dtype::Float16 | Dtype::Bfloat16
    )
}

/// Run a float unary op in place when its input was donated; `None` when not possible.
pub fn unary(
    op: UnaryOp,
    ins: &mut [Input],
    shape: &[usize],
    dtype: Dtype,
) -> Result<Option<ArrayData>> {
    let Some(x) = ins.first_mut() else {
        return Ok(None);
    };
    if !is_float(dtype) || !reusable(x, shape, dtype) {
        return Ok(None);
    }
    let Some(buf) = Arc::get_mut(&mut x.data.buffer) else {
        return Ok(None);
    };
    if !crate::unary::run_inplace(op, buf, size_of(shape), dtype)? {
        return Ok(None);
    }
    Ok(as_output(ins, 0, shape))
}

/// Run a float arithmetic op in place over a donated operand; `None` when not possible.
pub fn binary(
    op: BinaryOp,
    ins: &mut [Input],
    shape: &[usize],
    dtype: Dtype,
) -> Result<Option<ArrayData>> {
    let [a, b] = ins else {
        return Ok(None);
    };
    if !is_float(dtype) || op.is_comparison() || a.dtype != dtype || b.dtype != dtype {
        return Ok(None);
    }
    // Donate the first operand if it can be, else the second.
    let (acc, other, acc_second, i) =
        if reusable(a, shape, dtype) && Arc::get_mut(&mut a.data.buffer).is_some() {
            (a, &*b, false, 0)
        } else if reusable(b, shape, dtype) && Arc::get_mut(&mut b.data.buffer).is_some() {
            (b, &*a, true, 1)
        } else {
            return Ok(None);
        };
    let Some(buf) = Arc::get_mut(&mut acc.data.buffer) else {
        return Ok(None);
    };
    if !crate::binary::run_inplace(op, buf, size_of(shape), other, acc_second)? {
        return Ok(None);
    }
    Ok(as_output(ins, i, shape))
}
