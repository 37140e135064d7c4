//! Collectives on the GPU. A group whose engine is NCCL runs over device memory on the
//! backend's stream; any other group (MPI) runs on the CPU backend over host copies,
//! which is that engine's design rather than a fallback.
//!
//! NCCL reduces 8/32/64-bit integers and the float types natively; the other dtypes go
//! through one it has: bool as uint8 (sum is "or"), int16/uint16 through int32 (sums
//! wrap back, as on the CPU), complex64 sums as pairs of float32.

use crate::nccl::{nccl_type, NcclComm, NcclType, Span, NCCL_FLOAT32};
use crate::{on_device, CudaBackend};
use oxmx_core::backend::Input;
use oxmx_core::distributed::{CollectiveOp, Group, ReduceKind};
use oxmx_core::primitive::Primitive;
use oxmx_core::shape::size_of;
use oxmx_core::{ArrayData, Dtype, Error, Result};

impl CudaBackend {
    pub(crate) fn collective(
        &self,
        prim: &Primitive,
        op: CollectiveOp,
        group: &Group,
        ins: Vec<Input>,
        shape: &[usize],
        dtype: Dtype,
    ) -> Result<ArrayData> {
        let Some(nccl) = group.0.as_any().downcast_ref::<NcclComm>() else {
            return self.host_fallback(prim, ins, shape, dtype);
        };
        let name = op.name();
        if let CollectiveOp::Recv { src } = op {
            let (mut out, nbytes) = self.new_output(name, shape, dtype)?;
            nccl.recv_dev(out.slice_mut()?, nbytes, src)?;
            return Ok(on_device(out, nbytes, shape));
        }
        let x = ins
            .into_iter()
            .next()
            .ok_or_else(|| Error::runtime(name, "missing input"))?;
        let kind = match op {
            CollectiveOp::AllReduce(k) => Some(k),
            CollectiveOp::SumScatter => Some(ReduceKind::Sum),
            _ => None,
        };
        if kind.is_some() && matches!(dtype, Dtype::Int16 | Dtype::Uint16) {
            // through int32: exact for max/min, and sums wrap back on the cast down
            let wide = self.cast(x, Dtype::Int32)?;
            let r = self.collective(prim, op, group, vec![wide], shape, Dtype::Int32)?;
            let r = Input {
                shape: shape.to_vec(),
                dtype: Dtype::Int32,
                data: r,
                donatable: true,
            };
            return self.cast(r, dtype).map(|i| i.data);
        }
        let x = self.contiguous_input(name, x)?;
        let len = size_of(&x.shape)
            .checked_mul(dtype.size())
            .ok_or_else(|| Error::overflow(name))?;
        let src = Span {
            slice: self.device_of(name, &x)?,
            offset: 0,
            len,
        };
        if let CollectiveOp::Send { dst } = op {
            // the output is the input itself
            nccl.send_dev(src, dst)?;
            return Ok(x.data.clone());
        }
        let (mut out, nbytes) = self.new_output(name, shape, dtype)?;
        match (op, kind) {
            (CollectiveOp::AllGather, _) => nccl.all_gather_dev(src, out.slice_mut()?)?,
            (CollectiveOp::AllReduce(_), Some(k)) => {
                let (t, k, es) = reducible(name, dtype, k)?;
                nccl.all_reduce_dev(k, t, es, src, out.slice_mut()?)?
            }
            (CollectiveOp::SumScatter, Some(k)) => {
                let (t, k, es) = reducible(name, dtype, k)?;
                nccl.reduce_scatter_dev(k, t, es, src, out.slice_mut()?)?
            }
            _ => return Err(Error::runtime(name, "unexpected collective")),
        }
        Ok(on_device(out, nbytes, shape))
    }

    /// `x` converted to `dtype` on the device.
    fn cast(&self, x: Input, dtype: Dtype) -> Result<Input> {
        let shape = x.shape.clone();
        let data = self.run_native(&Primitive::AsType(dtype), vec![x], &shape, dtype)?;
        Ok(Input {
            shape,
            dtype,
            data,
            donatable: true,
        })
    }
}

/// The NCCL type, reduction and element size that reduce `dtype` by `kind`.
fn reducible(op: &str, dtype: Dtype, kind: ReduceKind) -> Result<(NcclType, ReduceKind, usize)> {
    match dtype {
        Dtype::Bool => {
            let k = if kind == ReduceKind::Sum {
                ReduceKind::Max
            } else {
                kind
            };
            Ok((nccl_type(Dtype::Uint8).unwrap_or_default(), k, 1))
        }
        Dtype::Complex64 if kind == ReduceKind::Sum => Ok((NCCL_FLOAT32, kind, 4)),
        d => nccl_type(d)
            .map(|t| (t, kind, d.size()))
            .ok_or_else(|| Error::value(op, format!("NCCL cannot reduce {d} arrays."))),
    }
}
