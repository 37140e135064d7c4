"""Array printing in MLX's style: ``array([1, 2.5], dtype=float32)``."""

import contextlib
import math as _math

class PrintOptions:
    """Printing options: ``precision`` digits after the point (-1: shortest form).

    Like MLX, an axis longer than ``2 * edgeitems`` is summarized with ``...`` (its first and
    last ``edgeitems`` entries) once the array has at least ``threshold`` elements; MLX's
    fixed behaviour is ``threshold=0, edgeitems=3``. ``linewidth`` is kept for NumPy-style
    callers; MLX does not wrap rows and neither does oxmx.
    """

    def __init__(self, precision=-1, threshold=0, edgeitems=3, linewidth=80):
        self.precision = precision
        self.threshold = threshold
        self.edgeitems = edgeitems
        self.linewidth = linewidth

    def _copy(self):
        return PrintOptions(self.precision, self.threshold, self.edgeitems, self.linewidth)

    def __repr__(self):
        return f"PrintOptions(precision={self.precision})"


_state = PrintOptions()


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None):
    """Set global printing options; ``precision=-1`` restores the shortest form."""
    if precision is not None:
        if not isinstance(precision, int) or isinstance(precision, bool) or precision < -1:
            raise ValueError("[set_printoptions] precision must be an int >= -1.")
        _state.precision = precision
    if threshold is not None:
        _state.threshold = int(threshold)
    if edgeitems is not None:
        _state.edgeitems = int(edgeitems)
    if linewidth is not None:
        _state.linewidth = int(linewidth)


def get_printoptions():
    return _state._copy()


@contextlib.contextmanager
def printoptions(**kwargs):
    old = _state._copy()
    set_printoptions(**kwargs)
    try:
        yield get_printoptions()
    finally:
        _state.__dict__.update(old.__dict__)


def _fmt_float(v):
    if v != v:
        # MLX (C++ streams) shows the sign bit of a NaN.
        return "-nan" if _math.copysign(1.0, v) < 0 else "nan"
    if v in (float("inf"), float("-inf")):
        return "inf" if v > 0 else "-inf"
    p = _state.precision
    if p is None or p < 0:
        return f"{v:g}"
    return f"{v:.{p}f}"


def _fmt(v):
    if isinstance(v, bool):
        return "True" if v else "False"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, complex):
        if v.imag != v.imag:
            # MLX prints a NaN imaginary part after a "+", with its sign: 1+nanj, 1+-nanj
            return f"{_fmt_float(v.real)}+{_fmt_float(v.imag)}j"
        im = _fmt_float(abs(v.imag))
        sign = "-" if v.imag < 0 or (v.imag == 0 and str(v.imag).startswith("-")) else "+"
        return f"{_fmt_float(v.real)}{sign}{im}j"
    return _fmt_float(v)


def _summarize(a):
    return a.size >= _state.threshold


def _lines(a, indent, summarize):
    """Format array `a` (nd >= 1) as text, iteratively over the leading axes."""
    import oxmx.core as mx

    edge = _state.edgeitems
    nd = a.ndim
    if nd == 1:
        n = a.shape[0]
        if summarize and n > 2 * edge:
            vals = [_fmt(x) for x in a[:edge].tolist()] + ["..."] + [_fmt(x) for x in a[n - edge :].tolist()]
        else:
            vals = [_fmt(x) for x in a.tolist()]
        return "[" + ", ".join(vals) + "]"
    n = a.shape[0]
    if summarize and n > 2 * edge:
        idx = list(range(edge)) + [None] + list(range(n - edge, n))
    else:
        idx = list(range(n))
    parts = []
    for i in idx:
        if i is None:
            parts.append("...")
        else:
            parts.append(_lines(a[i], indent + 1, summarize))
    sep = ",\n" + " " * (indent + 1)
    del mx
    return "[" + sep.join(parts) + "]"


def _body(a):
    if a.ndim == 0:
        return _fmt(a.item())
    if a.dtype.name == "bfloat16":
        import oxmx.core as mx

        a = a.astype(mx.float32)
    return _lines(a, 6, _summarize(a))


def array_repr(a):
    body = _body(a)
    return f"array({body}, dtype={a.dtype.name})"


def array_str(a):
    return array_repr(a)
