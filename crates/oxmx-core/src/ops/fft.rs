//! One-axis discrete Fourier transforms as graph nodes (`Primitive::Fft`). The transform
//! axis is moved last (a view) for the kernel and back afterwards; `oxmx.core.fft` builds
//! the n-dimensional transforms, lengths and normalisations from these.

use crate::array::Array;
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::ops::{astype, moveaxis};
use crate::primitive::Primitive;
use crate::shape::normalize_axis;

/// The transform of `x` along `axis`: complex (`real` false), real-to-complex
/// (`real`, forward) or complex-to-real with `n` outputs (`real`, `inverse`; `x` must
/// have n/2+1 bins there). Unnormalised, times `scale`.
pub fn fft_axis(
    x: &Array,
    axis: i64,
    inverse: bool,
    real: bool,
    n: usize,
    scale: f64,
) -> Result<Array> {
    let op = "fft";
    if x.ndim() == 0 {
        return Err(Error::value(op, "Input must have at least 1 dimension."));
    }
    let ax = normalize_axis(op, axis, x.ndim())?;
    let len = x.shape()[ax];
    let (in_dtype, out_dtype) = match (real, inverse) {
        (true, false) => (Dtype::Float32, Dtype::Complex64),
        (true, true) => (Dtype::Complex64, Dtype::Float32),
        _ => (Dtype::Complex64, Dtype::Complex64),
    };
    let want_in = if real && inverse { n / 2 + 1 } else { n };
    if n == 0 || len != want_in {
        return Err(Error::value(
            op,
            format!("Invalid FFT size {n} for an axis of length {len}."),
        ));
    }
    let out_len = if real && !inverse { n / 2 + 1 } else { n };
    let last = x.ndim() as i64 - 1;
    let moved = moveaxis(&astype(x, in_dtype)?, ax as i64, last)?;
    let mut shape = moved.shape().to_vec();
    if let Some(l) = shape.last_mut() {
        *l = out_len;
    }
    let y = Array::pending(
        shape,
        out_dtype,
        Primitive::Fft {
            inverse,
            real,
            scale,
        },
        vec![moved],
    );
    moveaxis(&y, last, ax as i64)
}
