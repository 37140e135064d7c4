"""Convolution layers: ``Conv1d``, ``Conv2d``, ``Conv3d`` (MLX's ``mlx.nn``), channels last.

As in MLX, the weight has shape ``(out_channels, *kernel_size, in_channels / groups)``
and starts from :math:`\\mathcal{U}(-k, k)` with
:math:`k = 1/\\sqrt{\\text{in\\_channels / groups} \\cdot \\prod \\text{kernel\\_size}}`;
the bias starts at zero. Conv2d/Conv3d keep ``stride`` and ``padding`` as tuples (so,
as in MLX, they show up as entries of the module's dict, never as parameters).
"""

import math

import oxmx.core as mx

from .base import Module

__all__ = ["Conv1d", "Conv2d", "Conv3d"]

_FLOATS = (mx.float16, mx.bfloat16, mx.float32, mx.float64)


def check_positive(layer, **values):
    for name, v in values.items():
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ValueError(f"[{layer}] {name} must be a positive integer, got {v!r}.")


def ntuple(layer, value, n, name):
    """An int repeated ``n`` times, or a tuple/list of exactly ``n`` ints, as a tuple."""
    if isinstance(value, (tuple, list)):
        if len(value) != n or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ValueError(f"[{layer}] {name} must be an int or a tuple of {n} ints, got {value!r}.")
        return tuple(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"[{layer}] {name} must be an int or a tuple of {n} ints, got {value!r}.")
    return (value,) * n


def check_input(layer, x, n, in_channels):
    """The input must be a floating array of shape (N, *spatial, in_channels) with ``n``
    spatial dims (a ValueError otherwise, as MLX's convolution raises)."""
    if not isinstance(x, mx.array):
        raise TypeError(f"[{layer}] expected an array input but received {type(x).__name__}.")
    if x.ndim != n + 2 or x.shape[-1] != in_channels:
        dims = ("L",) if n == 1 else ("H", "W") if n == 2 else ("D", "H", "W")
        raise ValueError(
            f"[{layer}] expected an input of shape (N, {', '.join(dims)}, {in_channels}) (channels last), got {tuple(x.shape)}."
        )
    if x.dtype not in _FLOATS:
        raise ValueError(f"[{layer}] expected a floating point input, got {x.dtype}.")


def init_weight(shape, fan_in):
    scale = math.sqrt(1.0 / fan_in)
    return mx.random.uniform(low=-scale, high=scale, shape=shape)


class _ConvNd(Module):
    """The shared constructor: validates the sizes and draws the weight."""

    def __init__(self, layer, n, in_channels, out_channels, kernel_size, groups, bias):
        super().__init__()
        check_positive(layer, in_channels=in_channels, out_channels=out_channels, groups=groups)
        if in_channels % groups:
            raise ValueError(f"[{layer}] The number of input channels ({in_channels}) must be divisible by the number of groups ({groups}).")
        if out_channels % groups:
            raise ValueError(f"[{layer}] The number of output channels ({out_channels}) must be divisible by the number of groups ({groups}).")
        kernel = ntuple(layer, kernel_size, n, "kernel_size")
        check_positive(layer, **{f"kernel_size[{i}]": k for i, k in enumerate(kernel)})
        self.weight = init_weight((out_channels, *kernel, in_channels // groups), in_channels // groups * math.prod(kernel))
        if bias:
            self.bias = mx.zeros((out_channels,))

    def _channels(self):
        in_channels = self.weight.shape[-1] * getattr(self, "groups", 1)
        return in_channels, self.weight.shape[0], self.weight.shape[1:-1]


class Conv1d(_ConvNd):
    """1D convolution over an input of shape ``(N, L, in_channels)``.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        kernel_size (int): the filter size.
        stride (int): the stride. Default ``1``.
        padding (int): zero padding on both sides. Default ``0``.
        dilation (int): the kernel dilation. Default ``1``.
        groups (int): channel groups. Default ``1``.
        bias (bool): add a learnable bias. Default ``True``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1, groups: int = 1, bias: bool = True):
        super().__init__("Conv1d", 1, in_channels, out_channels, kernel_size, groups, bias)
        self.padding = padding
        self.dilation = dilation
        self.stride = stride
        self.groups = groups

    def _extra_repr(self):
        i, o, k = self._channels()
        return (f"{i}, {o}, kernel_size={k[0]}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, groups={self.groups}, bias={'bias' in self}")

    def __call__(self, x):
        check_input("Conv1d", x, 1, self._channels()[0])
        y = mx.conv1d(x, self.weight, self.stride, self.padding, self.dilation, self.groups)
        return y + self.bias if "bias" in self else y


class Conv2d(_ConvNd):
    """2D convolution over an input of shape ``(N, H, W, in_channels)``.

    ``kernel_size``, ``stride``, ``padding`` and ``dilation`` are an int (both axes) or
    a pair; otherwise as :class:`Conv1d`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True):
        super().__init__("Conv2d", 2, in_channels, out_channels, kernel_size, groups, bias)
        self.padding = ntuple("Conv2d", padding, 2, "padding")
        self.stride = ntuple("Conv2d", stride, 2, "stride")
        ntuple("Conv2d", dilation, 2, "dilation")
        self.dilation = dilation
        self.groups = groups

    def _extra_repr(self):
        i, o, k = self._channels()
        return (f"{i}, {o}, kernel_size={tuple(k)}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, groups={self.groups}, bias={'bias' in self}")

    def __call__(self, x):
        check_input("Conv2d", x, 2, self._channels()[0])
        y = mx.conv2d(x, self.weight, self.stride, self.padding, self.dilation, self.groups)
        return y + self.bias if "bias" in self else y


class Conv3d(_ConvNd):
    """3D convolution over an input of shape ``(N, D, H, W, in_channels)``.

    ``kernel_size``, ``stride``, ``padding`` and ``dilation`` are an int (all axes) or a
    triple; there is no ``groups`` (as MLX).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 bias: bool = True):
        super().__init__("Conv3d", 3, in_channels, out_channels, kernel_size, 1, bias)
        self.padding = ntuple("Conv3d", padding, 3, "padding")
        self.stride = ntuple("Conv3d", stride, 3, "stride")
        ntuple("Conv3d", dilation, 3, "dilation")
        self.dilation = dilation

    def _extra_repr(self):
        i, o, k = self._channels()
        return (f"{i}, {o}, kernel_size={tuple(k)}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, bias={'bias' in self}")

    def __call__(self, x):
        check_input("Conv3d", x, 3, self._channels()[0])
        y = mx.conv3d(x, self.weight, self.stride, self.padding, self.dilation)
        return y + self.bias if "bias" in self else y
