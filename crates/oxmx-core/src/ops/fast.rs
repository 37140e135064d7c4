//! The fused model kernels of `oxmx.core.fast`: argument checks, dtype agreement and one
//! `Primitive::Fast` node each. Their transforms are given in Python
//! (`python/oxmx/core/fast.py`, through `custom_function` over the composite formulas);
//! here the rules only batch by looping.

use crate::array::Array;
use crate::dtype::{promote, Dtype};
use crate::error::{Error, Result};
use crate::ops::{astype, reshape};
use crate::primitive::{FastKernel, Primitive, SdpaMask};

fn float_input(op: &str, name: &str, a: &Array) -> Result<()> {
    if a.dtype().is_float() {
        Ok(())
    } else {
        Err(Error::value(
            op,
            format!("{name} must be a floating-point array, got {}.", a.dtype()),
        ))
    }
}

/// The common float dtype of the inputs and the inputs cast to it.
fn common(op: &str, xs: &[(&str, &Array)]) -> Result<(Dtype, Vec<Array>)> {
    let mut d: Option<Dtype> = None;
    for (name, a) in xs {
        float_input(op, name, a)?;
        d = Some(d.map_or(a.dtype(), |d| promote(d, a.dtype())));
    }
    let d = d.ok_or_else(|| Error::runtime(op, "no inputs"))?;
    let cast = xs
        .iter()
        .map(|(_, a)| astype(a, d))
        .collect::<Result<_>>()?;
    Ok((d, cast))
}

/// A 1-d vector as long as the last axis of `x`.
fn check_vector(op: &str, name: &str, v: &Array, x: &Array) -> Result<()> {
    let last = x.shape().last().copied().unwrap_or(0);
    if v.ndim() != 1 || v.shape()[0] != last {
        return Err(Error::value(
            op,
            format!(
                "{name} must have shape ({last},) to match the last axis of the input, got {:?}.",
                v.shape()
            ),
        ));
    }
    Ok(())
}

fn last_axis_input(op: &str, x: &Array) -> Result<()> {
    if x.ndim() == 0 {
        return Err(Error::value(op, "Input must have at least 1 dimension."));
    }
    Ok(())
}

fn fast(shape: Vec<usize>, dtype: Dtype, k: FastKernel, inputs: Vec<Array>) -> Array {
    Array::pending(shape, dtype, Primitive::Fast(k), inputs)
}

/// `x * rsqrt(mean(x^2, -1) + eps) [* weight]`.
pub fn rms_norm(x: &Array, weight: Option<&Array>, eps: f64) -> Result<Array> {
    let op = "rms_norm";
    last_axis_input(op, x)?;
    let mut named = vec![("x", x)];
    if let Some(w) = weight {
        check_vector(op, "weight", w, x)?;
        named.push(("weight", w));
    }
    let (d, ins) = common(op, &named)?;
    let k = FastKernel::RmsNorm {
        eps,
        weight: weight.is_some(),
    };
    Ok(fast(x.shape().to_vec(), d, k, ins))
}

/// `(x - mean) * rsqrt(var + eps) [* weight] [+ bias]` over the last axis.
pub fn layer_norm(
    x: &Array,
    weight: Option<&Array>,
    bias: Option<&Array>,
    eps: f64,
) -> Result<Array> {
    let op = "layer_norm";
    last_axis_input(op, x)?;
    let mut named = vec![("x", x)];
    for (name, v) in [("weight", weight), ("bias", bias)] {
        if let Some(v) = v {
            check_vector(op, name, v, x)?;
            named.push((name, v));
        }
    }
    let (d, ins) = common(op, &named)?;
    let k = FastKernel::LayerNorm {
        eps,
        weight: weight.is_some(),
        bias: bias.is_some(),
    };
    Ok(fast(x.shape().to_vec(), d, k, ins))
}

