"""Activation functions and their module wrappers (MLX's ``mlx.nn`` activations).

Every activation exists as a function (``nn.relu``) and as a parameter-free module
(``nn.ReLU``); ``PReLU`` is the one with a learned parameter. The results keep the
input's dtype as MLX's do: Python scalars in the formulas are weakly typed, so they do
not promote float16/bfloat16 inputs, while integer inputs become float32 wherever the
formula has a float constant.

The forms are the numerically stable ones: ``softplus`` is ``logaddexp(x, 0)``,
``log_sigmoid`` is ``-softplus(-x)``, and the exponential branches of ``elu``/``celu``
use ``expm1`` on ``min(x, 0)`` so that the branch ``where`` discards never overflows
(an overflowing discarded branch would turn the gradient into NaN).
"""

import math

import oxmx.core as mx

from .base import Module

__all__ = [
    # functions
    "celu", "elu", "gelu", "gelu_approx", "gelu_fast_approx", "glu", "hard_shrink",
    "hard_tanh", "hardswish", "leaky_relu", "log_sigmoid", "log_softmax", "mish", "prelu",
    "relu", "relu2", "relu6", "selu", "sigmoid", "silu", "softmax", "softmin", "softplus",
    "softshrink", "softsign", "step", "tanh",
    # modules
    "CELU", "ELU", "GELU", "GLU", "HardShrink", "HardTanh", "Hardswish", "LeakyReLU",
    "LogSigmoid", "LogSoftmax", "Mish", "PReLU", "ReLU", "ReLU2", "ReLU6", "SELU", "SiLU",
    "Sigmoid", "Softmax", "Softmin", "Softplus", "Softshrink", "Softsign", "Step", "Tanh",
]  # fmt: skip

# The constants MLX documents for SELU (lambda, alpha).
_SELU_SCALE = 1.0507
_SELU_ALPHA = 1.67326
_SQRT_2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


# ---------------------------------------------------------------------- functions
def sigmoid(x):
    r"""The logistic sigmoid :math:`\sigma(x) = 1 / (1 + e^{-x})`."""
    return mx.sigmoid(x)


def tanh(x):
    """The hyperbolic tangent, ``mx.tanh(x)``."""
    return mx.tanh(x)


def relu(x):
    """The rectified linear unit, ``mx.maximum(x, 0)``."""
    return mx.maximum(x, 0)


def relu2(x):
    r"""The squared ReLU, :math:`\max(0, x)^2`."""
    return mx.square(mx.maximum(x, 0))


def relu6(x):
    r"""ReLU capped at 6, :math:`\min(\max(x, 0), 6)`."""
    return mx.minimum(mx.maximum(x, 0.0), 6.0)


def leaky_relu(x, negative_slope=0.01):
    """The leaky ReLU, ``mx.maximum(negative_slope * x, x)``."""
    return mx.maximum(negative_slope * x, x)


def elu(x, alpha=1.0):
    r"""The exponential linear unit: :math:`x` for :math:`x > 0`, else
    :math:`\alpha (e^x - 1)`."""
    return mx.where(x > 0, x, alpha * mx.expm1(mx.minimum(x, 0.0)))


def celu(x, alpha=1.0):
    r"""The continuously differentiable ELU,
    :math:`\max(0, x) + \min(0, \alpha (e^{x / \alpha} - 1))`."""
    return mx.maximum(x, 0.0) + alpha * mx.expm1(mx.minimum(x, 0.0) / alpha)


def selu(x):
    r"""The scaled ELU, :math:`\lambda\,\mathrm{elu}(x, \alpha)` with
    :math:`\lambda = 1.0507`, :math:`\alpha = 1.67326`."""
    return elu(x, _SELU_ALPHA) * _SELU_SCALE


def silu(x):
    r"""The sigmoid linear unit (swish), :math:`x \sigma(x)`."""
    return x * mx.sigmoid(x)


def softplus(x):
    r""":math:`\log(1 + e^x)`, computed as ``logaddexp(x, 0)`` (exact for large
    :math:`|x|`)."""
    return mx.logaddexp(x, 0.0)


def log_sigmoid(x):
    r""":math:`\log \sigma(x) = -\log(1 + e^{-x})`, computed as ``-softplus(-x)`` so
    that it neither overflows nor rounds to ``log(0)`` for large :math:`|x|`."""
    return -softplus(-x)


