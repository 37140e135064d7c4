"""`x.at[idx].add(v)`: functional indexed updates (duplicate indices accumulate)."""

from oxmx import _oxmx as _n

from ._composite import _INT_RANGES


def _update_value(a, v, op):
    """The update as an array, converted as MLX converts an `at[]` operand.

    Python scalars take ``a``'s dtype (a float for an integer ``a`` stays float32, so
    ``divide(0.5)`` doubles); Python ints out of ``a``'s integer range are refused.
    """
    if v is None:
        raise TypeError(f"[at.{op}] The update must be a scalar or an array, got NoneType.")
    if isinstance(v, (list, tuple, str, bytes)):
        raise ValueError(f"[at.{op}] Invalid type {type(v).__name__} received for the update.")
    if isinstance(v, bool):
        return _n.array(v).astype(a.dtype) if a.dtype != _n.bool_ else _n.array(v)
    if isinstance(v, int):
        if a.dtype in _INT_RANGES:
            lo, hi = _INT_RANGES[a.dtype]
            if a.dtype == _n.uint64:
                lo = -(2**63)  # MLX wraps negative ints into uint64 (two's complement)
            if not lo <= v <= hi:
                raise ValueError(f"[at.{op}] Converting {v} to {a.dtype.name} would result in overflow.")
            return _n.array(v, dtype=a.dtype)
        return _n.array(v, dtype=a.dtype if a.dtype != _n.bool_ else _n.int32)
    if isinstance(v, float):
        inexact = _n.issubdtype(a.dtype, _n.inexact)
        return _n.array(v, dtype=a.dtype if inexact else _n.float32)
    if isinstance(v, complex):
        return _n.array(v, dtype=_n.complex64)
    return _n.asarray(v)


class _AtUpdate:
    __slots__ = ("_a", "_idx")

    def __init__(self, a, idx):
        self._a = a
        self._idx = idx

    def _apply(self, v, mode):
        v = _n.asarray(v)
        if v.ndim and v.shape[0] == 1:
            # MLX drops leading length-1 axes of an update with more axes than the target.
            target = self._a[self._idx].ndim
            while v.ndim > target and v.shape[0] == 1:
                v = v.reshape(v.shape[1:])
        return _n._at_update(self._a, self._idx, v, mode)

    def add(self, v, /):
        """``a[idx] += v`` with repeated indices accumulating."""
        return self._apply(_update_value(self._a, v, "add"), "add")

    def subtract(self, v, /):
        """``a[idx] -= v`` with repeated indices accumulating."""
        return self._apply(_n.negative(_update_value(self._a, v, "subtract")), "add")

    def multiply(self, v, /):
        """``a[idx] *= v`` with repeated indices accumulating."""
        return self._apply(_update_value(self._a, v, "multiply"), "multiply")

    def divide(self, v, /):
        """``a[idx] /= v``: a product with ``1 / v`` (cast to ``a``'s dtype), as MLX."""
        return self._apply(_n.reciprocal(_update_value(self._a, v, "divide")), "multiply")

    def maximum(self, v, /):
        """``a[idx] = maximum(a[idx], v)`` over every repeated index."""
        return self._apply(_update_value(self._a, v, "maximum"), "maximum")

    def minimum(self, v, /):
        """``a[idx] = minimum(a[idx], v)`` over every repeated index."""
        return self._apply(_update_value(self._a, v, "minimum"), "minimum")


class _AtIndexer:
    __slots__ = ("_a",)

    def __init__(self, a):
        self._a = a

    def __getitem__(self, idx):
        return _AtUpdate(self._a, idx)