/// Rotary positional encoding of the first `dims` features; positions run along the
/// second-to-last axis from `offset` (an integer array of shape () or (B,)).
pub fn rope(
    x: &Array,
    dims: usize,
    traditional: bool,
    base: Option<f64>,
    scale: f64,
    offset: &Array,
    freqs: Option<&Array>,
) -> Result<Array> {
    let op = "rope";
    float_input(op, "a", x)?;
    if x.ndim() < 3 {
        return Err(Error::value(
            op,
            format!("Input must have at least 3 dimensions, got {}.", x.ndim()),
        ));
    }
    let d_last = x.shape()[x.ndim() - 1];
    if dims == 0 || !dims.is_multiple_of(2) || dims > d_last {
        return Err(Error::value(
            op,
            format!("dims must be a positive even number no larger than the last axis ({d_last}), got {dims}."),
        ));
    }
    if base.is_none() == freqs.is_none() {
        return Err(Error::value(
            op,
            "Exactly one of base and freqs must be None.",
        ));
    }
    if !offset.dtype().is_integer() {
        return Err(Error::value(op, "offset must be an integer."));
    }
    let batch = x.shape()[0];
    if offset.ndim() > 1 || (offset.ndim() == 1 && offset.shape()[0] != batch) {
        return Err(Error::value(
            op,
            format!(
                "offset must be a scalar or have shape ({batch},), got {:?}.",
                offset.shape()
            ),
        ));
    }
    let mut ins = vec![x.clone(), astype(offset, Dtype::Int64)?];
    if let Some(f) = freqs {
        if f.shape() != [dims / 2] {
            return Err(Error::value(
                op,
                format!(
                    "freqs must have shape ({},), got {:?}.",
                    dims / 2,
                    f.shape()
                ),
            ));
        }
        // frequencies in the compute type: f64 for f64 inputs, else f32
        let fd = if x.dtype() == Dtype::Float64 {
            Dtype::Float64
        } else {
            Dtype::Float32
        };
        ins.push(astype(f, fd)?);
    }
    let k = FastKernel::Rope {
        dims,
        traditional,
        base,
        scale,
    };
    Ok(fast(x.shape().to_vec(), x.dtype(), k, ins))
}

/// The mask argument of `scaled_dot_product_attention`.
pub enum MaskArg<'a> {
    None,
    Causal,
    Array(&'a Array),
}

/// `softmax(q k^T * scale + mask) v` per head; k/v heads are shared by groups of query
/// heads (grouped-query attention); `sinks` add one logit per head to the softmax.
pub fn scaled_dot_product_attention(
    q: &Array,
    k: &Array,
    v: &Array,
    scale: f64,
    mask: MaskArg<'_>,
    sinks: Option<&Array>,
) -> Result<Array> {
    let op = "scaled_dot_product_attention";
    for (name, t) in [("q", q), ("k", k), ("v", v)] {
        float_input(op, name, t)?;
        if t.ndim() != 4 {
            return Err(Error::value(
                op,
                format!(
                    "{name} must have 4 dimensions [B, N, T, D], got shape {:?}.",
                    t.shape()
                ),
            ));
        }
    }
    let (qs, ks, vs) = (q.shape(), k.shape(), v.shape());
    if ks[..3] != vs[..3] || qs[0] != ks[0] || qs[3] != ks[3] {
        return Err(Error::value(
            op,
            format!("q {qs:?}, k {ks:?} and v {vs:?} must agree on batch, heads, key length and head size."),
        ));
    }
    if ks[1] == 0 || qs[1] % ks[1] != 0 {
        return Err(Error::value(
            op,
            format!(
                "the number of query heads ({}) must be a multiple of the key/value heads ({}).",
                qs[1], ks[1]
            ),
        ));
    }
    let mut named = vec![("q", q), ("k", k), ("v", v)];
    let target = [qs[0], qs[1], qs[2], ks[2]];
    let mut mask_arr = None;
    let kind = match mask {
        MaskArg::None => SdpaMask::None,
        MaskArg::Causal => SdpaMask::Causal,
        MaskArg::Array(m) => {
            if m.ndim() > 4 {
                return Err(Error::value(
                    op,
                    format!("mask can have at most 4 dimensions, got {}.", m.ndim()),
                ));
            }
            let pad = 4 - m.ndim();
            let m4: Vec<usize> = std::iter::repeat_n(1, pad)
                .chain(m.shape().iter().copied())
                .collect();
            if m4.iter().zip(target).any(|(&a, b)| a != 1 && a != b) {
                return Err(Error::value(
                    op,
                    format!(
                        "mask of shape {:?} does not broadcast to {target:?}.",
                        m.shape()
                    ),
                ));
            }
            let shape4: Vec<i64> = m4.iter().map(|&d| d as i64).collect();
            let m4 = reshape(m, &shape4)?;
            if m.dtype() == Dtype::Bool {
                mask_arr = Some(m4);
                SdpaMask::Bool
            } else {
                mask_arr = Some(m4);
                SdpaMask::Additive
            }
        }
    };
    if let (SdpaMask::Additive, Some(m)) = (kind, mask_arr.as_ref()) {
        // as MLX: an additive mask may not widen the result type
        let d = promote(promote(q.dtype(), k.dtype()), v.dtype());
        if promote(d, m.dtype()) != d {
            return Err(Error::value(
                op,
                format!("Mask type must promote to output type {d}."),
            ));
        }
        named.push(("mask", m));
    }
    if let Some(s) = sinks {
        if s.shape() != [qs[1]] {
            return Err(Error::value(
                op,
                format!("sinks must have shape ({},), got {:?}.", qs[1], s.shape()),
            ));
        }
        named.push(("sinks", s));
    }
    let (d, mut ins) = common(op, &named)?;
    if let (SdpaMask::Bool, Some(m)) = (kind, mask_arr) {
        ins.insert(3, m);
    }
    let kern = FastKernel::Sdpa {
        scale,
        mask: kind,
        sinks: sinks.is_some(),
    };
    Ok(fast(vec![qs[0], qs[1], qs[2], vs[3]], d, kern, ins))
}

