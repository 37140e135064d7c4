"""Dtype utilities implemented in Python: finfo, iinfo, result_type."""

from oxmx import _oxmx as _n

_FLOAT_INFO = {
    # name: (bits, eps, max, min_normal(tiny), resolution, precision)
    "float16": (16, 0.0009765625, 65504.0, 6.103515625e-05, 0.001, 3),
    "bfloat16": (16, 0.0078125, 3.3895313892515355e38, 1.1754943508222875e-38, 0.01, 2),
    "float32": (32, 1.1920928955078125e-07, 3.4028234663852886e38, 1.1754943508222875e-38, 1e-06, 6),
    "float64": (64, 2.220446049250313e-16, 1.7976931348623157e308, 2.2250738585072014e-308, 1e-15, 15),
    "complex64": (32, 1.1920928955078125e-07, 3.4028234663852886e38, 1.1754943508222875e-38, 1e-06, 6),
}

_INT_INFO = {
    "bool": (8, 0, 1),
    "uint8": (8, 0, 2**8 - 1),
    "uint16": (16, 0, 2**16 - 1),
    "uint32": (32, 0, 2**32 - 1),
    "uint64": (64, 0, 2**64 - 1),
    "int8": (8, -(2**7), 2**7 - 1),
    "int16": (16, -(2**15), 2**15 - 1),
    "int32": (32, -(2**31), 2**31 - 1),
    "int64": (64, -(2**63), 2**63 - 1),
}


def _dtype_from_name(name):
    return getattr(_n, name)


def _as_dtype(x):
    if isinstance(x, _n.Dtype):
        return x
    if isinstance(x, _n.array):
        return x.dtype
    name = getattr(x, "name", None) or getattr(x, "__name__", None) or str(x)
    if hasattr(_n, name) and isinstance(getattr(_n, name), _n.Dtype):
        return getattr(_n, name)
    raise TypeError(f"[dtype] Cannot interpret {x!r} as a dtype.")


class finfo:
    """Machine limits for floating point types."""

    def __init__(self, dtype):
        d = _as_dtype(dtype)
        if d.name not in _FLOAT_INFO:
            raise ValueError(f"[finfo] dtype {d} is not inexact.")
        bits, eps, mx, tiny, res, prec = _FLOAT_INFO[d.name]
        self.dtype = _n.float32 if d.name == "complex64" else d
        self.bits = bits
        self.eps = eps
        self.max = mx
        self.min = -mx
        self.tiny = tiny
        self.smallest_normal = tiny
        self.resolution = res
        self.precision = prec

    def __repr__(self):
        return f"finfo(min={self.min:g}, max={self.max:g}, dtype={self.dtype.name})"


class iinfo:
    """Machine limits for integer types."""

    def __init__(self, dtype):
        d = _as_dtype(dtype)
        if d.name not in _INT_INFO or d.name == "bool":
            raise ValueError(f"[iinfo] dtype {d} is not an integer type.")
        self.dtype = d
        self.bits, self.min, self.max = _INT_INFO[d.name]

    def __repr__(self):
        return f"iinfo(min={self.min}, max={self.max}, dtype={self.dtype.name})"


_PROMOTED = {}


def _promote_pair(a, b):
    """The dtype of ``add`` on arrays of dtypes ``a`` and ``b`` (memoized: fast ops call
    this on every use)."""
    key = (a, b)
    d = _PROMOTED.get(key)
    if d is None:
        d = _PROMOTED[key] = _n.add(_n.zeros((0,), dtype=a), _n.zeros((0,), dtype=b)).dtype
    return d


def result_type(*arrays_and_dtypes):
    """Dtype of an operation on the arguments (MLX promotion, weak Python scalars)."""
    if not arrays_and_dtypes:
        raise ValueError("[result_type] At least one argument is required.")
    arrays = []
    scalars = []
    for x in arrays_and_dtypes:
        if isinstance(x, _n.Dtype):
            arrays.append(_n.zeros((0,), dtype=x))
        elif isinstance(x, _n.array):
            arrays.append(x)
        elif isinstance(x, (bool, int, float, complex)):
            scalars.append(x)
        else:
            arrays.append(_n.zeros((0,), dtype=_as_dtype(x)))
    if not arrays:
        return _n.array(scalars[0]).dtype if len(scalars) == 1 else _n.add(*scalars[:2]).dtype
    d = arrays[0].dtype
    for a in arrays[1:]:
        d = _promote_pair(d, a.dtype)
    for s in scalars:
        d = _n.add(_n.zeros((0,), dtype=d), s).dtype
    return d
