"""The differential harness: run one generated call through real MLX and through oxmx and
compare everything a user can observe.

A call is described once, framework-free: its leaves are NumPy-backed array inputs
(``A``), dtype names (``D``), framework callables (``F``) and plain Python values. ``run``
materialises the call for one framework, executes it and normalises the outcome:

* a result: a pytree whose arrays become ``(shape, dtype name, NumPy values, repr)``;
* an exception: its type and message.

``compare`` then demands: the same structure, shapes and dtypes; values bit-exact where
the spec says MLX's result is exactly defined (NaN compared by NaN-ness) or within the
dtype's tolerance otherwise; identical ``repr`` for exact results; and, when MLX raises,
an oxmx exception that is an instance of MLX's exception type (oxmx's AxisError
subclasses both ValueError and IndexError, as NumPy's does).
"""

import math

import numpy as np

import mlx.core as mlx_core  # noqa: F401  (the conftest skips the package without it)

import oxmx.core as ox_core
from oxmx_testing import npdt as np_dtype  # noqa: F401  (re-exported for gen.py)

FRAMEWORKS = {"mlx": mlx_core, "oxmx": ox_core}

DTYPES = [
    "bool_", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64",
    "float16", "bfloat16", "float32", "float64", "complex64",
]
INTS = ["uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64"]
FLOATS = ["float16", "bfloat16", "float32", "float64"]
REALS = INTS + FLOATS
NUMERIC = REALS + ["complex64"]

# relative tolerance per result dtype for results that are not exactly defined. float64 is
# loose because MLX evaluates several float64 transcendentals (exp, sin, sigmoid, ...) with
# float32-grade accuracy (~4e-7 relative); oxmx's float64 results are checked against NumPy
# at full precision in the other test files.
RTOL = {"float16": 4e-3, "bfloat16": 3e-2, "float32": 2e-5, "float64": 1e-6, "complex64": 2e-5}


class DifferenceError(AssertionError):
    """oxmx and MLX disagree on a call."""


# ----------------------------------------------------------------------------- leaves
class A:
    """An array argument: NumPy data, its oxmx/MLX dtype name and an optional view.

    ``view`` makes the framework array non-contiguous with the same logical value:
    ``"T"`` (data stored transposed, then ``.T``), ``"step"`` (every other element of a
    wider array), ``"bcast"`` (a broadcast of a smaller array)."""

    def __init__(self, data, dtype, view=None, out_of_bounds=False):
        self.data = np.asarray(data)
        self.dtype = dtype
        self.view = view
        # an index array with entries outside its axis: MLX reads/writes out of bounds
        # (memory corruption, later aborts), so such calls never go to MLX
        self.out_of_bounds = out_of_bounds

    @property
    def shape(self):
        return self.data.shape

    def build(self, fw):
        m = FRAMEWORKS[fw]
        d = self.data
        if self.view == "T" and d.ndim >= 2:
            return _to_fw(m, np.ascontiguousarray(d.T), self.dtype).T
        if self.view == "step" and d.ndim >= 1:
            wide = np.repeat(d, 2, axis=-1)
            return _to_fw(m, wide, self.dtype)[..., ::2]
        if self.view == "bcast" and d.ndim >= 1 and d.shape[0] > 0:
            return m.broadcast_to(_to_fw(m, d[:1], self.dtype), d.shape) if _rows_equal(d) else _to_fw(m, d, self.dtype)
        return _to_fw(m, d, self.dtype)

    def __repr__(self):
        v = f", view={self.view}" if self.view else ""
        body = np.array2string(self.data, threshold=40, precision=4, separator=",").replace("\n", "")
        body = " ".join(body.split())
        return f"A({body}, {self.dtype}{v})"


def _rows_equal(d):
    return all(np.array_equal(d[0], d[i], equal_nan=True) for i in range(d.shape[0]))


class D:
    """A dtype argument by name: ``D("float32")`` is ``mx.float32`` in each framework."""

    def __init__(self, name):
        self.name = name

    def build(self, fw):
        return getattr(FRAMEWORKS[fw], self.name)

    def __repr__(self):
        return f"mx.{self.name}"


class F:
    """A framework-dependent value: ``F(lambda m: m.cpu)``."""

    def __init__(self, fn, label="F"):
        self.fn = fn
        self.label = label

    def build(self, fw):
        return self.fn(FRAMEWORKS[fw])

    def __repr__(self):
        return self.label


def _to_fw(m, data, dtype):
    data = np.asarray(data)
    if dtype == "bfloat16":
        return m.array(data.astype(np.float32)).astype(m.bfloat16)
    if dtype == "bool_":
        return m.array(data.astype(np.bool_))
    return m.array(data.astype(np_dtype(dtype)), dtype=getattr(m, dtype))



def build(obj, fw):
    """Materialise a framework-free pytree of leaves for framework ``fw``."""
    if isinstance(obj, (A, D, F)):
        return obj.build(fw)
    if isinstance(obj, tuple):
        return tuple(build(o, fw) for o in obj)
    if isinstance(obj, list):
        return [build(o, fw) for o in obj]
    if isinstance(obj, dict):
        return {k: build(v, fw) for k, v in obj.items()}
    return obj


