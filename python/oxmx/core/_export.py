"""Graph export: ``export_to_dot`` writes the graph behind arrays in Graphviz DOT.

(``export_function``/``import_function``/``exporter`` are still to come: issue #14.)
"""

import os

from oxmx import _oxmx as _native
from oxmx._oxmx import array

__all__ = ["export_to_dot"]


def export_to_dot(file, *args, **kwargs):
    """Write the graph of the output arrays ``args`` to ``file`` in DOT format: every
    unevaluated node reachable from them, with evaluated arrays as leaves. Keyword
    arguments name arrays (``x=x``) to label them in the drawing."""
    for a in args:
        if not isinstance(a, array):
            raise TypeError(f"[export_to_dot] Outputs must be arrays, got {type(a).__name__}.")
    names = []
    for k, v in kwargs.items():
        if not isinstance(v, array):
            raise TypeError(f"[export_to_dot] Named value {k!r} must be an array, got {type(v).__name__}.")
        names.append((str(k), v))
    text = _native.transforms.dot(list(args), names)
    if hasattr(file, "write"):
        file.write(text)
        return
    with open(os.fspath(file), "w", encoding="utf-8") as f:
        f.write(text)
