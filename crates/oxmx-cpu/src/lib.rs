//! oxmx-cpu: the CPU backend. Kernels run in parallel inside each op (rayon) with
//! contiguous fast paths; matmul goes through the `gemm` crate.
//! `unsafe` is denied except in `matmul` (the one gemm call).
#![deny(unsafe_code)]

pub mod arg_reduce;
pub mod binary;
pub mod collective;
pub mod conv;
pub mod copy;
pub mod elem;
pub mod fast;
pub mod fft;
pub mod fused;
pub mod gather;
#[allow(unsafe_code)]
mod hugepages;
pub mod inplace;
mod lanes;
pub mod linalg;
pub mod matmul;
mod norm;
pub mod quantized;
pub mod random;
pub mod reduce;
pub mod scan_sort;
pub mod softmax;
pub mod special;
pub mod strided;
pub mod threads;
pub mod unary;
pub mod vmath;

pub use threads::{init_threads, num_threads};

use oxmx_core::backend::{Backend, Input};
use oxmx_core::device::DeviceType;
use oxmx_core::memory::{self, Buffer};
use oxmx_core::primitive::Primitive;
use oxmx_core::shape::size_of;
use oxmx_core::{ArrayData, Dtype, Error, Result};

pub struct CpuBackend;

/// A fresh output buffer for `shape`/`dtype`.
pub(crate) fn output(op: &str, shape: &[usize], dtype: Dtype) -> Result<Buffer> {
    let nbytes = size_of(shape)
        .checked_mul(dtype.size())
        .ok_or_else(|| Error::overflow(op))?;
    memory::alloc(op, nbytes)
}

fn input(ins: &[Input], i: usize, op: &str) -> Result<usize> {
    if i < ins.len() {
        Ok(i)
    } else {
        Err(Error::runtime(op, "missing input"))
    }
}

/// The elementwise primitives (what a fused node's steps are), into `out`.
pub(crate) fn elementwise(
    prim: &Primitive,
    ins: &[Input],
    out_dtype: Dtype,
    out: &mut [u8],
) -> Result<()> {
    let srcs: Vec<strided::Src> = ins.iter().map(strided::Src::of).collect();
    elementwise_src(prim, &srcs, out_dtype, out)
}

/// `elementwise` over borrowed operands.
pub(crate) fn elementwise_src(
    prim: &Primitive,
    ins: &[strided::Src],
    out_dtype: Dtype,
    out: &mut [u8],
) -> Result<()> {
    let op = prim.name();
    let arg = |i: usize| {
        ins.get(i)
            .ok_or_else(|| Error::runtime(op, "missing input"))
    };
    match prim {
        Primitive::Unary(u) => unary::run(*u, arg(0)?, out_dtype, out)?,
        Primitive::Binary(b) => binary::run(*b, arg(0)?, arg(1)?, out)?,
        Primitive::Select => copy::select(arg(0)?, arg(1)?, arg(2)?, out),
        Primitive::AsType(d) => copy::astype(arg(0)?, *d, out),
        _ => return Err(Error::runtime(op, "not an elementwise primitive")),
    }
    Ok(())
}

impl Backend for CpuBackend {
    fn device_type(&self) -> DeviceType {
        DeviceType::Cpu
    }

    fn name(&self) -> String {
        "cpu".to_string()
    }

