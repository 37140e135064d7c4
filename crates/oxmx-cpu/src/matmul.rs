//! Batched matmul through the `gemm` crate: (..., M, K) @ (..., K, N) with equal batch
//! shapes. Operand strides go straight to gemm (transposed or broadcast views need no
//! copy); only negative matrix strides are copied first. bf16 runs in f32.

use crate::reduce::rel_offsets;
use crate::strided::{map1, View};
use gemm::Parallelism;
use half::{bf16, f16};
use num_complex::Complex32;
use oxmx_core::array::reach;
use oxmx_core::backend::Input;
use oxmx_core::memory::Buffer;
use oxmx_core::shape::{contiguous_strides, size_of};
use oxmx_core::{Dtype, Error, Result};
use rayon::prelude::*;

const OP: &str = "matmul";

/// Element types gemm multiplies.
pub trait GemmElem: bytemuck::Pod + Send + Sync + 'static {
    fn one() -> Self;
}
impl GemmElem for f32 {
    fn one() -> Self {
        1.0
    }
}
impl GemmElem for f64 {
    fn one() -> Self {
        1.0
    }
}
impl GemmElem for f16 {
    fn one() -> Self {
        f16::ONE
    }
}
impl GemmElem for Complex32 {
    fn one() -> Self {
        Complex32::new(1.0, 0.0)
    }
}

/// One strided matrix operand: element (i, j) is `data[off + i * rs + j * cs]`.
#[derive(Clone, Copy)]
struct Mat<'a, T> {
    data: &'a [T],
    off: usize,
    rs: isize,
    cs: isize,
}

impl<T> Mat<'_, T> {
    /// Every element of the `rows x cols` matrix lies inside `data`.
    fn in_bounds(&self, rows: usize, cols: usize) -> bool {
        if rows == 0 || cols == 0 {
            return true;
        }
        match reach(&[rows, cols], &[self.rs, self.cs], self.off) {
            Some((lo, hi)) => lo >= 0 && hi < self.data.len() as i128,
            None => false,
        }
    }
}

/// Below this many multiply-adds a product runs on one thread. Measured in oxmx on the
/// 2-core dev machine, one thread against two: 64x1024x64 83 against 157 us, 128x512x128
/// 153 against 217 us; at 16M (512x256x128) two win when warm, 233 against 302 us. A pool
/// woken from sleep costs ~0.1 ms more.
const SMALL: usize = 16 * 1024 * 1024;
/// Outputs of at most this many elements are too small for gemm's own parallel split
/// (standalone, 64x1024x64: 82 us on one thread, 92 us through gemm's, 51 us as two row
/// blocks): the rows of such a product above `SMALL` are split across the threads instead.
const SMALL_OUTPUT: usize = 128 * 128;
/// The fewest rows a thread's block of such a product gets.
const MIN_BLOCK_ROWS: usize = 16;

/// dst (m x n, row-major, exactly m*n long) = a (m x k) @ b (k x n).
#[allow(unsafe_code)] // the one gemm call, bounds checked above it
fn gemm_one<T: GemmElem>(
    m: usize,
    n: usize,
    k: usize,
    a: Mat<T>,
    b: Mat<T>,
    dst: &mut [T],
    par: Parallelism,
) -> Result<()> {
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        dst.iter_mut().for_each(|v| *v = T::zeroed());
        return Ok(());
    }
    let need = m.checked_mul(n).ok_or_else(|| Error::overflow(OP))?;
    if dst.len() < need || !a.in_bounds(m, k) || !b.in_bounds(k, n) {
        return Err(Error::runtime(OP, "Operand view out of bounds."));
    }
    let lhs = a.data.as_ptr().wrapping_add(a.off);
    let rhs = b.data.as_ptr().wrapping_add(b.off);
    // SAFETY: `lhs`/`rhs` point at element (0, 0) of matrices whose every element
    // (`off + i*rs + j*cs` for i < rows, j < cols) was just checked to lie inside their
    // slices (`in_bounds`); gemm only reads those elements. `dst` is a live, exclusive
    // slice of at least m*n elements, written row-major (row stride n, column stride 1),
    // and cannot alias the shared input slices. `T` is one of gemm's types (f32, f64,
    // f16, c32), and with `read_dst = false` the old dst values are never read.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs,
            a.cs,
            a.rs,
            rhs,
            b.cs,
            b.rs,
            T::zeroed(),
            T::one(),
            false,
            false,
            false,
            par,
        );
    }
    Ok(())
}

