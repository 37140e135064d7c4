"""Creation helpers written with core ops: meshgrid and window functions."""

import math

from oxmx import _oxmx as _n


def meshgrid(*arrays, sparse=False, indexing="xy", stream=None):
    """Coordinate matrices from coordinate vectors (NumPy semantics)."""
    if indexing not in ("xy", "ij"):
        raise ValueError("[meshgrid] indexing must be 'xy' or 'ij'.")
    xs = [_n.asarray(a).reshape(-1) for a in arrays]
    n = len(xs)
    if n == 0:
        return ()
    out = []
    for i, x in enumerate(xs):
        shape = [1] * n
        shape[i] = x.size
        out.append(x.reshape(shape))
    if indexing == "xy" and n >= 2:
        out = [_n.swapaxes(o, 0, 1) for o in out]
    # MLX returns a tuple
    if sparse:
        return tuple(out)
    return tuple(_n.broadcast_arrays(*out))


def _window(M, coeffs):
    if M < 1:
        return _n.zeros((0,), dtype=_n.float32)
    if M == 1:
        return _n.ones((1,), dtype=_n.float32)
    n = _n.arange(0, M, dtype=_n.float32)
    w = _n.zeros((M,), dtype=_n.float32)
    for k, c in enumerate(coeffs):
        w = w + c * _n.cos(2.0 * math.pi * k * n / (M - 1))
    return w


def hanning(M, *, stream=None):
    return _window(M, [0.5, -0.5])


def hamming(M, *, stream=None):
    return _window(M, [0.54, -0.46])


def blackman(M, *, stream=None):
    return _window(M, [0.42, -0.5, 0.08])


def bartlett(M, *, stream=None):
    if M < 1:
        return _n.zeros((0,), dtype=_n.float32)
    if M == 1:
        return _n.ones((1,), dtype=_n.float32)
    n = _n.arange(0, M, dtype=_n.float32)
    half = (M - 1) / 2.0
    return 1.0 - _n.abs((n - half) / half)


def from_dlpack(x):
    """Array from any DLPack producer on the CPU (copied into oxmx memory)."""
    import numpy as np

    return _n.asarray(np.from_dlpack(x))
