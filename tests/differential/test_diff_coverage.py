"""Every public name of oxmx.core, of its sub-modules and of the array class has a
differential strategy (specs.SPECS), a hand-written comparison in test_diff_state.py
(STATE_COVERED), or is listed in PLANNED because it still raises 'not implemented yet'."""

import inspect

import oxmx.core as mx
from specs import SPECS
from test_diff_state import STATE_COVERED

SUBMODULES = ["random", "linalg", "fft", "fast"]
# dtype objects, categories, constants and classes are compared by the dtype/printing specs
NOT_CALLABLE_OK = {"array", "Dtype", "DtypeCategory", "Device", "DeviceType", "Stream", "custom_function",
                   "finfo", "iinfo", "AxisError", "FormatError", "IntegrityError", "PrintOptions"}


def _planned(fn):
    return (getattr(fn, "__doc__", "") or "").startswith("Not implemented yet")


def public_names():
    names = []
    for n in dir(mx):
        obj = getattr(mx, n)
        if n.startswith("_") or inspect.ismodule(obj) or not callable(obj) or isinstance(obj, mx.Dtype):
            continue
        if inspect.isclass(obj) and n in NOT_CALLABLE_OK:
            continue
        names.append(n)
    for sub in SUBMODULES:
        m = getattr(mx, sub)
        names += [f"{sub}.{n}" for n in dir(m) if not n.startswith("_") and callable(getattr(m, n))]
    return names


def test_every_public_function_has_a_strategy():
    missing = []
    for n in public_names():
        obj = mx
        for part in n.split("."):
            obj = getattr(obj, part)
        if n in SPECS or n in STATE_COVERED or _planned(obj):
            continue
        missing.append(n)
    assert not missing, f"public names without a differential strategy: {missing}"


def test_every_array_method_has_a_strategy():
    import mlx.core as mlx

    methods = [n for n in dir(mlx.array) if not n.startswith("__") or n in OPERATORS]
    missing = [n for n in methods if f".{n}" not in SPECS and n not in SPECS and n not in ARRAY_OTHER]
    assert not missing, f"array methods/properties without a differential strategy: {missing}"


OPERATORS = {n for n in SPECS if n.startswith("__")}
# properties and methods compared inside other specs
ARRAY_OTHER = {
    "T": "properties", "dtype": "properties", "shape": "properties", "ndim": "properties",
    "size": "properties", "itemsize": "properties", "nbytes": "properties", "real": "properties",
    "imag": "imag", "at": "at.add ...", "mT": ".mT",
}


def test_documented_differences_match_known_py():
    """docs/MLX_DIFFERENCES.md lists exactly the differences of known.py (same keys)."""
    import os
    import re

    from known import KNOWN

    doc = open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "MLX_DIFFERENCES.md")).read()
    keys = set(re.findall(r"^\| `([a-z0-9-]+)` \|", doc, re.M))
    assert keys == {k.key for k in KNOWN}
