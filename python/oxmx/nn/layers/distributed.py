"""Tensor-parallel and fully-sharded layers (MLX's ``mlx.nn.layers.distributed``).

Each process of a group keeps its shard of the weights: ``AllToShardedLinear`` a block
of output rows (the input's gradient is summed over the group), ``ShardedToAllLinear`` a
block of input columns (the partial products are summed with ``all_sum``). With one
process nothing is split and every collective is the identity, so the layers behave
exactly like ``Linear`` / ``QuantizedLinear`` (as in MLX). ``FullyShardedModule`` keeps
a block of axis 0 of every parameter, gathers the whole parameters for each call and
reduce-scatters their gradients.
"""

import math
from typing import Any, Callable, Optional, Union

import oxmx.core as mx
from oxmx.utils import tree_flatten, tree_map, tree_map_with_path

from .base import Module
from .linear import Linear, _check_features
from .quantized import QuantizedLinear, _init_quantized_linear, _quantized_biases, _quantized_linear_repr, _unpacked_dims

__all__ = [
    "AllToShardedLinear",
    "ShardedToAllLinear",
    "QuantizedAllToShardedLinear",
    "QuantizedShardedToAllLinear",
    "FullyShardedModule",
    "fully_shard",
    "shard_linear",
    "shard_inplace",
    "sum_gradients",
]

_SHARDINGS = ("all-to-sharded", "sharded-to-all")


def _resolve(group: Optional[Any]):
    """``group``, or the global group."""
    return mx.distributed.init() if group is None else group


def sum_gradients(group: Optional[Any] = None):
    """A function that returns its input unchanged and sums its gradient over ``group``
    (the backward of broadcasting an input to every shard)."""
    group = _resolve(group)
    if group.size() == 1:
        return lambda x: x

    @mx.custom_function
    def f(x):
        return x

    @f.vjp
    def f_vjp(primals, cotangent, output):
        return (mx.distributed.all_sum(cotangent, group=group),)

    return f


def _divide(n, parts, what, who):
    if n % parts:
        raise ValueError(f"[{who}] {what} ({n}) must be divisible by the group size ({parts}).")
    return n // parts


def _check_sharding(sharding, who):
    if sharding not in _SHARDINGS:
        raise ValueError(
            f"[{who}] Sharding type sharding={sharding!r} not supported, "
            "choose one of 'all-to-sharded' or 'sharded-to-all'"
        )


def _shard(x, axis, segments, who, group=None):
    """This process's shard of ``x`` along ``axis`` when ``x`` is made of ``segments``
    (a count or split indices) concatenated blocks: each block is split evenly across
    the group and this rank keeps its part of each. With one process every block is
    kept whole, so only the segments are checked."""
    group = _resolve(group)
    n, r = group.size(), group.rank()
    try:
        blocks = mx.split(x, segments, axis=axis)
    except ValueError as exc:
        raise ValueError(
            f"[{who}] cannot split shape {tuple(x.shape)} into segments={segments!r} along axis {axis}"
        ) from exc
    if n > 1:
        parts = []
        for b in blocks:
            size = _divide(b.shape[axis], n, f"a block of {b.shape[axis]} along axis {axis}", who)
            parts.append(mx.split(b, n, axis=axis)[r] if size else b)
        blocks = parts
    return mx.concatenate(blocks, axis=axis)


