"""Function export: ``export_function``, ``import_function`` and ``exporter`` save traced
graphs to a file and load them back; ``export_to_dot`` draws a graph in Graphviz DOT.

An exported file is data only (``crates/oxmx-io/src/function.rs`` documents the
format): for each trace, its input shapes and dtypes, its constants' bytes and its steps
as operation names with numeric parameters. It holds no code and no pickled objects.
``import_function`` checks every count, reference and parameter while reading, and each
call rebuilds the steps through oxmx's op layer, so a hostile file can only produce an
error. What a file cannot hold: custom CUDA kernels (refused at export) and the rules of
``custom_function`` (an imported function differentiates the forward graph instead).
"""

import os

from oxmx import _oxmx as _native
from oxmx._oxmx import array

from ._compile import LruTapes as _LruTapes
from ._transforms import _replace_arrays

__all__ = ["export_to_dot", "export_function", "import_function", "exporter", "FunctionExporter"]

_T = _native.transforms


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
    text = _T.dot(list(args), names)
    if hasattr(file, "write"):
        file.write(text)
        return
    with open(os.fspath(file), "w", encoding="utf-8") as f:
        f.write(text)


def _inputs(op, args, kwargs):
    """MLX's two calling forms: arrays as ``*args``/``**kwargs``, or one tuple (or list)
    and/or one dict of arrays. Returns (positional list, keyword dict)."""
    if len(args) in (1, 2) and not kwargs:
        first = args[0]
        if len(args) == 1 and isinstance(first, dict):
            args, kwargs = (), first
        elif isinstance(first, (tuple, list)) and (len(args) == 1 or isinstance(args[1], dict)):
            args, kwargs = tuple(first), (args[1] if len(args) == 2 else {})
    for a in list(args) + list(kwargs.values()):
        if not isinstance(a, array):
            raise ValueError(
                f"[{op}] Inputs can either be a variable number of positional and keyword arrays "
                "or a single tuple and/or dictionary of arrays."
            )
    for k in kwargs:
        if not isinstance(k, str):
            raise ValueError(f"[{op}] Keyword input names must be strings, got {k!r}.")
    return list(args), dict(kwargs)


def _trace(fun, args, kwargs, shapeless=False):
    """The graph of ``fun`` over placeholders of ``args``/``kwargs`` (keywords sorted by
    name), and the keyword names. A shapeless trace records mean's and var's element
    counts as nodes over their input, so they follow new sizes."""
    keys = sorted(kwargs)
    values = args + [kwargs[k] for k in keys]
    with _T._Trace(False, shapeless) as trace:
        leaves = [trace.leaf(a) for a in values]
        out = fun(*leaves[: len(args)], **dict(zip(keys, leaves[len(args) :])))
        if isinstance(out, array):
            outs = [out]
        elif isinstance(out, (tuple, list)) and out and all(isinstance(o, array) for o in out):
            outs = list(out)
        else:
            raise ValueError("[export_function] The function must return an array or a tuple or list of arrays.")
        tape = _T.capture(leaves, outs, False)
    return tape.graph(False), keys


def _check_target(op, file):
    if not isinstance(file, (str, os.PathLike)):
        raise TypeError(f"[{op}] The file must be a path, got {type(file).__name__}.")
    return os.fspath(file)


def _writer():
    from oxmx import __version__

    return f"oxmx {__version__}"


def _metadata(op, metadata):
    if metadata is None:
        return ""
    if not isinstance(metadata, str):
        raise TypeError(f"[{op}] metadata must be a str, got {type(metadata).__name__}.")
    return metadata


def export_function(file_or_callback, fun, *args, shapeless=False, metadata=None, **kwargs):
    """Trace ``fun`` on the example inputs and save the graph to a file (or describe it
    to a callback). Inputs are arrays given as ``*args``/``**kwargs`` or as one tuple
    and/or one dict; their shapes and dtypes are what the imported function accepts
    (with ``shapeless``, other sizes of the same ranks where the graph allows)."""
    args, kwargs = _inputs("export_function", args, kwargs)
    graph, keys = _trace(fun, args, kwargs, shapeless)
    if callable(file_or_callback) and not isinstance(file_or_callback, (str, os.PathLike)):
        if metadata is not None:
            raise ValueError("[export_function] metadata is only supported when exporting to a file.")
        _describe(file_or_callback, graph, keys)
        return
    path = _check_target("export_function", file_or_callback)
    meta = _metadata("export_function", metadata)
    _native.transforms._write_function_file(path, _writer(), meta, bool(shapeless), [(graph, keys)])


def _names():
    """A, B, ..., Z, AA, AB, ... (the names MLX's export callback uses)."""
    i = 0
    while True:
        n, s = i, ""
        while True:
            s = chr(ord("A") + n % 26) + s
            n = n // 26 - 1
            if n < 0:
                break
        yield s
        i += 1


