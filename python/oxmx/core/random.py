"""oxmx.core.random — counter-based Threefry keys, bit-identical to MLX."""

import contextlib as _contextlib

from oxmx import _oxmx as _n
from ._missing import _not_yet

_native = getattr(_n, "random", None)
_NAMES = "key seed split uniform normal multivariate_normal randint bernoulli truncated_normal gumbel categorical laplace permutation bits".split()

for _name in _NAMES:
    globals()[_name] = getattr(_native, _name) if _native is not None and hasattr(_native, _name) else _not_yet("random." + _name, 2)

state = getattr(_native, "state", None) if _native is not None else None
__all__ = _NAMES + ["state"]


def multivariate_normal(mean, cov, shape=None, dtype=None, key=None, stream=None):
    """Jointly normal samples with the given ``mean`` (..., n) and covariance ``cov``
    (..., n, n), which must be positive semi-definite (otherwise the result is
    undefined). As MLX: ``mean + z @ (U diag(sqrt(S)) Vt)`` from the SVD of ``cov`` and
    standard normal ``z`` of shape ``broadcast(shape, mean's and cov's batch shapes) + (n,)``.
    The only supported ``dtype`` is float32."""
    import oxmx.core as mx

    from ._device import stream as _stream

    op = "[multivariate_normal]"
    for name, v in (("mean", mean), ("cov", cov)):
        if not isinstance(v, mx.array):
            raise TypeError(f"{op} {name} must be an array, got {type(v).__name__}.")
    if dtype is not None and dtype != mx.float32:
        raise ValueError(f"{op} dtype must be float32.")
    if mean.ndim < 1:
        raise ValueError(f"{op} mean must have at least one dimension.")
    if cov.ndim < 2:
        raise ValueError(f"{op} cov must have at least two dimensions.")
    if cov.shape[-1] != cov.shape[-2]:
        raise ValueError(f"{op} last two dimensions of cov must be equal.")
    if mean.shape[-1] != cov.shape[-1]:
        raise ValueError(f"{op} mean and cov must have compatible shapes.")
    batch = mx.broadcast_shapes(tuple(shape or ()), tuple(mean.shape[:-1]), tuple(cov.shape[:-2]))
    with _contextlib.nullcontext() if stream is None else _stream(stream):
        u, s, vt = mx.linalg.svd(cov.astype(mx.float32))
        std = (u * mx.expand_dims(mx.sqrt(s), -2)) @ vt
        z = _native.normal(tuple(batch) + (cov.shape[-1],), mx.float32, key=key)
        return mean + mx.squeeze(mx.expand_dims(z, -2) @ std, -2)
