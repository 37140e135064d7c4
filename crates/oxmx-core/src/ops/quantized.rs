//! Quantized matrices in MLX's formats: argument checks and the `Dequantize` /
//! `QuantizedMatmul` nodes. Every extent a kernel reads packed data by is checked here
//! (packed width against scales, group divisibility, batch shapes), so backends can
//! index the packed words without re-deriving them. `quantize` itself is composed from
//! graph ops in Python (`oxmx/core/quantize.py`).

use crate::array::Array;
use crate::dtype::{promote, Dtype};
use crate::error::{Error, Result};
use crate::ops::{astype, broadcast_to, reshape};
use crate::primitive::{Primitive, QuantMode, QuantSpec};
use crate::shape::{broadcast_shapes, Shape};

/// The mode named `name` ("affine", "mxfp4", "mxfp8", "nvfp4").
pub fn parse_mode(op: &str, name: &str) -> Result<QuantMode> {
    match name {
        "affine" => Ok(QuantMode::Affine),
        "mxfp4" => Ok(QuantMode::Mxfp4),
        "mxfp8" => Ok(QuantMode::Mxfp8),
        "nvfp4" => Ok(QuantMode::Nvfp4),
        _ => Err(Error::value(
            op,
            format!("Invalid quantization mode '{name}'. Valid modes are 'affine', 'mxfp4', 'mxfp8' and 'nvfp4'."),
        )),
    }
}

/// The format of `mode` with MLX's defaults for missing values, checked against what
/// the mode supports.
pub fn spec(
    op: &str,
    mode: QuantMode,
    group_size: Option<usize>,
    bits: Option<usize>,
) -> Result<QuantSpec> {
    let (dg, db) = match mode {
        QuantMode::Affine => (64, 4),
        QuantMode::Mxfp4 => (32, 4),
        QuantMode::Mxfp8 => (32, 8),
        QuantMode::Nvfp4 => (16, 4),
    };
    let (g, b) = (group_size.unwrap_or(dg), bits.unwrap_or(db));
    let m = mode.name();
    if mode == QuantMode::Affine {
        if ![32, 64, 128].contains(&g) {
            return Err(Error::value(
                op,
                format!("The requested group size {g} is not supported. The supported group sizes are 32, 64, and 128."),
            ));
        }
        if ![1, 2, 3, 4, 5, 6, 8].contains(&b) {
            return Err(Error::value(
                op,
                format!("The requested number of bits {b} is not supported. The supported bits are 1, 2, 3, 4, 5, 6 and 8."),
            ));
        }
    } else {
        if g != dg {
            return Err(Error::value(
                op,
                format!("{m} quantization requires group size {dg} but got {g}."),
            ));
        }
        if b != db {
            return Err(Error::value(
                op,
                format!("{m} quantization requires bits to be {db} but got {b}."),
            ));
        }
    }
    Ok(QuantSpec {
        mode,
        group_size: g,
        bits: b,
    })
}

/// Unpacked length of a packed row of `packed` uint32 words.
fn unpacked(op: &str, packed: usize, s: &QuantSpec) -> Result<usize> {
    let bits_total = packed.checked_mul(32).ok_or_else(|| Error::overflow(op))?;
    if !bits_total.is_multiple_of(s.bits) {
        return Err(Error::value(
            op,
            format!(
                "A packed row of {packed} uint32 words does not hold a whole number of {}-bit values.",
                s.bits
            ),
        ));
    }
    Ok(bits_total / s.bits)
}

