"""Convolutions (MLX's ``conv1d`` ... ``conv_transpose3d``, ``conv_general``, ``convolve``).

Layout as MLX: channels-last inputs ``(N, *spatial, C_in)`` and weights
``(C_out, *kernel, C_in / groups)``. Everything funnels into ``conv_general``:

1. negative padding crops the input *before* input dilation (as MLX does), input
   dilation inserts zeros between elements, positive padding adds zeros;
2. the valid, strided, kernel-dilated, grouped cross-correlation of the result is a
   native node (``_oxmx._conv``: blocked im2col + gemm on the CPU, cuDNN on the GPU) for
   real floating dtypes, and for complex64 one gather of all kernel windows
   (``as_strided``) and one matmul (im2col).

Step 2 is a ``custom_function`` with its own rules; for real floating dtypes its input
gradient (the transposed correlation, without the zeros a strided one would insert) and
its weight gradient are native nodes too (``_oxmx._conv_input_grad``,
``_oxmx._conv_weight_grad``), each a ``custom_function`` with rules, so gradients of any
order, jvp (all three are bilinear) and vmap (a mapped input folds into the batch; a
mapped weight becomes extra channel groups) never leave the three nodes. complex64 keeps
the composite rules (the input gradient as a correlation of the stride-dilated
cotangent with the flipped kernel). Transposed
convolutions are ``conv_general`` on the stride-dilated input with the flipped kernel,
exactly as MLX defines them (so ``output_padding`` and large ``padding`` behave as
MLX's do).
"""

import functools
import operator

from oxmx import _oxmx as _n

from ._dtypes import result_type as _result_type
from ._transforms import custom_function as _custom_function
from ._transforms import stop_gradient as _stop_gradient

__all__ = [
    "conv1d", "conv2d", "conv3d", "conv_general",
    "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "convolve",
]

_FLOATS = (_n.float16, _n.bfloat16, _n.float32, _n.float64)


# ---------------------------------------------------------------- argument parsing
# Type problems are TypeErrors and come before any value check, as MLX's binding does.
def _int(op, v, what):
    """``v`` as a Python int in the 32-bit range (bools and NumPy ints are ints)."""
    if isinstance(v, float) or v is None:
        raise TypeError(f"[{op}] {what} must be an integer, got {type(v).__name__}.")
    try:
        v = operator.index(v)
    except TypeError:
        raise TypeError(f"[{op}] {what} must be an integer or a sequence of integers, got {type(v).__name__}.") from None
    if not -(2**31) <= v < 2**31:
        raise TypeError(f"[{op}] {what} {v} does not fit in a 32-bit integer.")
    return v


def _is_seq(v):
    return not isinstance(v, (str, bytes)) and hasattr(v, "__len__") and hasattr(v, "__iter__")


def _int_list(op, v, what):
    """An int or a sequence of ints, as a list (an int gives a list of one)."""
    if _is_seq(v):
        return [_int(op, x, what) for x in v]
    return [_int(op, v, what)]


def _fixed(op, v, n, what):
    """conv2d/conv3d arguments: an int (repeated ``n`` times) or exactly ``n`` ints."""
    if _is_seq(v):
        if len(v) != n:
            raise TypeError(f"[{op}] {what} must be an int or a tuple of {n} ints, got {len(v)} values.")
        return [_int(op, x, what) for x in v]
    return [_int(op, v, what)] * n


def _padding_arg(op, padding):
    """conv_general's padding: an int, a sequence of ints (symmetric), or a pair of
    sequences ``(low, high)``. Returns the (low, high) lists before broadcasting."""
    if _is_seq(padding) and any(_is_seq(p) for p in padding):
        if len(padding) != 2 or not all(_is_seq(p) for p in padding):
            raise TypeError(f"[{op}] padding must be an int, a sequence of ints or a pair (low, high) of sequences of ints.")
        return _int_list(op, padding[0], "padding"), _int_list(op, padding[1], "padding")
    p = _int_list(op, padding, "padding")
    return p, p


