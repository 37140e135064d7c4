"""Quantization with MLX's formats and packing (``affine``, ``mxfp4``, ``mxfp8``, ``nvfp4``).

``dequantize`` and ``quantized_matmul`` are graph nodes with CPU and GPU kernels (the packed
matrix is never expanded in memory for a product). ``quantize``, ``to_fp8``/``from_fp8``
and the gathered/double-quantized products are composed here from graph ops, so they run
on every device and follow MLX's formulas operation by operation:

* affine, ``bits >= 2``: per group, the end with the larger magnitude (``edge``) is kept
  exact: ``s = (max - min) / (2^bits - 1)`` (at least 1e-7), signed towards ``edge``, then
  ``s = edge / round(edge / s)`` and ``bias = edge`` (``bias = 0`` when that rounds to 0);
  ``q = clip(round((w - bias) / s), 0, 2^bits - 1)``. ``bits == 1``: ``s = max - min``,
  ``bias = min``. Computed in float32; scales and biases are returned in ``w``'s dtype.
* mx: ``e = ceil(log2(amax / vmax))`` (``vmax`` 6 for E2M1, 448 for E4M3; ``e = 0`` when
  that quotient is 0), stored as the byte ``e + 127``; values ``w / 2^e`` rounded to
  nearest with saturation: E4M3 ties to even, E2M1 ties to the smaller magnitude (as MLX
  rounds them); E4M3 keeps the input's sign bit, NaN's included.
* nvfp4: the scale ``amax / 6`` (times ``2688 / global_scale`` when given) stored as E4M3,
  values ``w / scale`` rounded to E2M1. With a global scale, dequantization multiplies
  each value by ``scale * (global_scale / 2688)`` in float32 (MLX's order and dtype).

Values are packed little-end first into uint32 words: level ``i`` of a row occupies bits
``[i * bits, (i + 1) * bits)`` of the row's bit stream.
"""

import math

from oxmx import _oxmx as _n

from ._matmul_variants import _broadcast, _default_indices, _gather_matrices, _on_stream
from ._transforms import stop_gradient as _stop_gradient

__all__ = ["quantize", "dequantize", "quantized_matmul", "gather_qmm", "qqmm", "gather_qqmm", "to_fp8", "from_fp8"]

# E4M3 and E2M1 largest finite values; NVIDIA's two-level nvfp4 scaling divides by both.
_FP8_MAX = 448.0
_FP4_MAX = 6.0
_NV_GLOBAL = _FP8_MAX * _FP4_MAX


def _array(op, x, what):
    if not isinstance(x, _n.array):
        raise TypeError(f"[{op}] {what} must be an array, got {type(x).__name__}.")
    return x


def _is_float(d):
    return _n.issubdtype(d, _n.floating)


# ----------------------------------------------------------------------------- fp8 / fp4
def _pow2(e):
    """2 ** e for integral float32 ``e``, exact (built from exponent bits in the normal
    range, where every later use lies; ``power`` outside it)."""
    normal = _n.logical_and(e >= -126, e <= 127)
    bits = _n.left_shift((_n.clip(e, -126, 127) + 127).astype(_n.uint32), _n.array(23, _n.uint32))
    return _n.where(normal, bits.view(_n.float32), _n.power(_n.array(2.0, _n.float32), e))


def _exponent(a):
    """floor(log2(a)) of positive float32 ``a`` from its exponent bits (subnormals: -127)."""
    return (_n.right_shift(a.view(_n.uint32), 23).astype(_n.int32) - 127).astype(_n.float32)


def _e4m3_codes(x):
    """float32 -> E4M3 byte: round to nearest even, |x| >= 448 (and inf, NaN) -> 448, with
    the input's sign bit (NaN's included: -NaN -> -448, as in MLX)."""
    a = _n.abs(x)
    big = _n.logical_or(a >= _FP8_MAX, _n.isnan(a))
    a = _n.where(big, _n.array(0.0, _n.float32), a)
    e = _n.maximum(_exponent(a), _n.array(-6.0, _n.float32))
    quantum = _pow2(e - 3)
    r = _n.round(a / quantum) * quantum
    re = _exponent(_n.maximum(r, _n.array(2.0**-6, _n.float32)))
    normal = (re + 7) * 8 + (r * _pow2(-re) - 1) * 8
    code = _n.where(r < 2.0**-6, r * 512, normal)
    code = _n.where(big, _n.array(126.0, _n.float32), code).astype(_n.uint8)
    # the sign bit follows the input's (-0.0 and NaN included)
    neg = _n.right_shift(x.view(_n.uint32), _n.array(31, _n.uint32)) == 1
    return _n.where(neg, code + _n.array(128, _n.uint8), code)