/// Checks `w`/`scales`/`biases` against each other and `spec`; returns the unpacked
/// length of `w`'s rows.
pub(crate) fn check_packed(
    op: &str,
    w: &Array,
    scales: &Array,
    biases: Option<&Array>,
    s: &QuantSpec,
) -> Result<usize> {
    if w.dtype() != Dtype::Uint32 {
        return Err(Error::value(
            op,
            format!(
                "The matrix should be given as a uint32 array, got {}.",
                w.dtype()
            ),
        ));
    }
    if w.ndim() < 2 {
        return Err(Error::value(
            op,
            format!(
                "The quantized matrix must have at least 2 dimensions, got shape {:?}.",
                w.shape()
            ),
        ));
    }
    match (s.mode, biases) {
        (QuantMode::Affine, None) => {
            return Err(Error::value(
                op,
                "Biases must be provided for affine quantization.",
            ))
        }
        (QuantMode::Affine, Some(b)) => {
            if !scales.dtype().is_float() {
                return Err(Error::value(
                    op,
                    format!(
                        "Scales of affine quantization must be floating point, got {}.",
                        scales.dtype()
                    ),
                ));
            }
            if b.shape() != scales.shape() || b.dtype() != scales.dtype() {
                return Err(Error::value(
                    op,
                    format!(
                        "Scales and biases should have the same shape and dtype. Received scales with shape {:?} ({}) and biases with {:?} ({}).",
                        scales.shape(),
                        scales.dtype(),
                        b.shape(),
                        b.dtype()
                    ),
                ));
            }
        }
        (m, Some(_)) => {
            return Err(Error::value(
                op,
                format!("Biases must be null for quantization mode '{}'.", m.name()),
            ))
        }
        (_, None) => {
            if scales.dtype() != Dtype::Uint8 {
                return Err(Error::value(
                    op,
                    format!(
                        "Scales of mode '{}' must be uint8, got {}.",
                        s.mode.name(),
                        scales.dtype()
                    ),
                ));
            }
        }
    }
    let packed = w.shape()[w.ndim() - 1];
    let cols = unpacked(op, packed, s)?;
    let mut want: Shape = w.shape()[..w.ndim() - 1].to_vec();
    want.push(cols / s.group_size);
    if !cols.is_multiple_of(s.group_size) || scales.shape() != want.as_slice() {
        return Err(Error::value(
            op,
            format!(
                "The shapes of the weight and scales are incompatible based on bits and group_size. w.shape() == {:?} and scales.shape() == {:?} with group_size={} and bits={}.",
                w.shape(),
                scales.shape(),
                s.group_size,
                s.bits
            ),
        ));
    }
    Ok(cols)
}

/// The floats packed in `w`: `scale * q + bias` (affine) or `value * scale` (mx/nv),
/// as `dtype` (default: the scales' dtype for affine, bfloat16 otherwise).
pub fn dequantize(
    w: &Array,
    scales: &Array,
    biases: Option<&Array>,
    s: QuantSpec,
    dtype: Option<Dtype>,
) -> Result<Array> {
    let op = "dequantize";
    let cols = check_packed(op, w, scales, biases, &s)?;
    let d = match (dtype, s.mode) {
        (Some(d), _) => d,
        (None, QuantMode::Affine) => scales.dtype(),
        (None, _) => Dtype::Bfloat16,
    };
    if !d.is_float() {
        return Err(Error::value(
            op,
            format!("The output dtype must be floating point, got {d}."),
        ));
    }
    let mut shape: Shape = w.shape()[..w.ndim() - 1].to_vec();
    shape.push(cols);
    let mut inputs = vec![w.clone(), scales.clone()];
    inputs.extend(biases.cloned());
    Ok(Array::pending(shape, d, Primitive::Dequantize(s), inputs))
}

/// (K, N) of `x @ dequantize(w).T` (`transpose`) or `x @ dequantize(w)` for w's rows R
/// and unpacked columns C: (C, R) or (R, C).
pub fn product_dims(transpose: bool, rows: usize, cols: usize) -> (usize, usize) {
    if transpose {
        (cols, rows)
    } else {
        (rows, cols)
    }
}

/// Checks the packed operands and that x (at least `min_ndim` dims) ends in K; returns
/// (K, N).
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_x(
    op: &str,
    x: &Array,
    min_ndim: usize,
    w: &Array,
    scales: &Array,
    biases: Option<&Array>,
    transpose: bool,
    s: &QuantSpec,
) -> Result<(usize, usize)> {
    let cols = check_packed(op, w, scales, biases, s)?;
    let (k, n) = product_dims(transpose, w.shape()[w.ndim() - 2], cols);
    if x.ndim() < min_ndim.max(1) || x.shape()[x.ndim() - 1] != k {
        return Err(Error::value(
            op,
            format!(
                "Last dimension of first input with shape {:?} does not match the expanded quantized matrix ({k}, {n}) computed from shape {:?} with group_size={}, bits={} and transpose={transpose}.",
                x.shape(),
                w.shape(),
                s.group_size,
                s.bits
            ),
        ));
    }
    Ok((k, n))
}

/// Index `i` of an axis of `dim` matrices, wrapped NumPy-style (negative from the end);
/// an IndexError naming `op` outside [0, dim).
pub fn checked_index(op: &str, i: i64, dim: usize) -> Result<usize> {
    let j = if i < 0 {
        i.checked_add(dim as i64)
    } else {
        Some(i)
    };
    match j {
        Some(j) if j >= 0 && (j as u64) < dim as u64 => Ok(j as usize),
        _ => Err(Error::index(
            op,
            format!("Index {i} is out of bounds for axis 0 with size {dim}."),
        )),
    }
}

