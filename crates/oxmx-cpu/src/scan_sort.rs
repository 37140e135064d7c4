//! Scans and sorts along the last axis, one row per task.

use crate::elem::Elem;
use crate::strided::{map1, View};
use num_complex::Complex32;
use oxmx_core::backend::Input;
use oxmx_core::memory::Buffer;
use oxmx_core::primitive::ScanOp;
use oxmx_core::shape::size_of;
use oxmx_core::{Dtype, Result};
use rayon::prelude::*;
use std::cmp::Ordering;

/// Contiguous row-major copy of a (possibly strided) input.
fn contiguous<T: bytemuck::Pod + Send + Sync>(x: &Input) -> Vec<T> {
    let n = size_of(&x.shape);
    let mut v = vec![T::zeroed(); n];
    map1(&x.shape, View::<T>::of(x), &mut v, |e| e);
    v
}

fn rows<T: Send>(out: &mut [T], len: usize) -> rayon::slice::ChunksMut<'_, T> {
    out.par_chunks_mut(len.max(1))
}

/// Scan one row in place with `f`, optionally reversed / exclusive (`init` = identity).
fn scan_row<T: Copy>(
    row: &mut [T],
    reverse: bool,
    inclusive: bool,
    init: T,
    f: impl Fn(T, T) -> T,
) {
    let n = row.len();
    let mut acc = init;
    for k in 0..n {
        let i = if reverse { n - 1 - k } else { k };
        let v = row[i];
        if inclusive {
            acc = if k == 0 { v } else { f(acc, v) };
            row[i] = acc;
        } else {
            row[i] = acc;
            acc = f(acc, v);
        }
    }
}

/// The smallest and largest values of an integer dtype (other than uint64) as i64.
fn int_bounds(d: Dtype) -> (i64, i64) {
    match d {
        Dtype::Int8 => (i8::MIN.into(), i8::MAX.into()),
        Dtype::Int16 => (i16::MIN.into(), i16::MAX.into()),
        Dtype::Int32 => (i32::MIN.into(), i32::MAX.into()),
        Dtype::Uint8 => (0, u8::MAX.into()),
        Dtype::Uint16 => (0, u16::MAX.into()),
        Dtype::Uint32 => (0, u32::MAX.into()),
        _ => (i64::MIN, i64::MAX),
    }
}

/// The running complex max/min: NaNs propagate, else `a` unless `better(b, a)`.
fn c_pick(a: Complex32, b: Complex32, better: fn(Complex32, Complex32) -> bool) -> Complex32 {
    if crate::binary::c_is_nan(a) {
        a
    } else if crate::binary::c_is_nan(b) || better(b, a) {
        b
    } else {
        a
    }
}