/// dst (m x n, row-major) = a (m x k) @ b (k x n) for matrices starting at element 0 of
/// `a`/`b` with the given row and column strides, on the calling thread (callers
/// parallelise over many products).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_into<T: GemmElem>(
    m: usize,
    n: usize,
    k: usize,
    a: (&[T], isize, isize),
    b: (&[T], isize, isize),
    dst: &mut [T],
) -> Result<()> {
    let a = Mat {
        data: a.0,
        off: 0,
        rs: a.1,
        cs: a.2,
    };
    let b = Mat {
        data: b.0,
        off: 0,
        rs: b.1,
        cs: b.2,
    };
    gemm_one(m, n, k, a, b, dst, Parallelism::None)
}

fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// A strided operand.
#[derive(Clone, Copy)]
struct Operand<'a, T> {
    shape: &'a [usize],
    data: &'a [T],
    strides: &'a [isize],
    offset: usize,
}

impl<'a, T: bytemuck::Pod> Operand<'a, T> {
    fn of(x: &'a Input) -> Self {
        Operand {
            shape: &x.shape,
            data: x.data.buffer.typed::<T>(),
            strides: &x.data.strides,
            offset: x.data.offset,
        }
    }
}

/// A contiguous copy converted by `f` (e.g. bf16 → f32, or fixing negative strides).
fn to_contiguous<S: Copy + Sync, D: Copy + Send + Default>(
    x: Operand<S>,
    f: impl Fn(S) -> D + Sync,
) -> Vec<D> {
    let mut v = vec![D::default(); size_of(x.shape)];
    map1(
        x.shape,
        View {
            data: x.data,
            offset: x.offset,
            strides: x.strides,
        },
        &mut v,
        f,
    );
    v
}

