//! Copies into windows of a contiguous output: concatenate and slice_update. They move
//! elements by size, so every dtype (complex64 included) runs on the GPU. Each window is
//! checked to lie inside the output before the launch.

use crate::ffi::{self, Meta, MAX_DIMS};
use crate::strided_walk::locate_unrolled;
use crate::{on_device, unsupported, CudaBackend};
use cudarc::driver::CudaSlice;
use oxmx_core::backend::Input;
use oxmx_core::shape::{collapse_dims, contiguous_strides, size_of};
use oxmx_core::{ArrayData, Dtype, Error, Result};

/// The CUDA type that moves `elem` bytes.
fn unit_type(elem: usize) -> Option<&'static str> {
    Some(match elem {
        1 => "unsigned char",
        2 => "unsigned short",
        4 => "unsigned int",
        8 => "unsigned long long",
        16 => "uint4",
        _ => return None,
    })
}

/// Element copies over `ndim` collapsed dimensions (`narrow`: at most `u32::MAX`).
fn copy_src(elem: usize, ndim: usize, narrow: bool) -> Option<String> {
    let t = unit_type(elem)?;
    let at = locate_unrolled(ndim, &[0, 1], narrow);
    Some(format!(
        "{}\nextern \"C\" __global__ void k(const {t}* __restrict__ src, {t}* __restrict__ dst, Meta m) {{\n\
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < m.n; i += (long long)gridDim.x * blockDim.x) {{\n\
{at}    dst[j1] = src[j0];\n  }}\n}}\n",
        crate::kernels::PRELUDE
    ))
}

/// Copies whose innermost axis is contiguous on both sides and long: a block row per row
/// of it (the row's start found once, from the outer axes in `m`), each thread moving four
/// elements of the row with no index arithmetic. `m.n` is the number of rows.
fn copy_rows_src(elem: usize, ndim: usize, narrow: bool) -> Option<String> {
    let t = unit_type(elem)?;
    let at = locate_unrolled(ndim, &[0, 1], narrow);
    Some(format!(
        "{}\nextern \"C\" __global__ void k(const {t}* __restrict__ src, {t}* __restrict__ dst, Meta m, long long cols) {{\n\
  for (long long i = blockIdx.y; i < m.n; i += gridDim.y) {{\n\
{at}    const {t}* s = src + j0; {t}* d = dst + j1;\n\
    for (long long c = (long long)blockIdx.x * blockDim.x * 4 + threadIdx.x; c < cols; c += (long long)gridDim.x * blockDim.x * 4) {{\n\
      {t} v[4];\n\
      #pragma unroll\n\
      for (int j = 0; j < 4; ++j) if (c + j * blockDim.x < cols) v[j] = s[c + j * blockDim.x];\n\
      #pragma unroll\n\
      for (int j = 0; j < 4; ++j) if (c + j * blockDim.x < cols) d[c + j * blockDim.x] = v[j];\n\
    }}\n\
  }}\n}}\n",
        crate::kernels::PRELUDE
    ))
}

/// Rows at least this long take `copy_rows_src`.
const MIN_ROW: usize = 256;

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
        let (mut cs, mut cst) = collapse_dims(&x.shape, &[&x.data.strides, ostrides]);
        if cs.len() > MAX_DIMS {
            return Err(unsupported(op, "A copy over more than 8 dimensions"));
        }
        let (mut es, mut n) = (x.dtype.size(), n);
        let mut offs = [x.data.offset as i64, off as i64];
        // An axis contiguous on both sides (a transposed matrix's is not the last one)
        // goes last. When it, every other stride and both offsets are whole 16-byte
        // units, 16-byte units are moved; when it is long, it is walked by rows.
        if let Some(d) = (0..cs.len()).rev().find(|&d| cst.iter().all(|s| s[d] == 1)) {
            let mut cols = cs.remove(d);
            for s in cst.iter_mut() {
                s.remove(d);
            }
            let per = 16 / es;
            if es < 16
                && 16 % es == 0
                && cols % per == 0
                && offs.iter().all(|o| o % per as i64 == 0)
                && cst.iter().flatten().all(|s| s % per as isize == 0)
            {
                cols /= per;
                n /= per;
                es = 16;
                offs = offs.map(|o| o / per as i64);
                for s in cst.iter_mut().flatten() {
                    *s /= per as isize;
                }
            }
            if cols >= MIN_ROW {
                return self.copy_rows(op, x, dst, (es, offs), (&cs, &cst), cols);
            }
            cs.push(cols);
            for s in cst.iter_mut() {
                s.push(1);
            }
        }
        let mut m = Meta {
            ndim: cs.len() as i64,
            n: n as i64,
            offset: [offs[0], offs[1], 0],
            ..Default::default()
        };
        for (d, &l) in cs.iter().enumerate() {
            m.shape[d] = l as i64;
            for (ms, cs) in m.strides.iter_mut().zip(&cst) {
                ms[d] = cs[d] as i64;
            }
        }
        let (nd, small) = (cs.len(), u32::try_from(n).is_ok());
        let name = format!("{op}_copy");
        let f = self
            .compiler
            .get_keyed(&name, format!("{name} {es} {nd} {small}"), || {
                copy_src(es, nd, small).ok_or_else(|| unsupported(op, "This dtype"))
            })?;
        let s = self.device_of(op, x)?;
        ffi::launch(op, &self.alloc.stream, &f, self.grid(n), |b| {
            ffi::arg(b, s);
            ffi::arg(b, &*dst);
            ffi::arg(b, &m);
        })
    }

    /// `copy_into` by rows of `cols` contiguous units of `es` bytes, starting at `offs`
    /// (source, destination); the other axes' lengths and strides (source, destination),
    /// in units, already checked to fit.
    fn copy_rows(
        &self,
        op: &str,
        x: &Input,
        dst: &mut CudaSlice<u8>,
        (es, offs): (usize, [i64; 2]),
        (shape, strides): (&[usize], &[Vec<isize>]),
        cols: usize,
    ) -> Result<()> {
        let rows = size_of(shape);
        let mut m = Meta {
            ndim: shape.len() as i64,
            n: rows as i64,
            offset: [offs[0], offs[1], 0],
            ..Default::default()
        };
        for (d, &l) in shape.iter().enumerate() {
            m.shape[d] = l as i64;
            for (ms, cs) in m.strides.iter_mut().zip(strides) {
                ms[d] = cs[d] as i64;
            }
        }
        let (nd, small) = (shape.len(), u32::try_from(rows).is_ok());
        let name = format!("{op}_copy_rows");
        let f = self
            .compiler
            .get_keyed(&name, format!("{name} {es} {nd} {small}"), || {
                copy_rows_src(es, nd, small).ok_or_else(|| unsupported(op, "This dtype"))
            })?;
        let s = self.device_of(op, x)?;
        let per_block = 256 * 4;
        let cfg = cudarc::driver::LaunchConfig {
            grid_dim: (
                cols.div_ceil(per_block).min(1 << 16) as u32,
                rows.clamp(1, 65_535) as u32,
                1,
            ),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let cols = cols as i64;
        ffi::launch(op, &self.alloc.stream, &f, cfg, |b| {
            ffi::arg(b, s);
            ffi::arg(b, &*dst);
            ffi::arg(b, &m);
            ffi::arg(b, &cols);
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
