"""Hypothesis-driven generators of framework-free calls (see diffkit.A/D/Call).

``Draw`` wraps hypothesis' ``data`` object: shapes (0-d, empty and broadcastable ones
included), dtypes, values by domain (with NaN/±inf/±0 and integer extremes mixed in),
non-contiguous views, axes (negative and out of range ones included) and Python scalars.
Array contents come from a NumPy generator seeded by a drawn integer, so hypothesis
explores shapes, dtypes and arguments while each example stays cheap.
"""

import numpy as np
from hypothesis import strategies as st

from diffkit import INTS, NUMERIC, A, np_dtype

SPECIAL_FLOATS = [np.nan, np.inf, -np.inf, 0.0, -0.0]


class Draw:
    def __init__(self, data):
        self.data = data
        self.rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))

    def __call__(self, strategy, label=None):
        return self.data.draw(strategy, label=label)

    def one(self, seq, label=None):
        return self(st.sampled_from(list(seq)), label)

    def flag(self, p_true=0.5):
        # hypothesis-controlled so failing examples shrink and replay
        return self(st.integers(0, 99)) < int(p_true * 100)

    def int(self, lo, hi):
        return self(st.integers(lo, hi))

    # ---------------------------------------------------------------- shapes
    def shape(self, min_dims=0, max_dims=3, max_side=4, empty=True):
        nd = self.int(min_dims, max_dims)
        lo = 0 if (empty and self.flag(0.15)) else 1
        return tuple(self.int(lo, max_side) for _ in range(nd))

    def bshape(self, shape):
        """A shape that broadcasts with ``shape`` (fewer dims, or some set to 1)."""
        drop = self.int(0, len(shape))
        s = list(shape[drop:])
        for i in range(len(s)):
            if self.flag(0.3):
                s[i] = 1
        if self.flag(0.15) and len(s) < 4:
            s = [1] + s
        return tuple(s)

    # ---------------------------------------------------------------- values
    def values(self, shape, dtype, dom="any", specials=True):
        r = self.rng
        size = int(np.prod(shape, dtype=np.int64))
        if dtype == "bool_":
            return r.integers(0, 2, size).astype(np.bool_).reshape(shape)
        if dtype in INTS:
            info = np.iinfo(np_dtype(dtype))
            if dom == "pos":
                v = r.integers(1, 10, size)
            elif dom == "small":
                v = r.integers(0, 5, size)
            elif info.min < 0:
                v = r.integers(-9, 10, size)
            else:
                v = r.integers(0, 20, size)
            v = v.astype(np_dtype(dtype))
            if specials and dom == "any" and size and self.flag(0.2):
                v[r.integers(0, size)] = info.max
                v[r.integers(0, size)] = info.min
            return v.reshape(shape)
        if dom == "pos":
            v = r.uniform(0.1, 3.0, size)
        elif dom == "unit":
            v = r.uniform(-0.95, 0.95, size)
        elif dom == "small":
            v = r.integers(0, 5, size).astype(np.float64)
        elif dom == "int":
            v = r.integers(-6, 7, size).astype(np.float64)
        else:
            v = r.standard_normal(size) * 2.0
        if dtype == "complex64":
            w = r.standard_normal(size) * 2.0
            v = (v + 1j * w).astype(np.complex64)
        else:
            v = v.astype(np_dtype(dtype)).astype(np.float64)
            if specials and size and self.flag(0.2):
                k = r.integers(1, max(2, size // 3) + 1)
                idx = r.integers(0, size, k)
                v[idx] = r.choice(SPECIAL_FLOATS, k)
            v = v.astype(np.float32 if dtype == "bfloat16" else np_dtype(dtype))
        return v.reshape(shape)

    def dtype(self, dtypes=NUMERIC):
        return self.one(dtypes, label="dtype")

    def arr(self, shape=None, dtypes=NUMERIC, dom="any", specials=True, views=True, dtype=None, **shape_kw):
        if shape is None:
            shape = self.shape(**shape_kw)
        dt = dtype or self.dtype(dtypes)
        view = None
        if views and len(shape) >= 1 and self.flag(0.25):
            view = self.one(["T", "step", "bcast"]) if len(shape) >= 2 else self.one(["step", "bcast"])
        data = self.values(shape, dt, dom, specials)
        if view == "bcast" and len(shape) >= 1 and shape[0] > 0:
            data = np.broadcast_to(data[:1], shape).copy()
        return A(data, dt, view)

    def scalar(self, kinds=("int", "float", "bool")):
        k = self.one(kinds, label="scalar kind")
        if k == "int":
            return self.int(-5, 5)
        if k == "float":
            return self.one([0.5, -1.5, 2.0, 0.0, 3.25, float("inf"), float("nan")])
        if k == "complex":
            return complex(1.5, -0.5)
        return self.one([True, False])

    # ---------------------------------------------------------------- axes
    def axis(self, ndim, none=True, bad=True, neg=True):
        """An axis argument: None, an int (possibly negative or out of range)."""
        opts = []
        if none:
            opts.append(None)
        if ndim:
            opts += list(range(ndim))
            if neg:
                opts += list(range(-ndim, 0))
        if bad:
            opts.append(ndim)
        if not opts:
            return None
        return self.one(opts, label="axis")

    def axes(self, ndim, none=True, bad=True):
        """None, an int, or a tuple of distinct axes (sometimes a repeated or bad one)."""
        k = self.int(0, 2)
        if k == 0 or ndim == 0:
            return self.axis(ndim, none=none, bad=bad)
        n = self.int(1, ndim)
        ax = list(self.rng.permutation(ndim)[:n])
        ax = [int(a) - ndim if self.flag(0.3) else int(a) for a in ax]
        if bad and self.flag(0.1):
            ax.append(ax[0])
        return tuple(ax)
