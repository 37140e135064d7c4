//! Data movement: copy to contiguous, dtype casts, arange, select, concatenate and
//! slice_update.

use crate::elem::{Elem, TypedMut};
use crate::strided::{map1, map3, Src, View};
use oxmx_core::backend::Input;
use oxmx_core::memory::Buffer;
use oxmx_core::shape::{contiguous_strides, size_of};
use oxmx_core::{Dtype, Error, Result};
use rayon::prelude::*;

/// Strided → contiguous copy (by element size; dtype-agnostic).
pub fn copy(x: &Input, out: &mut Buffer) {
    crate::with_size!(x.dtype.size(), T, {
        map1(&x.shape, View::<T>::of(x), out.typed_mut::<T>(), |v| v)
    })
}

fn cast_to<S: Elem + Sync, D: Elem + Send>(x: &Src, out: &mut [u8], out_dtype: Dtype) {
    let v = View::<S>::of(x);
    let o = out.typed_mut::<D>();
    let s = &x.shape;
    if out_dtype == Dtype::Bool {
        // stored as D = u8
        map1(s, v, o, |e: S| D::from_i64(!e.is_zero() as i64));
        return;
    }
    match x.dtype {
        Dtype::Bool => map1(s, v, o, |e: S| D::from_i64((!e.is_zero()) as i64)),
        Dtype::Uint64 => map1(s, v, o, |e: S| D::from_u64(e.to_u64())),
        d if d.is_integer() => map1(s, v, o, |e: S| D::from_i64(e.to_i64())),
        Dtype::Complex64 => map1(s, v, o, |e: S| {
            let (re, im) = e.to_c();
            D::from_c(re, im)
        }),
        _ => map1(s, v, o, |e: S| D::from_f64(e.to_f64())),
    }
}

pub fn astype(x: &Src, out_dtype: Dtype, out: &mut [u8]) {
    // Half types to float32 (every half model's first step): whole runs through half's
    // slice conversion (F16C where the CPU has it) instead of a float64 round trip per
    // element. The same values: widening is exact, and a NaN keeps its sign and payload
    // and gets the quiet bit either way.
    match (x.dtype, out_dtype) {
        (Dtype::Float16, Dtype::Float32) => {
            use half::slice::HalfFloatSliceExt;
            let o = out.typed_mut::<f32>();
            return crate::strided::map1_runs(x.shape, View::<half::f16>::of(x), o, |a, o| {
                let n = a.len().min(o.len());
                a[..n].convert_to_f32_slice(&mut o[..n])
            });
        }
        (Dtype::Bfloat16, Dtype::Float32) => {
            let o = out.typed_mut::<f32>();
            return crate::strided::map1_runs(x.shape, View::<half::bf16>::of(x), o, |a, o| {
                for (d, s) in o.iter_mut().zip(a) {
                    let v = f32::from_bits((s.to_bits() as u32) << 16);
                    *d = if v.is_nan() {
                        f32::from_bits(v.to_bits() | 0x0040_0000)
                    } else {
                        v
                    };
                }
            });
        }
        // float32 to the half types, the mixed-precision model's other conversion: one
        // rounding either way, so the same bits as the float64 route (a NaN keeps its
        // sign and the top of its payload, quiet, as half's float64 conversion does for
        // float16; bfloat16 NaNs become 0x7FC0 as MLX stores them)
        (Dtype::Float32, Dtype::Float16) => {
            use half::slice::HalfFloatSliceExt;
            let o = out.typed_mut::<half::f16>();
            return crate::strided::map1_runs(x.shape, View::<f32>::of(x), o, |a, o| {
                let n = a.len().min(o.len());
                o[..n].convert_from_f32_slice(&a[..n])
            });
        }
        (Dtype::Float32, Dtype::Bfloat16) => {
            let o = out.typed_mut::<half::bf16>();
            return crate::strided::map1_runs(x.shape, View::<f32>::of(x), o, |a, o| {
                for (d, s) in o.iter_mut().zip(a) {
                    *d = crate::elem::bf16_of(*s);
                }
            });
        }
        _ => {}
    }
    crate::with_dtype!(x.dtype, S, {
        crate::with_dtype!(out_dtype, D, cast_to::<S, D>(x, out, out_dtype))
    })
}

