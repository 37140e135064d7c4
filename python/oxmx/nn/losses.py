"""Loss functions (MLX's ``mlx.nn.losses``).

Each loss takes a ``reduction``: ``'none'`` keeps the per-element losses, ``'mean'``
and ``'sum'`` reduce them to a scalar. Losses that MLX defines on identically shaped
inputs (``binary_cross_entropy``, ``l1_loss``, ``mse_loss``, ``smooth_l1_loss``,
``gaussian_nll_loss``, ``margin_ranking_loss``) reject any other shapes; the others
broadcast their inputs as MLX does, and say so clearly when they cannot.
"""

import math
from typing import Literal, Optional

import oxmx.core as mx

from .layers.activations import _logsumexp

__all__ = [
    "binary_cross_entropy", "cosine_similarity_loss", "cross_entropy", "gaussian_nll_loss",
    "hinge_loss", "huber_loss", "kl_div_loss", "l1_loss", "log_cosh_loss",
    "margin_ranking_loss", "mse_loss", "nll_loss", "smooth_l1_loss", "triplet_loss",
]  # fmt: skip

Reduction = Literal["none", "mean", "sum"]
_REDUCTIONS = ("none", "mean", "sum")
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


# ---------------------------------------------------------------------- helpers
def _check_reduction(name, reduction):
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"[{name}] Invalid reduction {reduction!r}: must be one of 'none', 'mean' or 'sum'.")


def _reduce(loss, reduction):
    if reduction == "mean":
        return mx.mean(loss)
    if reduction == "sum":
        return mx.sum(loss)
    return loss


def _check_arrays(name, **arrays):
    for arg, a in arrays.items():
        if not isinstance(a, mx.array):
            raise TypeError(f"[{name}] {arg} must be an array, got {type(a).__name__}.")


def _check_same_shape(name, first, second, **arrays):
    """``arrays[first]`` and ``arrays[second]`` must have exactly the same shape."""
    a, b = arrays[first], arrays[second]
    if a.shape != b.shape:
        raise ValueError(f"[{name}] {first} shape {tuple(a.shape)} does not match {second} shape {tuple(b.shape)}.")


def _check_broadcast(name, **shapes):
    """The shapes must broadcast together."""
    try:
        mx.broadcast_shapes(*shapes.values())
    except ValueError:
        described = ", ".join(f"{k} {tuple(v)}" for k, v in shapes.items())
        raise ValueError(f"[{name}] the shapes do not broadcast together: {described}.") from None


def _apply_weights(name, weights, loss):
    """``loss * weights``; the weights must have exactly the loss's shape (as in MLX)."""
    if weights is None:
        return loss
    _check_arrays(name, weights=weights)
    if weights.shape != loss.shape:
        raise ValueError(
            f"[{name}] weights of shape {tuple(weights.shape)} must have the shape of the loss, {tuple(loss.shape)}."
        )
    return loss * weights


def _axis(name, axis, ndim):
    if not -ndim <= axis < ndim:
        raise ValueError(f"[{name}] axis {axis} is out of bounds for inputs with {ndim} dimensions.")
    return axis % ndim


def _clipped_log(p):
    """``max(log(p), -100)``, with a zero (not NaN) gradient where ``p <= 0``."""
    positive = p > 0
    return mx.where(positive, mx.maximum(mx.log(mx.where(positive, p, 1)), -100), -100)


