//! View primitives: new shape/strides/offset over the input's buffer, no copy (except
//! reshaping or `as_strided` of a non-contiguous input, which copies first).

use crate::array::{reach, ArrayData};
use crate::backend::{self, Input};
use crate::device::Device;
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::primitive::Primitive;
use crate::shape::contiguous_strides;

fn one_input(op: &str, mut ins: Vec<Input>) -> Result<Input> {
    ins.pop().ok_or_else(|| Error::runtime(op, "missing input"))
}

/// Make `x` contiguous (through the backend) if it is not.
fn contiguous_input(x: Input, device: Device) -> Result<Input> {
    if x.is_contiguous() {
        return Ok(x);
    }
    let shape = x.shape.clone();
    let dtype = x.dtype;
    let data = backend::get(device)?.run(&Primitive::Copy, vec![x], &shape, dtype)?;
    Ok(Input {
        shape,
        dtype,
        data,
        donatable: true,
    })
}

pub fn run_view(
    prim: &Primitive,
    ins: Vec<Input>,
    out_shape: &[usize],
    dtype: Dtype,
    device: Device,
) -> Result<ArrayData> {
    let op = prim.name();
    if let Primitive::Custom(c) = prim {
        // The value of a custom function's output is its real output (an input).
        let mut ins = ins;
        let k = c
            .n_primals
            .checked_add(c.index)
            .ok_or_else(|| Error::overflow(op))?;
        if k >= ins.len() {
            return Err(Error::runtime(op, "missing input"));
        }
        return Ok(ins.swap_remove(k).data);
    }
    let x = one_input(op, ins)?;
    match prim {
        Primitive::Reshape { .. } => {
            // Rows kept whole (the last axis unchanged and contiguous) regroup as a view
            // when the strides allow it: a padded matrix's leading axes merge or split
            // without a copy. Other strided reshapes still copy, so the arrays products
            // and convolutions see (and their algorithms, and so their last bits) do not
            // depend on whether an elementwise producer kept a strided layout.
            let rows_kept = x.shape.last().is_some()
                && x.shape.last() == out_shape.last()
                && x.data.strides.last() == Some(&1);
            if dtype == x.dtype && !x.is_contiguous() && rows_kept {
                if let Some(strides) =
                    crate::shape::reshaped_strides(&x.shape, &x.data.strides, out_shape)
                {
                    return ArrayData::new(
                        op,
                        x.data.buffer,
                        x.data.offset,
                        strides,
                        out_shape,
                        dtype,
                    );
                }
            }
            let mut x = contiguous_input(x, device)?;
            let strides = contiguous_strides(out_shape);
            // `view` to another dtype: the offset is re-expressed in the new element size.
            let off_bytes = x
                .data
                .offset
                .checked_mul(x.dtype.size())
                .ok_or_else(|| Error::overflow(op))?;
            if off_bytes % dtype.size() != 0 {
                let shape = x.shape.clone();
                let d = x.dtype;
                let data = backend::get(device)?.run(&Primitive::Copy, vec![x], &shape, d)?;
                x = Input {
                    shape,
                    dtype: d,
                    data,
                    donatable: true,
                };
            }
            let off = x.data.offset * x.dtype.size() / dtype.size();
            ArrayData::new(op, x.data.buffer, off, strides, out_shape, dtype)
        }
        Primitive::Transpose { perm } => {
            let mut strides = Vec::with_capacity(perm.len());
            for &p in perm {
                strides.push(
                    *x.data
                        .strides
                        .get(p)
                        .ok_or_else(|| Error::runtime(op, "bad permutation"))?,
                );
            }
            ArrayData::new(op, x.data.buffer, x.data.offset, strides, out_shape, dtype)
        }
        Primitive::Broadcast => {
            let nd = out_shape.len();
            let lead = nd
                .checked_sub(x.shape.len())
                .ok_or_else(|| Error::runtime(op, "rank"))?;
            let mut strides = vec![0isize; nd];
            for i in 0..x.shape.len() {
                strides[lead + i] = if x.shape[i] == 1 {
                    0
                } else {
                    x.data.strides[i]
                };
            }
            ArrayData::new(op, x.data.buffer, x.data.offset, strides, out_shape, dtype)
        }
        Primitive::Slice { start, step } => {
            let mut off = x.data.offset as i128;
            let mut strides = Vec::with_capacity(start.len());
            for i in 0..start.len() {
                let s = x.data.strides[i] as i128;
                if out_shape[i] > 0 {
                    off += start[i] as i128 * s;
                }
                let ns = s
                    .checked_mul(step[i] as i128)
                    .ok_or_else(|| Error::overflow(op))?;
                strides.push(isize::try_from(ns).map_err(|_| Error::overflow(op))?);
            }
            let off = usize::try_from(off).map_err(|_| Error::overflow(op))?;
            ArrayData::new(op, x.data.buffer, off, strides, out_shape, dtype)
        }
        Primitive::AsStrided { strides, offset } => {
            let in_size = x.size();
            let x = contiguous_input(x, device)?;
            let mut st = Vec::with_capacity(strides.len());
            for &s in strides {
                st.push(isize::try_from(s).map_err(|_| Error::overflow(op))?);
            }
            let (lo, hi) = reach(out_shape, &st, *offset).ok_or_else(|| Error::overflow(op))?;
            if crate::shape::size_of(out_shape) > 0 && (lo < 0 || hi >= in_size as i128) {
                return Err(Error::value(
                    op,
                    format!("The view reaches elements [{lo}, {hi}] outside the input's {in_size} elements."),
                ));
            }
            let base = x
                .data
                .offset
                .checked_add(*offset)
                .ok_or_else(|| Error::overflow(op))?;
            ArrayData::new(op, x.data.buffer, base, st, out_shape, dtype)
        }
        Primitive::StopGradient => Ok(x.data),
        _ => Err(Error::runtime(op, "not a view primitive")),
    }
}