def _describe(callback, graph, keys):
    """MLX's export callback: one dict each for the inputs, keyword inputs, outputs,
    constants and every step."""
    consts, steps, outs = graph.describe()
    specs = graph.input_specs()
    fresh = _names()
    names = {}

    def name(ref):
        if ref not in names:
            names[ref] = next(fresh)
        return names[ref]

    def info(ref):
        kind, i = ref
        if kind == "input":
            shape, dtype = specs[i]
        elif kind == "constant":
            shape, dtype = consts[i].shape, consts[i].dtype
        else:
            shape, dtype = steps[i][4], steps[i][5]
        return (name(ref), tuple(shape), dtype)

    n_pos = len(specs) - len(keys)
    callback({"type": "inputs", "inputs": [info(("input", i)) for i in range(len(specs))]})
    callback({"type": "keyword_inputs", "keywords": [(k, name(("input", n_pos + j))) for j, k in enumerate(keys)]})
    callback({"type": "outputs", "outputs": [info(tuple(r)) for r in outs]})
    callback({"type": "constants", "constants": [(name(("constant", i)), c) for i, c in enumerate(consts)]})
    for j, (op, ints, floats, ins, _shape, _dtype) in enumerate(steps):
        callback(
            {
                "type": "primitive",
                "name": op,
                "arguments": list(ints) + list(floats),
                "inputs": [info(tuple(r)) for r in ins],
                "outputs": [info(("step", j))],
            }
        )


class FunctionExporter:
    """Exports several traces of one function to one file (``mx.exporter``). Each call
    traces the function on new example inputs and rewrites the file with every trace so
    far; use it as a context manager or call :meth:`close`."""

    def __init__(self, file, fun, shapeless=False, metadata=None):
        self._path = _check_target("exporter", file)
        self._fun = fun
        self._shapeless = bool(shapeless)
        self._meta = _metadata("exporter", metadata)
        self._traces = []
        self._closed = False

    def __call__(self, *args, **kwargs):
        if self._closed:
            raise RuntimeError("[exporter] The exporter is closed.")
        args, kwargs = _inputs("exporter", args, kwargs)
        self._traces.append(_trace(self._fun, args, kwargs, self._shapeless))
        _native.transforms._write_function_file(self._path, _writer(), self._meta, self._shapeless, self._traces)

    def close(self):
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def exporter(file, fun, *, shapeless=False, metadata=None):
    """A :class:`FunctionExporter` writing traces of ``fun`` to ``file``."""
    return FunctionExporter(file, fun, shapeless=shapeless, metadata=metadata)


def _fmt_spec(shape, dtype):
    return f"({','.join(str(d) for d in shape)}) {str(dtype).split('.')[-1]}"


class _ImportedFunction:
    """A function read by :func:`import_function`: calls pick the trace whose inputs
    match and replay it (the graph is rebuilt through the op layer once per input
    signature, then replayed like a compiled function). Always returns a tuple."""

    def __init__(self, path, shapeless, traces):
        self._path = path
        self._shapeless = shapeless
        # (graph, keyword names, input specs)
        self._traces = [(g, list(k), g.input_specs()) for g, k in traces]
        self._tapes = _LruTapes()

    def _matches(self, specs, n_pos, keys, pos, kw):
        if len(pos) != n_pos or sorted(kw) != keys:
            return False
        for a, (shape, dtype) in zip(pos + [kw[k] for k in keys], specs):
            if a.dtype != dtype or a.ndim != len(shape):
                return False
            if not self._shapeless and tuple(a.shape) != tuple(shape):
                return False
        return True

    def _no_match(self, pos, kw):
        lines = [
            "[import_function::call] No imported function found which matches the given positional "
            "and keyword arguments. Possible functions include:"
        ]
        for t, (_g, keys, specs) in enumerate(self._traces):
            n_pos = len(specs) - len(keys)
            lines.append(f" {t + 1}. Function with {n_pos} positional inputs and {len(keys)} keyword inputs:")
            for i in range(n_pos):
                lines.append(f"   {i + 1}: {_fmt_spec(*specs[i])}")
            for j, k in enumerate(keys):
                lines.append(f'   "{k}": {_fmt_spec(*specs[n_pos + j])}')
        lines.append("")
        lines.append(f"Called with {len(pos)} positional inputs and {len(kw)} keyword inputs:")
        for i, a in enumerate(pos):
            lines.append(f"  {i + 1}: {_fmt_spec(a.shape, a.dtype)}")
        for k in sorted(kw):
            lines.append(f'  "{k}": {_fmt_spec(kw[k].shape, kw[k].dtype)}')
        return ValueError("\n".join(lines))

    def __call__(self, *args, **kwargs):
        pos, kw = _inputs("import_function::call", args, kwargs)
        for t, (graph, keys, specs) in enumerate(self._traces):
            n_pos = len(specs) - len(keys)
            if not self._matches(specs, n_pos, keys, pos, kw):
                continue
            values = pos + [kw[k] for k in keys]
            key = (t, tuple((tuple(a.shape), str(a.dtype)) for a in values))
            tape = self._tapes.get(key)
            if tape is None:
                exact = all(tuple(a.shape) == tuple(s) for a, (s, _d) in zip(values, specs))
                tape = graph.tape(values, exact)
                self._tapes.put(key, tape)
            return tuple(tape.replay(values))
        raise self._no_match(pos, kw)

    def __repr__(self):
        return f"<imported function from {self._path!r}: {len(self._traces)} trace(s)>"


def import_function(file, return_metadata=False):
    """Load a function saved by :func:`export_function` or :func:`exporter`. The result
    takes arrays as ``*args``/``**kwargs`` (or one tuple and/or dict) matching one of the
    exported traces and returns a tuple of arrays. With ``return_metadata`` the metadata
    string saved with it is returned too."""
    path = _check_target("import_function", file)
    _writer_name, meta, shapeless, traces = _native.transforms._read_function_file(path)
    fn = _ImportedFunction(path, shapeless, traces)
    return (fn, meta) if return_metadata else fn