# ---------------------------------------------------------------------- classification
def cross_entropy(
    logits: mx.array,
    targets: mx.array,
    weights: Optional[mx.array] = None,
    axis: int = -1,
    label_smoothing: float = 0.0,
    reduction: Reduction = "none",
) -> mx.array:
    """The cross entropy between ``softmax(logits)`` along ``axis`` and ``targets``.

    ``targets`` are either class indices (an integer array shaped as ``logits`` without
    ``axis``) or probabilities (shaped as ``logits``). ``label_smoothing`` in ``[0, 1)``
    mixes the targets with the uniform distribution over the classes; ``weights``, if
    given, multiply the per-sample losses (same shape as them). Half-precision logits
    are reduced in float32 and the loss is returned in their dtype.
    """
    name = "cross_entropy"
    _check_arrays(name, logits=logits, targets=targets)
    _check_reduction(name, reduction)
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"[{name}] label_smoothing must be in [0, 1), got {label_smoothing}.")
    if logits.ndim == 0:
        raise ValueError(f"[{name}] logits must have at least one dimension (the classes).")
    axis = _axis(name, axis, logits.ndim)
    probabilities = targets.ndim == logits.ndim
    reduced = logits.shape[:axis] + logits.shape[axis + 1 :]
    if probabilities and targets.shape != logits.shape:
        raise ValueError(
            f"[{name}] targets shape {tuple(targets.shape)} does not match logits shape {tuple(logits.shape)}: "
            f"probabilities need the shape of the logits, class indices the shape {tuple(reduced)}."
        )
    if not probabilities:
        if targets.shape != reduced:
            raise ValueError(
                f"[{name}] targets shape {tuple(targets.shape)} does not match logits shape {tuple(logits.shape)}: "
                f"class indices need shape {tuple(reduced)} (logits without axis {axis}), "
                f"probabilities {tuple(logits.shape)}."
            )
        if not mx.issubdtype(targets.dtype, mx.integer):
            raise ValueError(f"[{name}] class-index targets must be integers, got {targets.dtype}.")

    floating = mx.issubdtype(logits.dtype, mx.floating)
    out_dtype = logits.dtype if floating else mx.float32
    if probabilities:
        out_dtype = mx.result_type(out_dtype, targets.dtype)
    # Reduce in float32 at least (MLX's fused kernel does the same on the GPU).
    logits_f = logits if floating and logits.dtype in (mx.float32, mx.float64) else logits.astype(mx.float32)
    num_classes = logits.shape[axis]

    if probabilities:
        if label_smoothing:
            targets = targets * (1 - label_smoothing) + label_smoothing / num_classes
        log_probs = logits_f - _logsumexp(logits_f, axis, keepdims=True)
        loss = -mx.sum(targets * log_probs, axis=axis)
    elif not label_smoothing and logits.size and logits_f.dtype == mx.float32:
        loss = mx.fast.cross_entropy(mx.moveaxis(logits_f, axis, -1), targets)
    else:  # label smoothing, float64 (the fused kernel computes in float32) or an empty batch
        picked = mx.take_along_axis(logits_f, mx.expand_dims(targets, axis), axis=axis).squeeze(axis)
        mean_logit = mx.mean(logits_f, axis=axis)
        score = (1 - label_smoothing) * picked + label_smoothing * mean_logit
        loss = _logsumexp(logits_f, axis) - score
    loss = _apply_weights(name, weights, loss.astype(out_dtype))
    return _reduce(loss, reduction)


def binary_cross_entropy(
    inputs: mx.array,
    targets: mx.array,
    weights: Optional[mx.array] = None,
    with_logits: bool = True,
    reduction: Reduction = "mean",
) -> mx.array:
    """The binary cross entropy between ``inputs`` and binary ``targets`` (same shape).

    With ``with_logits`` (the default) ``inputs`` are logits and the loss is the stable
    ``log(1 + e^x) - x t``; otherwise they are probabilities whose logs are clipped at
    -100 (so a probability of exactly 0 or 1 gives a finite loss and gradient).
    """
    name = "binary_cross_entropy"
    _check_arrays(name, inputs=inputs, targets=targets)
    _check_reduction(name, reduction)
    _check_same_shape(name, "inputs", "targets", inputs=inputs, targets=targets)
    if with_logits:
        loss = mx.logaddexp(0.0, inputs) - inputs * targets
    else:
        loss = -(targets * _clipped_log(inputs) + (1 - targets) * _clipped_log(1 - inputs))
    loss = _apply_weights(name, weights, loss)
    return _reduce(loss, reduction)


def nll_loss(inputs: mx.array, targets: mx.array, axis: int = -1, reduction: Reduction = "none") -> mx.array:
    """The negative log likelihood of the class indices ``targets`` under the
    log-probabilities ``inputs`` (classes along ``axis``)."""
    name = "nll_loss"
    _check_arrays(name, inputs=inputs, targets=targets)
    _check_reduction(name, reduction)
    if inputs.ndim == 0:
        raise ValueError(f"[{name}] inputs must have at least one dimension (the classes).")
    axis = _axis(name, axis, inputs.ndim)
    if not mx.issubdtype(targets.dtype, mx.integer):
        raise ValueError(f"[{name}] targets must be integer class indices, got {targets.dtype}.")
    reduced = tuple(inputs.shape[:axis] + inputs.shape[axis + 1 :])
    try:
        fits = mx.broadcast_shapes(targets.shape, reduced) == reduced
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"[{name}] targets shape {tuple(targets.shape)} does not match inputs shape {tuple(inputs.shape)}: "
            f"class indices need shape {reduced} (inputs without axis {axis}) or one that broadcasts to it."
        )
    index = mx.expand_dims(mx.broadcast_to(targets, reduced), axis)
    picked = mx.take_along_axis(inputs, index, axis=axis)
    return _reduce(-picked.squeeze(axis), reduction)


