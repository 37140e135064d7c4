"""``Upsample`` and the functions behind it (MLX's ``mlx.nn.layers.upsample``):
``upsample_nearest``, ``upsample_linear`` and ``upsample_cubic``, over inputs
``(N, *spatial, C)``.

Every mode is separable: along each spatial axis, output ``i`` is a weighted sum of a
few input positions. The positions and weights depend only on the sizes, so they are
computed once with NumPy; the array work is one ``take`` per axis plus a weighted sum
(differentiable, and batched by ``vmap``). The sampling grids are MLX's:

* the output size is ``floor(size * scale)``;
* ``linear``/``cubic`` sample at ``(size - 1) / 2 + (i - (out - 1) / 2) / scale`` (the
  grids' centres coincide) or, with ``align_corners``, at ``i * (size - 1) / (out - 1)``;
  linear clamps the position to the input, cubic (Keys' kernel, ``a = -0.75``) clamps
  the taps;
* ``nearest`` takes ``floor(i * size / out)`` when shrinking and the rounded centre
  ``round((i + 0.5) * size / out - 0.5)`` (ties to even) when growing;
* ``antialias`` (linear/cubic, no ``align_corners``) uses a filter widened by
  ``1 / scale`` when shrinking, with weights normalised per output (``a = -0.5`` for
  cubic), the scheme of PIL and PyTorch's ``antialias=True``, on the centred grid.
"""

import math
from typing import Literal, Tuple, Union

import numpy as np

import oxmx.core as mx

from .base import Module

__all__ = ["Upsample"]

_F32 = np.float32


def _out_size(n, scale):
    out = int(math.floor(n * scale))
    if out <= 0:
        raise ValueError(f"[Upsample] scale_factor {scale} gives an empty output for a spatial size of {n}.")
    return out


def _apply(x, axis, idx, wts=None):
    """Output ``i`` along ``axis`` = sum_t x[idx[i, t]] * wts[i, t] (``wts=None``: one tap)."""
    out, taps = idx.shape
    y = mx.take(x, mx.array(idx.reshape(-1).astype(np.int32)), axis=axis)
    if wts is None:
        return y
    shape = list(y.shape)
    shape[axis:axis + 1] = [out, taps]
    y = y.reshape(shape)
    w = mx.array(wts.astype(_F32)).reshape([out, taps] + [1] * (x.ndim - axis - 1))
    return (y * w).sum(axis=axis + 1)


def _separable(x, scale_factor, taps_fn):
    dims = x.ndim - 2
    for d in range(dims):
        n, s = x.shape[1 + d], scale_factor[d]
        idx, wts = taps_fn(n, _out_size(n, s), s)
        x = _apply(x, 1 + d, idx, wts)
    return x


# ---------------------------------------------------------------- sampling grids
def _positions(n, out, scale, align_corners):
    i = np.arange(out, dtype=np.float64)
    if align_corners:
        return i * ((n - 1) / (out - 1)) if out > 1 else np.zeros(out)
    return (n - 1) / 2 + (i - (out - 1) / 2) / scale


def _nearest_taps(n, out, scale):
    r = _F32(n) / _F32(out)
    i = np.arange(out, dtype=_F32)
    if r < 1:
        idx = np.round((i + _F32(0.5)) * r - _F32(0.5))
    else:
        idx = np.floor(i * r)
    return np.clip(idx, 0, n - 1).astype(np.int64)[:, None], None


def _linear_taps(n, out, scale, align_corners):
    x = np.clip(_positions(n, out, scale, align_corners), 0, n - 1)
    lo = np.floor(x)
    t = x - lo
    idx = np.stack([lo, np.minimum(lo + 1, n - 1)], axis=1).astype(np.int64)
    return idx, np.stack([1 - t, t], axis=1)


def _keys(x, a):
    """Keys' cubic convolution kernel with parameter ``a``."""
    x = np.abs(x)
    inner = ((a + 2) * x - (a + 3)) * x * x + 1
    outer = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, inner, np.where(x < 2, outer, 0.0))


def _cubic_taps(n, out, scale, align_corners):
    x = _positions(n, out, scale, align_corners)
    lo = np.floor(x)
    offsets = np.arange(-1, 3)
    idx = np.clip(lo[:, None] + offsets, 0, n - 1).astype(np.int64)
    return idx, _keys(x[:, None] - (lo[:, None] + offsets), -0.75)


def _antialias_taps(n, out, scale, kernel, support):
    """PIL-style resampling: the kernel stretched by 1/scale when shrinking, every
    output's weights normalised to sum to one."""
    inv = 1.0 / scale
    stretch = max(inv, 1.0)
    half = support * stretch
    # centred like the linear grid: the truncated part of n * scale is split evenly
    centers = (np.arange(out) + 0.5 + (n * scale - out) / 2) * inv
    lo = np.maximum((centers - half + 0.5).astype(np.int64), 0)  # int() truncates, as PIL
    hi = np.minimum((centers + half + 0.5).astype(np.int64), n)
    taps = int(max((hi - lo).max(), 1))
    j = lo[:, None] + np.arange(taps)
    w = kernel((j - centers[:, None] + 0.5) / stretch)
    w = np.where(j < hi[:, None], w, 0.0)
    total = w.sum(axis=1, keepdims=True)
    w = w / np.where(total == 0, 1.0, total)
    return np.minimum(j, n - 1), w