class Call:
    """``target(*args, **kwargs)``. ``target`` is a public name (``"add"``,
    ``"linalg.inv"``), a method (``".sum"``: called on the first argument) or a callable
    ``fn(m, *args, **kwargs)`` taking the framework module first."""

    def __init__(self, target, *args, **kwargs):
        self.target = target
        self.args = args
        self.kwargs = kwargs

    def resolve(self, fw):
        m = FRAMEWORKS[fw]
        t = self.target
        if callable(t):
            return lambda *a, **k: t(m, *a, **k)
        if t.startswith("."):
            return lambda obj, *a, **k: getattr(obj, t[1:])(*a, **k)
        if t.startswith("op."):
            # Python operators, as user code spells them: ``x + y``, ``2 - x``
            import operator

            fn = getattr(operator, t[3:])
            return fn
        obj = m
        for part in t.split("."):
            obj = getattr(obj, part)
        return obj

    def __repr__(self):
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        name = self.target if isinstance(self.target, str) else getattr(self.target, "__name__", "fn")
        return f"{name}({', '.join(parts)})"


# ----------------------------------------------------------------------------- outcomes
class Raised:
    def __init__(self, exc):
        self.type = type(exc)
        self.message = str(exc)

    def __repr__(self):
        return f"raised {self.type.__name__}: {self.message[:300]}"


def dtype_name(dt):
    s = str(dt)
    return s.rsplit(".", 1)[-1]


def is_array(x):
    return isinstance(x, (mlx_core.array, ox_core.array))


def to_numpy(x):
    """An evaluated array as NumPy (bfloat16 widened exactly to float32)."""
    name = dtype_name(x.dtype)
    if name == "bfloat16":
        x = x.astype(_module_of(x).float32)
    return np.array(x, copy=True)


def _module_of(x):
    return mlx_core if isinstance(x, mlx_core.array) else ox_core


def normalise(out, fw):
    """Arrays -> comparable tuples; containers kept; everything else as is."""
    if is_array(out):
        return ("array", tuple(out.shape), dtype_name(out.dtype), to_numpy(out), repr(out))
    if isinstance(out, (tuple, list)):
        return type(out)(normalise(o, fw) for o in out)
    if isinstance(out, dict):
        return {k: normalise(v, fw) for k, v in out.items()}
    if type(out).__name__ == "Dtype":
        return ("dtype", dtype_name(out))
    return out


def run(call, fw):
    """Execute ``call`` in framework ``fw``; a normalised result or ``Raised``.
    BaseExceptions that are not Exceptions (a Rust panic) propagate."""
    try:
        fn = call.resolve(fw)
        args = build(call.args, fw)
        kwargs = build(call.kwargs, fw)
        out = fn(*args, **kwargs)
        return normalise(out, fw)
    except Exception as e:  # noqa: BLE001  (every exception is an observable outcome)
        return Raised(e)


# ----------------------------------------------------------------------------- compare
def compare(call, ref, got, exact=False, rtol=None, atol=None, check_repr=True, where="result"):
    """Raise DifferenceError describing the first difference between MLX (``ref``) and
    oxmx (``got``)."""

    def fail(msg):
        raise DifferenceError(f"{call!r} [{where}]: {msg}")

    if isinstance(ref, Raised) or isinstance(got, Raised):
        if not isinstance(ref, Raised):
            fail(f"MLX returned a result, oxmx {got!r}")
        if not isinstance(got, Raised):
            fail(f"MLX {ref!r}; oxmx returned {_short(got)}")
        if not issubclass(got.type, ref.type):
            fail(f"exception types differ: MLX {ref!r}; oxmx {got!r}")
        return
    _compare_tree(ref, got, exact, rtol, atol, check_repr, fail, "")


def _short(x):
    if isinstance(x, tuple) and x and x[0] == "array":
        return f"array shape={x[1]} dtype={x[2]} {np.array2string(x[3], threshold=20)}"
    return repr(x)[:300]


