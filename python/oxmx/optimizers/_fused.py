"""Fused optimizer updates: one kernel per parameter instead of a dozen elementwise ops.

Each fused update computes exactly the composite formula of its optimizer, every
operation rounded in the parameter's dtype as the separate ops round it (for float16 and
bfloat16: computed in float32, the result stored to the half type), so results are
bit-identical to the composite (and to MLX's float32 updates). Transforms of the update
(``grad`` through an optimizer step, ``vmap``) go through the composite formula.
"""

import numbers

import oxmx.core as mx
from oxmx import _oxmx as _native

_FUSED_DTYPES = (mx.float16, mx.bfloat16, mx.float32, mx.float64)


def _adam_composite(p, g, m, v, s1, s2, decay, c):
    b1, omb1, b2, omb2, eps = c
    m = b1 * m + omb1 * g
    v = b2 * v + omb2 * mx.square(g)
    return mx.stack([p * decay - s1 * m / (mx.sqrt(v) * s2 + eps), m, v])


def adam_fusable(gradient, parameter, m, v, *scalars):
    """Whether the fused Adam step applies: one float dtype and shape for the
    four arrays, Python numbers for the coefficients."""
    d = parameter.dtype
    return (
        d in _FUSED_DTYPES
        and all(isinstance(a, mx.array) and a.dtype == d and a.shape == parameter.shape for a in (gradient, m, v))
        and all(isinstance(s, numbers.Real) and not isinstance(s, bool) for s in scalars)
    )


def adam_step(parameter, gradient, m, v, s1, s2, decay, b1, b2, eps):
    """``(p', m', v')`` of one Adam step with ``m' = b1 m + (1-b1) g``,
    ``v' = b2 v + (1-b2) g^2`` and ``p' = p decay - s1 m' / (sqrt(v') s2 + eps)``;
    ``s1``, ``s2`` and ``decay`` are 0-d arrays of the parameter's dtype."""
    c = (float(b1), float(1 - b1), float(b2), float(1 - b2), float(eps))
    out = mx.fast._fused(
        lambda *xs: _native._fast_adam_step(*xs, c),
        lambda *xs: _adam_composite(*xs, c),
        parameter, gradient, m, v, s1, s2, decay,
    )
    return out[0], out[1], out[2]
