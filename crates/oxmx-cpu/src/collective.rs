//! Collectives (`oxmx_core::distributed`): the input made row-contiguous, then handed
//! to the group's engine. Engines reduce float32/float64, integers and complex64 in
//! their own types; float16 and bfloat16 are reduced in float32 (and rounded once),
//! bool as bytes (sum and max are "or", min is "and"), and 8- and 16-bit integers are
//! summed in int32 and wrapped back (as NumPy and MLX wrap; OpenMPI's vectorized 8-bit
//! sums saturate instead).

use crate::copy;
use half::{bf16, f16};
use oxmx_core::backend::Input;
use oxmx_core::distributed::{CollectiveOp, Group, ReduceKind};
use oxmx_core::memory::Buffer;
use oxmx_core::{Dtype, Error, Result};

/// Runs `op` of `group` over `ins` into `out` (already sized for the output).
pub fn run(
    op: CollectiveOp,
    group: &Group,
    ins: &[Input],
    out: &mut Buffer,
    out_dtype: Dtype,
) -> Result<()> {
    let g = &group.0;
    if let CollectiveOp::Recv { src } = op {
        return g.recv(out.bytes_mut(), src);
    }
    let x = ins
        .first()
        .ok_or_else(|| Error::runtime(op.name(), "missing input"))?;
    // a row-contiguous input is handed over as it is; others are copied first
    let copied;
    let send: &[u8] = match contiguous_bytes(x) {
        Some(b) => b,
        None => {
            let mut c = crate::output(op.name(), &x.shape, x.dtype)?;
            copy::copy(x, &mut c);
            copied = c;
            copied.bytes()
        }
    };
    match op {
        CollectiveOp::AllReduce(kind) => reduce(kind, group, out_dtype, send, out.bytes_mut()),
        CollectiveOp::AllGather => g.all_gather(send, out.bytes_mut()),
        CollectiveOp::SumScatter => with_reducible(
            out_dtype,
            ReduceKind::Sum,
            send,
            out.bytes_mut(),
            |_, d, s, r| g.reduce_scatter(d, s, r),
        ),
        CollectiveOp::Send { dst } => {
            g.send(send, dst)?;
            out.bytes_mut().copy_from_slice(send);
            Ok(())
        }
        CollectiveOp::Recv { .. } => Ok(()),
    }
}

/// The bytes of a row-contiguous input, in place.
fn contiguous_bytes(x: &Input) -> Option<&[u8]> {
    if !x.data.is_contiguous(&x.shape) {
        return None;
    }
    let es = x.dtype.size();
    let start = x.data.offset.checked_mul(es)?;
    let len = oxmx_core::shape::size_of(&x.shape).checked_mul(es)?;
    x.data.buffer.bytes().get(start..start.checked_add(len)?)
}

fn reduce(
    kind: ReduceKind,
    group: &Group,
    dtype: Dtype,
    send: &[u8],
    recv: &mut [u8],
) -> Result<()> {
    with_reducible(dtype, kind, send, recv, |k, d, s, r| {
        group.0.all_reduce(k, d, s, r)
    })
}

/// Calls `f` with a dtype every engine reduces: half types through float32 copies,
/// bool as uint8 (sum becomes max: "or").
fn with_reducible(
    dtype: Dtype,
    kind: ReduceKind,
    send: &[u8],
    recv: &mut [u8],
    f: impl FnOnce(ReduceKind, Dtype, &[u8], &mut [u8]) -> Result<()>,
) -> Result<()> {
    match dtype {
        Dtype::Float16 => widened::<f16, f32>(kind, send, recv, f16::to_f32, f16::from_f32, f),
        Dtype::Bfloat16 => widened::<bf16, f32>(kind, send, recv, bf16::to_f32, bf16::from_f32, f),
        Dtype::Int8 if kind == ReduceKind::Sum => {
            widened::<i8, i32>(kind, send, recv, i32::from, |v| v as i8, f)
        }
        Dtype::Uint8 if kind == ReduceKind::Sum => {
            widened::<u8, i32>(kind, send, recv, i32::from, |v| v as u8, f)
        }
        Dtype::Int16 => widened::<i16, i32>(kind, send, recv, i32::from, |v| v as i16, f),
        Dtype::Uint16 => widened::<u16, i32>(kind, send, recv, i32::from, |v| v as u16, f),
        Dtype::Bool => {
            let k = if kind == ReduceKind::Sum {
                ReduceKind::Max
            } else {
                kind
            };
            f(k, Dtype::Uint8, send, recv)
        }
        d => f(kind, d, send, recv),
    }
}

/// A wider type to reduce in: float32 for the half types, int32 (wrapping back) for
/// small integers.
trait Wide: bytemuck::Pod + Default {
    const DTYPE: Dtype;
}
impl Wide for f32 {
    const DTYPE: Dtype = Dtype::Float32;
}
impl Wide for i32 {
    const DTYPE: Dtype = Dtype::Int32;
}

fn widened<T: bytemuck::Pod, W: Wide>(
    kind: ReduceKind,
    send: &[u8],
    recv: &mut [u8],
    up: fn(T) -> W,
    down: fn(W) -> T,
    f: impl FnOnce(ReduceKind, Dtype, &[u8], &mut [u8]) -> Result<()>,
) -> Result<()> {
    let wide: Vec<W> = send
        .chunks_exact(std::mem::size_of::<T>())
        .map(|c| up(bytemuck::pod_read_unaligned(c)))
        .collect();
    let n_out = recv.len() / std::mem::size_of::<T>();
    let mut out = vec![W::default(); n_out];
    f(
        kind,
        W::DTYPE,
        bytemuck::cast_slice(&wide),
        bytemuck::cast_slice_mut(&mut out),
    )?;
    for (c, v) in recv.chunks_exact_mut(std::mem::size_of::<T>()).zip(out) {
        c.copy_from_slice(bytemuck::bytes_of(&down(v)));
    }
    Ok(())
}