def _e4m3_table():
    vals = []
    for c in range(256):
        e, m = (c >> 3) & 15, c & 7
        v = math.nan if (e == 15 and m == 7) else (m * 2.0**-9 if e == 0 else (1 + m / 8) * 2.0 ** (e - 7))
        vals.append(-v if c & 128 else v)
    return vals


_E4M3 = _e4m3_table()
_FP4 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]
# E2M1 decision points: a magnitude above one takes the next code.
_FP4_UP = (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0)


def _e2m1_codes(x):
    """float32 -> E2M1 code (0..15): nearest with saturation at 6; NaN -> 0. A tie goes to
    the smaller magnitude, as MLX rounds it (0.75 -> 0.5, 1.75 -> 1.5, 3.5 -> 3; not to the
    even code)."""
    a = _n.abs(x)
    code = _n.zeros(x.shape, _n.uint32)
    for t in _FP4_UP:
        code = code + (a > t).astype(_n.uint32)
    # a negative value that rounds to zero gets code 0, not -0 (as MLX packs it)
    return _n.where(_n.logical_and(x < 0, code > 0), code + 8, code)


def _decode(table, codes):
    return _n.take(_n.array(table, _n.float32), codes.astype(_n.uint32))


def to_fp8(x, *, stream=None):
    """Convert ``x`` to fp8 (E4M3) bytes: round to nearest even, saturating at ±448."""
    op = "to_fp8"
    _array(op, x, "x")
    if not _is_float(x.dtype):
        raise ValueError(f"[{op}] Only real floating types are supported but x.dtype() == {x.dtype.name}.")
    return _on_stream(stream, lambda: _e4m3_codes(x.astype(_n.float32)))


def from_fp8(x, dtype=_n.bfloat16, *, stream=None):
    """Convert fp8 (E4M3) bytes in a uint8 array to ``dtype``."""
    op = "from_fp8"
    _array(op, x, "x")
    if x.dtype != _n.uint8:
        raise ValueError(f"[{op}] Input must have type uint8 but x.dtype() == {x.dtype.name}.")
    if not _is_float(dtype):
        raise ValueError(f"[{op}] Only real floating types are supported as output, got {dtype}.")
    return _on_stream(stream, lambda: _decode(_E4M3, x).astype(dtype))


