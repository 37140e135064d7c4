"""`x.at[idx].add(v)`: functional indexed updates (duplicates accumulate)."""

from oxmx import _oxmx as _n


class _AtUpdate:
    __slots__ = ("_a", "_idx")

    def __init__(self, a, idx):
        self._a = a
        self._idx = idx

    def add(self, v):
        return _n._at_update(self._a, self._idx, v, "add")

    def subtract(self, v):
        return _n._at_update(self._a, self._idx, _n.negative(_n.asarray(v, dtype=self._a.dtype)), "add")

    def multiply(self, v):
        return _n._at_update(self._a, self._idx, v, "multiply")

    def divide(self, v):
        return _n._at_update(self._a, self._idx, _n.reciprocal(_n.asarray(v, dtype=self._a.dtype)), "multiply")

    def maximum(self, v):
        return _n._at_update(self._a, self._idx, v, "maximum")

    def minimum(self, v):
        return _n._at_update(self._a, self._idx, v, "minimum")


class _AtIndexer:
    __slots__ = ("_a",)

    def __init__(self, a):
        self._a = a

    def __getitem__(self, idx):
        return _AtUpdate(self._a, idx)
