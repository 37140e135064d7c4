//! `GatherQmm` on the GPU: product i of x matrix `lhs[i]` and W matrix `rhs[i]`.
//!
//! - `x @ W^T` with at most `GEMV_ROWS` rows per product (every product of a
//!   mixture-of-experts layer, one token each) runs the GEMV kernels of `quantized.rs`
//!   once over all products, each warp looking its matrices up in the index arrays; the
//!   kernels check every index against the matrix counts before reading, and a bad one
//!   fails the op with the CPU backend's IndexError (the error word is read back after
//!   the launch, as for the gathers). From 16 one-row products in a half type, the
//!   tensor-core kernel serves 8 products per block, one pass per distinct W matrix
//!   among them (`GROUPED`): a sorted batch reads each expert once per 8 products.
//! - Other products read the indices on the host (checked there), and run each stretch
//!   of consecutive products that share a W matrix as one product over their stacked x
//!   rows (a sorted batch: one product per expert), through the dequantize + cuBLASLt
//!   path.

use crate::quantized::{packed_dims, Picks, GEMV_ROWS};
use crate::{on_device, CudaBackend};
use oxmx_core::backend::Input;
use oxmx_core::ops::quantized::{checked_index, runs_of};
use oxmx_core::primitive::QuantSpec;
use oxmx_core::shape::{contiguous_strides, size_of};
use oxmx_core::{ArrayData, Dtype, Error, Result};
use std::sync::Arc;

const OP: &str = "gather_qmm";

/// The contiguous window of `a`'s buffer at element `offset` with `shape`.
fn window(a: &Input, offset: usize, shape: Vec<usize>) -> Result<Input> {
    let strides = contiguous_strides(&shape);
    let data = ArrayData::new(
        OP,
        Arc::clone(&a.data.buffer),
        offset,
        strides,
        &shape,
        a.dtype,
    )?;
    Ok(Input {
        shape,
        dtype: a.dtype,
        data,
        donatable: false,
    })
}

impl CudaBackend {
    /// int64 indices `idx` read back, wrapped NumPy-style into [0, dim) (IndexError for
    /// any outside).
    fn host_indices(&self, idx: Input, dim: usize) -> Result<Vec<usize>> {
        if idx.dtype != Dtype::Int64 {
            return Err(Error::runtime(OP, "indices must be int64"));
        }
        let idx = self.contiguous_input(OP, idx)?;
        let n = size_of(&idx.shape);
        idx.data.buffer.ensure_host(OP)?;
        let vals = idx
            .data
            .buffer
            .typed::<i64>()
            .get(idx.data.offset..idx.data.offset + n)
            .ok_or_else(|| Error::runtime(OP, "index buffer too small"))?;
        vals.iter().map(|&i| checked_index(OP, i, dim)).collect()
    }

    pub(crate) fn gather_qmm(
        &self,
        s: &QuantSpec,
        transpose: bool,
        mut ins: Vec<Input>,
        shape: &[usize],
        out_dtype: Dtype,
    ) -> Result<ArrayData> {
        let (rhs, lhs) = match (ins.pop(), ins.pop()) {
            (Some(r), Some(l)) if ins.len() >= 3 => (r, l),
            _ => return Err(Error::runtime(OP, "missing inputs")),
        };
        let x = ins.remove(0);
        let (nb, m, n) = match shape {
            &[nb, m, n] => (nb, m, n),
            _ => return Err(Error::runtime(OP, "output must be (batch, M, N)")),
        };
        let (bx, k) = match x.shape[..] {
            [bx, mx, k] if mx == m && x.dtype == out_dtype => (bx, k),
            _ => return Err(Error::runtime(OP, "x and the output disagree")),
        };
        if size_of(&lhs.shape) != nb || size_of(&rhs.shape) != nb {
            return Err(Error::runtime(OP, "index arrays disagree with the output"));
        }
        let x = self.contiguous_input(OP, x)?;
        let params = self.packed_inputs(OP, s, ins, 0)?;
        let experts = params[0].shape.first().copied().unwrap_or(0);
        let (_, _, cols) = packed_dims(OP, &params[0], s)?;
        if (if transpose { cols } else { params[0].shape[1] }) != k {
            return Err(Error::runtime(OP, "x does not match the quantized matrix"));
        }
        if transpose && m <= GEMV_ROWS {
            let (lhs, rhs) = (
                self.contiguous_input(OP, lhs)?,
                self.contiguous_input(OP, rhs)?,
            );
            if lhs.dtype != Dtype::Int64 || rhs.dtype != Dtype::Int64 {
                return Err(Error::runtime(OP, "indices must be int64"));
            }
            let mut err = self.error_word(OP)?;
            let out = {
                let picks = Picks {
                    lhs: self.device_of(OP, &lhs)?,
                    rhs: self.device_of(OP, &rhs)?,
                    nx: bx,
                    nw: experts,
                    err: &*err.slice_mut()?,
                };
                self.gemv(OP, s, &x, &params, shape, out_dtype, Some(&picks))?
            };
            self.defer_check(OP, err);
            return Ok(out);
        }
        let lhs = self.host_indices(lhs, bx)?;
        let rhs = self.host_indices(rhs, experts)?;
        let (mut out, nbytes) = self.new_output(OP, shape, out_dtype)?;
        let n_out = nb * m * n;
        let (mk, mn) = (m * k, m * n);
        for r in runs_of(&rhs) {
            let (len, e) = (r.len(), rhs[r.start]);
            let run = &lhs[r.clone()];
            let consecutive = run.windows(2).all(|p| p[1] == p[0] + 1);
            let xr = if consecutive {
                window(&x, x.data.offset + run[0] * mk, vec![len * m, k])?
            } else {
                // the run's x matrices stacked
                let (mut buf, nbytes) = self.new_output(OP, &[len * m, k], out_dtype)?;
                for (j, &i) in run.iter().enumerate() {
                    let xi = window(&x, x.data.offset + i * mk, vec![m, k])?;
                    self.copy_into(
                        OP,
                        &xi,
                        buf.slice_mut()?,
                        (j * mk) as isize,
                        &[k as isize, 1],
                        len * mk,
                    )?;
                }
                let data = on_device(buf, nbytes, &[len * m, k]);
                Input {
                    shape: vec![len * m, k],
                    dtype: out_dtype,
                    data,
                    donatable: false,
                }
            };
            let mats = params
                .iter()
                .map(|p| {
                    let per = size_of(&p.shape[1..]);
                    window(p, p.data.offset + e * per, p.shape[1..].to_vec())
                })
                .collect::<Result<Vec<_>>>()?;
            let res_shape = [len * m, n];
            let res = self.dequantized_matmul(OP, s, transpose, xr, mats, &res_shape, out_dtype)?;
            let res = Input {
                shape: res_shape.to_vec(),
                dtype: out_dtype,
                data: res,
                donatable: false,
            };
            self.copy_into(
                OP,
                &res,
                out.slice_mut()?,
                (r.start * mn) as isize,
                &[n as isize, 1],
                n_out,
            )?;
        }
        Ok(on_device(out, nbytes, shape))
    }
}
