"""Pooling layers: ``MaxPool1d/2d/3d`` and ``AvgPool1d/2d/3d`` (MLX's ``mlx.nn``), channels last.

Inputs are ``(N, *spatial, C)``. Max pooling pads with the dtype's lowest value (-inf
for floats), average pooling with zeros and always divides by the full window size (the
padding counts, as in MLX). Windows that tile the input exactly are a reshape; others
are one ``as_strided`` gather. ``stride`` defaults to ``kernel_size``.
"""

import oxmx.core as mx

from .base import Module

__all__ = ["MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d"]


def _int_list(layer, value, n, name):
    """An int (repeated ``n`` times) or a tuple/list of exactly ``n`` ints."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [value] * n
    if isinstance(value, (tuple, list)) and len(value) == n and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return list(value)
    raise ValueError(f"[{layer}] '{name}' must be an integer or a tuple containing {n} integers, got {value!r}.")


def _lowest(dtype):
    if dtype == mx.bool_:
        return False
    if mx.issubdtype(dtype, mx.integer):
        return mx.iinfo(dtype).min
    return float("-inf")


def _windows(x, kernel, stride):
    """(N, *spatial, C) -> (N, *out, *kernel, C): every pooling window."""
    n = len(kernel)
    spatial = x.shape[1:-1]
    out = [max((s - k) // st + 1, 0) for s, k, st in zip(spatial, kernel, stride)]
    elem = [1] * (n + 2)  # row-major element strides
    for i in range(n, -1, -1):
        elem[i] = elem[i + 1] * x.shape[i + 1]
    shape = [x.shape[0]] + out + list(kernel) + [x.shape[-1]]
    strides = [elem[0]] + [elem[1 + i] * stride[i] for i in range(n)] + [elem[1 + i] for i in range(n)] + [1]
    return mx.as_strided(x, shape, strides)


def _tiles(x, kernel):
    """(N, *spatial, C) with each spatial size a multiple of its kernel ->
    (N, out_1, k_1, ..., out_n, k_n, C); no data is gathered."""
    shape = [x.shape[0]]
    for s, k in zip(x.shape[1:-1], kernel):
        shape += [s // k, k]
    return x.reshape(shape + [x.shape[-1]])


class _Pool(Module):
    _n = 0

    def __init__(self, kernel_size, stride, padding):
        super().__init__()
        layer, n = type(self).__name__, self._n
        kernel = _int_list(layer, kernel_size, n, "kernel_size")
        stride = kernel if stride is None else _int_list(layer, stride, n, "stride")
        padding = _int_list(layer, padding, n, "padding")
        for name, values, ok in (("kernel_size", kernel, lambda v: v > 0), ("stride", stride, lambda v: v > 0),
                                 ("padding", padding, lambda v: v >= 0)):
            if not all(ok(v) for v in values):
                what = "non-negative" if name == "padding" else "positive"
                raise ValueError(f"[{layer}] '{name}' must be {what} but got {tuple(values)}.")
        # stored as MLX stores them (lists are entries of the module's dict, never parameters)
        self._kernel_size = kernel
        self._stride = stride
        self._padding = [(p, p) for p in padding]
        self._axes = tuple(range(-n - 1, -1))

    def _extra_repr(self):
        return (f"kernel_size={tuple(self._kernel_size)}, stride={tuple(self._stride)}, "
                f"padding={tuple(p for p, _ in self._padding)}")

    def __call__(self, x):
        layer, n = type(self).__name__, self._n
        if not isinstance(x, mx.array):
            raise TypeError(f"[{layer}] expected an array input but received {type(x).__name__}.")
        if x.ndim != n + 2:
            raise ValueError(f"[{layer}] expected an input with {n} spatial dimensions, (N, *spatial, C), got shape {tuple(x.shape)}.")
        kernel, stride = self._kernel_size, self._stride
        if any(p for p, _ in self._padding):
            x = mx.pad(x, [(0, 0)] + list(self._padding) + [(0, 0)], constant_values=self._pad_value(x.dtype))
        if kernel == stride:
            # non-overlapping windows: crop the remainder and reshape
            crop = tuple([slice(None)] + [slice(0, (s // k) * k) for s, k in zip(x.shape[1:-1], kernel)])
            return self._reduce(_tiles(x[crop], kernel), tuple(range(2, 2 * n + 1, 2)))
        return self._reduce(_windows(x, kernel, stride), tuple(range(n + 1, 2 * n + 1)))


class _MaxPool(_Pool):
    def _pad_value(self, dtype):
        return _lowest(dtype)

    def _reduce(self, w, axes):
        return mx.max(w, axis=axes)


class _AvgPool(_Pool):
    def _pad_value(self, dtype):
        return 0

    def _reduce(self, w, axes):
        return mx.mean(w, axis=axes)


_ARGS = """
    Args:
        kernel_size (int or tuple): the window size (an int for every spatial axis).
        stride (int or tuple, optional): the window stride. Default: ``kernel_size``.
        padding (int or tuple, optional): {what} padding on both sides of each
            spatial axis. Default: ``0``.
"""


class MaxPool1d(_MaxPool):
    __doc__ = "1D max pooling over ``(N, L, C)``.\n" + _ARGS.format(what="Negative infinity")
    _n = 1

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__(kernel_size, stride, padding)


class MaxPool2d(_MaxPool):
    __doc__ = "2D max pooling over ``(N, H, W, C)``.\n" + _ARGS.format(what="Negative infinity")
    _n = 2

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__(kernel_size, stride, padding)


class MaxPool3d(_MaxPool):
    __doc__ = "3D max pooling over ``(N, D, H, W, C)``.\n" + _ARGS.format(what="Negative infinity")
    _n = 3

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__(kernel_size, stride, padding)


class AvgPool1d(_AvgPool):
    __doc__ = "1D average pooling over ``(N, L, C)``.\n" + _ARGS.format(what="Zero")
    _n = 1

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__(kernel_size, stride, padding)


class AvgPool2d(_AvgPool):
    __doc__ = "2D average pooling over ``(N, H, W, C)``.\n" + _ARGS.format(what="Zero")
    _n = 2

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__(kernel_size, stride, padding)


class AvgPool3d(_AvgPool):
    __doc__ = "3D average pooling over ``(N, D, H, W, C)``.\n" + _ARGS.format(what="Zero")
    _n = 3

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__(kernel_size, stride, padding)
