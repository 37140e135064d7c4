"""Affine layers: ``Identity``, ``Linear`` and ``Bilinear`` (MLX's ``mlx.nn``)."""

import math
from typing import Any, Optional

import oxmx.core as mx

from .base import Module
from .quantized import QQLinear, QuantizedLinear

__all__ = ["Identity", "Linear", "Bilinear"]


def _check_dims(layer, **dims):
    for name, value in dims.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"[{layer}] {name} must be a non-negative integer, got {value!r}.")


def _uniform_scale(layer, name, fan_in):
    # U(-k, k) with k = sqrt(1 / fan_in); fan_in = 0 has no scale.
    if fan_in == 0:
        raise ValueError(f"[{layer}] {name} must be positive to initialise the weights, got 0.")
    return math.sqrt(1.0 / fan_in)


def _check_features(layer, x, expected, name):
    if not isinstance(x, mx.array):
        raise TypeError(f"[{layer}] expected an array input but received {type(x).__name__}.")
    if x.ndim == 0 or x.shape[-1] != expected:
        raise ValueError(f"[{layer}] input of shape {tuple(x.shape)} does not match {name}={expected}.")


class Identity(Module):
    """A placeholder that returns its input; any constructor arguments are ignored."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def __call__(self, x):
        return x


class Linear(Module):
    r"""Apply the affine map :math:`y = x W^\top + b`.

    ``weight`` has shape ``(output_dims, input_dims)`` and ``bias`` shape
    ``(output_dims,)``; both start from :math:`\mathcal{U}(-k, k)` with
    :math:`k = 1/\sqrt{\text{input\_dims}}`.

    Args:
        input_dims (int): the size of the input's last axis.
        output_dims (int): the size of the output's last axis.
        bias (bool): whether to add a bias. Default ``True``.
    """

    def __init__(self, input_dims: int, output_dims: int, bias: bool = True) -> None:
        super().__init__()
        _check_dims("Linear", input_dims=input_dims, output_dims=output_dims)
        scale = _uniform_scale("Linear", "input_dims", input_dims)
        self.weight = mx.random.uniform(low=-scale, high=scale, shape=(output_dims, input_dims))
        if bias:
            self.bias = mx.random.uniform(low=-scale, high=scale, shape=(output_dims,))

    def _extra_repr(self) -> str:
        out, inp = self.weight.shape
        return f"input_dims={inp}, output_dims={out}, bias={'bias' in self}"

    def to_quantized(
        self,
        group_size: Optional[int] = None,
        bits: Optional[int] = None,
        mode: str = "affine",
        quantize_input: bool = False,
    ):
        """A quantized copy of this layer: a :class:`QuantizedLinear`, or with
        ``quantize_input`` (modes ``"nvfp4"``/``"mxfp8"`` only) a :class:`QQLinear`."""
        if quantize_input:
            if mode not in ("nvfp4", "mxfp8"):
                raise ValueError(
                    "[Linear.to_quantized] Quantized activations are only supported for 'nvfp4' and 'mxfp8' "
                    f"modes, got {mode}."
                )
            return QQLinear.from_linear(self, group_size, bits, mode)
        return QuantizedLinear.from_linear(self, group_size, bits, mode)

    def __call__(self, x):
        _check_features("Linear", x, self["weight"].shape[1], "input_dims")
        if "bias" in self:
            return mx.addmm(self["bias"], x, self["weight"].T)
        return x @ self["weight"].T


class Bilinear(Module):
    r"""Apply the bilinear map :math:`y_i = x_2^\top W_i x_1 + b_i`.

    ``weight`` has shape ``(output_dims, input2_dims, input1_dims)`` and ``bias``
    shape ``(output_dims,)``; both start from :math:`\mathcal{U}(-k, k)` with
    :math:`k = 1/\sqrt{\text{input1\_dims}}`. The leading (batch) axes of the two
    inputs broadcast against each other.

    Args:
        input1_dims (int): the size of the first input's last axis.
        input2_dims (int): the size of the second input's last axis.
        output_dims (int): the size of the output's last axis.
        bias (bool): whether to add a bias. Default ``True``.
    """

    def __init__(self, input1_dims: int, input2_dims: int, output_dims: int, bias: bool = True) -> None:
        super().__init__()
        _check_dims("Bilinear", input1_dims=input1_dims, input2_dims=input2_dims, output_dims=output_dims)
        scale = _uniform_scale("Bilinear", "input1_dims", input1_dims)
        self.weight = mx.random.uniform(low=-scale, high=scale, shape=(output_dims, input2_dims, input1_dims))
        if bias:
            self.bias = mx.random.uniform(low=-scale, high=scale, shape=(output_dims,))

    def _extra_repr(self) -> str:
        out, in2, in1 = self.weight.shape
        return f"input1_dims={in1}, input2_dims={in2}, output_dims={out}, bias={'bias' in self}"

    def __call__(self, x1, x2):
        out, in2, in1 = self["weight"].shape
        _check_features("Bilinear", x1, in1, "input1_dims")
        _check_features("Bilinear", x2, in2, "input2_dims")
        try:
            batch = mx.broadcast_shapes(x1.shape[:-1], x2.shape[:-1])
        except ValueError as exc:
            raise ValueError(
                f"[Bilinear] the leading axes of the inputs {tuple(x1.shape)} and {tuple(x2.shape)} do not broadcast."
            ) from exc
        # (..., in1) @ (in1, out * in2) -> (..., out, in2), then contract in2 with x2.
        y = (x1 @ self["weight"].reshape(out * in2, in1).T).reshape(*x1.shape[:-1], out, in2)
        y = (y @ mx.expand_dims(x2, -1)).squeeze(-1)
        y = mx.broadcast_to(y, (*batch, out))
        if "bias" in self:
            y = y + self["bias"]
        return y
