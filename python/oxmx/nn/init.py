"""Parameter initialisers (MLX's ``mlx.nn.init``).

Each function here builds an *initializer*: a function that takes an array and returns
a new array of the same shape (its values are ignored) drawn from the chosen
distribution, in the initializer's ``dtype``::

    init_fn = nn.init.he_uniform()
    layer.weight = init_fn(layer.weight)

Fans follow MLX's layout of weights, ``(out, *kernel, in)``: ``fan_in`` is the last axis
times the kernel size and ``fan_out`` the first axis times the kernel size.
"""

import math
from typing import Callable, Literal

import numpy as np

import oxmx.core as mx

__all__ = [
    "constant", "normal", "uniform", "identity", "glorot_normal", "glorot_uniform",
    "he_normal", "he_uniform", "orthogonal", "sparse",
]  # fmt: skip


def _fans(name, shape):
    """``(fan_in, fan_out)`` of a weight of ``shape`` laid out as ``(out, *kernel, in)``."""
    if len(shape) < 2:
        raise ValueError(
            f"[{name}] Glorot / He initialization requires an input with at least 2 dimensions, "
            f"got one with {len(shape)}."
        )
    receptive_field = math.prod(shape[1:-1])
    return shape[-1] * receptive_field, shape[0] * receptive_field


def _fan(name, shape, mode):
    fan_in, fan_out = _fans(name, shape)
    if mode == "fan_in":
        return fan_in
    if mode == "fan_out":
        return fan_out
    raise ValueError(f"[{name}] Invalid mode: {mode!r}. Valid modes are: 'fan_in', 'fan_out'.")


def _check_2d(name, a):
    if a.ndim != 2:
        raise ValueError(f"[{name}] requires a 2D array, got an array of shape {tuple(a.shape)}.")


def constant(value: float, dtype: mx.Dtype = mx.float32) -> Callable[[mx.array], mx.array]:
    """An initializer filling the array with ``value``."""

    def initializer(a: mx.array) -> mx.array:
        return mx.full(a.shape, value, dtype=dtype)

    return initializer


def normal(mean: float = 0.0, std: float = 1.0, dtype: mx.Dtype = mx.float32) -> Callable[[mx.array], mx.array]:
    """An initializer drawing from the normal distribution N(``mean``, ``std``²)."""

    def initializer(a: mx.array) -> mx.array:
        return mx.random.normal(shape=a.shape, scale=std, loc=mean, dtype=dtype)

    return initializer


def uniform(low: float = 0.0, high: float = 1.0, dtype: mx.Dtype = mx.float32) -> Callable[[mx.array], mx.array]:
    """An initializer drawing from the uniform distribution on [``low``, ``high``)."""

    def initializer(a: mx.array) -> mx.array:
        return mx.random.uniform(low, high, a.shape, dtype=dtype)

    return initializer


def identity(dtype: mx.Dtype = mx.float32) -> Callable[[mx.array], mx.array]:
    """An initializer returning the identity matrix (the array must be square)."""

    def initializer(arr: mx.array) -> mx.array:
        if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
            raise ValueError(f"[identity] The input array must be a square matrix but got shape {tuple(arr.shape)}.")
        return mx.eye(arr.shape[0], dtype=dtype)

    return initializer


def glorot_normal(dtype: mx.Dtype = mx.float32) -> Callable[[mx.array, float], mx.array]:
    r"""A Glorot (Xavier) normal initializer: standard deviation
    :math:`\gamma \sqrt{2 / (\text{fan\_in} + \text{fan\_out})}` for a ``gain``
    :math:`\gamma` given at the call."""

    def initializer(a: mx.array, gain: float = 1.0) -> mx.array:
        fan_in, fan_out = _fans("glorot_normal", a.shape)
        std = gain * math.sqrt(2.0 / (fan_in + fan_out))
        return mx.random.normal(shape=a.shape, scale=std, dtype=dtype)

    return initializer


