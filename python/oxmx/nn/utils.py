"""Training helpers over a :class:`~oxmx.nn.Module` (MLX's ``mlx.nn.utils``):
``value_and_grad``, ``checkpoint`` and ``average_gradients``."""

from functools import wraps
from typing import Any, Callable, Optional

import oxmx.core as mx

from .layers.base import Module

__all__ = ["value_and_grad", "checkpoint", "average_gradients"]


def _with_parameters(model: Module, fn: Callable) -> Callable:
    """``fn`` as a function of ``(trainable_parameters, *args)``: it installs the given
    parameters in ``model`` for the call and puts the caller's arrays back afterwards,
    so that no traced value stays inside the model."""

    def inner(params, *args, **kwargs):
        saved = model.trainable_parameters()
        model.update(params)
        try:
            return fn(*args, **kwargs)
        finally:
            model.update(saved)

    return inner


def value_and_grad(model: Module, fn: Callable) -> Callable:
    """Transform ``fn`` into a function returning ``(value, grads)``, where ``grads``
    is the gradient of ``fn``'s (scalar) value with respect to the trainable
    parameters of ``model``, a tree shaped like ``model.trainable_parameters()``.

    Args:
        model (Module): the model whose trainable parameters to differentiate.
        fn (Callable): the scalar function to differentiate (it calls ``model``).
    """
    if not isinstance(model, Module):
        raise TypeError(f"[value_and_grad] model must be an nn.Module, got {type(model).__name__}.")
    if not callable(fn):
        raise TypeError(f"[value_and_grad] fn must be callable, got {type(fn).__name__}.")
    value_and_grad_fn = mx.value_and_grad(_with_parameters(model, fn))

    @wraps(fn)
    def wrapped(*args, **kwargs):
        return value_and_grad_fn(model.trainable_parameters(), *args, **kwargs)

    return wrapped


def checkpoint(module: Module, fn: Optional[Callable] = None) -> Callable:
    """Gradient checkpointing of ``fn`` (default: ``module`` itself) with respect to
    the trainable parameters of ``module`` and the call's inputs: the forward pass
    keeps only inputs and outputs, the backward pass recomputes the intermediates.

    Args:
        module (Module): the module whose parameters ``fn`` uses.
        fn (Callable, optional): the function to checkpoint. Default: ``module``.
    """
    if not isinstance(module, Module):
        raise TypeError(f"[checkpoint] module must be an nn.Module, got {type(module).__name__}.")
    if fn is None:
        fn = module.__call__
    checkpointed = mx.checkpoint(_with_parameters(module, fn))

    @wraps(fn)
    def wrapped(*args, **kwargs):
        return checkpointed(module.trainable_parameters(), *args, **kwargs)

    return wrapped


def average_gradients(
    gradients: Any,
    group: Optional[Any] = None,
    all_reduce_size: int = 32 * 1024**2,
    communication_stream: Optional[Any] = None,
    *,
    communication_type: Optional[mx.Dtype] = None,
):
    """Average ``gradients`` (a tree of arrays) across the processes of ``group``
    (default: the global group): the same tree, each array the mean over the group.

    Arrays are flattened and concatenated into all-reduces of about
    ``all_reduce_size`` bytes (``<= 0``: one all-reduce per array), which is far
    faster than many small messages. ``communication_type`` casts before communicating
    (e.g. ``mx.bfloat16`` halves the bytes) and back after. With a single process the
    gradients are returned unchanged.
    """
    group = mx.distributed.init() if group is None else group
    n = group.size()
    if n == 1:
        return gradients
    from oxmx.utils import tree_flatten, tree_unflatten

    flat = tree_flatten(gradients)
    if not flat:
        return gradients
    keys = [k for k, _ in flat]
    values = [v for _, v in flat]

    def reduce(xs):
        dt = xs[0].dtype
        ct = communication_type or dt
        parts = [x.astype(ct).reshape(-1) for x in xs]
        joined = parts[0] if len(parts) == 1 else mx.concatenate(parts)
        summed = mx.distributed.all_sum(joined, group=group, stream=communication_stream)
        out, start = [], 0
        for x in xs:
            size = x.size
            out.append((summed[start : start + size].reshape(x.shape) / n).astype(dt))
            start += size
        return out

    result = [None] * len(values)
    batch, batch_bytes = [], 0
    # arrays of one dtype travel together (concatenation needs one dtype)
    for i in sorted(range(len(values)), key=lambda i: str(values[i].dtype)):
        v = values[i]
        if batch and (str(values[batch[0]].dtype) != str(v.dtype) or all_reduce_size <= 0
                      or batch_bytes + v.nbytes > all_reduce_size):
            for j, r in zip(batch, reduce([values[j] for j in batch])):
                result[j] = r
            batch, batch_bytes = [], 0
        batch.append(i)
        batch_bytes += v.nbytes
    if batch:
        for j, r in zip(batch, reduce([values[j] for j in batch])):
            result[j] = r
    return tree_unflatten(list(zip(keys, result)))
