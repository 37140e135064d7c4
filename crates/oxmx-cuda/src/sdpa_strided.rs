//! Attention on strided operands through cuDNN: q, k, v (and in the backward the output
//! and its cotangent) that are views with whole 16-byte rows and offsets — the heads of a
//! fused `(b, l, 3·h·d)` projection — are handed to cuDNN with their strides instead of
//! being copied to packed `[b, h, l, d]` arrays, and such a forward writes its output with
//! the heads interleaved per position. Anything else (or a layout cuDNN declines) goes
//! through `fast.rs`'s copies.

use crate::{on_device, CudaBackend};
use oxmx_core::backend::Input;
use oxmx_core::memory::Buffer;
use oxmx_core::primitive::{FastKernel, SdpaMask};
use oxmx_core::{ArrayData, Dtype, Error, Result};
use std::sync::Arc;

/// The `[b, h, l, d]` element strides of a 2-byte attention operand cuDNN can read in
/// place: the last axis contiguous, the other strides and the offset whole 16-byte
/// units (axes of length 1 take the packed stride); None otherwise.
fn sdpa_layout(x: &Input) -> Option<[usize; 4]> {
    const UNIT: usize = 8; // 2-byte elements per 16 bytes
    let [_, h, l, d] = <[usize; 4]>::try_from(x.shape.as_slice()).ok()?;
    if x.dtype.size() != 2 || !x.data.offset.is_multiple_of(UNIT) {
        return None;
    }
    let mut out = [0usize; 4];
    for (i, slot) in out.iter_mut().enumerate() {
        let s = usize::try_from(*x.data.strides.get(i)?).ok()?;
        let n = *x.shape.get(i)?;
        let ok = n == 1
            || if i == 3 {
                s == 1
            } else {
                s != 0 && s.is_multiple_of(UNIT)
            };
        if !ok {
            return None;
        }
        *slot = s;
    }
    let dims = <[usize; 4]>::try_from(x.shape.as_slice()).ok()?;
    sdpa_normalized(dims, out, h, l, d)
}

/// `strides` of a `[b, h, l, d]` operand with each axis of length 1 given its packed
/// stride (any stride reads it the same), so that equal layouts get equal keys.
fn sdpa_normalized(
    dims: [usize; 4],
    strides: [usize; 4],
    h: usize,
    l: usize,
    d: usize,
) -> Option<[usize; 4]> {
    let packed = crate::cudnn_sdpa::packed4(h, l, d)?;
    let mut out = strides;
    for ((slot, &n), &p) in out.iter_mut().zip(&dims).zip(&packed) {
        if n == 1 {
            *slot = p;
        }
    }
    Some(out)
}