class AllToShardedLinear(Module):
    """A ``Linear`` whose output features are sharded across ``group``: each process
    computes its slice of the output (and gradients w.r.t. the input are summed).

    Args:
        input_dims (int): the size of the input's last axis.
        output_dims (int): the size of the (whole) output's last axis.
        bias (bool): whether to add a bias. Default ``True``.
        group (mx.distributed.Group, optional): the group to shard across (default: global).
    """

    def __init__(self, input_dims: int, output_dims: int, bias: bool = True, group: Optional[Any] = None):
        super().__init__()
        self.group = _resolve(group)
        n = self.group.size()
        rows = _divide(output_dims, n, "output_dims", "AllToShardedLinear")
        scale = math.sqrt(1.0 / input_dims)
        self.weight = mx.random.uniform(low=-scale, high=scale, shape=(rows, input_dims))
        if bias:
            self.bias = mx.random.uniform(low=-scale, high=scale, shape=(rows,))

    def _extra_repr(self):
        out, inp = self["weight"].shape
        return f"input_dims={inp}, output_dims={out * self.group.size()}, bias={'bias' in self}"

    def __call__(self, x):
        _check_features("AllToShardedLinear", x, self["weight"].shape[1], "input_dims")
        x = sum_gradients(self.group)(x)
        if "bias" in self:
            return mx.addmm(self["bias"], x, self["weight"].T)
        return x @ self["weight"].T

    @classmethod
    def from_linear(cls, linear_layer: Module, *, segments: Union[int, list] = 1, group: Optional[Any] = None):
        """The sharded version of ``linear_layer`` (whose weight may be ``segments``
        fused blocks along the output axis, e.g. 3 for a QKV projection)."""
        output_dims, input_dims = linear_layer.weight.shape
        layer = cls(input_dims, output_dims, "bias" in linear_layer, group=group)
        layer.update(_shard_tree(linear_layer.parameters(), "all-to-sharded", segments, cls.__name__, layer.group))
        return layer


class ShardedToAllLinear(Module):
    """A ``Linear`` whose input features are sharded across ``group``: each process
    multiplies its slice and the partial results are summed, so every process gets the
    whole output.

    Args:
        input_dims (int): the size of the (whole) input's last axis.
        output_dims (int): the size of the output's last axis.
        bias (bool): whether to add a bias. Default ``True``.
        group (mx.distributed.Group, optional): the group to shard across (default: global).
    """

    def __init__(self, input_dims: int, output_dims: int, bias: bool = True, group: Optional[Any] = None):
        super().__init__()
        self.group = _resolve(group)
        cols = _divide(input_dims, self.group.size(), "input_dims", "ShardedToAllLinear")
        scale = math.sqrt(1.0 / input_dims)
        self.weight = mx.random.uniform(low=-scale, high=scale, shape=(output_dims, cols))
        if bias:
            self.bias = mx.random.uniform(low=-scale, high=scale, shape=(output_dims,))

    def _extra_repr(self):
        out, inp = self["weight"].shape
        return f"input_dims={inp * self.group.size()}, output_dims={out}, bias={'bias' in self}"

    def __call__(self, x):
        _check_features("ShardedToAllLinear", x, self["weight"].shape[1], "input_dims")
        y = mx.distributed.all_sum(x @ self["weight"].T, group=self.group)
        if "bias" in self:
            y = y + self["bias"]
        return y

    @classmethod
    def from_linear(cls, linear_layer: Module, *, segments: Union[int, list] = 1, group: Optional[Any] = None):
        """The sharded version of ``linear_layer`` (input axis split into ``segments``)."""
        output_dims, input_dims = linear_layer.weight.shape
        layer = cls(input_dims, output_dims, "bias" in linear_layer, group=group)
        layer.update(_shard_tree(linear_layer.parameters(), "sharded-to-all", segments, cls.__name__, layer.group))
        return layer


