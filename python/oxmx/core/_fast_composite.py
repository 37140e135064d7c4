"""Composite (unfused) formulas of ``oxmx.core.fast``, written with ordinary ops.

They are the reference the fused kernels are tested against, and the path used where a
backend has no fused kernel for a case. Half-precision inputs are computed in float32 and
rounded once at the end, as the fused kernels do.
"""

import math

import oxmx.core as mx


def _acc(x):
    return x.astype(mx.float32) if x.dtype in (mx.float16, mx.bfloat16) else x


def rms_norm(x, weight, eps):
    xf = _acc(x)
    y = xf * mx.rsqrt(mx.mean(mx.square(xf), axis=-1, keepdims=True) + eps)
    if weight is not None:
        y = y * _acc(weight)
        return y.astype(mx.result_type(x, weight))
    return y.astype(x.dtype)


def layer_norm(x, weight, bias, eps):
    xf = _acc(x)
    mean = mx.mean(xf, axis=-1, keepdims=True)
    var = mx.mean(mx.square(xf - mean), axis=-1, keepdims=True)
    y = (xf - mean) * mx.rsqrt(var + eps)
    out_dtype = x.dtype
    if weight is not None:
        y = y * _acc(weight)
        out_dtype = mx.result_type(out_dtype, weight)
    if bias is not None:
        y = y + _acc(bias)
        out_dtype = mx.result_type(out_dtype, bias)
    return y.astype(out_dtype)


def rope_angles(length, dims, base, scale, offset, freqs, dtype=mx.float32):
    """(..., length, dims // 2) rotation angles in ``dtype`` (float64 for float64 inputs,
    else float32); ``offset`` is an int or an array of shape () or (B,)."""
    half = dims // 2
    if freqs is not None:
        inv = mx.reciprocal(freqs.astype(dtype))
    else:
        inv = mx.exp(-(mx.arange(0, half, dtype=dtype) * (2.0 / dims)) * math.log(base))
    pos = mx.arange(length, dtype=dtype)
    if isinstance(offset, mx.array):
        off = offset.astype(dtype)
        if off.ndim == 1:
            off = off.reshape(-1, 1)  # (B, 1) positions per example
        pos = pos + off
    else:
        pos = pos + float(offset)
    pos = pos * scale
    return mx.expand_dims(pos, -1) * inv


def rope(a, dims, traditional, base, scale, offset, freqs):
    length = a.shape[-2]
    wide = mx.float64 if a.dtype == mx.float64 else mx.float32
    theta = rope_angles(length, dims, base, scale, offset, freqs, wide)
    if isinstance(offset, mx.array) and offset.ndim == 1:
        # (B, L, half) -> (B, 1, ..., 1, L, half) to line up with a's batch axis
        theta = theta.reshape((theta.shape[0],) + (1,) * (a.ndim - 3) + theta.shape[1:])
    cos, sin = mx.cos(theta), mx.sin(theta)
    af = _acc(a)
    rot, rest = af[..., :dims], af[..., dims:]
    if traditional:
        x1, x2 = rot[..., 0::2], rot[..., 1::2]
        y1 = x1 * cos - x2 * sin
        y2 = x1 * sin + x2 * cos
        out = mx.stack([y1, y2], axis=-1).reshape(rot.shape)
    else:
        half = dims // 2
        x1, x2 = rot[..., :half], rot[..., half:dims]
        out = mx.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
    if dims < a.shape[-1]:
        out = mx.concatenate([out, rest], axis=-1)
    return out.astype(a.dtype)


def scaled_dot_product_attention(q, k, v, scale, mask=None, sinks=None):
    n_q, n_kv = q.shape[1], k.shape[1]
    out_dtype = mx.result_type(q, k, v)
    qf, kf, vf = _acc(q) * scale, _acc(k), _acc(v)
    if n_q != n_kv:
        rep = n_q // n_kv
        b, _, lk, d = kf.shape
        kf = mx.repeat(kf, rep, axis=1)
        vf = mx.repeat(vf, rep, axis=1)
    scores = qf @ mx.swapaxes(kf, -1, -2)
    lq, lk = scores.shape[-2], scores.shape[-1]
    # as MLX: hidden scores take the lowest finite value, so a row with every key hidden
    # averages v instead of giving NaN
    lowest = mx.finfo(scores.dtype).min
    if isinstance(mask, str):
        allowed = mx.arange(lq)[:, None] + (lk - lq) >= mx.arange(lk)[None, :]
        scores = mx.where(allowed, scores, lowest)
    elif mask is not None:
        if mask.dtype == mx.bool_:
            scores = mx.where(mask, scores, lowest)
        else:
            scores = scores + _acc(mask)
    if sinks is not None:
        s = mx.broadcast_to(_acc(sinks).reshape(1, -1, 1, 1), scores.shape[:-1] + (1,))
        scores = mx.concatenate([s, scores], axis=-1)
        probs = mx.softmax(scores, axis=-1)[..., 1:]
    else:
        probs = mx.softmax(scores, axis=-1)
    return (probs @ vf).astype(out_dtype)


def cross_entropy(logits, targets):
    lf = logits.astype(mx.float32)
    picked = mx.take_along_axis(lf, mx.expand_dims(targets.astype(mx.int32), -1), axis=-1)
    return mx.logsumexp(lf, axis=-1) - mx.squeeze(picked, -1)