# ----------------------------------------------------------------------------- packing
def _pack(q, bits):
    """uint32 levels (.., C) -> words (.., C * bits / 32), little-end first."""
    shape = tuple(q.shape[:-1])
    c = q.shape[-1]
    if 32 % bits == 0:
        per = 32 // bits
        shifts = _n.arange(0, 32, bits, dtype=_n.uint32)
        lanes = _n.left_shift(q.reshape(shape + (c // per, per)), shifts)
        return _n.sum(lanes, axis=-1).astype(_n.uint32)
    # 3, 5, 6 bits: 32 levels fill `bits` words; level i lands in word j shifted by
    # i*bits - 32*j (bits shifted past either end drop out).
    i = _n.arange(32, dtype=_n.int32).reshape((32, 1)) * bits
    j = _n.arange(bits, dtype=_n.int32).reshape((1, bits)) * 32
    s = i - j
    left = _n.maximum(s, 0).astype(_n.uint32)
    right = _n.maximum(-s, 0).astype(_n.uint32)
    g = q.reshape(shape + (c // 32, 32, 1))
    parts = _n.where(s >= 0, _n.left_shift(g, left), _n.right_shift(g, right))
    return _n.sum(parts, axis=-2).astype(_n.uint32).reshape(shape + (c * bits // 32,))


# ----------------------------------------------------------------------------- quantize
def _affine(w, group_size, bits):
    shape = tuple(w.shape)
    g = w.astype(_n.float32).reshape(shape[:-1] + (shape[-1] // group_size, group_size))
    wmax = _n.max(g, axis=-1, keepdims=True)
    wmin = _n.min(g, axis=-1, keepdims=True)
    n_bins = float(2**bits - 1)
    eps = _n.array(1e-7, _n.float32)
    zero = _n.array(0.0, _n.float32)
    if bits == 1:
        scales = _n.maximum(wmax - wmin, eps)
        biases = wmin
    else:
        mask = _n.abs(wmin) > _n.abs(wmax)
        scales = _n.maximum((wmax - wmin) / n_bins, eps)
        scales = _n.where(mask, scales, -scales)
        edge = _n.where(mask, wmin, wmax)
        q0 = _n.round(edge / scales)
        scales = _n.where(q0 != 0, edge / q0, scales)
        biases = _n.where(q0 == 0, zero, edge)
    q = _n.clip(_n.round((g - biases) / scales), 0, n_bins).astype(_n.uint32)
    packed = _pack(q.reshape(shape), bits)
    return packed, scales.squeeze(-1).astype(w.dtype), biases.squeeze(-1).astype(w.dtype)


def _mx(w, group_size, bits):
    shape = tuple(w.shape)
    g = w.astype(_n.float32).reshape(shape[:-1] + (shape[-1] // group_size, group_size))
    vmax = _FP4_MAX if bits == 4 else _FP8_MAX
    ratio = _n.max(_n.abs(g), axis=-1, keepdims=True) / vmax
    # log2 correctly rounded to float32 (as the C library's log2f), then ceil.
    e = _n.ceil(_n.log2(ratio.astype(_n.float64)).astype(_n.float32))
    e = _n.where(ratio == 0, _n.array(0.0, _n.float32), e)
    finite = _n.isfinite(e)
    e_safe = _n.where(finite, e, _n.array(0.0, _n.float32))
    scale_codes = _n.where(finite, _n.remainder(e_safe + 127, 256), _n.array(128.0, _n.float32))
    vals = g / _pow2(e_safe)
    q = _e2m1_codes(vals) if bits == 4 else _e4m3_codes(vals).astype(_n.uint32)
    return _pack(q.reshape(shape), bits), scale_codes.squeeze(-1).astype(_n.uint8)


def _nv_factor(global_scale):
    """``global_scale / 2688``: what nvfp4's E4M3 scales are multiplied by."""
    return global_scale.astype(_n.float32) / _NV_GLOBAL


_E4M3_ONE = 56  # the E4M3 code of 1.0


def _nv_dequantize_global(w, scales, group_size, global_scale):
    """float32 nvfp4 dequantization with a (scalar) global scale, rounded as MLX rounds it:
    each E2M1 value times (its group's E4M3 scale times ``global_scale / 2688``)."""
    values = _n._quant_dequantize(w, _n.full(scales.shape, _E4M3_ONE, _n.uint8), None, "nvfp4", group_size, 4,
                                  _n.float32)
    shape = tuple(values.shape)
    groups = scales.shape[-1]
    scale = _decode(_E4M3, scales) * _nv_factor(global_scale)
    out = values.reshape(shape[:-1] + (groups, shape[-1] // groups)) * scale.reshape(tuple(scale.shape) + (1,))
    return out.reshape(shape)


def _nvfp4(w, group_size, global_scale):
    shape = tuple(w.shape)
    g = w.astype(_n.float32).reshape(shape[:-1] + (shape[-1] // group_size, group_size))
    scale = _n.max(_n.abs(g), axis=-1, keepdims=True) / _FP4_MAX
    if global_scale is not None:
        scale = scale * (_NV_GLOBAL / global_scale.astype(_n.float32))
    codes = _e4m3_codes(scale)
    used = _decode(_E4M3, codes)
    if global_scale is not None:
        used = used * _nv_factor(global_scale)
    # a scale that rounds to zero zeroes its group (MLX writes no inf/NaN codes there)
    zero = _n.array(0.0, _n.float32)
    q = _e2m1_codes(_n.where(used == 0, zero, g / _n.where(used == 0, _n.array(1.0, _n.float32), used)))
    return _pack(q.reshape(shape), 4), codes.squeeze(-1)


def _shape_text(shape):
    return "(" + ",".join(str(d) for d in shape) + ")"


def _global_scale(op, mode, global_scale, expert_shape=None):
    """Checks ``global_scale`` as MLX does: nvfp4 only, float32, and a single value
    (returned as a scalar) or, with ``expert_shape``, one value per expert of that shape."""
    if global_scale is None:
        return None
    _array(op, global_scale, "global_scale")
    if mode != "nvfp4":
        raise ValueError(f"[{op}] Global scale is only supported for 'nvfp4' quantization mode.")
    shape = tuple(global_scale.shape)
    if expert_shape is None and global_scale.size != 1:
        raise ValueError(f"[{op}] Global scale must be a scalar but got shape {_shape_text(shape)}.")
    if global_scale.dtype != _n.float32:
        raise ValueError(f"[{op}] Global scale must have dtype float32 but got {global_scale.dtype.name}.")
    if expert_shape is None:
        return global_scale.reshape(())
    if shape != tuple(expert_shape):
        raise ValueError(
            f"[{op}] Global scale must have one entry per expert with shape {_shape_text(expert_shape)} "
            f"but got {_shape_text(shape)}."
        )
    return global_scale


def mode_defaults(mode, op="quantize"):
    """``(group_size, bits)`` that ``mode`` uses when they are not given (the one table,
    in ``oxmx-core/src/ops/quantized.rs``); an unknown mode raises MLX's error."""
    return _n._quant_spec(op, mode, None, None)


def quantize(w, /, group_size=None, bits=None, mode="affine", *, global_scale=None, stream=None):
    """Quantize ``w`` in groups of ``group_size`` consecutive elements of its last axis.

    Returns ``(w_q, scales, biases)`` for ``mode="affine"`` and ``(w_q, scales)`` for the
    ``"mxfp4"``, ``"mxfp8"`` and ``"nvfp4"`` modes, packed as MLX packs them.
    """
    op = "quantize"
    _array(op, w, "w")
    # MLX's order of checks: mode, rank, dtype, divisibility, global scale, then whether
    # the group size and bits are supported
    default_group, _ = mode_defaults(mode, op)
    if w.ndim < 2:
        raise ValueError(f"[{op}] The matrix to be quantized must have at least 2 dimension but it has only {w.ndim}.")
    if not _is_float(w.dtype):
        raise ValueError(f"[{op}] Only real floating types can be quantized but w has type {w.dtype.name}.")
    group = default_group if group_size is None else group_size
    if isinstance(group, int) and group > 0 and w.shape[-1] % group != 0:
        raise ValueError(
            f"[{op}] The last dimension of the matrix needs to be divisible by the quantization group size "
            f"{group}. However the provided matrix has shape {tuple(w.shape)}."
        )
    gs = _global_scale(op, mode, global_scale)
    group_size, bits = _n._quant_spec(op, mode, group_size, bits)
    if mode == "affine":
        return _on_stream(stream, lambda: list(_affine(w, group_size, bits)))
    if mode == "nvfp4":
        return _on_stream(stream, lambda: list(_nvfp4(w, group_size, gs)))
    return _on_stream(stream, lambda: list(_mx(w, group_size, bits)))


def dequantize(w, /, scales, biases=None, group_size=None, bits=None, mode="affine", global_scale=None, dtype=None,
               *, stream=None):
    """The floats that ``quantize`` packed into ``w``: ``scales * q + biases`` per group
    (affine) or the fp4/fp8 values times their group's scale."""
    op = "dequantize"
    _array(op, w, "w")
    _array(op, scales, "scales")
    if biases is not None:
        _array(op, biases, "biases")
    gs = _global_scale(op, mode, global_scale)

    def run():
        if gs is None:
            return _n._quant_dequantize(w, scales, biases, mode, group_size, bits, dtype)
        # as in MLX, the float32 global scale promotes the result to float32 (at least)
        # the plain node checks the arguments (its result is never evaluated)
        _n._quant_dequantize(w, scales, biases, mode, group_size, bits, _n.float32)
        out_dtype = (_n.zeros((), _n.bfloat16 if dtype is None else dtype) + _n.zeros((), _n.float32)).dtype
        return _nv_dequantize_global(w, scales, group_size, gs).astype(out_dtype)

    return _on_stream(stream, run)


def quantized_matmul(x, w, /, scales, biases=None, transpose=True, group_size=None, bits=None, mode="affine", *,
                     stream=None):
    """``x @ dequantize(w).T`` (``transpose=True``) or ``x @ dequantize(w)`` without
    expanding ``w``."""
    op = "quantized_matmul"
    _array(op, x, "x")
    _array(op, w, "w")
    _array(op, scales, "scales")
    if biases is not None:
        _array(op, biases, "biases")
    return _on_stream(
        stream, lambda: _n._quant_matmul(x, w, scales, biases, bool(transpose), mode, group_size, bits)
    )


def _integral(op, idx, what):
    if idx is not None:
        _array(op, idx, what)
        if not _n.issubdtype(idx.dtype, _n.integer):
            raise ValueError(f"[{op}] Got {what} with invalid dtype. Indices must be integral.")
    return idx


def gather_qmm(x, w, /, scales, biases=None, lhs_indices=None, rhs_indices=None, transpose=True, group_size=None,
               bits=None, mode="affine", global_scale=None, *, sorted_indices=False, stream=None):
    """:func:`quantized_matmul` with matrix-level gather: ``lhs_indices``/``rhs_indices``
    pick flat batch matrices of ``x`` and of ``w`` (with its ``scales``/``biases``)."""
    op = "gather_qmm"
    for v, what in ((x, "x"), (w, "w"), (scales, "scales")):
        _array(op, v, what)
    lhs_indices = _integral(op, lhs_indices, "lhs_indices")
    rhs_indices = _integral(op, rhs_indices, "rhs_indices")
    if global_scale is not None and lhs_indices is None and rhs_indices is None:
        raise ValueError(f"[{op}] Global scale is not supported without indices.")
    # one global scale per expert (batch matrix of w), gathered with w
    gs = _global_scale(op, mode, global_scale, expert_shape=tuple(w.shape[:-2]))
    if not isinstance(sorted_indices, bool):
        raise TypeError(f"[{op}] sorted_indices must be a bool, got {type(sorted_indices).__name__}.")

    def run():
        if lhs_indices is None and rhs_indices is None:
            out = _n._quant_matmul(x, w, scales, biases, bool(transpose), mode, group_size, bits)
        else:
            xm = x.reshape((1, x.shape[0])) if x.ndim == 1 else x
            if w.ndim < 2 or xm.ndim < 2:
                raise ValueError(f"[{op}] The quantized matrix must have at least 2 dimensions.")
            lhs = _default_indices(xm) if lhs_indices is None else lhs_indices
            rhs = _default_indices(w) if rhs_indices is None else rhs_indices
            batch = _broadcast(op, tuple(lhs.shape), tuple(rhs.shape))
            # one node that reads the picked matrices in place
            out = _n._gather_qmm(xm, w, scales, biases, lhs, rhs, bool(transpose), mode, group_size, bits)
            if gs is not None:
                factor = _n.take(_nv_factor(gs).reshape((-1,)), _n.broadcast_to(rhs, batch).reshape((-1,)))
                out = (out * factor.reshape(batch + (1, 1))).astype(out.dtype)
            if x.ndim == 1:
                out = out.squeeze(-2)
        return out

    return _on_stream(stream, run)


# ----------------------------------------------------------------------------- qqmm
_QQ_MODES = ("nvfp4", "mxfp8")


def _fake_quant(a, mode, group_size, bits, global_scale):
    """``dequantize(quantize(a))`` in float32: what qqmm multiplies."""
    if a.ndim == 1:  # a vector x: one row
        return _fake_quant(a.reshape((1, a.shape[0])), mode, group_size, bits, global_scale).reshape(a.shape)
    if mode == "nvfp4":
        q, s = _nvfp4(a, group_size, global_scale)
    else:
        q, s = _mx(a, group_size, bits)
    if global_scale is not None:
        return _nv_dequantize_global(q, s, group_size, global_scale)
    return _n._quant_dequantize(q, s, None, mode, group_size, bits, _n.float32)


def _qq_operands(op, x, w, scales, group_size, bits, mode, gx, gw):
    if mode not in _QQ_MODES:
        raise ValueError(f"[{op}] Only 'nvfp4' and 'mxfp8' modes are supported, got {mode!r}.")
    group_size, bits = _n._quant_spec(op, mode, group_size, bits)
    gx = _global_scale(op, mode, gx)
    gw = _global_scale(op, mode, gw)
    if (gx is None) != (gw is None):
        raise ValueError(
            f"[{op}] For nvfp4 mode, either both global_scale_x and global_scale_w must be provided, or neither."
        )
    if not _is_float(x.dtype):
        raise ValueError(f"[{op}] x must be float32, float16 or bfloat16, got {x.dtype.name}.")
    if x.shape[-1] % group_size != 0:
        raise ValueError(f"[{op}] The last dimension of x ({x.shape[-1]}) must be divisible by the group size {group_size}.")
    xq = _fake_quant(x, mode, group_size, bits, gx)
    if w.dtype == _n.uint32:
        if scales is None:
            raise ValueError(f"[{op}] scales must be given for a quantized w.")
        wq = _n._quant_dequantize(w, scales, None, mode, group_size, bits, _n.float32)
        if gw is not None:
            wq = _nv_dequantize_global(w, scales, group_size, gw)
    else:
        if not _is_float(w.dtype):
            raise ValueError(f"[{op}] w must be floating point or packed uint32, got {w.dtype.name}.")
        if scales is not None:
            raise ValueError(f"[{op}] scales must be None when w is not quantized.")
        wq = _fake_quant(w, mode, group_size, bits, gw)
    return xq, wq


def _straight_through(xq, wq, x, w, product):
    """``product(xq, wq)`` whose gradients flow to ``x`` and a float ``w`` as if the
    quantization were the identity (straight-through)."""
    if w.dtype == _n.uint32:
        return product(x + _stop_gradient(xq - x), wq)
    return product(x + _stop_gradient(xq - x), w + _stop_gradient(wq - w))


def qqmm(x, w, scales=None, group_size=None, bits=None, mode="nvfp4", global_scale_x=None, global_scale_w=None, *,
         stream=None):
    """``x @ w.T`` with ``x`` (and ``w`` unless already packed) quantized on the fly in
    ``mode`` ("nvfp4" or "mxfp8"); gradients pass straight through the quantization."""
    op = "qqmm"
    _array(op, x, "x")
    _array(op, w, "w")

    def run():
        xq, wq = _qq_operands(op, x, w, scales, group_size, bits, mode, global_scale_x, global_scale_w)
        out_dtype = x.dtype
        y = _straight_through(
            xq, wq, x.astype(_n.float32), w.astype(_n.float32) if w.dtype != _n.uint32 else w,
            lambda a, b: _n.matmul(a, _n.swapaxes(b, -1, -2)),
        )
        return y.astype(out_dtype)

    return _on_stream(stream, run)


def gather_qqmm(x, w, /, scales=None, lhs_indices=None, rhs_indices=None, group_size=None, bits=None, mode="nvfp4",
                global_scale_x=None, global_scale_w=None, *, sorted_indices=False, stream=None):
    """:func:`qqmm` with matrix-level gather (see :func:`gather_qmm`)."""
    op = "gather_qqmm"
    _array(op, x, "x")
    _array(op, w, "w")
    lhs_indices = _integral(op, lhs_indices, "lhs_indices")
    rhs_indices = _integral(op, rhs_indices, "rhs_indices")

    def run():
        xq, wq = _qq_operands(op, x, w, scales, group_size, bits, mode, global_scale_x, global_scale_w)
        xf = x.astype(_n.float32)
        wf = w.astype(_n.float32) if w.dtype != _n.uint32 else w

        def product(a, b):
            bt = _n.swapaxes(b, -1, -2)
            if lhs_indices is None and rhs_indices is None:
                return _n.matmul(a, bt)
            am = a.reshape((1, a.shape[0])) if a.ndim == 1 else a
            lhs = _default_indices(am) if lhs_indices is None else lhs_indices
            rhs = _default_indices(bt) if rhs_indices is None else rhs_indices
            batch = _broadcast(op, tuple(lhs.shape), tuple(rhs.shape))
            y = _n.matmul(_gather_matrices(am, lhs, batch), _gather_matrices(bt, rhs, batch))
            return y.squeeze(-2) if a.ndim == 1 else y

        return _straight_through(xq, wq, xf, wf, product).astype(x.dtype)

    return _on_stream(stream, run)
