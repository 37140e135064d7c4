"""Transposed convolution layers: ``ConvTranspose1d/2d/3d`` (MLX's ``mlx.nn``), channels last.

As in MLX, the weight has shape ``(out_channels, *kernel_size, in_channels)`` and
starts from :math:`\\mathcal{U}(-k, k)` with
:math:`k = 1/\\sqrt{\\text{in\\_channels} \\cdot \\prod \\text{kernel\\_size}}`; the bias
starts at zero. The output length along each axis is
``(L - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1``.
"""

import math

import oxmx.core as mx

from .base import Module
from .convolution import ntuple, check_positive, check_input, init_weight

__all__ = ["ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"]


class _ConvTransposeNd(Module):
    _n = 0

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, output_padding, bias):
        super().__init__()
        layer, n = type(self).__name__, self._n
        check_positive(layer, in_channels=in_channels, out_channels=out_channels)
        kernel = ntuple(layer, kernel_size, n, "kernel_size")
        check_positive(layer, **{f"kernel_size[{i}]": k for i, k in enumerate(kernel)})
        self.weight = init_weight((out_channels, *kernel, in_channels), in_channels * math.prod(kernel))
        if bias:
            self.bias = mx.zeros((out_channels,))
        if n == 1:
            self.padding, self.dilation, self.stride, self.output_padding = padding, dilation, stride, output_padding
        else:
            # tuples, as MLX keeps them (so they are entries of the module's dict)
            self.padding = ntuple(layer, padding, n, "padding")
            self.stride = ntuple(layer, stride, n, "stride")
            ntuple(layer, dilation, n, "dilation")
            self.dilation = dilation
            self.output_padding = ntuple(layer, output_padding, n, "output_padding")

    def _extra_repr(self):
        k = self.weight.shape[1:-1]
        k = k[0] if self._n == 1 else tuple(k)
        return (f"{self.weight.shape[-1]}, {self.weight.shape[0]}, kernel_size={k}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, output_padding={self.output_padding}, "
                f"bias={'bias' in self}")

    def __call__(self, x):
        check_input(type(self).__name__, x, self._n, self.weight.shape[-1])
        fn = (mx.conv_transpose1d, mx.conv_transpose2d, mx.conv_transpose3d)[self._n - 1]
        y = fn(x, self.weight, self.stride, self.padding, self.dilation, self.output_padding)
        return y + self.bias if "bias" in self else y


class ConvTranspose1d(_ConvTransposeNd):
    """1D transposed convolution over an input of shape ``(N, L, in_channels)``.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        kernel_size (int): the filter size.
        stride (int): the stride. Default ``1``.
        padding (int): padding removed from both ends of the output. Default ``0``.
        dilation (int): the kernel dilation. Default ``1``.
        output_padding (int): extra size added to one side of the output. Default ``0``.
        bias (bool): add a learnable bias. Default ``True``.
    """

    _n = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1, output_padding: int = 0, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, output_padding, bias)


class ConvTranspose2d(_ConvTransposeNd):
    """2D transposed convolution over an input of shape ``(N, H, W, in_channels)``;
    ``kernel_size``, ``stride``, ``padding``, ``dilation`` and ``output_padding`` are an
    int (both axes) or a pair; otherwise as :class:`ConvTranspose1d`."""

    _n = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 output_padding=0, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, output_padding, bias)


class ConvTranspose3d(_ConvTransposeNd):
    """3D transposed convolution over an input of shape ``(N, D, H, W, in_channels)``;
    the size arguments are an int (all axes) or a triple; otherwise as
    :class:`ConvTranspose1d`."""

    _n = 3

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 output_padding=0, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, output_padding, bias)
