//! `Primitive::Conv` on the GPU through cuDNN (runtime-loaded): the forward correlation
//! and its weight gradient on contiguous channels-last operands. A 1-d convolution is
//! given to cuDNN as a 2-d one with a leading spatial axis of length 1.

use crate::cudnn::{Cudnn, Elem, Mode, Problem};
use crate::{on_device, CudaBackend};
use oxmx_core::backend::Input;
use oxmx_core::primitive::{ConvKind, ConvSpec};
use oxmx_core::{ArrayData, Dtype, Error, Result};
use std::sync::{Mutex, OnceLock};

const OP: &str = "conv";

fn elem_of(d: Dtype) -> Result<Elem> {
    match d {
        Dtype::Float32 => Ok(Elem::F32),
        Dtype::Float64 => Ok(Elem::F64),
        Dtype::Float16 => Ok(Elem::F16),
        Dtype::Bfloat16 => Ok(Elem::Bf16),
        _ => Err(Error::unsupported(OP, format!("A {d} convolution"))),
    }
}

/// `OXMX_CUDNN_LAYOUT=nchw`: float32 convolutions run channels-first in cuDNN (through
/// transposed copies), whose FMA kernels differ from its channels-last ones.
fn float32_channels_first() -> bool {
    static V: OnceLock<bool> = OnceLock::new();
    *V.get_or_init(|| std::env::var("OXMX_CUDNN_LAYOUT").is_ok_and(|v| v == "nchw"))
}

/// The spatial dims of a channels-last shape, with a leading 1 for 1-d.
fn spatial(shape: &[usize], pad: bool) -> Vec<usize> {
    let inner = shape.get(1..shape.len().saturating_sub(1)).unwrap_or(&[]);
    if pad {
        std::iter::once(1).chain(inner.iter().copied()).collect()
    } else {
        inner.to_vec()
    }
}

impl CudaBackend {
    pub(crate) fn cudnn(&self) -> Result<&Mutex<Cudnn>> {
        self.cudnn
            .get_or_init(|| Cudnn::new(&self.alloc).map(Mutex::new))
            .as_ref()
            .ok_or_else(|| Error::unsupported(OP, "A convolution without libcudnn"))
    }

    pub(crate) fn conv(
        &self,
        spec: &ConvSpec,
        kind: ConvKind,
        ins: Vec<Input>,
        shape: &[usize],
        dtype: Dtype,
    ) -> Result<ArrayData> {
        let mut it = ins.into_iter();
        let (Some(a), Some(b)) = (it.next(), it.next()) else {
            return Err(Error::runtime(OP, "two inputs expected"));
        };
        let elem = elem_of(dtype)?;
        let nd = shape.len().saturating_sub(2);
        if nd == 0 || a.shape.len() != shape.len() || b.shape.len() != shape.len() {
            return Err(Error::runtime(OP, "operands of unexpected rank"));
        }
        let (mut out, nbytes) = self.new_output(OP, shape, dtype)?;
        if nbytes == 0 {
            return Ok(on_device(out, nbytes, shape));
        }
        if a.size() == 0 || b.size() == 0 {
            // nothing to sum (an empty batch or no channels): zeros
            self.alloc
                .stream
                .memset_zeros(out.slice_mut()?)
                .map_err(|e| Error::runtime(OP, format!("{e:?}")))?;
            return Ok(on_device(out, nbytes, shape));
        }
        let a = self.contiguous_input(OP, a)?;
        let b = self.contiguous_input(OP, b)?;
        if is_pointwise(spec, kind, &b, shape) {
            return self.pointwise_conv(kind, a, b, shape, dtype);
        }
        let pad = nd == 1;
        let lead = |v: &[usize], first: usize| -> Vec<usize> {
            if pad {
                std::iter::once(first).chain(v.iter().copied()).collect()
            } else {
                v.to_vec()
            }
        };
        let sp = |v: &[usize]| spatial(v, pad);
        // (batch, in channels, out channels, input spatial, kernel, output spatial)
        let (n, c, o, s_in, k, s_out) = match kind {
            ConvKind::Forward => (
                a.shape[0],
                a.shape[nd + 1],
                b.shape[0],
                sp(&a.shape),
                sp(&b.shape),
                sp(shape),
            ),
            ConvKind::WeightGrad => (
                a.shape[0],
                a.shape[nd + 1],
                shape[0],
                sp(&a.shape),
                sp(shape),
                sp(&b.shape),
            ),
            ConvKind::InputGrad => (
                a.shape[0],
                shape[nd + 1],
                b.shape[0],
                sp(shape),
                sp(&b.shape),
                sp(&a.shape),
            ),
        };
        let mut p = Problem {
            mode: match kind {
                ConvKind::Forward => Mode::Forward,
                ConvKind::WeightGrad => Mode::WeightGrad,
                ConvKind::InputGrad => Mode::InputGrad,
            },
            elem,
            tf32: self.tf32,
            // cuDNN convolves float64 only channels-first
            nchw: elem == Elem::F64 || (elem == Elem::F32 && float32_channels_first()),
            n,
            c,
            o,
            groups: spec.groups,
            spatial: s_in,
            kernel: k,
            out: s_out,
            strides: lead(&spec.strides, 1),
            dilation: lead(&spec.dilation, 1),
            padding: lead(&spec.padding, 0),
        };
        if !p.nchw {
            match self.cudnn_run(&p, &a, &b, out.slice_mut()?) {
                Err(Error::Unsupported { .. }) => p.nchw = true,
                r => {
                    r?;
                    return Ok(on_device(out, nbytes, shape));
                }
            }
        }
        // channels-first copies of the operands in, the result back to channels-last
        let (a, b) = (self.channels_first(a)?, self.channels_first(b)?);
        let first: Vec<usize> = permutation(shape.len(), true)
            .iter()
            .map(|&i| shape[i])
            .collect();
        let (mut tmp, tbytes) = self.new_output(OP, &first, dtype)?;
        self.cudnn_run(&p, &a, &b, tmp.slice_mut()?)?;
        drop(out);
        let t = Input {
            data: on_device(tmp, tbytes, &first),
            shape: first,
            dtype,
            donatable: false,
        };
        let back = permute(t, &permutation(shape.len(), false));
        self.copy_contiguous(OP, &back)
    }