pub fn arange(start: f64, step: f64, dtype: Dtype, out: &mut Buffer) {
    crate::with_dtype!(dtype, T, {
        let o = out.typed_mut::<T>();
        if dtype.is_integer() && start.fract() == 0.0 && step.fract() == 0.0 {
            let (s, st) = (start as i64, step as i64);
            o.par_iter_mut()
                .with_min_len(1 << 14)
                .enumerate()
                .for_each(|(i, v)| *v = T::from_i64(s.wrapping_add((i as i64).wrapping_mul(st))));
        } else {
            o.par_iter_mut()
                .with_min_len(1 << 14)
                .enumerate()
                .for_each(|(i, v)| *v = T::from_f64(start + i as f64 * step));
        }
    })
}

pub fn select(c: &Src, x: &Src, y: &Src, out: &mut [u8]) {
    crate::with_size!(x.dtype.size(), T, {
        map3(
            x.shape,
            View::<u8>::of(c),
            View::<T>::of(x),
            View::<T>::of(y),
            out.typed_mut::<T>(),
            |c, a, b| if c != 0 { a } else { b },
        )
    })
}

/// Copy a strided input into a window of a contiguous output described by
/// (offset, strides) in output elements.
fn copy_into<T: bytemuck::Pod + Send + Sync>(
    x: &Input,
    out: &mut [T],
    off: usize,
    ostrides: &[isize],
) -> Result<()> {
    let n = size_of(&x.shape);
    if n == 0 {
        return Ok(());
    }
    let err = || Error::runtime("copy", "offset out of range");
    let at = |base: isize, i: usize, step: isize| -> Result<usize> {
        (i as isize)
            .checked_mul(step)
            .and_then(|v| v.checked_add(base))
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(err)
    };
    let data = x.data.buffer.typed::<T>();
    let nd = x.shape.len();
    if nd == 0 {
        let v = *data.get(x.data.offset).ok_or_else(err)?;
        *out.get_mut(off).ok_or_else(err)? = v;
        return Ok(());
    }
    // walk the outer indices with an odometer and copy one innermost run at a time
    // (a memcpy when both sides are contiguous there)
    let inner = x.shape[nd - 1];
    let (istep, ostep) = (x.data.strides[nd - 1], ostrides[nd - 1]);
    let mut idx = vec![0usize; nd - 1];
    let (mut s, mut d) = (x.data.offset as isize, off as isize);
    loop {
        if istep == 1 && ostep == 1 {
            let (s0, d0) = (at(s, 0, 1)?, at(d, 0, 1)?);
            let src = data.get(s0..s0 + inner).ok_or_else(err)?;
            out.get_mut(d0..d0 + inner)
                .ok_or_else(err)?
                .copy_from_slice(src);
        } else {
            for k in 0..inner {
                let v = *data.get(at(s, k, istep)?).ok_or_else(err)?;
                *out.get_mut(at(d, k, ostep)?).ok_or_else(err)? = v;
            }
        }
        let mut ax = nd - 1;
        loop {
            if ax == 0 {
                return Ok(());
            }
            ax -= 1;
            idx[ax] += 1;
            s += x.data.strides[ax];
            d += ostrides[ax];
            if idx[ax] < x.shape[ax] {
                break;
            }
            s -= x.data.strides[ax] * x.shape[ax] as isize;
            d -= ostrides[ax] * x.shape[ax] as isize;
            idx[ax] = 0;
        }
    }
}

pub fn concatenate(
    ins: &[Input],
    axis: usize,
    out_shape: &[usize],
    out: &mut Buffer,
) -> Result<()> {
    let Some(first) = ins.first() else {
        return Ok(());
    };
    let ostr = contiguous_strides(out_shape);
    crate::with_size!(first.dtype.size(), T, {
        let o = out.typed_mut::<T>();
        let mut pos = 0usize;
        for x in ins {
            let off = pos * ostr[axis] as usize;
            copy_into::<T>(x, o, off, &ostr)?;
            pos += x.shape[axis];
        }
    });
    Ok(())
}

pub fn slice_update(
    src: &Input,
    upd: &Input,
    start: &[i64],
    steps: &[i64],
    out_shape: &[usize],
    out: &mut Buffer,
) -> Result<()> {
    let ostr = contiguous_strides(out_shape);
    crate::with_size!(src.dtype.size(), T, {
        let o = out.typed_mut::<T>();
        map1(out_shape, View::<T>::of(src), o, |v| v);
        let mut off: isize = 0;
        let mut wstr = Vec::with_capacity(ostr.len());
        for i in 0..ostr.len() {
            off += start[i] as isize * ostr[i];
            wstr.push(ostr[i] * steps[i] as isize);
        }
        copy_into::<T>(upd, o, off as usize, &wstr)?;
    });
    Ok(())
}