def _check_arrays(op, *arrays):
    for a in arrays:
        if not isinstance(a, _n.array):
            raise TypeError(f"[{op}] Expected mx.array arguments, got {type(a).__name__}.")


def _broadcast(op, v, n, what, default):
    """A parsed list broadcast to ``n`` spatial dims (empty -> default, one -> repeated)."""
    if len(v) == 0:
        return [default] * n
    if len(v) == 1:
        return v * n
    if len(v) != n:
        raise ValueError(f"[{op}] Invalid {what} {tuple(v)} for {n}D convolution.")
    return list(v)


# ---------------------------------------------------------------- validation
def _check_shapes(op, x, w, groups):
    """The number of spatial dims, after MLX's checks on ranks, dtype and channels."""
    if not 3 <= x.ndim <= 5:
        raise ValueError(
            f"[{op}] Only inputs with 1-3 spatial dimensions are supported, in the format (N, ..., C_in); got shape {x.shape}."
        )
    if x.dtype not in _FLOATS:
        raise ValueError(f"[{op}] Invalid input array with type {x.dtype}: convolution only supports floating point inputs.")
    n = x.ndim - 2
    if w.ndim != x.ndim:
        raise ValueError(
            f"[{op}] Invalid weight array with {w.ndim} dimensions for {n}D convolution: expected {x.ndim} "
            f"dimensions in the format (C_out, ..., C_in); got shape {w.shape}."
        )
    if groups <= 0:
        raise ValueError(f"[{op}] groups must be a positive integer, got {groups}.")
    c_in, c_out = x.shape[-1], w.shape[0]
    if c_in % groups:
        raise ValueError(f"[{op}] The input channels ({c_in}) must be divisible by groups ({groups}).")
    if c_out % groups:
        raise ValueError(f"[{op}] The output channels ({c_out}) must be divisible by groups ({groups}).")
    if w.shape[-1] * groups != c_in:
        raise ValueError(
            f"[{op}] The weight of shape {w.shape} with groups={groups} expects {w.shape[-1] * groups} input "
            f"channels, but the input of shape {x.shape} has {c_in}."
        )
    if groups != 1 and n == 3:
        raise ValueError(f"[{op}] groups != 1 is only supported for 1D and 2D convolutions (as MLX).")
    if 0 in tuple(w.shape[1:-1]):
        raise ValueError(f"[{op}] The kernel's spatial sizes must be positive; got a weight of shape {w.shape}.")
    return n


def _check_positive(op, values, what):
    if any(v <= 0 for v in values):
        raise ValueError(f"[{op}] {what} must be positive, got {tuple(values)}.")


# ---------------------------------------------------------------- building blocks
def _embed(x, lo, hi, dil):
    """``x`` (N, *S, C) with ``dil - 1`` zeros inserted between neighbours and ``lo``/``hi``
    zeros added on each spatial axis (all non-negative): one strided write into zeros."""
    shape, idx = [x.shape[0]], [slice(None)]
    for i, (a, b, d) in enumerate(zip(lo, hi, dil)):
        size = x.shape[1 + i]
        span = (size - 1) * d + 1
        shape.append(a + span + b)
        idx.append(slice(a, a + span, d))
    shape.append(x.shape[-1])
    if shape == list(x.shape):
        return x
    if all(d == 1 for d in dil):
        # no dilation: concatenating zero slabs copies each element once
        from ._composite import pad

        return pad(x, [(0, 0)] + [(a, b) for a, b in zip(lo, hi)] + [(0, 0)])
    out = _n.zeros(shape, x.dtype)
    idx.append(slice(None))
    out[tuple(idx)] = x
    return out


