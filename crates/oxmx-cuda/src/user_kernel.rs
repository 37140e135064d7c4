//! `mx.fast.cuda_kernel` / `precompiled_cuda_kernel`: a user's kernel launched on the
//! oxmx stream. Outputs live in one packed buffer (see `ops/user_kernel.rs`) that starts
//! zeroed or filled with `init_value`; inputs are passed as device pointers, optionally
//! with their shape, strides and rank.
//!
//! The kernel is the user's code: it can read and write any device memory its
//! arguments point into and beyond, like any CUDA code the user runs; oxmx checks only
//! what it hands over (SECURITY.md).

use crate::{on_device, CudaBackend};
use cudarc::driver::{CudaFunction, LaunchConfig};
use cudarc::nvrtc::Ptx;
use oxmx_core::backend::Input;
use oxmx_core::ops::user_kernel::{KernelArg, KernelCode, KernelScalar, UserKernel};
use oxmx_core::{ArrayData, Dtype, Error, Result};

/// A by-value parameter kept alive until the launch.
enum Param {
    Bool(u8),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
}

fn elem_bytes<T: Copy>(vals: &[T], to: impl Fn(T) -> Vec<u8>) -> Vec<u8> {
    vals.iter().flat_map(|&v| to(v)).collect()
}

impl CudaBackend {
    fn user_function(&self, op: &str, k: &UserKernel) -> Result<CudaFunction> {
        match &k.code {
            KernelCode::Source(src) => self.compiler.get_user(op, src, &k.name),
            KernelCode::Ptx(p) => self
                .compiler
                .load_named(op, Ptx::from_src(p.clone()), &k.name),
            KernelCode::Cubin(b) => {
                self.compiler
                    .load_named(op, Ptx::from_binary(b.clone()), &k.name)
            }
        }
    }

    /// Upload small host bytes (shapes and strides) to a fresh device buffer.
    fn upload(&self, op: &str, bytes: &[u8]) -> Result<crate::device::CudaMem> {
        let mut mem = self.alloc.alloc(op, bytes.len().max(8))?;
        if !bytes.is_empty() {
            let dst = mem.slice_mut()?;
            let mut view = dst.slice_mut(..bytes.len());
            self.alloc
                .stream
                .memcpy_htod(bytes, &mut view)
                .map_err(|e| Error::runtime(op, format!("host to device copy: {e:?}")))?;
        }
        Ok(mem)
    }

