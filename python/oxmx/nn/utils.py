"""Training helpers over a :class:`~oxmx.nn.Module` (MLX's ``mlx.nn.utils``):
``value_and_grad``, ``checkpoint`` and ``average_gradients``."""

from functools import wraps
from typing import Any, Callable, Optional

import oxmx.core as mx

from .layers.base import Module
from .layers.distributed import _check_single_process

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
    (default: the global group), batching small arrays into all-reduces of about
    ``all_reduce_size`` bytes.

    With a single process the average is the gradients themselves, which are returned
    unchanged; several processes need ``mx.distributed`` (issue #16).
    """
    _check_single_process(group, "average_gradients")
    return gradients
