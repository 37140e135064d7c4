"""oxmx.core.random — counter-based Threefry keys, bit-identical to MLX."""

from oxmx import _oxmx as _n
from ._missing import _not_yet

_native = getattr(_n, "random", None)
_NAMES = "key seed split uniform normal multivariate_normal randint bernoulli truncated_normal gumbel categorical laplace permutation bits".split()

for _name in _NAMES:
    globals()[_name] = getattr(_native, _name) if _native is not None and hasattr(_native, _name) else _not_yet("random." + _name, 2)

state = getattr(_native, "state", None) if _native is not None else None
