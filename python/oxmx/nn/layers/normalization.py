"""Normalisation layers: ``LayerNorm``, ``RMSNorm``, ``GroupNorm``, ``InstanceNorm`` and
``BatchNorm`` (MLX's ``mlx.nn``).

All of them take channels-last inputs ``(N, ..., C)``. The learned scale ``weight``
starts at 1 and the shift ``bias`` at 0; being float32 parameters, they promote
half-precision inputs to float32 exactly as in MLX. ``BatchNorm`` keeps its running
statistics as frozen (non-trainable) parameters: they are part of ``parameters()`` (so
they are saved and loaded) but not of ``trainable_parameters()``.
"""

import math

import oxmx.core as mx

from .base import Module

__all__ = ["LayerNorm", "RMSNorm", "GroupNorm", "InstanceNorm", "BatchNorm"]


def _check_input(layer, x, dims, min_ndim=1):
    """``x`` must be an array of at least ``min_ndim`` dimensions with ``dims`` features last."""
    if not isinstance(x, mx.array):
        raise TypeError(f"[{layer}] expected an array input but received {type(x).__name__}.")
    if x.ndim < min_ndim:
        raise ValueError(f"[{layer}] expects inputs with at least {min_ndim} dimension(s), got shape {tuple(x.shape)}.")
    if x.shape[-1] != dims:
        raise ValueError(f"[{layer}] input of shape {tuple(x.shape)} does not match dims={dims} (its last axis).")


def _as_float(x):
    # The fused kernels need a floating input; MLX normalises integers as float32.
    return x if mx.issubdtype(x.dtype, mx.floating) else x.astype(mx.float32)


def _normalize(x, axes, eps):
    """``(x - mean) / sqrt(var + eps)`` with the (biased) statistics over ``axes``."""
    mean = mx.mean(x, axis=axes, keepdims=True)
    var = mx.var(x, axis=axes, keepdims=True)
    return (x - mean) * mx.rsqrt(var + eps)


class LayerNorm(Module):
    r"""Layer normalisation over the last axis:

    .. math:: y = \frac{x - E[x]}{\sqrt{Var[x] + \epsilon}} \gamma + \beta

    Args:
        dims (int): the size of the last axis.
        eps (float): added to the variance. Default ``1e-5``.
        affine (bool): learn the scale :math:`\gamma` (and :math:`\beta`). Default ``True``.
        bias (bool): with ``affine``, also learn the shift :math:`\beta`. Default ``True``.
    """

    def __init__(self, dims: int, eps: float = 1e-5, affine: bool = True, bias: bool = True):
        super().__init__()
        if affine:
            self.weight = mx.ones((dims,))
            if bias:
                self.bias = mx.zeros((dims,))
        self.eps = eps
        self.dims = dims

    def _extra_repr(self):
        return f"{self.dims}, eps={self.eps}, affine={'weight' in self}"

    def __call__(self, x):
        _check_input("LayerNorm", x, self.dims)
        return mx.fast.layer_norm(_as_float(x), self.get("weight"), self.get("bias"), self.eps)


class RMSNorm(Module):
    r"""Root-mean-square normalisation over the last axis,
    :math:`y = x / \sqrt{E[x^2] + \epsilon}\,\gamma`, with a learned scale :math:`\gamma`.

    Args:
        dims (int): the size of the last axis.
        eps (float): added to the mean square. Default ``1e-5``.
    """

    def __init__(self, dims: int, eps: float = 1e-5):
        super().__init__()
        self.weight = mx.ones((dims,))
        self.eps = eps

    def _extra_repr(self):
        return f"{self.weight.shape[0]}, eps={self.eps}"

    def __call__(self, x):
        _check_input("RMSNorm", x, self.weight.shape[0])
        return mx.fast.rms_norm(_as_float(x), self["weight"], self.eps)


class GroupNorm(Module):
    r"""Group normalisation: the features (last axis) are split into ``num_groups``
    groups and each is normalised over its features and all the spatial axes (those
    between the batch axis and the last one), per sample.

    By default feature ``c`` belongs to group ``c % num_groups`` (MLX's grouping); with
    ``pytorch_compatible=True`` the groups are contiguous runs of features, as in
    PyTorch's ``GroupNorm`` on channels-first data.

    Args:
        num_groups (int): the number of groups; must divide ``dims``.
        dims (int): the number of features.
        eps (float): added to the variance. Default ``1e-5``.
        affine (bool): learn a per-feature scale and shift. Default ``True``.
        pytorch_compatible (bool): use PyTorch's grouping. Default ``False``.
    """

    def __init__(
        self, num_groups: int, dims: int, eps: float = 1e-5, affine: bool = True, pytorch_compatible: bool = False
    ):
        super().__init__()
        if num_groups <= 0 or dims % num_groups:
            raise ValueError(
                f"[GroupNorm] The number of features ({dims}) must be evenly divisible by the number of "
                f"groups ({num_groups})."
            )
        if affine:
            self.bias = mx.zeros((dims,))
            self.weight = mx.ones((dims,))
        self.num_groups = num_groups
        self.dims = dims
        self.eps = eps
        self.pytorch_compatible = pytorch_compatible

    def _extra_repr(self):
        return (
            f"{self.num_groups}, {self.dims}, eps={self.eps}, "
            f"affine={'weight' in self}, pytorch_compatible={self.pytorch_compatible}"
        )

    def __call__(self, x):
        _check_input("GroupNorm", x, self.dims, min_ndim=2)
        x = _as_float(x)
        shape = x.shape
        batch, groups, per_group = shape[0], self.num_groups, self.dims // self.num_groups
        # S: the flattened spatial axes, given explicitly (a 0-size batch cannot infer -1)
        spatial = math.prod(shape[1:-1])
        if self.pytorch_compatible:
            # contiguous groups: (N, S, G, C/G), statistics over S and C/G
            y = _normalize(x.reshape(batch, spatial, groups, per_group), (1, 3), self.eps)
        else:
            # strided groups (feature c -> group c % G): (N, S, C/G, G), statistics over S and C/G
            y = _normalize(x.reshape(batch, spatial, per_group, groups), (1, 2), self.eps)
        y = y.reshape(shape)
        if "weight" in self:
            y = self["weight"] * y + self["bias"]
        return y