    fn run(
        &self,
        prim: &Primitive,
        mut ins: Vec<Input>,
        out_shape: &[usize],
        out_dtype: Dtype,
    ) -> Result<ArrayData> {
        let op = prim.name();
        // Inputs computed on another device are read here from their host copy.
        for x in &ins {
            x.data.buffer.ensure_host(op)?;
        }
        // Buffer donation: write over an input no one else can see.
        let donated = match prim {
            Primitive::Unary(u) => inplace::unary(*u, &mut ins, out_shape, out_dtype)?,
            Primitive::Binary(b) => inplace::binary(*b, &mut ins, out_shape, out_dtype)?,
            _ => None,
        };
        if let Some(d) = donated {
            return Ok(d);
        }
        let mut out = output(op, out_shape, out_dtype)?;
        match prim {
            Primitive::Unary(_)
            | Primitive::Binary(_)
            | Primitive::Select
            | Primitive::AsType(_) => elementwise(prim, &ins, out_dtype, out.bytes_mut())?,
            Primitive::Fused(k) => fused::run(&k.0, &ins, out_shape, out_dtype, &mut out)?,
            Primitive::Copy => copy::copy(&ins[input(&ins, 0, op)?], &mut out),
            Primitive::Arange { start, step } => copy::arange(*start, *step, out_dtype, &mut out),
            Primitive::Collective { op: c, group } => {
                collective::run(*c, group, &ins, &mut out, out_dtype)?
            }
            Primitive::NumberOfElements {
                axes,
                inverted,
                ddof,
            } => {
                let x = &ins[input(&ins, 0, op)?];
                let v = oxmx_core::primitive::number_of_elements_value(
                    &x.shape, axes, *inverted, *ddof,
                );
                copy::arange(v, 0.0, out_dtype, &mut out)
            }
            Primitive::Concatenate { axis } => copy::concatenate(&ins, *axis, out_shape, &mut out)?,
            Primitive::SliceUpdate { start, strides, .. } => {
                input(&ins, 1, op)?;
                copy::slice_update(&ins[0], &ins[1], start, strides, out_shape, &mut out)?
            }
            Primitive::Reduce { op: r, axes } => {
                reduce::run(*r, &ins[input(&ins, 0, op)?], axes, &mut out)?
            }
            Primitive::ArgReduce { op: r, axis } => {
                arg_reduce::run(*r, &ins[input(&ins, 0, op)?], *axis, &mut out)?
            }
            Primitive::Softmax { .. } => softmax::run(&ins[input(&ins, 0, op)?], &mut out)?,
            Primitive::Matmul => {
                input(&ins, 1, op)?;
                matmul::run(&ins[0], &ins[1], &mut out)?
            }
            Primitive::Gather { axes } => gather::gather(&ins, axes, &mut out)?,
            Primitive::GatherAxis { axis } => gather::gather_axis(&ins, *axis, &mut out)?,
            Primitive::ScatterAxis { axis, mode } => {
                gather::scatter_axis(&ins, *axis, *mode, &mut out)?
            }
            Primitive::Scatter { axes, mode } => gather::scatter(&ins, axes, *mode, &mut out)?,
            Primitive::RandomBits { .. } => {
                random::random_bits(&ins[input(&ins, 0, op)?], &mut out)?
            }
            Primitive::Scan {
                op: sop,
                reverse,
                inclusive,
            } => scan_sort::scan(
                *sop,
                *reverse,
                *inclusive,
                &ins[input(&ins, 0, op)?],
                &mut out,
            )?,
            Primitive::Sort { arg } => scan_sort::sort(*arg, &ins[input(&ins, 0, op)?], &mut out)?,
            Primitive::Fast(k) => fast::run(k, &ins, &mut out, out_dtype)?,
            Primitive::Linalg(k) => linalg::run(*k, &ins, &mut out)?,
            Primitive::Fft {
                inverse,
                real,
                scale,
            } => fft::run(*inverse, *real, *scale, &ins, out_shape, &mut out)?,
            Primitive::Conv { spec, kind } => conv::run(spec, *kind, &ins, out_shape, &mut out)?,
            Primitive::Dequantize(s) => quantized::dequantize(s, &ins, &mut out, out_dtype)?,
            Primitive::QuantizedMatmul { spec, transpose } => {
                quantized::matmul(spec, *transpose, &ins, &mut out, out_dtype)?
            }
            Primitive::GatherQmm { spec, transpose } => {
                quantized::gather_matmul(spec, *transpose, &ins, &mut out, out_dtype)?
            }
            Primitive::UserKernel(_) => {
                return Err(Error::unsupported(
                    op,
                    "A custom CUDA kernel runs only on the GPU (use the gpu device or stream).",
                ))
            }
            Primitive::Reshape { .. }
            | Primitive::Transpose { .. }
            | Primitive::Broadcast
            | Primitive::Slice { .. }
            | Primitive::AsStrided { .. }
            | Primitive::StopGradient
            | Primitive::Custom(_) => {
                return Err(Error::runtime(
                    op,
                    "View primitives are executed by the core.",
                ))
            }
        }
        Ok(ArrayData::contiguous(out, out_shape))
    }
}