def softsign(x):
    r""":math:`x / (1 + |x|)`."""
    return mx.divide(x, 1 + mx.abs(x))


def softshrink(x, lambd: float = 0.5):
    r"""Soft shrinkage: :math:`x - \lambda` above :math:`\lambda`, :math:`x + \lambda`
    below :math:`-\lambda`, 0 in between."""
    return mx.where(mx.abs(x) > lambd, x - mx.sign(x) * lambd, 0)


def hard_shrink(x, lambd=0.5):
    r"""Hard shrinkage: :math:`x` where :math:`|x| > \lambda`, 0 elsewhere."""
    return mx.where(mx.abs(x) > lambd, x, 0)


def hard_tanh(x, min_val=-1.0, max_val=1.0):
    r""":math:`\max(\min(x, \mathrm{max\_val}), \mathrm{min\_val})`."""
    return mx.minimum(mx.maximum(x, min_val), max_val)


def hardswish(x):
    r""":math:`x \min(\max(x + 3, 0), 6) / 6`."""
    return x * mx.minimum(mx.maximum(x + 3, 0), 6) / 6


def mish(x):
    r"""Mish, :math:`x \tanh(\mathrm{softplus}(x))`."""
    return x * mx.tanh(softplus(x))


def gelu(x):
    r"""The Gaussian error linear unit, :math:`x \Phi(x)` with :math:`\Phi` the
    Gaussian CDF (exact, through ``erf``)."""
    return x * (1 + mx.erf(x / _SQRT_2)) / 2


def gelu_approx(x):
    r"""The tanh approximation of :func:`gelu` (max abs error < 5e-4 on [-6, 6]):
    :math:`0.5 x (1 + \tanh(\sqrt{2/\pi} (x + 0.044715 x^3)))`."""
    return 0.5 * x * (1 + mx.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3)))


def gelu_fast_approx(x):
    r"""The sigmoid approximation of :func:`gelu` (max abs error < 0.015 on [-6, 6]):
    :math:`x \sigma(1.702 x)`."""
    return x * mx.sigmoid(1.702 * x)


def glu(x, axis: int = -1):
    r"""The gated linear unit: ``x`` is split in halves :math:`a, b` along ``axis`` and
    the result is :math:`a \sigma(b)`."""
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"[glu] axis {axis} is out of bounds for an input with {x.ndim} dimensions.")
    size = x.shape[axis]
    if size % 2:
        raise ValueError(f"[glu] the size of axis {axis} must be even to split it in halves, got {size}.")
    a, b = mx.split(x, 2, axis=axis)
    return a * mx.sigmoid(b)


def step(x, threshold: float = 0.0):
    """The binary step: 1 where ``x >= threshold``, else 0 (an int32 array, as MLX)."""
    return mx.where(x >= threshold, 1, 0)


def prelu(x, alpha):
    r"""The parametric ReLU, :math:`\max(0, x) + \alpha \min(0, x)`; ``alpha``
    broadcasts against ``x`` (one value, or one per feature of the last axis)."""
    try:
        mx.broadcast_shapes(x.shape, alpha.shape)
    except ValueError:
        raise ValueError(
            f"[prelu] alpha of shape {tuple(alpha.shape)} does not broadcast with the input of shape {tuple(x.shape)}."
        ) from None
    return mx.maximum(0, x) + alpha * mx.minimum(0, x)


def softmax(x, axis=-1):
    r""":math:`e^{x_i} / \sum_j e^{x_j}` along ``axis``."""
    return mx.softmax(x, axis=axis)


def softmin(x, axis=-1):
    r""":math:`e^{-x_i} / \sum_j e^{-x_j}` along ``axis``."""
    return mx.softmax(-x, axis=axis)


def _logsumexp(x, axis, keepdims=False):
    """``mx.logsumexp`` that also takes empty arrays (it raises on them): the sum of no
    exponentials is 0, whose log is -inf."""
    if x.size:
        return mx.logsumexp(x, axis=axis, keepdims=keepdims)
    axis = axis % x.ndim
    shape = [1 if i == axis else n for i, n in enumerate(x.shape)] if keepdims else x.shape[:axis] + x.shape[axis + 1 :]
    dtype = x.dtype if mx.issubdtype(x.dtype, mx.floating) else mx.float32
    return mx.full(shape, -math.inf, dtype=dtype)


