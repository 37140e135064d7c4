//! `mx.fast.cuda_kernel` / `precompiled_cuda_kernel`: a user's CUDA kernel as one graph
//! node. The node's value is every output packed into one byte buffer (each output at a
//! 256-byte aligned offset); `oxmx.core.fast` cuts the outputs out of it as views.

use crate::array::Array;
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::primitive::{Primitive, UserKernelRef};
use crate::shape::size_of;
use std::sync::Arc;

/// The kernel's code: CUDA C++ for NVRTC, or PTX / cubin bytes loaded as they are.
#[derive(Debug)]
pub enum KernelCode {
    Source(String),
    Ptx(String),
    Cubin(Vec<u8>),
}

/// A by-value scalar parameter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KernelScalar {
    Bool(bool),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
}

/// One kernel parameter, in signature order.
#[derive(Clone, Debug, PartialEq)]
pub enum KernelArg {
    /// Device pointer to input i.
    Input(usize),
    /// Device pointer to input i's shape (int32 per dim).
    InputShape(usize),
    /// Device pointer to input i's strides in elements (int64 per dim).
    InputStrides(usize),
    /// Input i's number of dims (int32).
    InputNdim(usize),
    /// Device pointer to output i.
    Output(usize),
    Scalar(KernelScalar),
}

#[derive(Debug)]
pub struct UserKernel {
    /// The `extern "C"` function to launch.
    pub name: String,
    pub code: KernelCode,
    pub args: Vec<KernelArg>,
    /// Total threads per dimension (MLX's convention) and threads per block.
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub shared_mem: u32,
    /// Shape, dtype and byte offset of each output in the packed buffer.
    pub outputs: Vec<(Vec<usize>, Dtype, usize)>,
    /// Value every output element starts as (0 when not given).
    pub init: Option<f64>,
    /// Copy inputs to row-contiguous order before the launch.
    pub contiguous: bool,
}

/// Alignment of each output inside the packed buffer.
pub const OUTPUT_ALIGN: usize = 256;

fn check_text(op: &str, what: &str, s: &str) -> Result<()> {
    if s.contains('\0') {
        return Err(Error::value(
            op,
            format!("The kernel {what} contains a NUL character."),
        ));
    }
    Ok(())
}

/// The packed output node of `kernel` over `inputs`.
pub fn user_kernel(op: &str, inputs: &[Array], mut kernel: UserKernel) -> Result<Array> {
    check_text(op, "name", &kernel.name)?;
    if kernel.name.is_empty() {
        return Err(Error::value(op, "The kernel name is empty."));
    }
    match &kernel.code {
        KernelCode::Source(s) | KernelCode::Ptx(s) => check_text(op, "source", s)?,
        KernelCode::Cubin(b) if b.is_empty() => {
            return Err(Error::value(op, "The compiled kernel is empty."))
        }
        KernelCode::Cubin(_) => {}
    }
    if kernel.grid.contains(&0) || kernel.block.contains(&0) {
        return Err(Error::value(
            op,
            "grid and threadgroup must be positive in every dimension.",
        ));
    }
    let threads = kernel.block.iter().try_fold(1u32, |a, &b| a.checked_mul(b));
    if threads.is_none_or(|t| t > 1024) {
        return Err(Error::value(
            op,
            format!(
                "A threadgroup of {:?} has more than 1024 threads.",
                kernel.block
            ),
        ));
    }
    for a in &kernel.args {
        let i = match a {
            KernelArg::Input(i)
            | KernelArg::InputShape(i)
            | KernelArg::InputStrides(i)
            | KernelArg::InputNdim(i) => *i,
            _ => continue,
        };
        if i >= inputs.len() {
            return Err(Error::value(
                op,
                format!("The kernel refers to input {i} of {}.", inputs.len()),
            ));
        }
    }
    // lay the outputs out in one buffer
    let mut total = 0usize;
    for (shape, dtype, off) in kernel.outputs.iter_mut() {
        total = total
            .div_ceil(OUTPUT_ALIGN)
            .checked_mul(OUTPUT_ALIGN)
            .ok_or_else(|| Error::overflow(op))?;
        *off = total;
        let bytes = size_of(shape)
            .checked_mul(dtype.size())
            .ok_or_else(|| Error::overflow(op))?;
        total = total
            .checked_add(bytes)
            .ok_or_else(|| Error::overflow(op))?;
    }
    for a in &kernel.args {
        if let KernelArg::Output(i) = a {
            if *i >= kernel.outputs.len() {
                return Err(Error::value(
                    op,
                    format!(
                        "The kernel refers to output {i} of {}.",
                        kernel.outputs.len()
                    ),
                ));
            }
        }
    }
    Ok(Array::pending(
        vec![total],
        Dtype::Uint8,
        Primitive::UserKernel(UserKernelRef(Arc::new(kernel))),
        inputs.to_vec(),
    ))
}