/// Ranges of consecutive equal entries of `idx` (the products of a gather that share
/// a matrix).
pub fn runs_of(idx: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    while let Some(&e) = idx.get(start) {
        let len = idx[start..].iter().take_while(|&&r| r == e).count();
        runs.push(start..start + len);
        start += len;
    }
    runs
}

/// The dtype `quantized_matmul` computes and returns.
pub(crate) fn result_dtype(op: &str, x: Dtype, scales: Dtype, mode: QuantMode) -> Result<Dtype> {
    let d = match mode {
        QuantMode::Affine => promote(x, scales),
        _ if x.is_float() => x,
        _ => promote(x, Dtype::Float32),
    };
    if !d.is_float() || d == Dtype::Float64 {
        return Err(Error::value(
            op,
            format!("Only float32, float16 and bfloat16 inputs are supported, got {x}."),
        ));
    }
    Ok(d)
}

/// `x @ dequantize(w).T` (`transpose`) or `x @ dequantize(w)`, without expanding `w`.
/// x (.., K) of any rank >= 1; w (.., R, packed) whose batch dims broadcast with x's.
pub fn quantized_matmul(
    x: &Array,
    w: &Array,
    scales: &Array,
    biases: Option<&Array>,
    transpose: bool,
    s: QuantSpec,
) -> Result<Array> {
    let op = "quantized_matmul";
    let (k, n) = check_x(op, x, 1, w, scales, biases, transpose, &s)?;
    let d = result_dtype(op, x.dtype(), scales.dtype(), s.mode)?;
    let x = astype(x, d)?;
    let prim = Primitive::QuantizedMatmul { spec: s, transpose };
    let node = |ins: Vec<Array>, shape: Shape| Array::pending(shape, d, prim.clone(), ins);
    let with_params = |x: Array, w: Array, sc: Array, b: Option<Array>| {
        let mut v = vec![x, w, sc];
        v.extend(b);
        v
    };
    if w.ndim() == 2 {
        // One matrix: every leading dim of x becomes a row of one product.
        let m: usize = x.shape()[..x.ndim() - 1].iter().product();
        let x2 = reshape(&x, &[m as i64, k as i64])?;
        let out = node(
            with_params(x2, w.clone(), scales.clone(), biases.cloned()),
            vec![m, n],
        );
        let mut shape: Vec<i64> = x.shape()[..x.ndim() - 1]
            .iter()
            .map(|&v| v as i64)
            .collect();
        shape.push(n as i64);
        return reshape(&out, &shape);
    }
    // Batched: x (.., M, K) and w (.., R, packed) broadcast to one batch shape.
    let vector = x.ndim() == 1;
    let x = if vector {
        reshape(&x, &[1, k as i64])?
    } else {
        x
    };
    let m = x.shape()[x.ndim() - 2];
    let xb = &x.shape()[..x.ndim() - 2];
    let wb = &w.shape()[..w.ndim() - 2];
    let batch = broadcast_shapes(op, xb, wb)?;
    let full = |a: &Array| -> Result<Array> {
        let mut sh = batch.clone();
        sh.extend_from_slice(&a.shape()[a.ndim() - 2..]);
        broadcast_to(a, &sh)
    };
    let ins = with_params(
        full(&x)?,
        full(w)?,
        full(scales)?,
        biases.map(full).transpose()?,
    );
    let mut shape = batch.clone();
    shape.extend([m, n]);
    let out = node(ins, shape.clone());
    if vector {
        shape.remove(shape.len() - 2);
        let shape: Vec<i64> = shape.iter().map(|&v| v as i64).collect();
        return reshape(&out, &shape);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_index_wraps_and_rejects() {
        assert_eq!(checked_index("t", 0, 3).ok(), Some(0));
        assert_eq!(checked_index("t", -1, 3).ok(), Some(2));
        assert_eq!(checked_index("t", -3, 3).ok(), Some(0));
        for bad in [3, -4, i64::MAX, i64::MIN] {
            assert!(matches!(
                checked_index("t", bad, 3),
                Err(Error::Index { .. })
            ));
        }
        assert!(checked_index("t", 0, 0).is_err());
    }

    #[test]
    fn runs_of_groups_equal_neighbours() {
        assert!(runs_of(&[]).is_empty());
        assert_eq!(runs_of(&[2, 2, 0, 2, 2, 2]), vec![0..2, 2..3, 3..6]);
    }
}