def log_softmax(x, axis=-1):
    r""":math:`x_i - \log \sum_j e^{x_j}` along ``axis``."""
    return x - _logsumexp(x, axis, keepdims=True)


# ---------------------------------------------------------------------- modules
def _module(fn, name):
    """A parameter-free module class that applies ``fn`` (MLX prints it as ``Name()``)."""

    def __call__(self, x):
        return fn(x)

    doc = f"Applies :func:`{fn.__name__}` element-wise; see it for the formula."
    return type(name, (Module,), {"__call__": __call__, "__doc__": doc, "__module__": __name__})


Sigmoid = _module(sigmoid, "Sigmoid")
Tanh = _module(tanh, "Tanh")
ReLU = _module(relu, "ReLU")
ReLU2 = _module(relu2, "ReLU2")
ReLU6 = _module(relu6, "ReLU6")
SELU = _module(selu, "SELU")
SiLU = _module(silu, "SiLU")
Softplus = _module(softplus, "Softplus")
LogSigmoid = _module(log_sigmoid, "LogSigmoid")
Softsign = _module(softsign, "Softsign")
Hardswish = _module(hardswish, "Hardswish")
Mish = _module(mish, "Mish")
HardTanh = _module(hard_tanh, "HardTanh")
Softmax = _module(softmax, "Softmax")
Softmin = _module(softmin, "Softmin")
LogSoftmax = _module(log_softmax, "LogSoftmax")


class ELU(Module):
    """Applies :func:`elu` with a fixed ``alpha`` (default 1.0)."""

    def __init__(self, alpha=1.0):
        super().__init__()
        self._alpha = alpha

    def __call__(self, x):
        return elu(x, self._alpha)


class CELU(Module):
    """Applies :func:`celu` with a fixed ``alpha`` (default 1.0)."""

    def __init__(self, alpha=1.0):
        super().__init__()
        self._alpha = alpha

    def __call__(self, x):
        return celu(x, self._alpha)


class LeakyReLU(Module):
    """Applies :func:`leaky_relu` with a fixed ``negative_slope`` (default 0.01)."""

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self._negative_slope = negative_slope

    def __call__(self, x):
        return leaky_relu(x, self._negative_slope)


class Softshrink(Module):
    """Applies :func:`softshrink` with a fixed ``lambd`` (default 0.5)."""

    def __init__(self, lambd=0.5):
        super().__init__()
        self.lambd = lambd

    def __call__(self, x):
        return softshrink(x, self.lambd)


class HardShrink(Module):
    """Applies :func:`hard_shrink` with a fixed ``lambd`` (default 0.5)."""

    def __init__(self, lambd=0.5):
        super().__init__()
        self.lambd = lambd

    def __call__(self, x):
        return hard_shrink(x, self.lambd)


class Step(Module):
    """Applies :func:`step` with a fixed ``threshold`` (default 0.0)."""

    def __init__(self, threshold: float = 0.0):
        super().__init__()
        self.threshold = threshold

    def __call__(self, x):
        return step(x, self.threshold)


class GLU(Module):
    """Applies :func:`glu` along a fixed ``axis`` (default -1)."""

    def __init__(self, axis: int = -1):
        super().__init__()
        self.axis = axis

    def __call__(self, x):
        return glu(x, self.axis)


class GELU(Module):
    """Applies the GELU: exact (``approx='none'``), the tanh approximation
    (``'precise'``, or its PyTorch name ``'tanh'``) or the sigmoid one (``'fast'``)."""

    _FUNCTIONS = {"none": gelu, "precise": gelu_approx, "tanh": gelu_approx, "fast": gelu_fast_approx}

    def __init__(self, approx="none"):
        super().__init__()
        if approx not in self._FUNCTIONS:
            raise ValueError(
                f"[GELU] The approximation should be in {list(self._FUNCTIONS)} but {approx!r} was given."
            )
        self._approx = approx
        self._act = self._FUNCTIONS[approx]

    def __call__(self, x):
        return self._act(x)


class PReLU(Module):
    """Applies :func:`prelu` with a learned ``weight`` of ``num_parameters`` slopes
    (1, or one per feature of the last axis), initialised to ``init``."""

    def __init__(self, num_parameters=1, init=0.25):
        super().__init__()
        self.weight = mx.full([num_parameters], init)

    def __call__(self, x):
        return prelu(x, self.weight)