/// `logsumexp(logits, -1) - logits[..., targets]` in float32.
pub fn cross_entropy(logits: &Array, targets: &Array) -> Result<Array> {
    let op = "cross_entropy";
    float_input(op, "logits", logits)?;
    last_axis_input(op, logits)?;
    if !targets.dtype().is_integer() {
        return Err(Error::value(
            op,
            "targets must be an integer array of class indices.",
        ));
    }
    if targets.shape() != &logits.shape()[..logits.ndim() - 1] {
        return Err(Error::value(
            op,
            format!(
                "targets must have shape {:?}, got {:?}.",
                &logits.shape()[..logits.ndim() - 1],
                targets.shape()
            ),
        ));
    }
    let ins = vec![logits.clone(), astype(targets, Dtype::Int64)?];
    Ok(fast(
        targets.shape().to_vec(),
        Dtype::Float32,
        FastKernel::CrossEntropy,
        ins,
    ))
}

/// The gradients (dq, dk, dv) of `scaled_dot_product_attention(q, k, v, scale)` without
/// a mask or with the causal mask, at its output `o`, for the cotangent `g`
/// (`FastKernel::SdpaGrad`): one 1-d array holding dq, dk and dv one after another.
pub fn sdpa_grad(
    q: &Array,
    k: &Array,
    v: &Array,
    o: &Array,
    g: &Array,
    scale: f64,
    causal: bool,
) -> Result<Array> {
    let op = "scaled_dot_product_attention_grad";
    let (d, ins) = common(op, &[("q", q), ("k", k), ("v", v), ("o", o), ("g", g)])?;
    let four = [q, k, v, o, g].iter().all(|a| a.ndim() == 4);
    let (qs, ks) = (q.shape(), k.shape());
    let fits = four
        && v.shape() == ks
        && o.shape() == qs
        && g.shape() == qs
        && ks[0] == qs[0]
        && ks[3] == qs[3]
        && ks[1] > 0
        && qs[1] % ks[1] == 0;
    if !fits {
        return Err(Error::value(
            op,
            format!(
                "q, o and g (B, N_q, T_q, D) and k, v (B, N_kv, T_kv, D) with N_kv dividing N_q, got {:?}, {:?}, {:?}, {:?}, {:?}.",
                qs,
                ks,
                v.shape(),
                o.shape(),
                g.shape()
            ),
        ));
    }
    let n = q
        .size()
        .checked_add(k.size())
        .and_then(|n| n.checked_add(k.size()))
        .ok_or_else(|| Error::overflow(op))?;
    Ok(fast(
        vec![n],
        d,
        FastKernel::SdpaGrad { scale, causal },
        ins,
    ))
}