class _QuantizedSharded(Module):
    """Shared code of the two quantized sharded layers (a frozen ``QuantizedLinear``
    whose weight is sharded along ``_AXIS``)."""

    _SHARDING = ""

    def __init__(self, input_dims, output_dims, bias, group_size, bits, mode, group):
        super().__init__()
        who = type(self).__name__
        self.group = _resolve(group)
        n = self.group.size()
        if self._SHARDING == "all-to-sharded":
            output_dims = _divide(output_dims, n, "output_dims", who)
        else:
            input_dims = _divide(input_dims, n, "input_dims", who)
        _init_quantized_linear(self, who, input_dims, output_dims, bias, group_size, bits, mode)

    def _extra_repr(self):
        return _quantized_linear_repr(self)

    def unfreeze(self, *, recurse: bool = True, keys=None, strict: bool = False) -> Module:
        """As in MLX, unfreezing this layer itself leaves its own parameters frozen (only
        submodules are unfrozen); a parent's ``unfreeze`` still reaches them."""
        super().unfreeze(recurse=recurse, keys=keys, strict=strict)
        return self.freeze(recurse=False)

    def __call__(self, x):
        if self._SHARDING == "all-to-sharded":
            x = sum_gradients(self.group)(x)
        y = mx.quantized_matmul(
            x,
            self["weight"],
            scales=self["scales"],
            biases=_quantized_biases(self),
            transpose=True,
            group_size=self.group_size,
            bits=self.bits,
            mode=self.mode,
        )
        if self._SHARDING == "sharded-to-all":
            y = mx.distributed.all_sum(y, group=self.group)
        if "bias" in self:
            y = y + self["bias"]
        return y

    @classmethod
    def from_quantized_linear(
        cls, quantized_linear_layer: Module, *, segments: Union[int, list] = 1, group: Optional[Any] = None
    ):
        """The sharded version of ``quantized_linear_layer`` (a ``QuantizedLinear``)."""
        source = quantized_linear_layer
        layer = cls(
            _unpacked_dims(source),
            source.weight.shape[0],
            "bias" in source,
            group_size=source.group_size,
            bits=source.bits,
            mode=source.mode,
            group=group,
        )
        layer.update(_shard_tree(source.parameters(), cls._SHARDING, segments, cls.__name__, layer.group))
        return layer


class QuantizedAllToShardedLinear(_QuantizedSharded):
    """The quantized :class:`AllToShardedLinear` (frozen parameters, like
    ``QuantizedLinear``). See ``QuantizedLinear`` for the quantization arguments."""

    _SHARDING = "all-to-sharded"

    def __init__(
        self,
        input_dims: int,
        output_dims: int,
        bias: bool = True,
        group_size: int = 64,
        bits: int = 4,
        mode: str = "affine",
        group: Optional[Any] = None,
    ):
        super().__init__(input_dims, output_dims, bias, group_size, bits, mode, group)


class QuantizedShardedToAllLinear(_QuantizedSharded):
    """The quantized :class:`ShardedToAllLinear` (frozen parameters, like
    ``QuantizedLinear``). See ``QuantizedLinear`` for the quantization arguments."""

    _SHARDING = "sharded-to-all"

    def __init__(
        self,
        input_dims: int,
        output_dims: int,
        bias: bool = True,
        group_size: int = 64,
        bits: int = 4,
        mode: str = "affine",
        group: Optional[Any] = None,
    ):
        super().__init__(input_dims, output_dims, bias, group_size, bits, mode, group)


def _axis_for(sharding):
    """The parameter-to-(axis, segments-or-None) rule of a named sharding: outputs
    (weight rows and bias) for all-to-sharded; weight columns only for sharded-to-all."""

    def rule(path, weight):
        if sharding == "all-to-sharded":
            return 0
        return -1 if weight.ndim > 1 and not path.endswith("bias") else None

    return rule


def _shard_tree(params, sharding, segments, who, group=None):
    """Shard every array of ``params`` by ``sharding`` (a name or a callable returning
    an axis, ``(axis, segments)`` or ``None`` to leave the array whole)."""
    if isinstance(sharding, str):
        _check_sharding(sharding, who)
        rule = _axis_for(sharding)
    else:
        rule = sharding

    def shard_one(path, weight):
        choice = rule(path, weight)
        if choice is None:
            return weight
        axis, parts = choice if isinstance(choice, tuple) else (choice, segments)
        return _shard(weight, axis, parts, who, group)

    return tree_map_with_path(shard_one, params)


def shard_linear(module: Module, sharding: str, *, segments: Union[int, list] = 1, group: Optional[Any] = None):
    """A new sharded copy of the ``Linear`` or ``QuantizedLinear`` ``module``:
    ``sharding`` is ``"all-to-sharded"`` or ``"sharded-to-all"``; the original is not
    changed."""
    _check_sharding(sharding, "shard_linear")
    if isinstance(module, QuantizedLinear):
        kind = QuantizedAllToShardedLinear if sharding == "all-to-sharded" else QuantizedShardedToAllLinear
        return kind.from_quantized_linear(module, segments=segments, group=group)
    if isinstance(module, Linear):
        kind = AllToShardedLinear if sharding == "all-to-sharded" else ShardedToAllLinear
        return kind.from_linear(module, segments=segments, group=group)
    raise TypeError(f"[shard_linear] expected a Linear or QuantizedLinear layer, got {type(module).__name__}.")