def _compare_tree(ref, got, exact, rtol, atol, check_repr, fail, path):
    if isinstance(ref, tuple) and ref and ref[0] == "array":
        if not (isinstance(got, tuple) and got and got[0] == "array"):
            fail(f"{path}: MLX array, oxmx {_short(got)}")
        _compare_arrays(ref, got, exact, rtol, atol, check_repr, fail, path)
        return
    if isinstance(ref, tuple) and ref and ref[0] == "dtype":
        if got != ref:
            fail(f"{path}: MLX {ref}, oxmx {got!r}")
        return
    if isinstance(ref, (tuple, list)):
        if type(got) is not type(ref) or len(got) != len(ref):
            fail(f"{path}: MLX {type(ref).__name__} of {len(ref)}, oxmx {_short(got)}")
        for i, (r, g) in enumerate(zip(ref, got)):
            _compare_tree(r, g, exact, rtol, atol, check_repr, fail, f"{path}[{i}]")
        return
    if isinstance(ref, dict):
        if not isinstance(got, dict) or set(got) != set(ref):
            fail(f"{path}: MLX dict keys {sorted(ref)}, oxmx {_short(got)}")
        for k in ref:
            _compare_tree(ref[k], got[k], exact, rtol, atol, check_repr, fail, f"{path}[{k!r}]")
        return
    if type(ref) is not type(got):
        fail(f"{path}: MLX {type(ref).__name__} {ref!r}, oxmx {type(got).__name__} {got!r}")
    if isinstance(ref, complex):
        same = all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in ((ref.real, got.real), (ref.imag, got.imag)))
        if not same and (exact or not abs(ref - got) <= (atol or 1e-6) + (rtol or 1e-6) * abs(ref)):
            fail(f"{path}: MLX {ref!r}, oxmx {got!r}")
        return
    if isinstance(ref, float):
        if not (ref == got or (math.isnan(ref) and math.isnan(got))):
            if exact or not math.isclose(ref, got, rel_tol=rtol or 1e-6, abs_tol=atol or 1e-6):
                fail(f"{path}: MLX {ref!r}, oxmx {got!r}")
        return
    if ref != got:
        fail(f"{path}: MLX {ref!r}, oxmx {got!r}")


def _compare_arrays(ref, got, exact, rtol, atol, check_repr, fail, path):
    _, rshape, rdt, rv, rrepr = ref
    _, gshape, gdt, gv, grepr = got
    if rshape != gshape:
        fail(f"{path}: shape MLX {rshape}, oxmx {gshape}")
    if rdt != gdt:
        fail(f"{path}: dtype MLX {rdt}, oxmx {gdt}")
    if not values_match(rv, gv, rdt, exact, rtol, atol):
        fail(f"{path}: values differ ({rdt}{', exact' if exact else ''})\n  MLX  {_fmt(rv)}\n  oxmx {_fmt(gv)}")
    # complex values are compared with a tolerance, so their printed digits may differ
    if exact and check_repr and rdt != "complex64" and rrepr != grepr:
        fail(f"{path}: repr differs\n  MLX  {rrepr}\n  oxmx {grepr}")


def _fmt(v):
    return np.array2string(np.asarray(v), threshold=30, precision=8, separator=", ").replace("\n", " ")


def values_match(r, g, dtname, exact, rtol=None, atol=None):
    r = np.asarray(r)
    g = np.asarray(g)
    if r.shape != g.shape:
        return False
    if r.size == 0:
        return True
    if r.dtype.kind in "biu" or (exact and r.dtype.kind not in "fc"):
        return np.array_equal(r, g)
    if r.dtype.kind == "c":
        # complex arithmetic has no single exactly-defined formula: always a tolerance
        return values_match(r.real, g.real, "float32", False, rtol, atol) and values_match(
            r.imag, g.imag, "float32", False, rtol, atol
        )
    rn, gn = np.isnan(r), np.isnan(g)
    if not np.array_equal(rn, gn):
        return False
    r = np.where(rn, 0, r)
    g = np.where(gn, 0, g)
    if exact:
        return np.array_equal(r, g) and np.array_equal(np.signbit(r), np.signbit(g))
    rinf, ginf = np.isinf(r), np.isinf(g)
    if not np.array_equal(r[rinf], g[ginf]) or not np.array_equal(rinf, ginf):
        return False
    rt = RTOL.get(dtname, 1e-5) if rtol is None else rtol
    at = rt if atol is None else atol
    fin = ~rinf
    r64, g64 = r[fin].astype(np.float64), g[fin].astype(np.float64)
    return bool(np.all(np.abs(r64 - g64) <= at + rt * np.abs(r64)))


def has_out_of_bounds(obj):
    if isinstance(obj, A):
        return obj.out_of_bounds
    if isinstance(obj, (tuple, list)):
        return any(has_out_of_bounds(o) for o in obj)
    if isinstance(obj, dict):
        return any(has_out_of_bounds(o) for o in obj.values())
    if isinstance(obj, Call):
        return has_out_of_bounds(obj.args) or has_out_of_bounds(obj.kwargs)
    return False


def check(call, exact=False, rtol=None, atol=None, check_repr=True):
    """Run ``call`` in both frameworks and compare; returns MLX's outcome. A call with an
    out-of-bounds index is the documented difference "index-bounds": it is not run in
    MLX, and oxmx must raise IndexError."""
    if has_out_of_bounds(call):
        got = run(call, "oxmx")
        if not (isinstance(got, Raised) and issubclass(got.type, IndexError)):
            raise DifferenceError(f"{call!r}: an out-of-bounds index must raise IndexError in oxmx, got {got!r}")
        return got
    ref = run(call, "mlx")
    got = run(call, "oxmx")
    compare(call, ref, got, exact=exact, rtol=rtol, atol=atol, check_repr=check_repr)
    return ref