impl CudaBackend {
    /// Attention whose q, k, v (and, for the gradient, output and cotangent) are strided
    /// views cuDNN can read in place: the forward writes its output with the heads
    /// interleaved per position (`[b, l, h, d]` in memory, so the usual transpose back
    /// and merge of the heads is a view); the gradient comes out packed as always. None
    /// when the operands are already packed (the ordinary path), when cuDNN is not the
    /// route, or when it declines the layout: the caller then copies and goes on.
    pub(crate) fn sdpa_strided(
        &self,
        k: &FastKernel,
        ins: &[Input],
        shape: &[usize],
        out_dtype: Dtype,
    ) -> Result<Option<ArrayData>> {
        use crate::cudnn_sdpa::{self as cs, SdpaKey};
        let op = k.name();
        let (scale, causal, grad) = match *k {
            FastKernel::Sdpa { scale, mask, sinks } if ins.len() == 3 && !sinks => {
                (scale, mask == SdpaMask::Causal, false)
            }
            FastKernel::SdpaGrad { scale, causal } if ins.len() == 5 => (scale, causal, true),
            _ => return Ok(None),
        };
        let cc = self.ctx.compute_capability().map_or(0, |c| c.0);
        if cc < 8
            || std::env::var_os("OXMX_CUDA_NO_CUDNN_SDPA").is_some()
            || std::env::var_os("OXMX_CUDA_SDPA_COPY").is_some()
        {
            return Ok(None);
        }
        let (Some(qi), Some(ki), Some(vi)) = (ins.first(), ins.get(1), ins.get(2)) else {
            return Ok(None);
        };
        let dtype = qi.dtype;
        if ins.iter().any(|x| x.dtype != dtype || x.shape.len() != 4) {
            return Ok(None);
        }
        if !grad {
            let mask = if causal {
                SdpaMask::Causal
            } else {
                SdpaMask::None
            };
            let shapes = (&qi.shape[..], &ki.shape[..], &vi.shape[..]);
            if !cs::eligible(dtype, shapes, mask, false) {
                return Ok(None);
            }
        }
        let Some(layouts) = ins.iter().map(sdpa_layout).collect::<Option<Vec<_>>>() else {
            return Ok(None);
        };
        let (b, hq, lq, d) = (qi.shape[0], qi.shape[1], qi.shape[2], qi.shape[3]);
        let (hkv, lk) = (ki.shape[1], ki.shape[2]);
        let Some(mut key) =
            SdpaKey::packed(dtype == Dtype::Bfloat16, (b, hq, hkv, lq, lk, d), causal)
        else {
            return Ok(None);
        };
        let packed = key.strides;
        let (strided, offsets) = (
            layouts.iter().zip(&packed).any(|(l, p)| l != p),
            ins.iter().any(|x| x.data.offset != 0),
        );
        if !strided && !offsets {
            return Ok(None);
        }
        for (slot, l) in key.strides.iter_mut().zip(&layouts) {
            *slot = *l;
        }
        fn operand<'a>(be: &CudaBackend, op: &str, x: &'a Input) -> Result<cs::Operand<'a>> {
            let off = x
                .data
                .offset
                .checked_mul(2)
                .ok_or_else(|| Error::overflow(op))?;
            Ok((be.device_of(op, x)?, off))
        }
        let operand = |x| operand(self, op, x);
        let bufs = [qi, ki, vi].map(|x| &x.data.buffer);
        let offs = [qi, ki, vi].map(|x| x.data.offset);
        if grad {
            let (Some(oi), Some(gi)) = (ins.get(3), ins.get(4)) else {
                return Ok(None);
            };
            // cuDNN's plans for this layout first: a declined one leaves the kept row
            // statistics for the copy path
            if !cs::grad_eligible(dtype, &key) || !self.cudnn_sdpa_grad_ready(&key) {
                return Ok(None);
            }
            let kept = self.sdpa_stats.take(
                &key.forward_key(),
                scale,
                (
                    [&oi.data.buffer, bufs[0], bufs[1], bufs[2]],
                    [oi.data.offset, offs[0], offs[1], offs[2]],
                ),
            );
            let (mut out, nbytes) = self.new_output(op, shape, out_dtype)?;
            let operands = (
                operand(qi)?,
                operand(ki)?,
                operand(vi)?,
                operand(oi)?,
                operand(gi)?,
            );
            if !self.cudnn_sdpa_grad(&key, scale, operands, kept, out.slice_mut()?)? {
                return Ok(None);
            }
            return Ok(Some(on_device(out, nbytes, shape)));
        }
        // the forward writes its output interleaved where its inputs are strided (packed
        // where they only start at an offset)
        let so = if strided {
            cs::interleaved4(hq, lq, d).and_then(|s| sdpa_normalized([b, hq, lq, d], s, hq, lq, d))
        } else {
            Some(packed[3])
        };
        let Some(so) = so else {
            return Ok(None);
        };
        key.strides[3] = so;
        let key = key.forward_key();
        let (mut out, nbytes) = self.new_output(op, shape, out_dtype)?;
        let qkv = (operand(qi)?, operand(ki)?, operand(vi)?);
        let Some(stats) = self.cudnn_sdpa(&key, scale, qkv, out.slice_mut()?)? else {
            return Ok(None);
        };
        let strides = so
            .iter()
            .map(|&s| isize::try_from(s).map_err(|_| Error::overflow(op)))
            .collect::<Result<Vec<_>>>()?;
        let buffer = Arc::new(Buffer::from_device(Box::new(out), nbytes));
        let data = ArrayData::new(op, buffer, 0, strides, shape, out_dtype)?;
        self.sdpa_stats.put(
            key,
            scale,
            (
                [&data.buffer, bufs[0], bufs[1], bufs[2]],
                [0, offs[0], offs[1], offs[2]],
            ),
            stats,
        );
        Ok(Some(data))
    }
}