def shard_inplace(
    module: Module,
    sharding: Union[str, Callable],
    *,
    segments: Union[int, list] = 1,
    group: Optional[Any] = None,
):
    """Replace the parameters of ``module`` by their shards. ``sharding`` is
    ``"all-to-sharded"``, ``"sharded-to-all"`` or a callable ``(path, weight) ->
    axis | (axis, segments) | None``. The module's code is unchanged, so it must do
    its own communication."""
    module.update(_shard_tree(module.parameters(), sharding, segments, "shard_inplace", _resolve(group)))


class FullyShardedModule(Module):
    """Wrap ``module`` so each process of ``group`` stores only a shard (along axis 0)
    of every parameter; the whole parameters are gathered (``all_gather``) for each
    call, cast to ``compute_dtype`` if given, and the gradients of the gathered
    parameters are reduce-scattered back to the shards (``sum_scatter`` divided by
    the group size: each process's shard gets the mean over the group, the update
    ``average_gradients`` gives data-parallel training). Every parameter's axis 0 must
    be divisible by the group size. An optimizer then updates only this process's
    shards.

    With a single process nothing is sharded or gathered: the wrapper calls ``module``
    as it is, as MLX does for a group of size 1 (``compute_dtype`` is then unused).
    """

    def __init__(self, module: Module, group: Optional[Any] = None, compute_dtype: Optional[mx.Dtype] = None):
        super().__init__()
        group = _resolve(group)
        self.group = group
        self.compute_dtype = compute_dtype
        n, r = group.size(), group.rank()
        if n > 1:

            def shard(path, p):
                if p.ndim == 0 or p.shape[0] % n:
                    raise ValueError(
                        f"[FullyShardedModule] The parameter {path} of shape {tuple(p.shape)} cannot be "
                        f"sharded: its axis 0 must be divisible by the group size ({n})."
                    )
                k = p.shape[0] // n
                return mx.contiguous(p[r * k:(r + 1) * k])

            module.update(tree_map_with_path(shard, module.parameters()))
        self.module = module
        self._gather = _gather_function(group, compute_dtype) if n > 1 else None

    def _extra_repr(self):
        return f"num_sharded_params={len(tree_flatten(self['module'].parameters()))}"

    def _with_whole_parameters(self, call):
        inner = self["module"]
        if self._gather is None:
            return call(inner)
        shards = inner.parameters()
        inner.update(tree_map(self._gather, shards))
        try:
            return call(inner)
        finally:
            inner.update(shards)

    def __call__(self, *args, **kwargs):
        return self._with_whole_parameters(lambda m: m(*args, **kwargs))

    def as_linear(self, *args, **kwargs):
        """The wrapped module's ``as_linear`` (e.g. a tied ``Embedding`` projection)."""
        return self._with_whole_parameters(lambda m: m.as_linear(*args, **kwargs))


def _gather_function(group, compute_dtype):
    """all_gather along axis 0 (cast to ``compute_dtype``) whose gradient is the mean
    over the group of this process's block."""
    n = group.size()

    @mx.custom_function
    def gather(x):
        y = mx.distributed.all_gather(x, group=group)
        return y if compute_dtype is None else y.astype(compute_dtype)

    @gather.vjp
    def gather_vjp(primals, cotangent, output):
        (x,) = primals
        g = mx.distributed.sum_scatter(cotangent.astype(x.dtype), group=group)
        return ((g / n).astype(x.dtype),)

    return gather


def fully_shard(module: Module, *, group: Optional[Any] = None, compute_dtype: Optional[mx.Dtype] = None) -> Module:
    """Wrap ``module`` in a :class:`FullyShardedModule`; with a single process there is
    nothing to shard and ``module`` is returned unchanged, as in MLX."""
    if _resolve(group).size() == 1:
        return module
    return FullyShardedModule(module, group=group, compute_dtype=compute_dtype)