class InstanceNorm(Module):
    r"""Instance normalisation: each feature of each sample is normalised over the
    spatial axes, for inputs ``(N, ..., C)`` with at least one spatial axis.

    Args:
        dims (int): the number of features ``C``.
        eps (float): added to the variance. Default ``1e-5``.
        affine (bool): learn a per-feature scale and shift. Default ``False``.
    """

    def __init__(self, dims: int, eps: float = 1e-5, affine: bool = False):
        super().__init__()
        if affine:
            self.weight = mx.ones((dims,))
            self.bias = mx.zeros((dims,))
        self.dims = dims
        self.eps = eps

    def _extra_repr(self):
        return f"{self.dims}, eps={self.eps}, affine={'weight' in self}"

    def __call__(self, x):
        _check_input("InstanceNorm", x, self.dims, min_ndim=3)
        y = _normalize(_as_float(x), tuple(range(1, x.ndim - 1)), self.eps)
        if "weight" in self:
            y = self["weight"] * y + self["bias"]
        return y


class BatchNorm(Module):
    r"""Batch normalisation of inputs ``(N, C)``, ``(N, L, C)`` or ``(N, H, W, C)``:
    each feature is normalised over every axis but the last.

    In training mode the batch statistics are used and, with ``track_running_stats``,
    folded into ``running_mean``/``running_var`` with ``momentum`` (the running variance
    takes the unbiased batch variance, as PyTorch and MLX do). In evaluation mode the
    running statistics are used instead (the batch's if they are not tracked).

    Args:
        num_features (int): the number of features ``C``.
        eps (float): added to the variance. Default ``1e-5``.
        momentum (float): weight of the new batch in the running statistics. Default ``0.1``.
        affine (bool): learn a per-feature scale and shift. Default ``True``.
        track_running_stats (bool): keep running statistics. Default ``True``.
    """

    _STATS = ("running_mean", "running_var")

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ):
        super().__init__()
        if affine:
            self.weight = mx.ones((num_features,))
            self.bias = mx.zeros((num_features,))
        if track_running_stats:
            self.running_mean = mx.zeros((num_features,))
            self.running_var = mx.ones((num_features,))
            self.freeze(keys=list(self._STATS), recurse=False)
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.track_running_stats = track_running_stats

    def _extra_repr(self):
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={'weight' in self}, track_running_stats={self.track_running_stats}"
        )

    def unfreeze(self, *args, **kwargs):
        """As :meth:`Module.unfreeze`, but the running statistics stay frozen: they are
        state, never trained."""
        super().unfreeze(*args, **kwargs)
        if self.track_running_stats:
            self.freeze(keys=list(self._STATS), recurse=False)
        return self

    def __call__(self, x):
        _check_input("BatchNorm", x, self.num_features)
        if not 2 <= x.ndim <= 4:
            raise ValueError(f"[BatchNorm] expects inputs with 2, 3 or 4 dimensions, got shape {tuple(x.shape)}.")
        x = _as_float(x)
        axes = tuple(range(x.ndim - 1))
        use_batch_stats = self.training or not self.track_running_stats
        if use_batch_stats:
            count = math.prod(x.shape[:-1])
            if count == 1:
                raise ValueError(
                    "[BatchNorm] training requires more than one value per feature, "
                    f"got an input of shape {tuple(x.shape)}."
                )
            mean = mx.mean(x, axis=axes)
            var = mx.var(x, axis=axes)
            # An empty batch carries no statistics: leave the running ones untouched.
            if self.training and self.track_running_stats and count > 1:
                m = self.momentum
                unbiased = var * (count / (count - 1))
                self.running_mean = (1 - m) * self.running_mean + m * mx.stop_gradient(mean)
                self.running_var = (1 - m) * self.running_var + m * mx.stop_gradient(unbiased)
        else:
            mean, var = self.running_mean, self.running_var
        y = (x - mean) * mx.rsqrt(var + self.eps)
        if "weight" in self:
            y = self["weight"] * y + self["bias"]
        return y