def kl_div_loss(inputs: mx.array, targets: mx.array, axis: int = -1, reduction: Reduction = "none") -> mx.array:
    """The Kullback-Leibler divergence ``sum(exp(targets) * (targets - inputs), axis)``
    of the log-probabilities ``inputs`` from the log-probabilities ``targets``."""
    name = "kl_div_loss"
    _check_arrays(name, inputs=inputs, targets=targets)
    _check_reduction(name, reduction)
    _check_broadcast(name, inputs=inputs.shape, targets=targets.shape)
    loss = mx.sum(mx.exp(targets) * (targets - inputs), axis=axis)
    return _reduce(loss, reduction)


def hinge_loss(inputs: mx.array, targets: mx.array, reduction: Reduction = "none") -> mx.array:
    """The hinge loss ``max(0, 1 - inputs * targets)`` for targets in {-1, 1}."""
    name = "hinge_loss"
    _check_arrays(name, inputs=inputs, targets=targets)
    _check_reduction(name, reduction)
    _check_broadcast(name, inputs=inputs.shape, targets=targets.shape)
    return _reduce(mx.maximum(1 - inputs * targets, 0), reduction)


def margin_ranking_loss(
    inputs1: mx.array, inputs2: mx.array, targets: mx.array, margin: float = 0.0, reduction: Reduction = "none"
) -> mx.array:
    """``max(0, -targets * (inputs1 - inputs2) + margin)``: ``targets`` (1 or -1) say
    whether ``inputs1`` should rank above ``inputs2``. All three have the same shape."""
    name = "margin_ranking_loss"
    _check_arrays(name, inputs1=inputs1, inputs2=inputs2, targets=targets)
    _check_reduction(name, reduction)
    if not inputs1.shape == inputs2.shape == targets.shape:
        raise ValueError(
            f"[{name}] The shapes of the arguments do not match: inputs1 {tuple(inputs1.shape)}, "
            f"inputs2 {tuple(inputs2.shape)}, targets {tuple(targets.shape)}."
        )
    return _reduce(mx.maximum(-targets * (inputs1 - inputs2) + margin, 0), reduction)


# ---------------------------------------------------------------------- regression
def l1_loss(predictions: mx.array, targets: mx.array, reduction: Reduction = "mean") -> mx.array:
    """The absolute error ``|predictions - targets|`` (same shapes)."""
    name = "l1_loss"
    _check_arrays(name, predictions=predictions, targets=targets)
    _check_reduction(name, reduction)
    _check_same_shape(name, "predictions", "targets", predictions=predictions, targets=targets)
    return _reduce(mx.abs(predictions - targets), reduction)


def mse_loss(predictions: mx.array, targets: mx.array, reduction: Reduction = "mean") -> mx.array:
    """The squared error ``(predictions - targets)**2`` (same shapes)."""
    name = "mse_loss"
    _check_arrays(name, predictions=predictions, targets=targets)
    _check_reduction(name, reduction)
    _check_same_shape(name, "predictions", "targets", predictions=predictions, targets=targets)
    return _reduce(mx.square(predictions - targets), reduction)


def smooth_l1_loss(
    predictions: mx.array, targets: mx.array, beta: float = 1.0, reduction: Reduction = "mean"
) -> mx.array:
    """``0.5 d**2 / beta`` where ``d = |predictions - targets| < beta``, else
    ``d - 0.5 beta`` (same shapes); ``beta = 0`` is the L1 loss."""
    name = "smooth_l1_loss"
    _check_arrays(name, predictions=predictions, targets=targets)
    _check_reduction(name, reduction)
    _check_same_shape(name, "predictions", "targets", predictions=predictions, targets=targets)
    diff = mx.abs(predictions - targets)
    if beta == 0:  # no quadratic zone: avoid 0/0 in the branch `where` would discard
        return _reduce(diff, reduction)
    return _reduce(mx.where(diff < beta, 0.5 * mx.square(diff) / beta, diff - 0.5 * beta), reduction)