    pub(crate) fn user_kernel(
        &self,
        k: &UserKernel,
        ins: Vec<Input>,
        shape: &[usize],
    ) -> Result<ArrayData> {
        let op = "cuda_kernel";
        let ins = if k.contiguous {
            ins.into_iter()
                .map(|x| self.contiguous_input(op, x))
                .collect::<Result<Vec<_>>>()?
        } else {
            ins
        };
        let f = self.user_function(op, k)?;
        let total = shape.first().copied().unwrap_or(0);
        let (mut out, nbytes) = self.new_output(op, shape, Dtype::Uint8)?;
        self.fill_outputs(op, k, &mut out, total)?;
        // shapes / strides the signature asks for
        let mut meta = Vec::new();
        for a in &k.args {
            let bytes = match a {
                KernelArg::InputShape(i) => {
                    let s: Vec<i32> = ins[*i]
                        .shape
                        .iter()
                        .map(|&d| i32::try_from(d).unwrap_or(i32::MAX))
                        .collect();
                    elem_bytes(&s, |v| v.to_le_bytes().to_vec())
                }
                KernelArg::InputStrides(i) => {
                    let s: Vec<i64> = ins[*i].data.strides.iter().map(|&d| d as i64).collect();
                    elem_bytes(&s, |v| v.to_le_bytes().to_vec())
                }
                _ => continue,
            };
            meta.push(self.upload(op, &bytes)?);
        }
        let mut params = Vec::new();
        for a in &k.args {
            match a {
                KernelArg::InputNdim(i) => params.push(Param::I32(ins[*i].shape.len() as i32)),
                KernelArg::Scalar(s) => params.push(match *s {
                    KernelScalar::Bool(b) => Param::Bool(b as u8),
                    KernelScalar::I32(v) => Param::I32(v),
                    KernelScalar::I64(v) => Param::I64(v),
                    KernelScalar::F32(v) => Param::F32(v),
                    KernelScalar::F64(v) => Param::F64(v),
                }),
                _ => {}
            }
        }
        let mut inputs = Vec::with_capacity(ins.len());
        for x in &ins {
            let base = self.device_of(op, x)?;
            let off = x
                .data
                .offset
                .checked_mul(x.dtype.size())
                .ok_or_else(|| Error::overflow(op))?;
            inputs.push(base.slice(off.min(base.len())..));
        }
        let dst = out.slice_mut()?;
        let outs: Vec<_> = k
            .outputs
            .iter()
            .map(|(_, _, off)| dst.slice((*off).min(total)..))
            .collect();
        let blocks = |i: usize| k.grid[i].div_ceil(k.block[i]);
        let cfg = LaunchConfig {
            grid_dim: (blocks(0), blocks(1), blocks(2)),
            block_dim: (k.block[0], k.block[1], k.block[2]),
            shared_mem_bytes: k.shared_mem,
        };
        let mut pi = params.iter();
        let meta_slices = meta.iter().map(|m| m.slice()).collect::<Result<Vec<_>>>()?;
        let mut ms = meta_slices.iter();
        crate::ffi::launch(op, &self.alloc.stream, &f, cfg, |b| {
            for a in &k.args {
                match a {
                    KernelArg::Input(i) => {
                        if let Some(v) = inputs.get(*i) {
                            crate::ffi::arg(b, v);
                        }
                    }
                    KernelArg::Output(i) => {
                        if let Some(v) = outs.get(*i) {
                            crate::ffi::arg(b, v);
                        }
                    }
                    KernelArg::InputShape(_) | KernelArg::InputStrides(_) => {
                        if let Some(m) = ms.next() {
                            crate::ffi::arg(b, *m);
                        }
                    }
                    KernelArg::InputNdim(_) | KernelArg::Scalar(_) => match pi.next() {
                        Some(Param::Bool(v)) => crate::ffi::arg(b, v),
                        Some(Param::I32(v)) => crate::ffi::arg(b, v),
                        Some(Param::I64(v)) => crate::ffi::arg(b, v),
                        Some(Param::F32(v)) => crate::ffi::arg(b, v),
                        Some(Param::F64(v)) => crate::ffi::arg(b, v),
                        None => {}
                    },
                }
            }
        })?;
        Ok(on_device(out, nbytes, shape))
    }

    /// Zero the packed outputs, or write `init_value` into every output element.
    fn fill_outputs(
        &self,
        op: &str,
        k: &UserKernel,
        out: &mut crate::device::CudaMem,
        total: usize,
    ) -> Result<()> {
        let stream = &self.alloc.stream;
        let dst = out.slice_mut()?;
        stream
            .memset_zeros(dst)
            .map_err(|e| Error::runtime(op, format!("CUDA error: {e:?}")))?;
        let Some(v) = k.init else {
            return Ok(());
        };
        let mut host = vec![0u8; total];
        for (shape, dtype, off) in &k.outputs {
            let one = oxmx_core::Scalar::Float(v).to_bytes(*dtype);
            let n = oxmx_core::shape::size_of(shape);
            for j in 0..n {
                let at = off + j * one.len();
                if let Some(slot) = host.get_mut(at..at + one.len()) {
                    slot.copy_from_slice(&one);
                }
            }
        }
        let dst = out.slice_mut()?;
        if total > 0 {
            let mut view = dst.slice_mut(..total);
            stream
                .memcpy_htod(&host, &mut view)
                .map_err(|e| Error::runtime(op, format!("host to device copy: {e:?}")))?;
        }
        Ok(())
    }
}