def _triangle(x):
    return np.maximum(1 - np.abs(x), 0.0)


# ---------------------------------------------------------------- public functions
def upsample_nearest(x: mx.array, scale_factor: Tuple):
    """Nearest-neighbour resize of the spatial axes of ``x`` (N, *spatial, C) by one
    factor per spatial axis. The dtype is kept."""
    return _separable(x, scale_factor, _nearest_taps)


def upsample_linear(x: mx.array, scale_factor: Tuple, align_corners: bool = False, antialias: bool = False):
    """(Bi/tri)linear resize of the spatial axes of ``x`` by one factor per axis; the
    result is floating (float32 for integer and half-precision inputs)."""
    if antialias:
        if align_corners:
            raise ValueError("[upsample_linear] antialias=True with align_corners=True is not supported.")
        return _separable(x, scale_factor, lambda n, o, s: _antialias_taps(n, o, s, _triangle, 1.0))
    return _separable(x, scale_factor, lambda n, o, s: _linear_taps(n, o, s, align_corners))


def upsample_cubic(x: mx.array, scale_factor: Tuple, align_corners: bool = False, antialias: bool = False):
    """Bicubic-style resize (Keys' kernel, ``a = -0.75``; ``a = -0.5`` with
    ``antialias``) of the spatial axes of ``x`` by one factor per axis."""
    if antialias:
        if align_corners:
            raise ValueError("[upsample_cubic] antialias=True with align_corners=True is not supported.")
        return _separable(x, scale_factor, lambda n, o, s: _antialias_taps(n, o, s, lambda t: _keys(t, -0.5), 2.0))
    return _separable(x, scale_factor, lambda n, o, s: _cubic_taps(n, o, s, align_corners))


class Upsample(Module):
    """Resize the spatial axes (1 to ``ndim - 2``) of a channels-last input.

    Args:
        scale_factor (float or tuple): the size multiplier, one for all spatial axes or
            one per spatial axis.
        mode (str): ``"nearest"``, ``"linear"`` or ``"cubic"``. Default ``"nearest"``.
        align_corners (bool): for linear/cubic, make the corner samples of input and
            output coincide. Default ``False``.
        antialias (bool): for linear/cubic without ``align_corners``, filter when
            shrinking (``a = -0.5`` for cubic). Default ``False``.
    """

    def __init__(self, scale_factor: Union[float, Tuple], mode: Literal["nearest", "linear", "cubic"] = "nearest",
                 align_corners: bool = False, antialias: bool = False):
        super().__init__()
        if mode not in ("nearest", "linear", "cubic"):
            raise ValueError(f"[Upsample] Got unsupported upsampling algorithm: {mode}")
        if antialias and mode == "nearest":
            raise ValueError("[Upsample] Antialiasing is not supported for nearest neighbor upsampling")
        if antialias and align_corners:
            raise ValueError(
                "[Upsample] antialias=True with align_corners=True is not supported. "
                "Use align_corners=False for antialiased interpolation."
            )
        if isinstance(scale_factor, (list, tuple)):
            self.scale_factor = tuple(float(s) for s in scale_factor)
        else:
            self.scale_factor = float(scale_factor)
        self.mode = mode
        self.align_corners = align_corners
        self.antialias = antialias

    def _extra_repr(self) -> str:
        text = f"scale_factor={self.scale_factor}, mode={self.mode!r}, align_corners={self.align_corners}"
        return text + ", antialias=True" if self.antialias else text

    def __call__(self, x: mx.array) -> mx.array:
        if not isinstance(x, mx.array):
            raise TypeError(f"[Upsample] expected an array input but received {type(x).__name__}.")
        dims = x.ndim - 2
        if dims <= 0:
            raise ValueError(
                "[Upsample] The input should have at least 1 spatial dimension which means it should be "
                f"at least 3D but {x.ndim}D was provided"
            )
        scale = self.scale_factor
        if isinstance(scale, tuple):
            if len(scale) != dims:
                raise ValueError(
                    f"[Upsample] One scale per spatial dimension is required but scale_factor={scale} "
                    f"and the number of spatial dimensions were {dims}"
                )
        else:
            scale = (scale,) * dims
        if any(not s > 0 for s in scale):
            raise ValueError(f"[Upsample] scale_factor must be positive, got {self.scale_factor}.")
        if self.mode == "nearest":
            return upsample_nearest(x, scale)
        fn = upsample_linear if self.mode == "linear" else upsample_cubic
        return fn(x, scale, self.align_corners, self.antialias)