fn batched<T: GemmElem + Default>(a_in: Operand<T>, b_in: Operand<T>, out: &mut [T]) -> Result<()> {
    let nd = a_in.shape.len();
    if nd < 2 || b_in.shape.len() != nd || a_in.shape[..nd - 2] != b_in.shape[..nd - 2] {
        return Err(Error::runtime(
            OP,
            "Operands must be (..., M, K) and (..., K, N) with equal batch shapes.",
        ));
    }
    let (m, k, n) = (a_in.shape[nd - 2], a_in.shape[nd - 1], b_in.shape[nd - 1]);
    if b_in.shape[nd - 2] != k {
        return Err(Error::runtime(OP, "Inner dimensions differ."));
    }
    let batch = &a_in.shape[..nd - 2];
    let nb = size_of(batch);
    let mn = m.checked_mul(n).ok_or_else(|| Error::overflow(OP))?;
    let total = nb.checked_mul(mn).ok_or_else(|| Error::overflow(OP))?;
    if out.len() < total {
        return Err(Error::runtime(OP, "Output buffer too small."));
    }
    let out = &mut out[..total];
    if total == 0 {
        return Ok(());
    }

    // gemm takes any non-negative strides; copy an operand with a negative matrix stride.
    let neg = |x: &Operand<T>| x.strides[nd - 2..].iter().any(|&s| s < 0);
    let a_copy = if neg(&a_in) {
        Some(to_contiguous(a_in, |e| e))
    } else {
        None
    };
    let b_copy = if neg(&b_in) {
        Some(to_contiguous(b_in, |e| e))
    } else {
        None
    };
    let ca = contiguous_strides(a_in.shape);
    let cb = contiguous_strides(b_in.shape);
    let (a_data, a_str, a_off): (&[T], &[isize], usize) = match &a_copy {
        Some(v) => (v, &ca, 0),
        None => (a_in.data, a_in.strides, a_in.offset),
    };
    let (b_data, b_str, b_off): (&[T], &[isize], usize) = match &b_copy {
        Some(v) => (v, &cb, 0),
        None => (b_in.data, b_in.strides, b_in.offset),
    };
    let a_boffs = rel_offsets(batch, &a_str[..nd - 2]);
    let b_boffs = rel_offsets(batch, &b_str[..nd - 2]);
    fn mat<T>(data: &[T], off: usize, boff: isize, rs: isize, cs: isize) -> Result<Mat<'_, T>> {
        let o = usize::try_from(off as isize + boff)
            .map_err(|_| Error::runtime(OP, "Negative operand offset."))?;
        Ok(Mat {
            data,
            off: o,
            rs,
            cs,
        })
    }
    let one = |i: usize, dst: &mut [T], par: Parallelism| -> Result<()> {
        let (ao, bo) = match (a_boffs.get(i), b_boffs.get(i)) {
            (Some(&x), Some(&y)) => (x, y),
            _ => return Err(Error::runtime(OP, "Batch index out of range.")),
        };
        let a = mat(a_data, a_off, ao, a_str[nd - 2], a_str[nd - 1])?;
        let b = mat(b_data, b_off, bo, b_str[nd - 2], b_str[nd - 1])?;
        gemm_one(m, n, k, a, b, dst, par)
    };
    let flops = mn.saturating_mul(k);
    let big = flops >= SMALL && threads() > 1;
    let row_blocks = (m / MIN_BLOCK_ROWS).min(threads());
    if nb == 1 && big && mn <= SMALL_OUTPUT && row_blocks > 1 {
        // one product, a small output and a long inner dimension: row blocks in parallel
        let a = mat(a_data, a_off, 0, a_str[nd - 2], a_str[nd - 1])?;
        let b = mat(b_data, b_off, 0, b_str[nd - 2], b_str[nd - 1])?;
        let rows = m.div_ceil(row_blocks);
        return out
            .par_chunks_mut(rows * n)
            .enumerate()
            .try_for_each(|(i, dst)| {
                let r0 = i * rows;
                let off = (r0 as isize)
                    .checked_mul(a.rs)
                    .and_then(|d| (a.off as isize).checked_add(d))
                    .and_then(|o| usize::try_from(o).ok())
                    .ok_or_else(|| Error::runtime(OP, "Operand offset out of range."))?;
                let block = Mat { off, ..a };
                gemm_one(dst.len() / n, n, k, block, b, dst, Parallelism::None)
            });
    }
    if nb == 1 || big {
        let par = if big {
            Parallelism::Rayon(threads())
        } else {
            Parallelism::None
        };
        for (i, dst) in out.chunks_mut(mn).enumerate() {
            one(i, dst, par)?;
        }
    } else if flops.saturating_mul(nb) >= SMALL {
        out.par_chunks_mut(mn)
            .enumerate()
            .try_for_each(|(i, dst)| one(i, dst, Parallelism::None))?;
    } else {
        for (i, dst) in out.chunks_mut(mn).enumerate() {
            one(i, dst, Parallelism::None)?;
        }
    }
    Ok(())
}

pub fn run(a: &Input, b: &Input, out: &mut Buffer) -> Result<()> {
    match a.dtype {
        Dtype::Float32 => batched::<f32>(Operand::of(a), Operand::of(b), out.typed_mut::<f32>()),
        Dtype::Float64 => batched::<f64>(Operand::of(a), Operand::of(b), out.typed_mut::<f64>()),
        Dtype::Float16 => batched::<f16>(Operand::of(a), Operand::of(b), out.typed_mut::<f16>()),
        Dtype::Complex64 => {
            batched::<Complex32>(Operand::of(a), Operand::of(b), out.typed_mut::<Complex32>())
        }
        Dtype::Bfloat16 => {
            let a32 = to_contiguous(Operand::<bf16>::of(a), |v| v.to_f32());
            let b32 = to_contiguous(Operand::<bf16>::of(b), |v| v.to_f32());
            let (sa, sb) = (contiguous_strides(&a.shape), contiguous_strides(&b.shape));
            let oa = Operand {
                shape: &a.shape,
                data: &a32,
                strides: &sa,
                offset: 0,
            };
            let ob = Operand {
                shape: &b.shape,
                data: &b32,
                strides: &sb,
                offset: 0,
            };
            let o = out.typed_mut::<bf16>();
            let mut tmp = vec![0f32; o.len()];
            batched::<f32>(oa, ob, &mut tmp)?;
            for (d, &s) in o.iter_mut().zip(&tmp) {
                *d = crate::elem::bf16_of(s);
            }
            Ok(())
        }
        d => Err(Error::value(OP, format!("Not supported for {d}."))),
    }
}