/// The gradient of `cross_entropy` with respect to `logits` for the loss cotangent `g`
/// (`FastKernel::CrossEntropyGrad`), shaped and typed as `logits`.
pub fn cross_entropy_grad(logits: &Array, targets: &Array, g: &Array) -> Result<Array> {
    let op = "cross_entropy_grad";
    float_input(op, "logits", logits)?;
    last_axis_input(op, logits)?;
    let rows = &logits.shape()[..logits.ndim() - 1];
    if !targets.dtype().is_integer() || targets.shape() != rows {
        return Err(Error::value(
            op,
            format!(
                "targets must be integer class indices of shape {rows:?}, got {} of shape {:?}.",
                targets.dtype(),
                targets.shape()
            ),
        ));
    }
    if g.shape() != rows {
        return Err(Error::value(
            op,
            format!(
                "the cotangent must have shape {rows:?}, got {:?}.",
                g.shape()
            ),
        ));
    }
    let acc = if logits.dtype() == Dtype::Float64 {
        Dtype::Float64
    } else {
        Dtype::Float32
    };
    let ins = vec![
        logits.clone(),
        astype(targets, Dtype::Int64)?,
        astype(g, acc)?,
    ];
    Ok(fast(
        logits.shape().to_vec(),
        logits.dtype(),
        FastKernel::CrossEntropyGrad,
        ins,
    ))
}

/// The gradients of `rms_norm` (`rms`) or `layer_norm` at `x` for the cotangent `g`
/// (`FastKernel::NormGrad`): one 1-d array of x's dtype holding dx, then dw (with a
/// weight) and db (with `bias`). `weight` and `g` are cast to x's float dtype.
pub fn norm_grad(
    x: &Array,
    weight: Option<&Array>,
    g: &Array,
    eps: f64,
    rms: bool,
    bias: bool,
) -> Result<Array> {
    let op = if rms {
        "rms_norm_grad"
    } else {
        "layer_norm_grad"
    };
    float_input(op, "x", x)?;
    last_axis_input(op, x)?;
    if rms && bias {
        return Err(Error::value(op, "rms_norm has no bias."));
    }
    if g.shape() != x.shape() {
        return Err(Error::value(
            op,
            format!(
                "the cotangent must have the input's shape {:?}, got {:?}.",
                x.shape(),
                g.shape()
            ),
        ));
    }
    let d = x.dtype();
    let mut ins = vec![x.clone()];
    if let Some(w) = weight {
        check_vector(op, "weight", w, x)?;
        ins.push(astype(w, d)?);
    }
    ins.push(astype(g, d)?);
    let n = x.shape().last().copied().unwrap_or(0);
    let len = (weight.is_some() as usize + bias as usize)
        .checked_mul(n)
        .and_then(|params| params.checked_add(x.size()))
        .ok_or_else(|| Error::overflow(op))?;
    let k = FastKernel::NormGrad {
        eps,
        rms,
        weight: weight.is_some(),
        bias,
    };
    Ok(fast(vec![len], d, k, ins))
}

/// One fused Adam/AdamW update (`FastKernel::AdamStep`): `[p', m', v']` stacked on a new
/// first axis. `c` = [b1, 1 - b1, b2, 1 - b2, eps] as the composite formula rounds them.
#[allow(clippy::too_many_arguments)]
pub fn adam_step(
    p: &Array,
    g: &Array,
    m: &Array,
    v: &Array,
    s1: &Array,
    s2: &Array,
    decay: &Array,
    c: [f64; 5],
) -> Result<Array> {
    let op = "adam_step";
    let d = p.dtype();
    if !d.is_float() {
        return Err(Error::value(
            op,
            format!("the parameter must be a float type, got {d}."),
        ));
    }
    for (name, a) in [("gradient", g), ("m", m), ("v", v)] {
        if a.dtype() != d || a.shape() != p.shape() {
            return Err(Error::value(
                op,
                format!(
                    "{name} ({} {:?}) must have the parameter's dtype and shape ({d} {:?}).",
                    a.dtype(),
                    a.shape(),
                    p.shape()
                ),
            ));
        }
    }
    for (name, a) in [("s1", s1), ("s2", s2), ("decay", decay)] {
        if a.dtype() != d || a.ndim() != 0 {
            return Err(Error::value(op, format!("{name} must be a 0-d {d} array.")));
        }
    }
    let shape: Vec<usize> = std::iter::once(3)
        .chain(p.shape().iter().copied())
        .collect();
    let ins = [p, g, m, v, s1, s2, decay].map(Array::clone).to_vec();
    Ok(fast(shape, d, FastKernel::AdamStep { c }, ins))
}
