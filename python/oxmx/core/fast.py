"""oxmx.core.fast — fused kernels for the hot spots of models (MLX's ``mlx.core.fast``).

Argument checks live here; the computation is the composite formula of
``_fast_composite`` until a backend registers a fused kernel for it.
"""

from oxmx._oxmx import array
import oxmx.core as _mx
from . import _fast_composite as _ref

__all__ = [
    "rms_norm",
    "layer_norm",
    "rope",
    "scaled_dot_product_attention",
    "cross_entropy",
    "cuda_kernel",
    "precompiled_cuda_kernel",
    "metal_kernel",
]


def _float_check(op, name, a):
    if not isinstance(a, array):
        raise TypeError(f"[{op}] {name} must be an array, got {type(a).__name__}.")
    if not _mx.issubdtype(a.dtype, _mx.floating):
        raise ValueError(f"[{op}] {name} must be a floating-point array, got {a.dtype}.")


def _vector_check(op, name, v, x):
    if v is None:
        return
    _float_check(op, name, v)
    if v.ndim != 1 or v.shape[0] != x.shape[-1]:
        raise ValueError(
            f"[{op}] {name} must have shape ({x.shape[-1]},) to match the last axis of the input, got {v.shape}."
        )


def rms_norm(x, weight, eps, *, stream=None):
    """Root-mean-square normalisation over the last axis, scaled by ``weight`` if given."""
    _float_check("rms_norm", "x", x)
    if x.ndim == 0:
        raise ValueError("[rms_norm] Input must have at least 1 dimension.")
    _vector_check("rms_norm", "weight", weight, x)
    return _ref.rms_norm(x, weight, float(eps))


def layer_norm(x, weight, bias, eps, *, stream=None):
    """Layer normalisation over the last axis, with optional ``weight`` and ``bias``."""
    _float_check("layer_norm", "x", x)
    if x.ndim == 0:
        raise ValueError("[layer_norm] Input must have at least 1 dimension.")
    _vector_check("layer_norm", "weight", weight, x)
    _vector_check("layer_norm", "bias", bias, x)
    return _ref.layer_norm(x, weight, bias, float(eps))


def rope(a, dims, *, traditional, base, scale, offset, freqs=None, stream=None):
    """Rotary positional encoding of the first ``dims`` features of the last axis, with
    positions along the second-to-last axis starting at ``offset``."""
    _float_check("rope", "a", a)
    if a.ndim < 3:
        raise ValueError(f"[rope] Input must have at least 3 dimensions, got {a.ndim}.")
    dims = int(dims)
    if dims <= 0 or dims % 2 or dims > a.shape[-1]:
        raise ValueError(f"[rope] dims must be a positive even number no larger than the last axis ({a.shape[-1]}), got {dims}.")
    if (base is None) == (freqs is None):
        raise ValueError("[rope] Exactly one of base and freqs must be None.")
    if freqs is not None:
        _float_check("rope", "freqs", freqs)
        if freqs.shape != (dims // 2,):
            raise ValueError(f"[rope] freqs must have shape ({dims // 2},), got {freqs.shape}.")
    if isinstance(offset, array):
        if offset.ndim > 1 or (offset.ndim == 1 and offset.shape[0] != a.shape[0]):
            raise ValueError(f"[rope] offset must be a scalar or have shape ({a.shape[0]},), got {offset.shape}.")
        if not _mx.issubdtype(offset.dtype, _mx.integer):
            raise ValueError(f"[rope] offset must be an integer array, got {offset.dtype}.")
    else:
        offset = int(offset)
    return _ref.rope(a, dims, bool(traditional), None if base is None else float(base), float(scale), offset, freqs)


def scaled_dot_product_attention(q, k, v, *, scale, mask=None, sinks=None, force_fused=False, stream=None):
    """``softmax(q @ k.T * scale + mask) @ v`` per head, with grouped-query heads, the
    ``"causal"`` mask (bottom-right aligned), boolean or additive masks and sinks."""
    op = "scaled_dot_product_attention"
    for name, t in (("q", q), ("k", k), ("v", v)):
        _float_check(op, name, t)
        if t.ndim != 4:
            raise ValueError(f"[{op}] {name} must have 4 dimensions [B, N, T, D], got shape {t.shape}.")
    if k.shape != v.shape[:3] + (k.shape[3],) or k.shape[:3] != v.shape[:3]:
        raise ValueError(f"[{op}] k and v must agree on [B, N_kv, T_kv], got {k.shape} and {v.shape}.")
    if q.shape[3] != k.shape[3]:
        raise ValueError(f"[{op}] q and k must have the same head dimension, got {q.shape[3]} and {k.shape[3]}.")
    if q.shape[0] != k.shape[0]:
        raise ValueError(f"[{op}] q and k must have the same batch size, got {q.shape[0]} and {k.shape[0]}.")
    if k.shape[1] == 0 or q.shape[1] % k.shape[1]:
        raise ValueError(f"[{op}] the number of query heads ({q.shape[1]}) must be a multiple of the key/value heads ({k.shape[1]}).")
    if isinstance(mask, str):
        if mask != "causal":
            raise ValueError(f"[{op}] Invalid mask type '{mask}'; the only string mask is 'causal'.")
    elif mask is not None:
        if not isinstance(mask, array):
            raise TypeError(f"[{op}] mask must be None, 'causal' or an array, got {type(mask).__name__}.")
        if mask.ndim > 4:
            raise ValueError(f"[{op}] mask can have at most 4 dimensions, got {mask.ndim}.")
        target = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
        try:
            _mx.broadcast_shapes(mask.shape, target)
        except ValueError:
            raise ValueError(f"[{op}] mask of shape {mask.shape} does not broadcast to {target}.") from None
        if _mx.broadcast_shapes(mask.shape, target) != target:
            raise ValueError(f"[{op}] mask of shape {mask.shape} does not broadcast to {target}.")
    if sinks is not None:
        _float_check(op, "sinks", sinks)
        if sinks.shape != (q.shape[1],):
            raise ValueError(f"[{op}] sinks must have shape ({q.shape[1]},), got {sinks.shape}.")
    return _ref.scaled_dot_product_attention(q, k, v, float(scale), mask, sinks)


def cross_entropy(logits, targets, *, stream=None):
    """``logsumexp(logits, -1) - logits[..., targets]`` in float32, shaped as ``targets``."""
    _float_check("cross_entropy", "logits", logits)
    if logits.ndim == 0:
        raise ValueError("[cross_entropy] logits must have at least 1 dimension.")
    if not isinstance(targets, array) or not _mx.issubdtype(targets.dtype, _mx.integer):
        raise ValueError("[cross_entropy] targets must be an integer array of class indices.")
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"[cross_entropy] targets must have shape {logits.shape[:-1]}, got {targets.shape}.")
    return _ref.cross_entropy(logits, targets)


def _gpu_only(name):
    def f(*args, **kwargs):
        raise RuntimeError(f"[{name}] needs the CUDA backend, which is not available on this machine.")

    f.__name__ = name
    return f


cuda_kernel = _gpu_only("cuda_kernel")
precompiled_cuda_kernel = _gpu_only("precompiled_cuda_kernel")


def metal_kernel(*args, **kwargs):
    raise RuntimeError("[metal_kernel] Metal is not available in oxmx (Linux, CPU and CUDA); use mx.fast.cuda_kernel.")