def _windows(xp, kshape, strides, kdil, groups=None):
    """Every kernel window of ``xp`` (N, *S, C) as one ``as_strided`` gather:
    (N, *out, *K, C), or with ``groups`` (G, N, *out, *K, C / G). Also the output sizes."""
    n = len(kshape)
    spatial, C = xp.shape[1:-1], xp.shape[-1]
    out = [(s - d * (k - 1) - 1) // st + 1 for s, k, st, d in zip(spatial, kshape, strides, kdil)]
    elem = [1] * (n + 2)  # row-major element strides of xp
    for i in range(n, -1, -1):
        elem[i] = elem[i + 1] * xp.shape[i + 1]
    shape = [xp.shape[0]] + out + list(kshape)
    steps = [elem[0]] + [elem[1 + i] * strides[i] for i in range(n)] + [elem[1 + i] * kdil[i] for i in range(n)]
    if groups is None:
        return _n.as_strided(xp, shape + [C], steps + [1]), out
    cg = C // groups
    return _n.as_strided(xp, [groups] + shape + [cg], [cg] + steps + [1]), out


def _prod(values):
    p = 1
    for v in values:
        p *= v
    return p


def _native(*arrays):
    return all(a.dtype in _FLOATS for a in arrays)


def _fold_batch(a, ax):
    """``a`` mapped along ``ax``: (B * N, ...), B and N."""
    a = _n.moveaxis(a, ax, 0)
    return a.reshape((a.shape[0] * a.shape[1],) + tuple(a.shape[2:])), a.shape[0], a.shape[1]


def _unmapped_like(a, ax):
    """A stand-in for one map index of ``a`` (only its shape is used)."""
    if ax is None:
        return a
    return _n.zeros(tuple(d for i, d in enumerate(a.shape) if i != ax), a.dtype)


def _empty_map(f, inputs, axes):
    """The batched result of ``f`` over a mapped axis of length 0: built lazily on
    stand-ins for its shape only (never evaluated)."""
    y = f(*(_unmapped_like(a, ax) for a, ax in zip(inputs, axes)), 1)
    return _n.zeros((0,) + tuple(y.shape), y.dtype), 0


def _stack_channels(a, ax, b):
    """(N, *S, C) mapped along ``ax`` (or not, ``None``) as (N, *S, B * C): every map
    index becomes its own block of channels (groups)."""
    if ax is None:
        a = _n.broadcast_to(_n.expand_dims(a, -2), tuple(a.shape[:-1]) + (b, a.shape[-1]))
    else:
        a = _n.moveaxis(a, ax, -2)
    return a.reshape(tuple(a.shape[:-2]) + (b * a.shape[-1],))


def _stack_weights(w, ax, b):
    """(O, *K, Cg) mapped along ``ax`` (or not) as (B * O, *K, Cg)."""
    if ax is None:
        w = _n.broadcast_to(_n.expand_dims(w, 0), (b,) + tuple(w.shape))
    else:
        w = _n.moveaxis(w, ax, 0)
    return w.reshape((b * w.shape[1],) + tuple(w.shape[2:]))


def _unstack_channels(y, b):
    """(..., B * O) -> (B, ..., O)."""
    y = y.reshape(tuple(y.shape[:-1]) + (b, y.shape[-1] // b))
    return _n.moveaxis(y, -2, 0)


def _bilinear_jvp(f):
    """The jvp rule of ``f(a, b)``, linear in each argument: f(ta, b) + f(a, tb) (a
    primal without a tangent is None)."""

    def jvp(primals, tangents):
        (a, b), (ta, tb) = primals, tangents
        parts = [f(ta, b) if ta is not None else None, f(a, tb) if tb is not None else None]
        parts = [p for p in parts if p is not None]
        return parts[0] if len(parts) == 1 else parts[0] + parts[1]

    return jvp


def _vmap_activation_weight(f):
    """The vmap rule of ``f(act, w, m)`` (``m``: how many times the groups are
    multiplied): a mapped activation alone folds into the batch; a mapped weight makes
    every map index its own block of channel groups."""

    def vmap(inputs, axes):
        (a, w), (aa, aw) = inputs, axes
        b = w.shape[aw] if aw is not None else a.shape[aa]
        if b == 0:
            return _empty_map(f, inputs, axes)
        if aw is None:
            af, b, n = _fold_batch(a, aa)
            y = f(af, w, 1)
            return y.reshape((b, n) + tuple(y.shape[1:])), 0
        return _unstack_channels(f(_stack_channels(a, aa, b), _stack_weights(w, aw, b), b), b), 0

    return vmap


def _correlate(xp, w, strides, kdil, pad, groups):
    """Cross-correlation of xp (N, *S, C), zero-padded by ``pad`` on both sides of each
    spatial axis (real floating dtypes only; complex64 comes padded), with w
    (O, *K, C/G): (N, *out, O)."""
    return _correlate_fn(tuple(strides), tuple(kdil), tuple(pad), groups, _native(xp, w))(xp, w)


# The custom functions are made once per geometry (building them costs more than the
# rest of a convolution's graph).
@functools.lru_cache(maxsize=512)
def _correlate_fn(strides, kdil, pad, groups, native):
    @_custom_function
    def corr(xp, w):
        return _correlate_forward(xp, w, strides, kdil, pad, groups)

    @corr.vjp
    def corr_vjp(primals, cotangent, output):
        xp, w = primals
        return (_correlate_grad_input(xp, w, cotangent, strides, kdil, pad, groups),
                _weight_grad(xp, cotangent, w.shape[1:-1], strides, kdil, pad, groups))

    if not native:
        # complex64: jvp and vmap go through the composite body (as before the nodes)
        return corr

    corr.jvp(_bilinear_jvp(lambda x, w: _correlate(x, w, strides, kdil, pad, groups)))
    corr.vmap(_vmap_activation_weight(lambda x, w, m: _correlate(x, w, strides, kdil, pad, groups * m)))

    corr._jvp_takes_none = True
    return corr


def _weight_grad(xp, g, kshape, strides, kdil, pad, groups):
    """dL/dw of ``_correlate(xp, w)`` for the cotangent ``g``: (O, *kshape, C/G)."""
    kshape = tuple(kshape)
    if not _native(xp, g):
        return _correlate_grad_weight(xp, g, kshape, strides, kdil, pad, groups)
    return _weight_grad_fn(kshape, tuple(strides), tuple(kdil), tuple(pad), groups)(xp, g)


@functools.lru_cache(maxsize=512)
def _weight_grad_fn(kshape, strides, kdil, pad, groups):
    @_custom_function
    def grad_w(xp, g):
        return _correlate_grad_weight(xp, g, kshape, strides, kdil, pad, groups)

    @grad_w.vjp
    def grad_w_vjp(primals, cotangent, output):
        # <c, dW(x, g)> = <g, corr(x, c)>: the weight gradient is the correlation's adjoint
        xp, g = primals
        return (_correlate_grad_input(xp, cotangent, g, strides, kdil, pad, groups),
                _correlate(xp, cotangent, strides, kdil, pad, groups))

    grad_w.jvp(_bilinear_jvp(lambda x, g: _weight_grad(x, g, kshape, strides, kdil, pad, groups)))

    @grad_w.vmap
    def grad_w_vmap(inputs, axes):
        (xp, g), (ax, ag) = inputs, axes
        b = (xp if ax is not None else g).shape[ax if ax is not None else ag]
        if b == 0:
            return _empty_map(lambda x, g, m: _weight_grad(x, g, kshape, strides, kdil, pad, groups), inputs, axes)
        dw = _weight_grad(_stack_channels(xp, ax, b), _stack_channels(g, ag, b), kshape, strides, kdil, pad, groups * b)
        return dw.reshape((b, dw.shape[0] // b) + tuple(dw.shape[1:])), 0

    grad_w._jvp_takes_none = True
    return grad_w


def _correlate_forward(xp, w, strides, kdil, pad, groups):
    if _native(xp, w):
        # the node has no rules of its own: its inputs are constants to the transforms
        return _n._conv(_stop_gradient(xp), _stop_gradient(w), list(strides), list(kdil), list(pad), groups)
    kshape, c_out, cg = w.shape[1:-1], w.shape[0], w.shape[-1]
    og, kp = c_out // groups, _prod(kshape)
    if groups == 1:
        win, out = _windows(xp, kshape, strides, kdil)
        # the (small) weight transposed once: gemm reads a contiguous B faster
        y = _n.matmul(win.reshape(-1, kp * cg), _n.contiguous(w.reshape(c_out, -1).T))
    elif cg == 1:
        # depthwise: one input channel per group, a broadcast multiply beats G tiny matmuls
        win, out = _windows(xp, kshape, strides, kdil)
        wt = _n.transpose(w.reshape(groups, og, kp), (2, 0, 1))  # (Kp, G, Og)
        y = (win.reshape(-1, kp, groups, 1) * wt).sum(axis=1)
    else:
        win, out = _windows(xp, kshape, strides, kdil, groups)
        wt = _n.swapaxes(w.reshape(groups, og, kp * cg), 1, 2)  # (G, Kp*Cg, Og)
        y = _n.swapaxes(_n.matmul(win.reshape(groups, -1, kp * cg), wt), 0, 1)
    return y.reshape([xp.shape[0]] + out + [c_out])


def _correlate_grad_weight(xp, g, kshape, strides, kdil, pad, groups):
    """dL/dw: the windows of xp contracted with the cotangent over batch and positions."""
    if _native(xp, g):
        return _n._conv_weight_grad(_stop_gradient(xp), _stop_gradient(g), list(kshape), list(strides), list(kdil), list(pad), groups)
    c_out, cg = g.shape[-1], xp.shape[-1] // groups
    w_shape = [c_out] + list(kshape) + [cg]
    og, kp = c_out // groups, _prod(kshape)
    if groups == 1:
        win, _ = _windows(xp, kshape, strides, kdil)
        return _n.matmul(g.reshape(-1, c_out).T, win.reshape(-1, kp * cg)).reshape(w_shape)
    if cg == 1:
        win, _ = _windows(xp, kshape, strides, kdil)
        dw = (win.reshape(-1, kp, groups, 1) * g.reshape(-1, 1, groups, og)).sum(axis=0)  # (Kp, G, Og)
        return _n.transpose(dw, (1, 2, 0)).reshape(w_shape)
    win, _ = _windows(xp, kshape, strides, kdil, groups)
    gm = _n.transpose(g.reshape(-1, groups, og), (1, 2, 0))  # (G, Og, M)
    return _n.matmul(gm, win.reshape(groups, -1, kp * cg)).reshape(w_shape)


def _input_grad(spatial, w, g, strides, kdil, pad, groups):
    """dL/dx of ``_correlate(x, w)`` (x of spatial shape ``spatial``) for the cotangent
    ``g``: (N, *spatial, C)."""
    return _input_grad_fn(tuple(spatial), tuple(strides), tuple(kdil), tuple(pad), groups)(g, w)


@functools.lru_cache(maxsize=512)
def _input_grad_fn(spatial, strides, kdil, pad, groups):
    @_custom_function
    def grad_x(g, w):
        return _n._conv_input_grad(_stop_gradient(g), _stop_gradient(w), list(spatial), list(strides), list(kdil), list(pad), groups)

    @grad_x.vjp
    def grad_x_vjp(primals, cotangent, output):
        # <c, dX(g, w)> = <g, corr(c, w)>: the input gradient is the correlation's adjoint
        g, w = primals
        return (_correlate(cotangent, w, strides, kdil, pad, groups),
                _weight_grad(cotangent, g, w.shape[1:-1], strides, kdil, pad, groups))

    grad_x.jvp(_bilinear_jvp(lambda g, w: _input_grad(spatial, w, g, strides, kdil, pad, groups)))
    grad_x.vmap(_vmap_activation_weight(lambda g, w, m: _input_grad(spatial, w, g, strides, kdil, pad, groups * m)))

    grad_x._jvp_takes_none = True
    return grad_x


def _correlate_grad_input(xp, w, g, strides, kdil, pad, groups):
    """dL/dxp: a transposed convolution of the cotangent (stride-dilated, padded to the
    input's extent) with the flipped kernel whose in/out channels are swapped per group;
    for real floating dtypes one native node (the same sum, without the zeros)."""
    if _native(g, w):
        return _input_grad(xp.shape[1:-1], w, g, strides, kdil, pad, groups)
    n = xp.ndim - 2
    kshape = w.shape[1:-1]
    lo = [kdil[i] * (kshape[i] - 1) for i in range(n)]
    # the dilated cotangent spans (out - 1) * stride + 1; the rest of the input is high padding
    hi = [xp.shape[1 + i] - (g.shape[1 + i] - 1) * strides[i] - 1 for i in range(n)]
    gd = _embed(g, lo, hi, strides)
    og, cg = w.shape[0] // groups, w.shape[-1]
    wt = w.reshape([groups, og] + list(kshape) + [cg])
    wt = _n.moveaxis(_n.moveaxis(wt, -1, 1), 2, -1).reshape([groups * cg] + list(kshape) + [og])
    wt = wt[(slice(None),) + (slice(None, None, -1),) * n]
    return _correlate(gd, wt, [1] * n, kdil, groups)


def _conv(op, x, w, strides, lo, hi, kdil, idil, groups, flip):
    """Validated convolution; ``lo``/``hi`` etc. are already broadcast to the spatial dims."""
    n = x.ndim - 2
    _check_positive(op, strides, "Stride sizes")
    _check_positive(op, kdil, "Kernel dilation sizes")
    _check_positive(op, idil, "Input dilation sizes")
    kshape = w.shape[1:-1]
    out = []
    for i in range(n):
        # MLX's extents: negative padding removes input elements before dilation
        size = max(x.shape[1 + i] + min(lo[i], 0) + min(hi[i], 0), 0)
        size = (size - 1) * idil[i] + 1 + max(lo[i], 0) + max(hi[i], 0)
        ksize = kdil[i] * (kshape[i] - 1) + 1
        if size < ksize:
            raise ValueError(
                f"[{op}] The input's spatial size after padding and dilation ({size}) is smaller than the "
                f"dilated kernel ({ksize}) along spatial axis {i}: input {x.shape}, weight {w.shape}, "
                f"padding low {tuple(lo)}, high {tuple(hi)}."
            )
        out.append((size - ksize) // strides[i] + 1)

    dtype = _result_type(x, w)
    x, w = x.astype(dtype), w.astype(dtype)
    out_shape = [x.shape[0]] + out + [w.shape[0]]
    if x.size == 0 or w.size == 0 or any(o == 0 for o in out_shape):
        return _n.zeros(out_shape, dtype)

    crop = [slice(None)]
    for i in range(n):
        crop.append(slice(-min(lo[i], 0), x.shape[1 + i] + min(hi[i], 0)))
    x = x[tuple(crop)] if any(p < 0 for p in lo + hi) else x
    if 0 in tuple(x.shape):
        # every input element was cropped: only padding is left, the result is zero
        return _n.zeros(out_shape, dtype)
    if flip:
        w = w[(slice(None),) + (slice(None, None, -1),) * n]
    if lo == hi and all(p >= 0 for p in lo) and all(d == 1 for d in idil) and _native(x, w):
        # the nodes pad symmetrically themselves (no padded copy of the input)
        return _correlate(x, w, strides, kdil, lo, groups)
    x = _embed(x, [max(p, 0) for p in lo], [max(p, 0) for p in hi], idil)
    return _correlate(x, w, strides, kdil, [0] * n, groups)


# ---------------------------------------------------------------- public API
def conv_general(input, weight, /, stride=1, padding=0, kernel_dilation=1, input_dilation=1, groups=1, flip=False, *, stream=None):  # noqa: A002
    """General convolution over an input with several channels.

    ``input`` is ``(N, ..., C_in)`` and ``weight`` ``(C_out, ..., C_in / groups)``.
    ``stride``, ``kernel_dilation`` and ``input_dilation`` are an int or a list (one value
    per spatial dim, or one for all); ``padding`` is an int, a list, or a pair
    ``(low, high)`` of lists. ``flip=True`` computes the convolution instead of the
    cross-correlation. Negative padding crops the input (before input dilation).
    """
    op = "conv_general"
    _check_arrays(op, input, weight)
    strides = _int_list(op, stride, "stride")
    lo, hi = _padding_arg(op, padding)
    kdil = _int_list(op, kernel_dilation, "kernel_dilation")
    idil = _int_list(op, input_dilation, "input_dilation")
    groups = _int(op, groups, "groups")
    if not isinstance(flip, bool):
        raise TypeError(f"[{op}] flip must be a bool, got {type(flip).__name__}.")
    n = _check_shapes(op, input, weight, groups)
    strides = _broadcast(op, strides, n, "strides", 1)
    lo = _broadcast(op, lo, n, "padding", 0)
    hi = _broadcast(op, hi, n, "padding", 0)
    kdil = _broadcast(op, kdil, n, "kernel dilation", 1)
    idil = _broadcast(op, idil, n, "input dilation", 1)
    return _conv(op, input, weight, strides, lo, hi, kdil, idil, groups, flip)


def _conv_nd(op, nd, input, weight, stride, padding, dilation, groups):
    _check_arrays(op, input, weight)
    if nd == 1:
        # MLX's conv1d takes plain ints and so applies them to any number of spatial dims
        args = [[_int(op, v, what)] for v, what in ((stride, "stride"), (padding, "padding"), (dilation, "dilation"))]
    else:
        args = [_fixed(op, v, nd, what) for v, what in ((stride, "stride"), (padding, "padding"), (dilation, "dilation"))]
    groups = _int(op, groups, "groups")
    n = _check_shapes(op, input, weight, groups)
    strides, pads, kdil = (_broadcast(op, a, n, what, 0) for a, what in zip(args, ("strides", "padding", "kernel dilation")))
    return _conv(op, input, weight, strides, pads, pads, kdil, [1] * n, groups, False)


def conv1d(input, weight, /, stride=1, padding=0, dilation=1, groups=1, *, stream=None):  # noqa: A002
    """1D convolution: ``input`` (N, L, C_in), ``weight`` (C_out, K, C_in / groups)."""
    return _conv_nd("conv1d", 1, input, weight, stride, padding, dilation, groups)


def conv2d(input, weight, /, stride=1, padding=0, dilation=1, groups=1, *, stream=None):  # noqa: A002
    """2D convolution: ``input`` (N, H, W, C_in), ``weight`` (C_out, KH, KW, C_in / groups);
    ``stride``/``padding``/``dilation`` are an int or a pair."""
    return _conv_nd("conv2d", 2, input, weight, stride, padding, dilation, groups)


def conv3d(input, weight, /, stride=1, padding=0, dilation=1, groups=1, *, stream=None):  # noqa: A002
    """3D convolution: ``input`` (N, D, H, W, C_in), ``weight`` (C_out, KD, KH, KW, C_in);
    only ``groups=1`` (as MLX)."""
    return _conv_nd("conv3d", 3, input, weight, stride, padding, dilation, groups)


def _conv_transpose_nd(op, nd, input, weight, stride, padding, dilation, output_padding, groups):
    _check_arrays(op, input, weight)
    names = ("stride", "padding", "dilation", "output_padding")
    values = (stride, padding, dilation, output_padding)
    if nd == 1:
        args = [[_int(op, v, what)] for v, what in zip(values, names)]
    else:
        args = [_fixed(op, v, nd, what) for v, what in zip(values, names)]
    groups = _int(op, groups, "groups")
    n = _check_shapes(op, input, weight, groups)
    strides, pads, kdil, opad = (_broadcast(op, a, n, what, 0) for a, what in zip(args, ("strides", "padding", "kernel dilation", "output padding")))
    kshape = weight.shape[1:-1]
    lo = [d * (k - 1) - p for d, k, p in zip(kdil, kshape, pads)]
    hi = [a + o for a, o in zip(lo, opad)]
    # the stride of the transposed convolution dilates its input
    return _conv(op, input, weight, [1] * n, lo, hi, kdil, strides, groups, True)


def conv_transpose1d(input, weight, /, stride=1, padding=0, dilation=1, output_padding=0, groups=1, *, stream=None):  # noqa: A002
    """1D transposed convolution: ``input`` (N, L, C_in), ``weight`` (C_out, K, C_in / groups).
    The output length is ``(L - 1) * stride - 2 * padding + dilation * (K - 1) + output_padding + 1``."""
    return _conv_transpose_nd("conv_transpose1d", 1, input, weight, stride, padding, dilation, output_padding, groups)


def conv_transpose2d(input, weight, /, stride=1, padding=0, dilation=1, output_padding=0, groups=1, *, stream=None):  # noqa: A002
    """2D transposed convolution: ``input`` (N, H, W, C_in), ``weight`` (C_out, KH, KW, C_in / groups)."""
    return _conv_transpose_nd("conv_transpose2d", 2, input, weight, stride, padding, dilation, output_padding, groups)


def conv_transpose3d(input, weight, /, stride=1, padding=0, dilation=1, output_padding=0, groups=1, *, stream=None):  # noqa: A002
    """3D transposed convolution: ``input`` (N, D, H, W, C_in), ``weight`` (C_out, KD, KH, KW, C_in);
    only ``groups=1`` (as MLX)."""
    return _conv_transpose_nd("conv_transpose3d", 3, input, weight, stride, padding, dilation, output_padding, groups)


def convolve(a, v, /, mode="full", *, stream=None):
    """The discrete convolution of 1-D arrays (NumPy's ``convolve``): ``mode`` is
    ``'full'``, ``'valid'`` or ``'same'``. The longer array is the signal (they are
    swapped when ``v`` is longer) and must be floating point."""
    op = "convolve"
    _check_arrays(op, a, v)
    if not isinstance(mode, str):
        raise TypeError(f"[{op}] mode must be a string, got {type(mode).__name__}.")
    if a.ndim != 1 or v.ndim != 1:
        raise ValueError(f"[{op}] Inputs must be 1D, got shapes {a.shape} and {v.shape}.")
    if a.size == 0 or v.size == 0:
        raise ValueError(f"[{op}] Inputs cannot be empty.")
    if mode not in ("full", "valid", "same"):
        raise ValueError(f"[{op}] Invalid mode '{mode}': use 'full', 'valid' or 'same'.")
    if v.size > a.size:
        a, v = v, a
    k = v.size
    if mode == "full":
        lo = hi = k - 1
    elif mode == "same":
        lo, hi = k // 2, (k - 1) // 2
    else:
        lo = hi = 0
    x, w = a.reshape(1, -1, 1), v.reshape(1, -1, 1)
    n = _check_shapes(op, x, w, 1)
    return _conv(op, x, w, [1] * n, [lo], [hi], [1], [1], 1, True).reshape(-1)