def glorot_uniform(dtype: mx.Dtype = mx.float32) -> Callable[[mx.array, float], mx.array]:
    r"""A Glorot (Xavier) uniform initializer on :math:`[-l, l]` with
    :math:`l = \gamma \sqrt{6 / (\text{fan\_in} + \text{fan\_out})}`."""

    def initializer(a: mx.array, gain: float = 1.0) -> mx.array:
        fan_in, fan_out = _fans("glorot_uniform", a.shape)
        limit = gain * math.sqrt(6.0 / (fan_in + fan_out))
        return mx.random.uniform(-limit, limit, a.shape, dtype=dtype)

    return initializer


def he_normal(dtype: mx.Dtype = mx.float32) -> Callable[[mx.array, str, float], mx.array]:
    r"""A He (Kaiming) normal initializer: standard deviation
    :math:`\gamma / \sqrt{\text{fan}}` with ``mode`` ``"fan_in"`` (default) or
    ``"fan_out"`` choosing the fan."""

    def initializer(a: mx.array, mode: Literal["fan_in", "fan_out"] = "fan_in", gain: float = 1.0) -> mx.array:
        std = gain / math.sqrt(_fan("he_normal", a.shape, mode))
        return mx.random.normal(shape=a.shape, scale=std, dtype=dtype)

    return initializer


def he_uniform(dtype: mx.Dtype = mx.float32) -> Callable[[mx.array, str, float], mx.array]:
    r"""A He (Kaiming) uniform initializer on :math:`[-l, l]` with
    :math:`l = \gamma \sqrt{3 / \text{fan}}`, ``mode`` choosing the fan."""

    def initializer(a: mx.array, mode: Literal["fan_in", "fan_out"] = "fan_in", gain: float = 1.0) -> mx.array:
        limit = gain * math.sqrt(3.0 / _fan("he_uniform", a.shape, mode))
        return mx.random.uniform(-limit, limit, a.shape, dtype=dtype)

    return initializer


def orthogonal(gain: float = 1.0, dtype: mx.Dtype = mx.float32) -> Callable[[mx.array], mx.array]:
    """An initializer returning a (semi-)orthogonal matrix scaled by ``gain``: its rows
    are orthonormal if it is wide, its columns if it is tall.

    As in MLX, it is the top-left ``rows x cols`` block of the Q factor of a square
    standard normal matrix of side ``max(rows, cols)``, with the signs fixed so that R
    has a positive diagonal (which makes Q uniformly distributed). The QR runs on the
    host in float64 with NumPy's (LAPACK's Householder) ``qr`` until oxmx has
    ``mx.linalg.qr`` (issue #12): initialisation is not a hot path."""

    def initializer(a: mx.array) -> mx.array:
        if a.ndim != 2:
            raise ValueError(f"[orthogonal] Orthogonal initialization requires a 2D array but got a {a.ndim}D array.")
        rows, cols = a.shape
        n = max(rows, cols)
        flat = np.array(mx.random.normal(shape=(n, n)), dtype=np.float64)
        q, r = np.linalg.qr(flat)
        q = q * np.where(np.diag(r) < 0, -1.0, 1.0)
        return (gain * mx.array(q[:rows, :cols].astype(np.float32))).astype(dtype)

    return initializer


def sparse(
    sparsity: float, mean: float = 0.0, std: float = 1.0, dtype: mx.Dtype = mx.float32
) -> Callable[[mx.array], mx.array]:
    """An initializer drawing from N(``mean``, ``std``²) and then zeroing, in every row,
    ``ceil(sparsity * columns)`` entries at random positions (Martens, 2010)."""
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"[sparse] sparsity must be in [0, 1], got {sparsity}.")

    def initializer(a: mx.array) -> mx.array:
        if a.ndim != 2:
            raise ValueError(f"[sparse] Only arrays with 2 dimensions are supported, got shape {tuple(a.shape)}.")
        rows, cols = a.shape
        num_zeros = math.ceil(sparsity * cols)
        # each row zeroes the columns of its num_zeros smallest uniform keys (drawn
        # before the values, as MLX does, so that a seed gives MLX's matrix)
        order = mx.argsort(mx.random.uniform(shape=a.shape), axis=1)
        values = mx.random.normal(shape=a.shape, scale=std, loc=mean, dtype=dtype)
        keep = mx.put_along_axis(
            mx.ones(a.shape, dtype=mx.bool_), order[:, :num_zeros], mx.array(False), axis=1
        )
        return mx.where(keep, values, mx.zeros_like(values))

    return initializer