    /// A 1x1 convolution with unit strides, no padding and one group is a matmul over
    /// the positions: cuBLASLt runs it (and its gradients) faster than cuDNN's
    /// channels-last FMA engines. `a`, `b` contiguous.
    fn pointwise_conv(
        &self,
        kind: ConvKind,
        a: Input,
        b: Input,
        shape: &[usize],
        dtype: Dtype,
    ) -> Result<ArrayData> {
        // (rows, cols) of a contiguous operand read as a matrix over its last axis
        let matrix = |x: &Input, transpose: bool| -> Input {
            let cols = x.shape.last().copied().unwrap_or(1);
            let rows = x.size() / cols.max(1);
            let (shape, strides) = if transpose {
                (vec![cols, rows], vec![1, cols as isize])
            } else {
                (vec![rows, cols], vec![cols as isize, 1])
            };
            Input {
                shape,
                dtype: x.dtype,
                data: oxmx_core::ArrayData {
                    buffer: x.data.buffer.clone(),
                    offset: x.data.offset,
                    strides,
                },
                donatable: false,
            }
        };
        // x (M, C), w (O, C), y (M, O) as matrices
        let (lhs, rhs) = match kind {
            // y = x w^T
            ConvKind::Forward => (matrix(&a, false), matrix(&b, true)),
            // dx = dy w
            ConvKind::InputGrad => (matrix(&a, false), matrix(&b, false)),
            // dw = dy^T x  (a = x, b = dy)
            ConvKind::WeightGrad => (matrix(&b, true), matrix(&a, false)),
        };
        let mat_shape = [lhs.shape[0], rhs.shape[1]];
        let mut y = self.matmul(OP, vec![lhs, rhs], &mat_shape, dtype)?;
        y.strides = oxmx_core::shape::contiguous_strides(shape);
        Ok(y)
    }

    fn cudnn_run(
        &self,
        p: &Problem,
        a: &Input,
        b: &Input,
        out: &mut cudarc::driver::CudaSlice<u8>,
    ) -> Result<()> {
        let (da, db) = (self.device_of(OP, a)?, self.device_of(OP, b)?);
        self.cudnn()?
            .lock()
            .map_err(|_| Error::runtime(OP, "cuDNN handle poisoned"))?
            .run(p, da, db, out)
    }

    /// A contiguous channels-first copy of a channels-last operand.
    fn channels_first(&self, x: Input) -> Result<Input> {
        let perm = permutation(x.shape.len(), true);
        self.contiguous_input(OP, permute(x, &perm))
    }
}

/// Whether the convolution is a plain matmul over positions (see `pointwise_conv`).
fn is_pointwise(spec: &ConvSpec, kind: ConvKind, b: &Input, shape: &[usize]) -> bool {
    let nd = shape.len().saturating_sub(2);
    let kernel = match kind {
        ConvKind::Forward | ConvKind::InputGrad => b.shape.get(1..=nd),
        ConvKind::WeightGrad => shape.get(1..=nd),
    };
    spec.groups == 1
        && kernel.is_some_and(|k| k.iter().all(|&d| d == 1))
        && spec.strides.iter().all(|&s| s == 1)
        && spec.padding.iter().all(|&p| p == 0)
}

/// Axis order taking channels-last (N, *S, C) to channels-first (N, C, *S) (`to_first`),
/// or back.
fn permutation(nd: usize, to_first: bool) -> Vec<usize> {
    if to_first {
        [0, nd - 1].into_iter().chain(1..nd - 1).collect()
    } else {
        std::iter::once(0).chain(2..nd).chain([1]).collect()
    }
}

/// A view of `x` with its axes in the order `perm`.
fn permute(x: Input, perm: &[usize]) -> Input {
    Input {
        shape: perm.iter().map(|&i| x.shape[i]).collect(),
        dtype: x.dtype,
        data: oxmx_core::ArrayData {
            buffer: x.data.buffer.clone(),
            offset: x.data.offset,
            strides: perm.iter().map(|&i| x.data.strides[i]).collect(),
        },
        donatable: false,
    }
}