pub fn scan(op: ScanOp, reverse: bool, inclusive: bool, x: &Input, out: &mut Buffer) -> Result<()> {
    let len = x.shape.last().copied().unwrap_or(1);
    let d = x.dtype;
    macro_rules! go {
        ($T:ty, $init:expr, $f:expr) => {{
            let data = contiguous::<$T>(x);
            let o = out.typed_mut::<$T>();
            o[..data.len()].copy_from_slice(&data);
            rows(&mut o[..data.len()], len)
                .for_each(|r| scan_row(r, reverse, inclusive, $init, $f));
        }};
    }
    match d {
        Dtype::Complex64 => match op {
            ScanOp::Sum => go!(
                Complex32,
                Complex32::new(0.0, 0.0),
                |a: Complex32, b: Complex32| a + b
            ),
            ScanOp::Prod => go!(
                Complex32,
                Complex32::new(1.0, 0.0),
                |a: Complex32, b: Complex32| a * b
            ),
            ScanOp::LogAddExp => go!(
                Complex32,
                Complex32::new(f32::NEG_INFINITY, 0.0),
                crate::binary::c_logaddexp
            ),
            // lexicographic order (as MLX); a NaN in the running value or the new one wins
            ScanOp::Max => go!(
                Complex32,
                Complex32::new(f32::NEG_INFINITY, f32::NEG_INFINITY),
                |a: Complex32, b: Complex32| c_pick(a, b, |x, y| crate::binary::Cmp::lt(y, x))
            ),
            ScanOp::Min => go!(
                Complex32,
                Complex32::new(f32::INFINITY, f32::INFINITY),
                |a: Complex32, b: Complex32| c_pick(a, b, crate::binary::Cmp::lt)
            ),
        },
        Dtype::Bool => match op {
            ScanOp::Max | ScanOp::Sum => go!(u8, 0u8, |a: u8, b: u8| a | b),
            ScanOp::Min | ScanOp::Prod => go!(u8, 1u8, |a: u8, b: u8| a & b),
            ScanOp::LogAddExp => {
                return Err(oxmx_core::Error::value("scan", "Not supported for bool."))
            }
        },
        _ if d.is_float() => crate::with_dtype!(d, T, {
            // accumulate in f64 (rounded to the dtype at each step, as NumPy would)
            let conv = |a: f64| T::from_f64(a).to_f64();
            match op {
                ScanOp::Sum => go!(T, T::from_f64(0.0), move |a: T, b: T| T::from_f64(conv(
                    a.to_f64() + b.to_f64()
                ))),
                ScanOp::Prod => go!(T, T::from_f64(1.0), move |a: T, b: T| T::from_f64(
                    a.to_f64() * b.to_f64()
                )),
                ScanOp::Max => go!(T, T::from_f64(f64::NEG_INFINITY), |a: T, b: T| {
                    let (x, y) = (a.to_f64(), b.to_f64());
                    if x.is_nan() || x >= y {
                        a
                    } else {
                        b
                    }
                }),
                ScanOp::Min => go!(T, T::from_f64(f64::INFINITY), |a: T, b: T| {
                    let (x, y) = (a.to_f64(), b.to_f64());
                    if x.is_nan() || x <= y {
                        a
                    } else {
                        b
                    }
                }),
                ScanOp::LogAddExp => go!(T, T::from_f64(f64::NEG_INFINITY), |a: T, b: T| {
                    let (x, y) = (a.to_f64(), b.to_f64());
                    if x.is_nan() || y.is_nan() {
                        return T::from_f64(f64::NAN);
                    }
                    let m = x.max(y);
                    if m.is_infinite() {
                        return T::from_f64(m);
                    }
                    T::from_f64(m + (-(x - y).abs()).exp().ln_1p())
                }),
            }
        }),
        Dtype::Uint64 => match op {
            ScanOp::Sum => go!(u64, 0, |a: u64, b: u64| a.wrapping_add(b)),
            ScanOp::Prod => go!(u64, 1, |a: u64, b: u64| a.wrapping_mul(b)),
            ScanOp::Max => go!(u64, 0, |a: u64, b: u64| a.max(b)),
            ScanOp::Min => go!(u64, u64::MAX, |a: u64, b: u64| a.min(b)),
            ScanOp::LogAddExp => {
                return Err(oxmx_core::Error::value(
                    "scan",
                    "Not supported for integers.",
                ))
            }
        },
        _ => crate::with_dtype!(d, T, {
            // integers: wrap in 64 bits, then narrow (same as wrapping in the dtype);
            // exclusive max/min scans start from the dtype's own lowest/highest value.
            let (lowest, highest) = int_bounds(d);
            match op {
                ScanOp::Sum => go!(T, T::from_i64(0), |a: T, b: T| T::from_i64(
                    a.to_i64().wrapping_add(b.to_i64())
                )),
                ScanOp::Prod => go!(T, T::from_i64(1), |a: T, b: T| T::from_i64(
                    a.to_i64().wrapping_mul(b.to_i64())
                )),
                ScanOp::Max => {
                    go!(
                        T,
                        T::from_i64(lowest),
                        |a: T, b: T| if a.to_i64() >= b.to_i64() { a } else { b }
                    )
                }
                ScanOp::Min => {
                    go!(
                        T,
                        T::from_i64(highest),
                        |a: T, b: T| if a.to_i64() <= b.to_i64() { a } else { b }
                    )
                }
                ScanOp::LogAddExp => {
                    return Err(oxmx_core::Error::value(
                        "scan",
                        "Not supported for integers.",
                    ))
                }
            }
        }),
    }
    Ok(())
}

/// Total order used by sort: numbers ascending, NaN last.
fn cmp_f64(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

fn key_cmp<T: Elem>(d: Dtype) -> impl Fn(&T, &T) -> Ordering + Sync {
    move |a: &T, b: &T| match d {
        Dtype::Uint64 => a.to_u64().cmp(&b.to_u64()),
        Dtype::Complex64 => {
            let (ar, ai) = a.to_c();
            let (br, bi) = b.to_c();
            cmp_f64(ar, br).then(cmp_f64(ai, bi))
        }
        _ if d.is_integer() || d == Dtype::Bool => a.to_i64().cmp(&b.to_i64()),
        _ => cmp_f64(a.to_f64(), b.to_f64()),
    }
}

pub fn sort(arg: bool, x: &Input, out: &mut Buffer) -> Result<()> {
    let len = x.shape.last().copied().unwrap_or(1);
    let d = x.dtype;
    crate::with_dtype!(d, T, {
        let data = contiguous::<T>(x);
        let cmp = key_cmp::<T>(d);
        if arg {
            let o = out.typed_mut::<u32>();
            let n = data.len();
            o[..n]
                .par_chunks_mut(len.max(1))
                .zip(data.par_chunks(len.max(1)))
                .for_each(|(orow, row)| {
                    let mut idx: Vec<u32> = (0..row.len() as u32).collect();
                    idx.sort_by(|&i, &j| cmp(&row[i as usize], &row[j as usize]));
                    orow.copy_from_slice(&idx);
                });
        } else {
            let o = out.typed_mut::<T>();
            let n = data.len();
            o[..n].copy_from_slice(&data);
            rows(&mut o[..n], len).for_each(|r| r.sort_by(&cmp));
        }
    });
    Ok(())
}