def huber_loss(inputs: mx.array, targets: mx.array, delta: float = 1.0, reduction: Reduction = "none") -> mx.array:
    """``0.5 a**2`` where ``|a| <= delta``, else ``delta (|a| - 0.5 delta)``, with
    ``a = inputs - targets``."""
    name = "huber_loss"
    _check_arrays(name, inputs=inputs, targets=targets)
    _check_reduction(name, reduction)
    _check_broadcast(name, inputs=inputs.shape, targets=targets.shape)
    err = mx.abs(inputs - targets)
    # quadratic up to delta, linear beyond: the same value as the two-branch formula
    quadratic = mx.minimum(err, delta)
    return _reduce(0.5 * mx.square(quadratic) + delta * (err - quadratic), reduction)


def log_cosh_loss(inputs: mx.array, targets: mx.array, reduction: Reduction = "none") -> mx.array:
    """``log(cosh(inputs - targets))``, computed as ``logaddexp(a, -a) - log 2`` so that
    large errors do not overflow."""
    name = "log_cosh_loss"
    _check_arrays(name, inputs=inputs, targets=targets)
    _check_reduction(name, reduction)
    _check_broadcast(name, inputs=inputs.shape, targets=targets.shape)
    err = inputs - targets
    return _reduce(mx.logaddexp(err, -err) - math.log(2), reduction)


def gaussian_nll_loss(
    inputs: mx.array,
    targets: mx.array,
    vars: mx.array,
    full: bool = False,
    eps: float = 1e-6,
    reduction: Reduction = "mean",
) -> mx.array:
    """The negative log likelihood of ``targets`` under Gaussians of means ``inputs``
    and variances ``vars`` (all the same shape; variances are clamped at ``eps``):
    ``0.5 (log v + (inputs - targets)**2 / v)``, plus ``0.5 log(2 pi)`` with ``full``."""
    name = "gaussian_nll_loss"
    _check_arrays(name, inputs=inputs, targets=targets, vars=vars)
    _check_reduction(name, reduction)
    _check_same_shape(name, "inputs", "targets", inputs=inputs, targets=targets)
    _check_same_shape(name, "inputs", "vars", inputs=inputs, vars=vars)
    v = mx.maximum(vars, eps)
    loss = 0.5 * (mx.log(v) + mx.square(targets - inputs) / v)
    if full:
        loss = loss + _HALF_LOG_2PI
    return _reduce(loss, reduction)


# ---------------------------------------------------------------------- embeddings
def cosine_similarity_loss(
    x1: mx.array, x2: mx.array, axis: int = 1, eps: float = 1e-8, reduction: Reduction = "none"
) -> mx.array:
    """The cosine similarity ``x1 . x2 / max(|x1| |x2|, eps)`` along ``axis``."""
    name = "cosine_similarity_loss"
    _check_arrays(name, x1=x1, x2=x2)
    _check_reduction(name, reduction)
    _check_broadcast(name, x1=x1.shape, x2=x2.shape)
    norm1 = mx.sqrt(mx.sum(mx.square(x1), axis=axis))
    norm2 = mx.sqrt(mx.sum(mx.square(x2), axis=axis))
    loss = mx.sum(x1 * x2, axis=axis) / mx.maximum(norm1 * norm2, eps)
    return _reduce(loss, reduction)


def triplet_loss(
    anchors: mx.array,
    positives: mx.array,
    negatives: mx.array,
    axis: int = -1,
    p: int = 2,
    margin: float = 1.0,
    eps: float = 1e-6,
    reduction: Reduction = "none",
) -> mx.array:
    """``max(|a - p|_p - |a - n|_p + margin, 0)`` with the p-norms along ``axis``
    (``eps`` is added to the sum of powers before the root, which keeps the gradient
    finite when two samples coincide)."""
    name = "triplet_loss"
    _check_arrays(name, anchors=anchors, positives=positives, negatives=negatives)
    _check_reduction(name, reduction)
    _check_broadcast(name, anchors=anchors.shape, positives=positives.shape, negatives=negatives.shape)

    def distance(a, b):
        return mx.power(mx.sum(mx.power(mx.abs(a - b), p), axis=axis) + eps, 1.0 / p)

    loss = mx.maximum(distance(anchors, positives) - distance(anchors, negatives) + margin, 0)
    return _reduce(loss, reduction)
