//! Copies into windows of a contiguous output: concatenate and slice_update. They move
//! elements by size, so every dtype (complex64 included) runs on the GPU. Each window is
//! checked to lie inside the output before the launch.

use crate::ffi::{self, Meta, MAX_DIMS};
use crate::{on_device, unsupported, CudaBackend};
use cudarc::driver::CudaSlice;
use oxmx_core::backend::Input;
use oxmx_core::shape::{collapse_dims, contiguous_strides, size_of};
use oxmx_core::{ArrayData, Dtype, Error, Result};

fn copy_src(elem: usize) -> Option<String> {
    let t = match elem {
        1 => "unsigned char",
        2 => "unsigned short",
        4 => "unsigned int",
        8 => "unsigned long long",
        _ => return None,
    };
    Some(format!(
        "{}\nextern \"C\" __global__ void k(const {t}* __restrict__ src, {t}* __restrict__ dst, Meta m) {{\n\
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < m.n; i += (long long)gridDim.x * blockDim.x) {{\n\
    long long idx[2]; locate(m, i, idx, 2); dst[idx[1]] = src[idx[0]];\n  }}\n}}\n",
        crate::kernels::PRELUDE
    ))
}

/// Whether the window (offset, strides over `shape`) lies inside `[0, n_out)`.
fn window_fits(shape: &[usize], strides: &[isize], off: isize, n_out: usize) -> bool {
    let (mut lo, mut hi) = (off as i128, off as i128);
    for (&l, &s) in shape.iter().zip(strides) {
        let span = (l as i128 - 1) * s as i128;
        if span < 0 {
            lo += span;
        } else {
            hi += span;
        }
    }
    lo >= 0 && hi < n_out as i128
}

impl CudaBackend {
    /// Copy `x` into the window (`off`, `ostrides`) of `dst`, which holds `n_out`
    /// elements of `x`'s dtype.
    pub(crate) fn copy_into(
        &self,
        op: &str,
        x: &Input,
        dst: &mut CudaSlice<u8>,
        off: isize,
        ostrides: &[isize],
        n_out: usize,
    ) -> Result<()> {
        let n = size_of(&x.shape);
        if n == 0 {
            return Ok(());
        }
        if ostrides.len() != x.shape.len()
            || !window_fits(&x.shape, ostrides, off, n_out)
            || n_out.saturating_mul(x.dtype.size()) > dst.len()
        {
            return Err(Error::runtime(op, "copy window outside the output"));
        }
        let (cs, cst) = collapse_dims(&x.shape, &[&x.data.strides, ostrides]);
        if cs.len() > MAX_DIMS {
            return Err(unsupported(op, "A copy over more than 8 dimensions"));
        }
        let mut m = Meta {
            ndim: cs.len() as i64,
            n: n as i64,
            ..Default::default()
        };
        m.offset[0] = x.data.offset as i64;
        m.offset[1] = off as i64;
        for (d, &l) in cs.iter().enumerate() {
            m.shape[d] = l as i64;
            for (ms, cs) in m.strides.iter_mut().zip(&cst) {
                ms[d] = cs[d] as i64;
            }
        }
        let code = copy_src(x.dtype.size()).ok_or_else(|| unsupported(op, "This dtype"))?;
        let f = self.compiler.get(op, code)?;
        let s = self.device_of(op, x)?;
        ffi::launch(op, &self.alloc.stream, &f, self.grid(n), |b| {
            ffi::arg(b, s);
            ffi::arg(b, &*dst);
            ffi::arg(b, &m);
        })
    }

    /// A fresh device buffer for an output of `shape` and `dtype` (size checked).
    pub(crate) fn new_output(
        &self,
        op: &str,
        shape: &[usize],
        dtype: Dtype,
    ) -> Result<(crate::device::CudaMem, usize)> {
        let nbytes = size_of(shape)
            .checked_mul(dtype.size())
            .ok_or_else(|| Error::overflow(op))?;
        let _span = crate::prof::span(crate::prof::Phase::Alloc);
        Ok((self.alloc.alloc(op, nbytes)?, nbytes))
    }

    pub(crate) fn concatenate(
        &self,
        op: &str,
        ins: &[Input],
        axis: usize,
        shape: &[usize],
        dtype: Dtype,
    ) -> Result<ArrayData> {
        let (mut out, nbytes) = self.new_output(op, shape, dtype)?;
        let ostr = contiguous_strides(shape);
        let ax_stride = *ostr
            .get(axis)
            .ok_or_else(|| Error::runtime(op, "Bad axis."))?;
        let n_out = size_of(shape);
        let mut pos = 0isize;
        for x in ins {
            if x.dtype != dtype {
                return Err(unsupported(op, "Inputs of another dtype"));
            }
            let dst = out.slice_mut()?;
            self.copy_into(op, x, dst, pos * ax_stride, &ostr, n_out)?;
            pos += *x
                .shape
                .get(axis)
                .ok_or_else(|| Error::runtime(op, "Bad axis."))? as isize;
        }
        Ok(on_device(out, nbytes, shape))
    }

    pub(crate) fn slice_update(
        &self,
        op: &str,
        ins: &[Input],
        start: &[i64],
        steps: &[i64],
        shape: &[usize],
        dtype: Dtype,
    ) -> Result<ArrayData> {
        let (Some(src), Some(upd)) = (ins.first(), ins.get(1)) else {
            return Err(Error::runtime(op, "missing input"));
        };
        if src.dtype != dtype || upd.dtype != dtype {
            return Err(unsupported(op, "Inputs of another dtype"));
        }
        let (mut out, nbytes) = self.new_output(op, shape, dtype)?;
        let ostr = contiguous_strides(shape);
        let n_out = size_of(shape);
        let dst = out.slice_mut()?;
        self.copy_into(op, src, dst, 0, &ostr, n_out)?;
        if start.len() != ostr.len() || steps.len() != ostr.len() {
            return Err(Error::runtime(op, "Bad slice."));
        }
        let mut off = 0isize;
        let mut wstr = Vec::with_capacity(ostr.len());
        for ((&st, &sp), &o) in start.iter().zip(steps).zip(&ostr) {
            let s = isize::try_from(st).map_err(|_| Error::overflow(op))?;
            let p = isize::try_from(sp).map_err(|_| Error::overflow(op))?;
            off = s
                .checked_mul(o)
                .and_then(|v| off.checked_add(v))
                .ok_or_else(|| Error::overflow(op))?;
            wstr.push(p.checked_mul(o).ok_or_else(|| Error::overflow(op))?);
        }
        self.copy_into(op, upd, dst, off, &wstr, n_out)?;
        Ok(on_device(out, nbytes, shape))
    }
}
